"""benchmarks/proxy_robustness.py: PyTorch's default initialisation really replaces the builder's, and
every architecture is scored under the scheme asked for."""

import math
import types

import torch

from synth.probe import Probe
from synth.space import load_space


def _digits_archs(space, n=3):
    return space.sample_distinct(n, seed=0)


def test_torch_defaults_replace_timm_initialisation(benchmark_script):
    script, space = benchmark_script("proxy_robustness"), load_space("vit-digits")
    arch = _digits_archs(space, 1)[0]
    model = space.build(arch, seed=0)
    cls_token = model.cls_token.detach().clone()
    fc1 = model.blocks[0].mlp.fc1
    assert fc1.bias.abs().max() == 0  # timm's ViT scheme: zero biases, truncated normal std .02 weights
    torch.manual_seed(0)
    script.reset_to_torch_defaults(model)
    bound = 1 / math.sqrt(fc1.in_features)  # Kaiming-uniform with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert fc1.weight.abs().max() <= bound
    assert abs(fc1.weight.std().item() - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)
    assert fc1.bias.abs().max() > 0
    norm = model.blocks[0].norm1
    assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.equal(norm.bias, torch.zeros_like(norm.bias))
    assert torch.equal(model.cls_token, cls_token)  # no module resets it


def test_scores_under_each_scheme_reach_the_proxy(benchmark_script):
    script, space = benchmark_script("proxy_robustness"), load_space("vit-digits")
    archs = _digits_archs(space)
    seen = []

    def score(model, inputs, targets):
        seen.append(model.blocks[0].mlp.fc1.bias.abs().max().item())
        return sum(p.numel() for p in model.parameters())

    proxy = types.SimpleNamespace(score=score)
    probe = Probe()
    for init in ("timm", "torch"):
        values = script.scores_under(proxy, space, archs, probe, init)
        expected = [sum(p.numel() for p in space.build(a, seed=0).parameters()) for a in archs]
        assert values.tolist() == expected
    assert seen[:3] == [0.0] * 3 and all(b > 0 for b in seen[3:])
