"""Block statistics (kind block): which modules are blocks, and each block's gradient gain, parameter
count and depth, against an independent computation (the forward pass written out by hand and
torch.autograd.grad at every block boundary)."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from synth import runtime
from synth.models import build_nasbench201, nasbench201_arch


class Residual(nn.Module):
    """x + conv(relu(x)): a block."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv(F.relu(x))


class Down(nn.Module):
    """A stride-2 convolution with a sub-module: changes the shape, so not a block."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Net(nn.Module):
    def __init__(self, c=4, classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.stage1 = nn.Sequential(Residual(c), Residual(c))  # a container: its two blocks count, not it
        self.down = Down(c)
        self.last = Residual(2 * c)
        self.head = nn.Linear(2 * c, classes)

    def forward(self, x):
        x = self.last(self.down(self.stage1(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


def probe(n=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=generator), torch.randint(0, 5, (n,), generator=generator)


def test_blocks_are_the_outermost_shape_keeping_modules_in_forward_order():
    torch.manual_seed(0)
    model = Net()
    sites = runtime.block_sites(model, probe()[0])
    assert [s.module for s in sites] == [model.stage1[0], model.stage1[1], model.last]
    assert [s.depth for s in sites] == [1, 2, 3]


def test_finding_blocks_changes_nothing_in_the_model():
    torch.manual_seed(0)
    model = build_nasbench201(nasbench201_arch((2, 3, 0, 4, 1, 2)), C=8, N=2)
    before = copy.deepcopy(model.state_dict())
    runtime.block_sites(model, probe()[0])
    assert model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_nasbench201_blocks_are_its_cells():
    torch.manual_seed(0)
    model = build_nasbench201(nasbench201_arch((2, 3, 0, 4, 1, 2)), C=8, N=2)
    cells = [m for m in model.cells if type(m).__name__ == "Cell"]
    assert [s.module for s in runtime.block_sites(model, probe()[0])] == cells and len(cells) == 6


def test_block_gains_params_and_depth_match_autograd():
    torch.manual_seed(0)
    model = Net()
    x, y = probe()
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, ["block.gain", "block.grad_gain", "block.params", "block.depth"])
    model.train()
    h0 = model.stem(x)
    h1 = model.stage1[0](h0)
    h2 = model.stage1[1](h1)
    h3 = model.down(h2)
    h4 = model.last(h3)
    loss = F.cross_entropy(model.head(h4.mean(dim=(2, 3))), y)
    g0, g1, g2, g3, g4 = torch.autograd.grad(loss, [h0, h1, h2, h3, h4])
    expected = [g0.norm() / g1.norm(), g1.norm() / g2.norm(), g3.norm() / g4.norm()]
    torch.testing.assert_close(stats["block.grad_gain"], torch.stack(expected), rtol=1e-5, atol=0)
    forward = [h1.norm() / h0.norm(), h2.norm() / h1.norm(), h4.norm() / h3.norm()]
    torch.testing.assert_close(stats["block.gain"], torch.stack(forward).detach(), rtol=1e-5, atol=0)
    conv = 4 * 4 * 9 + 4
    assert stats["block.params"].tolist() == [conv, conv, 8 * 8 * 9 + 8]
    assert stats["block.depth"].tolist() == [1, 2, 3]


def test_a_block_the_loss_does_not_reach_has_gain_zero():
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.head.weight.zero_()  # no gradient reaches the last block's output
    x, y = probe()
    gain = runtime.collect_statistics(model, x, y, ["block.grad_gain"])["block.grad_gain"]
    assert gain.tolist() == [0.0, 0.0, 0.0]


def test_forward_statistics_alone_need_no_backward_pass():
    torch.manual_seed(0)
    model = Net()
    x, y = probe()
    gain = runtime.collect_statistics(model, x, y, ["block.gain"])["block.gain"]
    assert len(gain) == 3 and all(p.grad is None for p in model.parameters())


def test_a_plugin_statistic_reads_the_output_and_the_input_gradient():
    import synth

    names = ("block.test_output_norm", "block.test_input_grad_norm")
    try:
        synth.register_statistic(names[0], at="output", role="layer")(lambda site, c: c["output"].detach().norm())
        synth.register_statistic(names[1], at="backward", role="layer")(lambda site, c: c["input_grad"].detach().norm())
        assert runtime.STATISTICS[names[0]].needs == "forward"
        torch.manual_seed(0)
        model = Net()
        x, y = probe()
        stats = runtime.collect_statistics(copy.deepcopy(model), x, y, list(names))
        h1 = model.stage1[0](model.stem(x))
        h1.retain_grad()
        h2 = model.stage1[1](h1)
        h4 = model.last(model.down(h2))
        F.cross_entropy(model.head(h4.mean(dim=(2, 3))), y).backward()
        torch.testing.assert_close(stats[names[0]], torch.stack([h1.norm(), h2.norm(), h4.norm()]).detach())
        assert stats[names[1]][1].item() == pytest.approx(h1.grad.norm().item(), rel=1e-5)
    finally:
        for name in names:
            runtime.STATISTICS.pop(name, None)
