"""The 12 classic proxies of NAS-Bench-Suite-Zero, each checked against an independent computation.

Every expected value comes from arithmetic by hand, a closed form, or a
different computation (functional forward passes, an explicit Hessian) on a
tiny network with fixed weights, in double precision.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from synth.zoo import get_proxy, proxy_names

CLASSIC = ("params", "flops", "synflow", "snip", "grasp", "fisher", "grad_norm", "l2_norm", "plain",
           "jacov", "nwot", "epe_nas")
K = 1e-5  # NASLib's constant in jacov and epe_nas


def score(name, model, inputs, targets, loss_fn=None):
    return get_proxy(name)(model, inputs, targets, loss_fn)


def linear(weight, bias=None):
    """A double-precision nn.Linear holding the given weight (out x in) and bias."""
    weight = torch.as_tensor(weight, dtype=torch.float64)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).double()
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float64))
    return layer


class Square(nn.Module):
    def forward(self, x):
        return x * x


class TokenMean(nn.Module):
    def forward(self, x):
        return x.mean(1)


def test_registered_with_citation_and_data_use():
    assert set(CLASSIC) <= set(proxy_names("cnn"))
    for name in CLASSIC:
        assert get_proxy(name).paper
    data_free = {n for n in CLASSIC if not get_proxy(n).uses_data}
    assert data_free == {"params", "flops", "synflow", "l2_norm"}


# ---------------------------------------------------------------- size


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))


def test_params_counts_trainable_parameters():
    net = small_cnn()
    net[3].bias.requires_grad_(False)
    x, y = torch.randn(2, 3, 4, 4), torch.tensor([0, 1])
    assert score("params", net, x, y) == 3 * 4 * 9 + 4 + 16 * 5  # conv weight + bias, linear weight


def test_flops_are_multiply_adds_of_one_image():
    x, y = torch.randn(3, 3, 4, 4), torch.tensor([0, 1, 2])
    # conv: 4 channels x 2x2 positions x 27 taps; linear: 16 x 5
    assert score("flops", small_cnn(), x, y) == 4 * 4 * 27 + 16 * 5


# ---------------------------------------------------------------- weights and their gradients


def test_l2_norm_sums_layer_norms_of_conv_and_linear_weights():
    conv = nn.Conv2d(1, 1, 2).double()
    with torch.no_grad():
        conv.weight.fill_(0.5)  # norm 1
        conv.bias.fill_(100.0)  # biases are not scored
    norm = nn.LayerNorm(2).double()
    with torch.no_grad():
        norm.weight.fill_(7.0)  # nor are normalisation weights
    net = nn.Sequential(conv, nn.Flatten(), linear([[1, 2, 0, 0], [2, 4, 0, 0]], [9, 9]), norm, linear([[3, 4]]))
    x = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    assert score("l2_norm", net, x, torch.tensor([0, 0])) == pytest.approx(1 + 5 + 5, rel=1e-12)


def softmax_regression():
    torch.manual_seed(0)
    w, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0, 2])
    return linear(w, b), w, b, x, y


def test_gradient_saliencies_of_softmax_regression():
    net, w, b, x, y = softmax_regression()
    p = torch.softmax(x @ w.T + b, dim=1)
    grad = (p - F.one_hot(y, 3).double()).T @ x / len(x)  # dL/dW of the mean cross-entropy
    assert score("snip", net, x, y) == pytest.approx(float((grad * w).abs().sum()), rel=1e-9)
    assert score("plain", net, x, y) == pytest.approx(float((grad * w).sum()), rel=1e-9)
    assert score("grad_norm", net, x, y) == pytest.approx(float(grad.norm()), rel=1e-9)


def test_gradient_saliencies_use_the_given_loss_and_sum_norms_per_layer():
    torch.manual_seed(1)
    w1, w2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    x, t = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    net = nn.Sequential(linear(w1), linear(w2))
    h = x @ w1.T
    e = 2 * (h @ w2.T - t) / t.numel()  # dL/dz of the mean squared error
    g2, g1 = e.T @ h, (e @ w2).T @ x
    mse = F.mse_loss
    assert score("grad_norm", net, x, t, mse) == pytest.approx(float(g1.norm() + g2.norm()), rel=1e-9)
    snip = float((g1 * w1).abs().sum() + (g2 * w2).abs().sum())
    assert score("snip", net, x, t, mse) == pytest.approx(snip, rel=1e-9)
    assert score("plain", net, x, t, mse) == pytest.approx(float((g1 * w1).sum() + (g2 * w2).sum()), rel=1e-9)


def test_synflow_of_two_linear_layers_is_twice_the_path_sum():
    torch.manual_seed(2)
    w1, w2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    bn = nn.BatchNorm1d(3).double()
    with torch.no_grad():  # batch norm is bypassed: none of this may matter
        bn.weight.fill_(5.0)
        bn.bias.fill_(-3.0)
        bn.running_mean.fill_(2.0)
    net = nn.Sequential(linear(w1), bn, linear(w2))
    # R = 1' |W2| |W1| 1; each layer's sum of |W * dR/dW| equals R
    paths = float(torch.ones(2, dtype=torch.float64) @ w2.abs() @ w1.abs() @ torch.ones(4, dtype=torch.float64))
    x = torch.randn(5, 4, dtype=torch.float64)
    for mode in (True, False):
        net.train(mode)
        value = score("synflow", net, x, torch.zeros(5, dtype=torch.long))
        assert value == pytest.approx(math.log(2 * paths), rel=1e-12)


def test_grasp_matches_an_explicit_hessian():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    b1, b2 = net[0].bias.detach(), net[2].bias.detach()
    theta = torch.cat([net[0].weight.detach().flatten(), net[2].weight.detach().flatten()])

    def loss(t):
        hidden = torch.tanh(x @ t[:12].reshape(4, 3).T + b1)
        return F.cross_entropy(hidden @ t[12:].reshape(2, 4).T + b2, y)

    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(t), t)
    hessian = torch.autograd.functional.hessian(loss, theta)
    expected = float(-(theta * (hessian @ g)).sum())
    assert abs(expected) > 1e-6
    assert score("grasp", net, x, y) == pytest.approx(expected, rel=1e-8)


def test_fisher_of_conv_and_linear_channels():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(48, 5)).double()
    x, y = torch.randn(4, 2, 4, 4, dtype=torch.float64), torch.tensor([0, 4, 2, 2])
    conv, fc = net[0], net[3]
    a1 = F.conv2d(x, conv.weight.detach(), conv.bias.detach(), padding=1).requires_grad_(True)
    a2 = F.linear(F.relu(a1).flatten(1), fc.weight.detach(), fc.bias.detach())
    g1, g2 = torch.autograd.grad(F.cross_entropy(a2, y), [a1, a2])
    a1, a2 = a1.detach(), a2.detach()
    per_conv_channel = 0.5 * (a1 * g1).sum((2, 3)).pow(2).mean(0)  # 3 channels
    per_fc_channel = 0.5 * (a2 * g2).pow(2).mean(0)  # 5 channels
    expected = float(per_conv_channel.sum() * (2 * 3 * 3) + per_fc_channel.sum() * 48)
    assert score("fisher", net, x, y) == pytest.approx(expected, rel=1e-9)


def test_fisher_treats_a_token_linear_layer_per_output_feature():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 3), TokenMean()).double()
    x, y = torch.randn(2, 5, 4, dtype=torch.float64), torch.tensor([1, 2])
    a = F.linear(x, net[0].weight.detach(), net[0].bias.detach()).requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(a.mean(1), y), a)
    expected = float(0.5 * (a.detach() * g).sum(1).pow(2).mean(0).sum() * 4)  # sum over tokens per feature; fan-in 4
    assert score("fisher", net, x, y) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- activation codes and Jacobians


@pytest.mark.parametrize("act", [nn.ReLU(), nn.ReLU(inplace=True), nn.GELU()], ids=["relu", "relu_inplace", "gelu"])
def test_nwot_of_hand_chosen_activation_patterns(act):
    net = nn.Sequential(linear([[1, 0], [0, 1], [1, 1]], [0, 0, 0]), act, linear([[1, -1, 2], [0, 3, 1]]))
    x = torch.tensor([[1, 1], [1, -2], [-1, -1], [-2, 1]], dtype=torch.float64)
    # pre-activations give the codes 111, 100, 000, 010; K = 3 - Hamming distance
    kernel = np.array([[3, 1, 0, 1], [1, 3, 2, 1], [0, 2, 3, 2], [1, 1, 2, 3]])
    assert round(np.linalg.det(kernel)) == 12
    assert score("nwot", net, x, torch.zeros(4, dtype=torch.long)) == pytest.approx(math.log(12), rel=1e-12)


def squares_then_sum(outputs=1):
    """f(x) = W (x * x) with W' 1 = 1: the Jacobian of the summed outputs is 2 x."""
    return nn.Sequential(Square(), linear(np.full((outputs, 4), 1.0 / outputs)))


R1, R2 = [1, -1, 1, -1], [1, 1, -1, -1]  # centred, orthogonal rows: correlation 0


def test_jacov_of_known_correlation_spectra():
    y = torch.zeros(3, dtype=torch.long)
    x = torch.tensor([R1, R2], dtype=torch.float64)
    expected = -2 * (math.log(1 + K) + 1 / (1 + K))  # correlation matrix I: eigenvalues 1, 1
    assert score("jacov", squares_then_sum(), x, y[:2]) == pytest.approx(expected, rel=1e-9)
    # a third row R1 + R2 correlates 1/sqrt(2) with both: eigenvalues 0, 1, 2
    x = torch.tensor([R1, R2, [2, 0, 0, -2]], dtype=torch.float64)
    expected = -sum(math.log(v + K) + 1 / (v + K) for v in (0, 1, 2))
    assert score("jacov", squares_then_sum(), x, y) == pytest.approx(expected, rel=1e-9)


def test_jacov_is_nan_when_the_output_ignores_the_input():
    net = nn.Sequential(Square(), linear(np.zeros((2, 4))))
    x = torch.tensor([R1, R2], dtype=torch.float64)
    assert math.isnan(score("jacov", net, x, torch.tensor([0, 1])))


def epe_batch():
    # class 0: uncorrelated pair; class 1: one sample; class 2: perfectly correlated pair
    x = torch.tensor([R1, R2, [1, 0, 2, 0], [1, 2, 3, 4], [2, 4, 6, 8]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2, 2])
    s0 = 2 * math.log(1 + K) + 2 * math.log(K)  # sum of log(|corr| + k) over the 2x2 identity
    s1 = math.log(1 + K)
    s2 = 4 * math.log(1 + K)
    return x, y, s0, s1, s2


def test_epe_nas_up_to_100_classes_sums_per_class_scores():
    x, y, s0, s1, s2 = epe_batch()
    assert score("epe_nas", squares_then_sum(10), x, y) == pytest.approx(abs(s0) + abs(s1) + abs(s2), rel=1e-9)


def test_epe_nas_over_100_classes_compares_class_means():
    x, y, s0, _, s2 = epe_batch()
    # per-sample means; the class seen once is dropped; sum over ordered pairs / classes kept
    expected = 2 * abs(s0 / 2 - s2 / 2) / 2
    assert score("epe_nas", squares_then_sum(101), x, y) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- the caller's model is left alone


def cnn():
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return net, torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 0])


def vit():
    import timm.models.vision_transformer as tv

    torch.manual_seed(7)
    net = tv.VisionTransformer(img_size=8, patch_size=4, embed_dim=8, depth=1, num_heads=2, num_classes=3)
    return net, torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize("make, training", [(cnn, True), (cnn, False), (vit, True)],
                         ids=["cnn-train", "cnn-eval", "vit-train"])
def test_no_proxy_changes_the_model(make, training):
    net, x, y = make()
    family = "cnn" if make is cnn else "vit"
    net.train(training)
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.25)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    for name in CLASSIC:
        if family not in get_proxy(name).families:
            continue
        with torch.no_grad():  # a proxy enables gradients itself where it needs them
            value = score(name, net, x, y)
        assert math.isfinite(value), name
        for key, tensor in net.state_dict().items():
            assert torch.equal(tensor, state[key]), (name, key)
        assert [m.training for m in net.modules()] == modes, name
        assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in net.parameters()), name


def test_gradient_proxies_use_batch_statistics_in_either_mode():
    net, x, y = cnn()
    with torch.no_grad():
        net[1].running_mean.fill_(50.0)  # would change every score if eval-mode statistics were used
    for name in ("snip", "grad_norm", "fisher", "nwot", "jacov"):
        train_value = score(name, net.train(), x, y)
        assert score(name, net.eval(), x, y) == pytest.approx(train_value, rel=1e-6), name
