"""Statistics of convolutional networks (kinds conv, bn, relu, fc) and the channel-wise reductions,
each against an independent computation: plain forward hooks, tensor hooks for gradients,
F.unfold for im2col rows and one backward pass per sample for per-sample gradients."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from synth import runtime
from synth.models import _nasbench201_network, build_nasbench201, nasbench201_arch

# conv3x3, conv1x1, skip, pool, none, conv3x3: every NAS-Bench-201 operation in one cell
ARCH = nasbench201_arch((2, 3, 0, 4, 1, 2))
CNN_KINDS = ("conv", "bn", "relu", "fc")


def small_nb201(seed=0, batch_norm=True):
    """A NAS-Bench-201 network with 8 channels and one cell per stage (the cell, reductions, stem and
    head of the real one, smaller); without batch norm when asked (BN layers become identities)."""
    torch.manual_seed(seed)
    if batch_norm:
        return build_nasbench201(ARCH, C=8, N=1)
    return _nasbench201_network()(ARCH, 8, 1, 10, 3, lambda channels: nn.Identity())


def probe(n=4, seed=0, size=16):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def of_type(model, kind):
    """The model's modules of one kind, by type (not through synth.runtime)."""
    types = {"conv": nn.Conv2d, "bn": nn.BatchNorm2d, "relu": nn.ReLU, "fc": nn.Linear}
    return [m for m in model.modules() if isinstance(m, types[kind])]


class Reference:
    """Every module's input, output gradient and weight gradient, from one training-mode forward and
    backward pass of a copy of the model, read with forward hooks and tensor hooks."""

    def __init__(self, model, x, y):
        self.model = copy.deepcopy(model).train()
        self.inputs, self.output_grads = {}, {}

        def keep(module, args, out):
            self.inputs[module] = args[0].detach().clone()
            if out.requires_grad:
                out.register_hook(lambda grad: self.output_grads.__setitem__(module, grad.detach()))

        handles = [m.register_forward_hook(keep) for kind in CNN_KINDS for m in of_type(self.model, kind)]
        F.cross_entropy(self.model(x), y).backward()
        for handle in handles:
            handle.remove()

    def modules(self, kind):
        return of_type(self.model, kind)


def channel_rows(t):
    """(samples, channels, H, W) -> (samples x H x W, channels); 2-D as it is."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.dim() == 4 else t


def unfold_rows(module, x):
    """im2col rows of a conv input by F.unfold (zero padding): (samples x positions, in x kh x kw)."""
    cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def per_sample_grads(model, x, y, modules):
    """[(samples, *weight shape)] per module: the gradient of each sample's own loss, one pass each."""
    model = copy.deepcopy(model).train()
    chosen = [dict(model.named_modules())[name] for name, m in modules]
    rows = [torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), [m.weight for m in chosen]) for i in range(len(x))]
    return [torch.stack([r[j] for r in rows]).double() for j in range(len(chosen))]


def _numbers(kind, fn):
    return lambda ref: [float(fn(m, ref)) for m in ref.modules(kind)]


def _tensors(kind, fn):
    return lambda ref: [fn(m, ref) for m in ref.modules(kind)]


def _affine_grad(m, ref):
    return m.weight.grad.reshape(1, -1)


# statistic -> expected per-layer values (list of matrices or of numbers) from a Reference
EXPECTED = {
    "conv.weight": _tensors("conv", lambda m, r: m.weight.detach().reshape(m.out_channels, -1)),
    "conv.weight_grad": _tensors("conv", lambda m, r: m.weight.grad.reshape(m.out_channels, -1)),
    "conv.input": _tensors("conv", lambda m, r: unfold_rows(m, r.inputs[m])),
    "conv.output_grad": _tensors("conv", lambda m, r: channel_rows(r.output_grads[m])),
    "conv.numel": _numbers("conv", lambda m, r: m.out_channels * m.in_channels * m.kernel_size[0] * m.kernel_size[1]),
    "conv.params": _numbers("conv", lambda m, r: m.weight.numel()),  # NAS-Bench-201 convs have no bias
    "conv.width_in": _numbers("conv", lambda m, r: m.in_channels),
    "conv.width_out": _numbers("conv", lambda m, r: m.out_channels),
    "conv.kernel": _numbers("conv", lambda m, r: m.kernel_size[0] * m.kernel_size[1]),
    "conv.spatial": _numbers("conv", lambda m, r: r.inputs[m].shape[2] * r.inputs[m].shape[3]),
    "conv.depth": lambda r: [float(i + 1) for i in range(len(r.modules("conv")))],
    "bn.input": _tensors("bn", lambda m, r: channel_rows(r.inputs[m])),
    "bn.output_grad": _tensors("bn", lambda m, r: channel_rows(r.output_grads[m])),
    "bn.weight": _tensors("bn", lambda m, r: m.weight.detach().reshape(1, -1)),
    "bn.weight_grad": _tensors("bn", _affine_grad),
    "bn.params": _numbers("bn", lambda m, r: 2 * m.num_features),
    "bn.width": _numbers("bn", lambda m, r: m.num_features),
    "bn.spatial": _numbers("bn", lambda m, r: r.inputs[m][0, 0].numel()),
    "bn.depth": lambda r: [float(i + 1) for i in range(len(r.modules("bn")))],
    "relu.input": _tensors("relu", lambda m, r: channel_rows(r.inputs[m])),
    "relu.code": _tensors("relu", lambda m, r: (r.inputs[m].permute(0, 2, 3, 1) > 0).reshape(r.inputs[m].shape[0], -1).float()),
    "relu.width": _numbers("relu", lambda m, r: r.inputs[m].shape[1]),
    "relu.spatial": _numbers("relu", lambda m, r: r.inputs[m].shape[2] * r.inputs[m].shape[3]),
    "relu.depth": lambda r: [float(i + 1) for i in range(len(r.modules("relu")))],
    "fc.weight": _tensors("fc", lambda m, r: m.weight.detach()),
    "fc.weight_grad": _tensors("fc", lambda m, r: m.weight.grad),
    "fc.input": _tensors("fc", lambda m, r: r.inputs[m]),
    "fc.output_grad": _tensors("fc", lambda m, r: r.output_grads[m]),
    "fc.numel": _numbers("fc", lambda m, r: m.in_features * m.out_features),
    "fc.params": _numbers("fc", lambda m, r: m.in_features * m.out_features + m.out_features),
    "fc.width_in": _numbers("fc", lambda m, r: m.in_features),
    "fc.width_out": _numbers("fc", lambda m, r: m.out_features),
    "fc.tokens": _numbers("fc", lambda m, r: 1),
    "fc.depth": lambda r: [1.0],
}
PER_SAMPLE = ("conv.sample_grad_abs_mean", "conv.sample_grad_std", "fc.sample_grad_abs_mean", "fc.sample_grad_std")


def test_every_cnn_statistic_is_tested():
    cnn = {name for name, row in runtime.STATISTICS.items() if row.kind in CNN_KINDS}
    assert cnn == set(EXPECTED) | set(PER_SAMPLE)


def test_sites_by_kind_finds_every_layer_of_a_nasbench201_network():
    model = small_nb201()
    sites = runtime.sites_by_kind(model)
    for kind in CNN_KINDS:
        assert [s.module for s in sites[kind]] == of_type(model, kind), kind
    # the stem, 3 convs per cell (edges 1-2, 1-3, 3-4) in 3 cells, 3 per reduction block: 1 + 3 * 3 + 2 * 3
    assert len(sites["conv"]) == 16 and len(sites["fc"]) == 1
    assert not sites["msa"] and not sites["mlp"] and not sites["act"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cnn_statistic_matches_hooks(name):
    model = small_nb201()
    x, y = probe()
    got = runtime.collect_statistics(copy.deepcopy(model), x, y, [name])[name]
    expected = EXPECTED[name](Reference(model, x, y))
    if runtime.STATISTICS[name].role == "layer":
        assert got.tolist() == expected
        return
    matrices = got.matrices()
    assert len(matrices) == len(expected) > 0
    for mine, theirs in zip(matrices, expected):
        torch.testing.assert_close(mine, theirs.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_per_sample_gradient_moments_without_batch_norm_are_those_of_each_samples_own_loss(name):
    model = small_nb201(batch_norm=False)
    x, y = probe(n=5)
    kind, quantity = name.split(".")
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, {"conv": nn.Conv2d, "fc": nn.Linear}[kind])]
    got = runtime.collect_statistics(copy.deepcopy(model), x, y, [name])[name].matrices()
    grads = per_sample_grads(model, x, y, named)
    assert len(got) == len(grads)
    for mine, g in zip(got, grads):
        g = g.reshape(g.shape[0], g.shape[1], -1)
        expected = g.abs().mean(0) if quantity == "sample_grad_abs_mean" else g.std(0, unbiased=False)
        torch.testing.assert_close(mine.double(), expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))


def test_conv_sample_gradients_with_batch_norm_are_each_samples_share_of_the_batch_gradient():
    model = small_nb201()
    x, y = probe(n=5)
    ref = Reference(model, x, y)
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, ["conv.sample_grad_abs_mean", "conv.sample_grad_std"])
    for i, m in enumerate(ref.modules("conv")):
        # g_n = N dL/dW restricted to sample n's input and output gradient (torch's own weight-gradient convolution)
        g = torch.stack([5 * torch.nn.grad.conv2d_weight(ref.inputs[m][n : n + 1], m.weight.shape, ref.output_grads[m][n : n + 1],
                                                             m.stride, m.padding, m.dilation) for n in range(5)]).double()
        g = g.reshape(5, m.out_channels, -1)
        torch.testing.assert_close(g.mean(0), m.weight.grad.double().reshape(m.out_channels, -1), rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(stats["conv.sample_grad_abs_mean"].matrices()[i].double(), g.abs().mean(0), rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(stats["conv.sample_grad_std"].matrices()[i].double(), g.std(0, unbiased=False), rtol=1e-3, atol=1e-7)


def test_conv_rows_keep_one_seeded_subset_for_input_and_output_gradient():
    model = small_nb201()
    x, y = probe()
    ref = Reference(model, x, y)
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, ["conv.input", "conv.output_grad", "relu.code"], max_rows=50, row_seed=3)
    for i, m in enumerate(ref.modules("conv")):
        full_x, full_gy = unfold_rows(m, ref.inputs[m]), channel_rows(ref.output_grads[m])
        keep = runtime._row_subset(full_x.shape[0], 50, 3)
        assert stats["conv.input"].matrices()[i].shape[0] == 50
        torch.testing.assert_close(stats["conv.input"].matrices()[i], full_x[keep], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats["conv.output_grad"].matrices()[i], full_gy[keep], rtol=1e-5, atol=1e-6)
    for i, m in enumerate(ref.modules("relu")):
        # 50 rows over 4 samples: 12 positions per sample, the same positions in every sample
        t = ref.inputs[m].flatten(2).transpose(1, 2)
        keep = runtime._row_subset(t.shape[1], 12, 3)
        kept = t if keep is None else t[:, keep]
        assert torch.equal(stats["relu.code"].matrices()[i], (kept > 0).reshape(4, -1).float())


@pytest.mark.parametrize("conv", [
    nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2),
    nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(1, 0)),
    nn.Conv2d(3, 5, 3, padding="same", dilation=2),
    nn.Conv2d(3, 4, 2, padding="valid"),
], ids=["strided-dilated", "rectangular", "same", "valid"])
def test_im2col_rows_times_the_weight_give_the_conv_output(conv):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9)
    rows = runtime._patch_rows(conv, x, {"max_rows": None, "row_seed": 0})
    out = conv(x) - conv.bias[None, :, None, None]
    torch.testing.assert_close(rows @ conv.weight.detach().reshape(conv.out_channels, -1).T, channel_rows(out.detach()), rtol=1e-5, atol=1e-5)


def test_grouped_conv_sample_moments_per_group():
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False)
    torch.manual_seed(1)
    x, gy = torch.randn(3, 4, 5, 5), torch.randn(3, 6, 5, 5)
    mean_abs, std = runtime._conv_sample_grad_moments(runtime.Site(conv, 1), {"input": x, "output_grad": gy})
    g = torch.stack([3 * torch.nn.grad.conv2d_weight(x[n : n + 1], conv.weight.shape, gy[n : n + 1], padding=1, groups=2)
                     for n in range(3)]).double().reshape(3, 6, -1)
    torch.testing.assert_close(mean_abs.double(), g.abs().mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(std.double(), g.std(0, unbiased=False), rtol=1e-4, atol=1e-6)


def test_channel_reductions_by_hand():
    a = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    b = torch.tensor([[2.0, 0.0, 1.0]])
    v = runtime.Layers.from_list([a, b, a * 2])
    means = runtime.op_channel_mean(v).matrices()
    assert [m.tolist() for m in means] == [[[3.0, 6.0]], [[2.0, 0.0, 1.0]], [[6.0, 12.0]]]
    stds = runtime.op_channel_std(v).matrices()
    torch.testing.assert_close(stds[0], torch.tensor([[(8 / 3) ** 0.5, (32 / 3) ** 0.5]]))
    assert stds[1].tolist() == [[0.0, 0.0, 0.0]]
    norms = runtime.op_channel_norm(v).matrices()
    torch.testing.assert_close(norms[2], torch.tensor([[2 * 35**0.5, 2 * 140**0.5]]))
    with pytest.raises(ValueError):
        runtime.op_channel_mean(torch.ones(3))


def test_vit_statistics_ignore_the_cnn_kinds():
    from tests.test_stats_table import batch, tiny_vit

    model = tiny_vit()
    x, y = batch()
    names = ["msa.weight_grad", "mlp.input", "act.code"]
    before = runtime.collect_statistics(copy.deepcopy(model), x, y, names)
    sites = runtime.sites_by_kind(model)
    assert len(sites["msa"]) == 4 and len(sites["fc"]) == 1 and sites["fc"][0].module is model.head
    after = runtime.collect_statistics(copy.deepcopy(model), x, y, names)
    for name in names:
        assert torch.equal(before[name].data, after[name].data)
