"""Each torch op against an independent numpy computation, and the sympy->torch mapping's coverage."""

import numpy as np
import pytest
import sympy
import torch

from synth import runtime
from synth.execute import evaluate, to_source
from synth.ops import OPS
from synth.symbolic import symbol

RNG = np.random.default_rng(0)
A = RNG.normal(size=(5, 7)).astype(np.float32)
B = RNG.normal(size=(5, 7)).astype(np.float32)


def t(x):
    return torch.tensor(x)


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
    out = fn([t(A), t(B)])
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_allclose(out[0].numpy(), ELEMENTWISE[name](A), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), ELEMENTWISE[name](B), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_give_one_value_per_layer(name):
    out = getattr(runtime, name)([t(A), t(B)])
    assert out.shape == (2,)
    np.testing.assert_allclose(out.numpy(), [REDUCTIONS[name](A), REDUCTIONS[name](B)], rtol=1e-5)


def test_protected_ops_stay_finite_at_zero():
    zero = [torch.zeros(3, 3)]
    for name in ("op_log", "op_inverse", "op_sqrt", "op_zscore", "op_minmax"):
        assert torch.isfinite(getattr(runtime, name)(zero)[0]).all(), name


def test_matrix_products_follow_linear_layer_shapes():
    x, w = RNG.normal(size=(11, 4)).astype(np.float32), RNG.normal(size=(6, 4)).astype(np.float32)
    gy = RNG.normal(size=(11, 6)).astype(np.float32)
    np.testing.assert_allclose(runtime.op_matmul_tn([t(gy)], [t(x)])[0].numpy(), gy.T @ x, rtol=1e-5)
    np.testing.assert_allclose(runtime.op_matmul_nt([t(x)], [t(w)])[0].numpy(), x @ w.T, rtol=1e-5)
    np.testing.assert_allclose(runtime.op_matmul([t(gy)], [t(w)])[0].numpy(), gy @ w, rtol=1e-5)


def test_pairwise_broadcasts_constants_and_rejects_layer_count_mismatch():
    out = runtime.op_add([t(A)], 2.0)
    np.testing.assert_allclose(out[0].numpy(), A + 2.0)
    with pytest.raises(ValueError):
        runtime.op_mul([t(A)], [t(A), t(B)])


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_maps_to_torch_and_back(op):
    """Every op's sympy form evaluates through the torch table and prints as source."""
    spec = OPS[op]
    x, y = symbol("x"), symbol("y")
    if spec.role == "aggregate":
        values = {"x": torch.tensor([1.0, 2.0, 4.0])}
        expr = spec.sympy(x)
    elif spec.arity == 2:
        values = {"x": [t(A @ B.T)], "y": [t(A @ B.T)]}
        expr = OPS["mean"].sympy(spec.sympy(x, y))
    else:
        values = {"x": [t(A), t(B)]}
        expr = OPS["mean"].sympy(spec.sympy(x)) if spec.role != "reduce" else spec.sympy(x)
    engine = evaluate(OPS["layer_sum"].sympy(expr) if spec.role != "aggregate" else expr, values)
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
    assert [tuple(w.shape) for w in stats["msa.weight"]] == [(48, 16), (16, 16)] * 2
    assert [tuple(w.shape) for w in stats["mlp.weight"]] == [(32, 16), (16, 32)] * 2
    assert [tuple(a.shape) for a in stats["msa.input"]] == [(tokens, 16)] * 4
    assert [tuple(g.shape) for g in stats["mlp.output_grad"]] == [(tokens, 32), (tokens, 16)] * 2
    # the weight gradient of a linear layer is gy^T x summed over tokens
    g, a = stats["mlp.output_grad"][0], stats["mlp.input"][0]
    torch.testing.assert_close(stats["mlp.weight_grad"][0], g.T @ a, rtol=1e-4, atol=1e-6)
