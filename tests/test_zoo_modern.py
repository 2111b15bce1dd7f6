"""The modern zoo proxies (zico, dss, zen, meco, swap, l_swag, te_nas) against independent computations.

Each proxy is checked on a tiny network whose answer is worked out by hand or
with numpy from the formula, then shown to run on a timm ViT (GELU) and on a
small ReLU CNN without changing the model's parameters, buffers, gradients or
modes. The `dss` named program of grammar/vit.yaml must equal the zoo's `dss`.
"""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from synth.zoo import get_proxy, proxy_names

MODERN = ("zico", "dss", "zen", "meco", "swap", "l_swag", "te_nas")


def half_squared_error(out, t):
    return 0.5 * ((out - t) ** 2).sum()


def linear(weight, bias=False):
    weight = torch.as_tensor(weight, dtype=torch.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias:
            layer.bias.zero_()
    return layer


def tiny_vit(seed=0):
    from synth.space import load_space

    space = load_space("vit-digits")
    arch = {"embed_dim": 16, "depth": 2, "mlp_ratio": [2.0, 1.0], "num_heads": [2, 4]}
    return space.build(arch, seed=seed)


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )


def digits_batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def cnn_batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_registered_with_families_and_papers():
    assert set(MODERN) <= set(proxy_names("vit"))
    assert set(MODERN) - {"dss"} <= set(proxy_names("cnn"))
    assert "dss" not in proxy_names("cnn")
    for name in MODERN:
        spec = get_proxy(name)
        assert spec.paper and spec.fn.__doc__ and len(spec.fn.__doc__) > 200, name
    assert get_proxy("zen").uses_data is False and get_proxy("dss").uses_data is False
    assert all(get_proxy(name).uses_data for name in ("zico", "meco", "swap", "l_swag", "te_nas"))


# ---------------------------------------------------------------- SWAP


def test_swap_counts_distinct_unit_patterns_by_hand():
    # pre-activations of units 1..5 on samples a, b, c (rows of W times x):
    #   u1 [1,0]: ( 1,  1, -1) -> 110      u2 [0,1]: (1, -2, 1) -> 101
    #   u3 [1,1]: ( 2, -1,  0) -> 100 (0 is off)   u4 [-1,0]: (-1, -1, 1) -> 001
    #   u5 [2,0]: ( 2,  2, -2) -> 110, the same as u1: 4 distinct patterns
    model = nn.Sequential(linear([[1, 0], [0, 1], [1, 1], [-1, 0], [2, 0]]), nn.ReLU())
    x = torch.tensor([[1.0, 1.0], [1.0, -2.0], [-1.0, 1.0]])
    assert get_proxy("swap")(model, x, torch.zeros(3)) == 4
    # a fourth sample on which every unit is off splits no pair of units
    assert get_proxy("swap")(model, torch.cat([x, torch.zeros(1, 2)]), torch.zeros(4)) == 4
    # with x_c = x_a: u1 (1, 1, 1) -> 111 = u5, u2 (1, -2, 1) -> 101, u3 (2, -1, 2) -> 101,
    # u4 (-1, -1, -1) -> 000: 3 patterns
    x2 = x.clone()
    x2[2] = x2[0]
    assert get_proxy("swap")(model, x2, torch.zeros(3)) == 3


def test_swap_matches_numpy_unique_beyond_63_samples_and_pools_layers():
    # 70 samples need two packed words per unit; two ReLU layers are pooled into one set
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU())
    x = torch.randn(70, 3)
    with torch.no_grad():
        h1 = model[0](x)
        h2 = model[2](torch.relu(h1))
    bits = np.concatenate([(h1 > 0).numpy().T, (h2 > 0).numpy().T])  # units x samples
    expected = len(np.unique(bits, axis=0))
    assert expected > 10
    assert get_proxy("swap")(model, x, torch.zeros(70)) == expected


def test_swap_units_are_positions_times_channels_for_conv_maps():
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 1, bias=False)
    model = nn.Sequential(conv, nn.ReLU())
    x = torch.randn(5, 2, 3, 3)
    with torch.no_grad():
        pre = conv(x).reshape(5, -1).numpy()  # 27 units per sample
    expected = len(np.unique((pre > 0).T, axis=0))
    assert get_proxy("swap")(model, x, torch.zeros(5)) == expected
    # a unit budget below 27 keeps whole positions: 9 units = 3 positions x 3 channels
    from synth.zoo.expressivity import swap

    assert swap(model, x, torch.zeros(5), None, max_neurons=9) <= min(9, expected)


def test_swap_binarises_gelu_by_the_sign_of_its_input():
    model = nn.Sequential(linear([[1, 0], [0, 1], [1, 1], [-1, 0], [2, 0]]), nn.GELU())
    x = torch.tensor([[1.0, 1.0], [1.0, -2.0], [-1.0, 1.0]])
    assert get_proxy("swap")(model, x, torch.zeros(3)) == 4  # the same patterns as the ReLU net


def test_swap_needs_activation_modules():
    with pytest.raises(ValueError, match="activation"):
        get_proxy("swap")(nn.Linear(2, 2), torch.randn(3, 2), torch.zeros(3))


# ---------------------------------------------------------------- MeCo


class TokenLinear(nn.Module):
    """An identity linear layer on (batch, tokens, features): MeCo correlates its output's tokens."""

    def __init__(self, features):
        super().__init__()
        self.fc = linear(np.eye(features))

    def forward(self, x):
        return self.fc(x)


def test_meco_known_correlations():
    # sample 1: tokens (1,2,3,4) and (1,3,2,4): r = 4/5, eigenvalues 1 -+ 0.8 -> 0.2
    # sample 2: tokens (1,2,3,4) and (1,-1,-1,1): r = 0, eigenvalues 1, 1 -> 1
    x = torch.tensor([[[1.0, 2, 3, 4], [1, 3, 2, 4]], [[1.0, 2, 3, 4], [1, -1, -1, 1]]])
    assert get_proxy("meco")(TokenLinear(4), x, torch.zeros(2)) == pytest.approx(0.6, abs=1e-9)
    assert get_proxy("meco")(TokenLinear(4), x[:1], torch.zeros(1)) == pytest.approx(0.2, abs=1e-9)


def test_meco_matches_numpy_on_conv_channels_summed_over_layers():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1))
    x = torch.randn(3, 2, 5, 5)
    with torch.no_grad():
        f1 = model[0](x)
        f2 = model[2](torch.relu(f1))
    expected = 0.0
    for f in (f1, f2):  # channels correlated over the 25 pixels, per sample, averaged over samples
        per_sample = [np.linalg.eigvalsh(np.corrcoef(s.reshape(s.shape[0], -1).double().numpy()))[0] for s in f]
        expected += np.mean(per_sample)
    assert get_proxy("meco")(model, x, torch.zeros(3)) == pytest.approx(expected, rel=1e-9)


def test_meco_singular_and_constant_maps_give_zero():
    # 5 tokens over 3 features: rank <= 2 < 5, lambda_min = 0 without an eigendecomposition
    x = torch.randn(2, 5, 3)
    assert get_proxy("meco")(TokenLinear(3), x, torch.zeros(2)) == 0.0
    # a constant token: MeCo's NaN correlations become 0, and so does lambda_min
    x = torch.tensor([[[1.0, 2, 3, 4], [1, 3, 2, 4], [5, 5, 5, 5]]])
    assert get_proxy("meco")(TokenLinear(4), x, torch.zeros(1)) == 0.0


# ---------------------------------------------------------------- ZiCo


def test_zico_two_layer_linear_model_over_two_chunks():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(2, 3))
    x, t = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    model = nn.Sequential(linear(a), linear(b))

    def chunk_grads(xs, ts):  # loss 0.5 ||B A x - t||^2 summed over the chunk
        h = xs @ a.T
        r = h @ b.T - ts
        return (b.T @ r.T) @ xs, r.T @ h  # dL/dA, dL/dB

    g1, g2 = chunk_grads(x[:3], t[:3]), chunk_grads(x[3:], t[3:])
    expected = 0.0
    for first, second in zip(g1, g2):
        stacked = np.stack([first, second])
        mean_abs, std = np.abs(stacked).mean(0), stacked.std(0)
        expected += math.log((mean_abs[std > 0] / std[std > 0]).sum())
    score = get_proxy("zico")(model, torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32),
                              half_squared_error)
    assert score == pytest.approx(expected, rel=1e-5)


def test_zico_chunks():
    from synth.zoo.gradient_stats import chunk_bounds, zico

    assert chunk_bounds(7, 2) == [(0, 3), (3, 7)]
    model = nn.Sequential(nn.Linear(4, 2))
    x, t = torch.randn(6, 4), torch.randn(6, 2)
    with pytest.raises(ValueError, match="2 chunks"):
        zico(model, x, t, half_squared_error, chunks=1)
    assert math.isfinite(zico(model, x, t, half_squared_error, chunks=3))


# ---------------------------------------------------------------- DSS


class Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v)


class Mlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class TinyTransformer(nn.Module):
    def __init__(self, d=4, hidden=6, classes=3):
        super().__init__()
        self.embed = nn.Linear(2, d)
        self.attn, self.mlp, self.head = Attention(d), Mlp(d, hidden), nn.Linear(d, classes)

    def forward(self, x):  # x: (batch, tokens, 2)
        x = self.embed(x)
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return self.head(x.mean(dim=1))


def test_dss_by_numpy_svd_on_an_all_ones_input():
    torch.manual_seed(5)
    model = TinyTransformer()
    x, y = torch.randn(4, 5, 2), torch.tensor([0, 1, 2, 1])
    reference = copy.deepcopy(model)
    F.cross_entropy(reference(torch.ones_like(x)), y).backward()
    expected = 0.0
    for layer in (reference.attn.qkv, reference.attn.proj):
        expected += np.linalg.svd((layer.weight.grad * layer.weight).detach().double().numpy(), compute_uv=False).sum()
    for layer in (reference.mlp.fc1, reference.mlp.fc2):
        expected += np.abs((layer.weight.grad * layer.weight).detach().double().numpy()).sum()
    assert get_proxy("dss")(model, x, y) == pytest.approx(expected, rel=1e-6)
    # the input's values are ignored: only its shape counts
    assert get_proxy("dss")(model, 10 * x, y) == pytest.approx(expected, rel=1e-6)


def test_dss_needs_attention_or_mlp_layers():
    with pytest.raises(ValueError, match="qkv"):
        get_proxy("dss")(tiny_cnn(), *cnn_batch())


def test_dss_equals_the_grammar_named_program():
    from synth.execute import evaluate
    from synth.grammar import load_grammar
    from synth.programs import ProgramSpace
    from synth.runtime import collect_statistics
    from synth.symbolic import to_formula

    grammar = load_grammar("vit")
    model = tiny_vit(seed=3)
    x, y = digits_batch(6, seed=3)
    ones = torch.ones_like(x)
    stats = collect_statistics(copy.deepcopy(model), ones, y, grammar.statistics, max_rows=None)
    formula = to_formula(ProgramSpace(grammar).parse(grammar.programs["dss"]), grammar)
    program = evaluate(formula.expr, grammar.terminal_values(stats))
    zoo = get_proxy("dss")(model, x, y)
    assert program > 0 and math.isfinite(program)
    assert zoo == pytest.approx(program, rel=1e-4)


# ---------------------------------------------------------------- TE-NAS


def test_te_nas_linear_model_ntk_is_x_xt_and_one_region():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 6))
    model = nn.Linear(6, 3, bias=False)  # grad of the summed logits wrt W: every row is x -> NTK = 3 X X^T
    eig = np.linalg.eigvalsh(x @ x.T)
    expected = -math.log(eig[-1] / eig[0])  # log(1 region) = 0
    score = get_proxy("te_nas")(model, torch.tensor(x, dtype=torch.float32), torch.zeros(4))
    assert score == pytest.approx(expected, rel=1e-4)


def test_te_nas_regions_by_hand_and_ntk_by_per_sample_passes():
    # first-layer patterns: a 11101, b 10001, c 01010, d = 2a: the same as a -> 3 linear regions
    first = linear([[1, 0], [0, 1], [1, 1], [-1, 0], [2, 0]], bias=True)
    with torch.no_grad():
        first.bias.copy_(torch.tensor([0.1, -0.1, 0.2, 0.0, 0.3]))
    torch.manual_seed(7)
    model = nn.Sequential(first, nn.ReLU(), nn.Linear(5, 2))
    x = torch.tensor([[1.0, 1.0], [1.0, -2.0], [-1.0, 1.0], [2.0, 2.0]])
    with torch.no_grad():
        patterns = {tuple((first(s) > 0).tolist()) for s in x}
    assert len(patterns) == 3
    weights = [model[0].weight, model[2].weight]
    rows = []
    for s in x:  # one forward per sample: no coupling between samples in this network
        grads = torch.autograd.grad(model(s[None]).sum(), weights)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).double().numpy())
    jac = np.stack(rows)
    eig = np.linalg.eigvalsh(jac @ jac.T)
    expected = math.log(3) - math.log(eig[-1] / eig[0])
    assert get_proxy("te_nas")(model, x, torch.zeros(4)) == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------- L-SWAG


def test_l_swag_per_sample_gradient_variance_times_swap():
    rng = np.random.default_rng(8)
    a = np.array([[1.0, 0], [0, 1], [1, 1], [-1, 0], [2, 0]])  # SWAP = 4 on the three samples below
    b = rng.normal(size=(1, 5))
    x = np.array([[1.0, 1.0], [1.0, -2.0], [-1.0, 1.0]])
    t = rng.normal(size=(3, 1))
    model = nn.Sequential(linear(a), nn.ReLU(), linear(b))

    grads_a, grads_b = [], []
    for xs, ts in zip(x, t):  # loss 0.5 (b relu(a x) - t)^2 of one sample
        pre = a @ xs
        h = np.maximum(pre, 0)
        r = b @ h - ts
        grads_b.append(np.outer(r, h))
        grads_a.append(np.outer((b.T @ r) * (pre > 0), xs))

    def lam(grads):
        std = np.abs(np.stack(grads)).std(0)
        return math.log((1 / std[std > 0]).sum())

    score = get_proxy("l_swag")(model, torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32),
                                half_squared_error)
    assert score == pytest.approx((lam(grads_a) + lam(grads_b)) * 4, rel=1e-5)
    from synth.zoo.expressivity import l_swag

    # the upper half of the layers: the second linear layer; of the one ReLU, itself
    upper = l_swag(model, torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32),
                   half_squared_error, window=(0.5, 1.0))
    assert upper == pytest.approx(lam(grads_b) * 4, rel=1e-5)
    with pytest.raises(ValueError, match="window"):
        l_swag(model, torch.zeros(3, 2), torch.zeros(3, 1), half_squared_error, window=(0.6, 0.2))


# ---------------------------------------------------------------- Zen-NAS


def test_zen_by_numpy_with_batch_norm_and_without():
    rng = np.random.default_rng(9)
    w = rng.normal(size=(3, 4))
    n, alpha = 5, 0.01
    g = torch.Generator().manual_seed(0)  # the documented draws: x then e, seeded with `seed`
    x = torch.randn((n, 4), generator=g).double().numpy()
    e = torch.randn((n, 4), generator=g).double().numpy()
    from synth.zoo.feature_maps import zen

    # no BN: f(x) = W x, so f(x) - f(x + alpha e) = -alpha W e
    plain = nn.Sequential(linear(w))
    expected = math.log(np.linalg.norm(alpha * e @ w.T, axis=1).mean())
    assert zen(plain, torch.zeros(n, 4), None, None, gaussian_init=False) == pytest.approx(expected, rel=1e-4)

    # BN after the linear layer, in training mode: each pass normalised by its own batch statistics
    bn_model = nn.Sequential(linear(w), nn.BatchNorm1d(3))

    def bn(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)

    clean, mixed = x @ w.T, (x + alpha * e) @ w.T
    expected = math.log(np.linalg.norm(bn(clean) - bn(mixed), axis=1).mean())
    expected += math.log(math.sqrt(clean.var(0, ddof=1).mean()))
    assert zen(bn_model, torch.zeros(n, 4), None, None, gaussian_init=False) == pytest.approx(expected, rel=1e-3)


def test_zen_gaussian_init_works_on_a_copy_and_is_deterministic():
    model = tiny_cnn()
    x, y = cnn_batch()
    first = get_proxy("zen")(model, x, y)
    assert first == get_proxy("zen")(model, x, y)
    assert first == get_proxy("zen")(model, torch.zeros_like(x), y)  # the probe images are not read


# ---------------------------------------------------------------- every proxy on a ViT and a CNN


def snapshot(model):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.grad for p in model.parameters()],
    )


def assert_unchanged(model, before):
    state, modes, grads = before
    after = model.state_dict()
    assert state.keys() == after.keys()
    for key, value in state.items():
        assert torch.equal(value, after[key]), key
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))


@pytest.mark.parametrize("name", MODERN)
@pytest.mark.parametrize("family", ["vit", "cnn"])
def test_runs_finite_and_leaves_the_model_unchanged(name, family):
    if family == "cnn" and name == "dss":
        pytest.skip("dss is defined for ViTs only")
    model = tiny_vit() if family == "vit" else tiny_cnn()
    x, y = digits_batch(4) if family == "vit" else cnn_batch(4)
    model.eval()  # the proxies switch to training mode and must switch back
    with torch.no_grad():  # a batch-norm running statistic that training mode would update
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.fill_(2.0)
    if family == "vit":
        assert any(isinstance(m, nn.GELU) for m in model.modules())
    before = snapshot(model)
    score = get_proxy(name)(model, x, y)
    assert isinstance(score, float) and math.isfinite(score), score
    assert_unchanged(model, before)
    model.train()
    before = snapshot(model)
    assert get_proxy(name)(model, x, y) == pytest.approx(score, rel=1e-5, abs=1e-9)  # mode-independent: always trains
    assert_unchanged(model, before)
