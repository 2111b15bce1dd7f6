"""Per-sample statistics: gradient moments over samples (ZiCo) and activation sign codes with their
Hamming kernel (NWOT), against plain torch loops, hand counts and synth.zoo's proxies."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synth import runtime
from synth.grammar import load_grammar
from synth.space import load_space
from synth.probe import Probe
from synth.zoo import get_proxy
from synth.zoo.gradient_stats import zico
from tests.test_stats_table import DIGIT_ARCHS, batch, program_value, tiny_vit

LINEARS = ("qkv", "proj", "fc1", "fc2")


def _block_linears(model):
    """{'msa': [...], 'mlp': [...]} linear modules of the blocks, by name (not through synth)."""
    named = [(n, m) for n, m in model.named_modules() if n.startswith("blocks.") and n.endswith(LINEARS)]
    return {"msa": [m for n, m in named if n.endswith(("qkv", "proj"))], "mlp": [m for n, m in named if n.endswith(("fc1", "fc2"))]}


def test_sample_gradient_moments_match_one_backward_pass_per_sample():
    model = tiny_vit(seed=1)
    x, y = batch(5, seed=1)
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, [f"{k}.{q}" for k in ("msa", "mlp") for q in
                                                                    ("sample_grad_abs_mean", "sample_grad_std", "weight_grad")])
    model.train()
    for kind, modules in _block_linears(model).items():
        weights = [m.weight for m in modules]
        per_sample = [torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), weights) for i in range(5)]
        for layer, weight in enumerate(weights):
            g = torch.stack([grads[layer] for grads in per_sample]).double()
            torch.testing.assert_close(stats[f"{kind}.sample_grad_abs_mean"].matrices()[layer].double(), g.abs().mean(0), rtol=1e-4, atol=1e-7)
            torch.testing.assert_close(stats[f"{kind}.sample_grad_std"].matrices()[layer].double(), g.std(0, unbiased=False), rtol=1e-3, atol=1e-7)
            # the batch loss is the mean of the samples' losses, so its gradient is the mean per-sample gradient
            torch.testing.assert_close(stats[f"{kind}.weight_grad"].matrices()[layer].double(), g.mean(0), rtol=1e-4, atol=1e-7)


def test_sample_gradient_moments_by_the_outer_product_identity_in_chunks(monkeypatch):
    x, gy = torch.randn(7, 3, 5), torch.randn(7, 3, 4)
    g = 7 * torch.einsum("nto,nti->noi", gy.double(), x.double())
    whole = runtime._sample_grad_moments({"input": x, "output_grad": gy})
    for expected, got in zip((g.abs().mean(0), g.std(0, unbiased=False)), whole):
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    # with room for 2 samples' gradients at once, they are folded in 4 chunks: same moments
    monkeypatch.setattr(runtime.readers, "SAMPLE_GRAD_CHUNK", 2 * 4 * 5)  # the module that reads it
    for before, after in zip(whole, runtime._sample_grad_moments({"input": x, "output_grad": gy})):
        torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-7)


def test_activation_codes_are_the_signs_of_the_first_mlp_layer_outputs():
    model = tiny_vit(seed=2)
    x, y = batch(4, seed=2)
    outputs = []
    handles = [m.register_forward_hook(lambda mod, args, out: outputs.append(out.detach()))
               for n, m in model.named_modules() if n.endswith("fc1")]
    codes = runtime.collect_statistics(model, x, y, ["act.code"])["act.code"].matrices()
    for h in handles:
        h.remove()
    assert len(codes) == len(outputs) == 2
    for code, out in zip(codes, outputs):  # timm's Mlp: fc1 -> act, so the act's input is fc1's output
        assert code.shape == (4, out.shape[1] * out.shape[2])
        assert torch.equal(code, (out > 0).reshape(4, -1).float())


def test_hamming_kernel_and_logdet_by_hand():
    # samples a, b, c; layer 1 codes 110, 100, 011; layer 2 codes 10, 10, 01
    codes = runtime.Layers.from_list([torch.tensor([[1.0, 1, 0], [1, 0, 0], [0, 1, 1]]), torch.tensor([[1.0, 0], [1, 0], [0, 1]])])
    kernel = runtime.op_hamming_kernel(codes)
    # agreements: a-b 2 + 2, a-c 1 + 0, b-c 0 + 0; each sample agrees with itself in all 5 units
    expected = np.array([[5, 4, 1], [4, 5, 0], [1, 0, 5]], dtype=float)
    np.testing.assert_array_equal(kernel.numpy(), expected)
    assert float(runtime.op_logdet(kernel)) == pytest.approx(np.log(abs(np.linalg.det(expected))))
    assert float(runtime.op_logdet(torch.ones(2, 2))) == -np.inf  # singular: -inf, as NWOT
    with pytest.raises(ValueError):
        runtime.op_hamming_kernel(runtime.Layers.from_list([torch.ones(3, 2), torch.ones(4, 2)]))


@pytest.mark.parametrize("arch", DIGIT_ARCHS)
def test_zico_and_nwot_programs_equal_the_zoo(arch):
    grammar = load_grammar("vit")
    space = load_space("vit-digits")
    x, y = Probe(batch_size=12).batch(space)
    model = space.build(arch, seed=0)
    # zoo's zico reads every trainable linear and convolution layer; freezing the patch embedding
    # and the head leaves exactly the MSA and MLP linears the program reads
    for p in [*model.patch_embed.parameters(), *model.head.parameters()]:
        p.requires_grad_(False)
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, grammar.statistics)
    assert program_value(grammar, "zico", stats) == pytest.approx(zico(model, x, y, F.cross_entropy, chunks=12), rel=1e-4)
    assert program_value(grammar, "nwot", stats) == pytest.approx(get_proxy("nwot")(model, x, y), rel=1e-9)


KERNEL_GRAMMAR = """\
name: k
root: net
types:
  codes: {kind: tensor, layer: per_block}
  per_block: {kind: layer, network: net}
  kern: {kind: kernel, network: net}
  net: {kind: scalar}
terminals:
  c: {type: codes, stat: act.code}
operations:
  - {op: mean, for: [codes]}
  - {op: layer_sum, for: [per_block]}
  - op: hamming_kernel
    signatures: ["codes -> kern"]
  - {op: logdet, for: [kern]}
"""


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("  - op: hamming_kernel\n    signatures: [\"codes -> kern\"]", "  - {op: hamming_kernel, for: [codes]}",
         "op 'hamming_kernel' is a kernel of per-sample values: list its 'signatures' explicitly"),
        ('["codes -> kern"]', '["per_block -> kern"]', "kernel 'hamming_kernel' maps a tensor type (one row per sample) to a kernel type"),
        ("{op: logdet, for: [kern]}", "{op: logdet, for: [codes]}", "kernel reduction 'logdet' applies to kernel types; 'codes' is a tensor type"),
        ("kern: {kind: kernel, network: net}", "kern: {kind: kernel}", "a kernel type needs 'network:'"),
    ],
)
def test_kernel_typing_errors(tmp_path, old, new, message):
    from synth.errors import GrammarError

    good = tmp_path / "good.yaml"
    good.write_text(KERNEL_GRAMMAR)
    grammar = load_grammar(str(good))
    assert {p.name: (p.args, p.ret) for p in grammar.primitives.values()}["logdet__kern"] == (("kern",), "net")
    bad = tmp_path / "bad.yaml"
    assert old in KERNEL_GRAMMAR
    bad.write_text(KERNEL_GRAMMAR.replace(old, new))
    with pytest.raises(GrammarError) as err:
        load_grammar(str(bad))
    assert message in str(err.value)
