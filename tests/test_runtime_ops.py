"""Each torch op against an independent numpy computation, and the sympy->torch mapping's coverage."""

import numpy as np
import pytest
import torch

from synth import runtime
from synth.execute import evaluate, to_source
from synth.ops import OPS
from synth.symbolic import symbol

RNG = np.random.default_rng(0)
A = RNG.normal(size=(5, 7)).astype(np.float32)
B = RNG.normal(size=(3, 4)).astype(np.float32)  # another shape: the flat buffer mixes layer sizes


def t(x):
    return torch.tensor(x)


def layers(*arrays):
    return runtime.Layers.from_list([t(a) for a in arrays])


def softmax_np(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ELEMENTWISE = {
    "op_log": lambda x: np.log(np.abs(x) + 1e-12),
    "op_abs": np.abs,
    "op_exp": np.exp,
    "op_sqrt": lambda x: np.sqrt(np.abs(x)),
    "op_inverse": lambda x: 1.0 / x,
    "op_relu": lambda x: np.maximum(x, 0),
    "op_sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "op_zscore": lambda x: (x - x.mean()) / x.std(),
    "op_minmax": lambda x: (x - x.min()) / (x.max() - x.min()),
    "op_softmax": softmax_np,
    "op_log_softmax": lambda x: np.log(softmax_np(x)),
}

REDUCTIONS = {
    "op_mean": np.mean,
    "op_std": np.std,
    "op_sum": np.sum,
    "op_fro": lambda x: np.sqrt((x**2).sum()),
    "op_l1": lambda x: np.abs(x).sum(),
    "op_nuclear": lambda x: np.linalg.svd(x.astype(np.float64), compute_uv=False).sum(),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_matches_numpy_per_layer(name):
    fn = getattr(runtime, name)
    out = fn(layers(A, B)).matrices()
    assert len(out) == 2
    np.testing.assert_allclose(out[0].numpy(), ELEMENTWISE[name](A), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), ELEMENTWISE[name](B), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_give_one_value_per_layer(name):
    out = getattr(runtime, name)(layers(A, B))
    assert out.shape == (2,)
    np.testing.assert_allclose(out.numpy(), [REDUCTIONS[name](A), REDUCTIONS[name](B)], rtol=1e-5)


def test_protected_ops_stay_finite_at_zero():
    zero = runtime.Layers.from_list([torch.zeros(3, 3)])
    for name in ("op_log", "op_inverse", "op_sqrt", "op_zscore", "op_minmax"):
        assert torch.isfinite(getattr(runtime, name)(zero).data).all(), name


def test_inverse_keeps_the_sign_and_clamps_at_eps_with_both_zeros_positive():
    x = torch.tensor([2.0, -4.0, 0.0, -0.0, 1e-20, -1e-20, float("inf"), float("-inf"), float("nan")])
    expected = [0.5, -0.25, 1e12, 1e12, 1e12, -1e12, 0.0, -0.0, float("nan")]
    out = runtime.op_inverse(runtime.Layers.from_list([x.reshape(3, 3)])).data
    np.testing.assert_allclose(out.numpy(), np.float32(expected), rtol=1e-6)
    assert torch.signbit(out[7]) and not torch.signbit(out[3])


@pytest.mark.parametrize("name", sorted(set(ELEMENTWISE) | {"op_std", "op_l1", "op_fro", "op_nuclear", "op_mean"}))
def test_ops_leave_their_arguments_untouched(name):
    """Ops work in place only on their own temporaries: statistics and shared values stay as they were."""
    value = layers(A, B)
    before = value.data.clone()
    getattr(runtime, name)(value)
    assert torch.equal(value.data, before)
    whole = t(A)  # a tensor outside the flat buffer (one layer's matrix, or a per-layer vector)
    getattr(runtime, name)(whole)
    assert torch.equal(whole, t(A))


def test_matrix_products_follow_linear_layer_shapes():
    x, w = RNG.normal(size=(11, 4)).astype(np.float32), RNG.normal(size=(6, 4)).astype(np.float32)
    gy = RNG.normal(size=(11, 6)).astype(np.float32)
    np.testing.assert_allclose(runtime.op_matmul_tn(layers(gy), layers(x)).matrices()[0].numpy(), gy.T @ x, rtol=1e-5)
    np.testing.assert_allclose(runtime.op_matmul_nt(layers(x), layers(w)).matrices()[0].numpy(), x @ w.T, rtol=1e-5)
    np.testing.assert_allclose(runtime.op_matmul(layers(gy), layers(w)).matrices()[0].numpy(), gy @ w, rtol=1e-5)


def test_pairwise_broadcasts_constants_and_rejects_layer_count_mismatch():
    out = runtime.op_add(layers(A), 2.0)
    np.testing.assert_allclose(out.matrices()[0].numpy(), A + 2.0)
    with pytest.raises(ValueError):
        runtime.op_mul(layers(A), layers(A, B))


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_maps_to_torch_and_back(op):
    """Every op's sympy form evaluates through the torch table and prints as source."""
    spec = OPS[op]
    x, y = symbol("x"), symbol("y")
    if spec.role == "aggregate":
        values = {"x": torch.tensor([1.0, 2.0, 4.0])}
        expr = spec.sympy(x)
    elif spec.role in ("kernel", "kernel_reduce"):  # 0/1 codes of 3 samples in two layers -> a kernel -> a number
        values = {"x": layers(np.eye(3, 4, dtype=np.float32), np.eye(3, 2, dtype=np.float32))}
        expr = OPS["logdet"].sympy(OPS["hamming_kernel"].sympy(x))
    elif spec.arity == 2:
        values = {"x": layers(A @ A.T), "y": layers(A @ A.T)}
        expr = OPS["mean"].sympy(spec.sympy(x, y))
    else:
        values = {"x": layers(A, B)}
        expr = OPS["mean"].sympy(spec.sympy(x)) if spec.role != "reduce" else spec.sympy(x)
    engine = evaluate(OPS["layer_sum"].sympy(expr) if spec.role not in ("aggregate", "kernel", "kernel_reduce") else expr, values)
    assert np.isfinite(engine)
    assert "op_" in to_source(expr)


def test_collect_statistics_shapes_on_a_timm_vit():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    names = [f"{k}.{q}" for k in ("msa", "mlp") for q in runtime.QUANTITIES]
    stats = runtime.collect_statistics(model, x, y, names)
    tokens = 4 * 17
    assert stats["msa.weight"].layout.shapes == ((48, 16), (16, 16)) * 2
    assert stats["mlp.weight"].layout.shapes == ((32, 16), (16, 32)) * 2
    assert stats["msa.input"].layout.shapes == ((tokens, 16),) * 4
    assert stats["mlp.output_grad"].layout.shapes == ((tokens, 32), (tokens, 16)) * 2
    # the weight gradient of a linear layer is gy^T x summed over tokens
    g, a = stats["mlp.output_grad"].matrices()[0], stats["mlp.input"].matrices()[0]
    torch.testing.assert_close(stats["mlp.weight_grad"].matrices()[0], g.T @ a, rtol=1e-4, atol=1e-6)
    # a row subset keeps the same rows of a layer's input and output gradient
    sub = runtime.collect_statistics(model, x, y, names, max_rows=20, row_seed=3)
    assert sub["msa.input"].layout.shapes == ((20, 16),) * 4
    keep = runtime._row_subset(tokens, 20, 3)
    torch.testing.assert_close(sub["mlp.input"].matrices()[0], a[keep])
    torch.testing.assert_close(sub["mlp.output_grad"].matrices()[0], g[keep])
    torch.testing.assert_close(sub["mlp.weight_grad"].data, stats["mlp.weight_grad"].data)
