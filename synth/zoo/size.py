"""Size proxies: parameter count and multiply-adds. Neither reads the probe images.

NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and Benchmarks)
scores both with tensorwatch and stores them in millions; synth returns plain
counts. The scale does not change a ranking.
"""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

from synth.zoo import register_proxy

__all__ = ["params", "flops", "multiply_adds"]

_SUITE_ZERO = "Krishnakumar et al., NAS-Bench-Suite-Zero: Accelerating Research on Zero Cost Proxies, NeurIPS 2022"


@register_proxy("params", paper=_SUITE_ZERO, uses_data=False)
def params(model, inputs, targets, loss_fn) -> float:
    """Number of trainable parameters: sum of `p.numel()` over parameters with `requires_grad`.

    NASLib counts parameters with tensorwatch, in millions; synth counts every
    trainable tensor (a ViT's class token and position embedding included).
    """
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


@register_proxy("flops", paper=_SUITE_ZERO, uses_data=False)
def flops(model, inputs, targets, loss_fn) -> float:
    """Multiply-adds of one forward pass of one probe image.

    Counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions, matrix
    products, attention), halved as in `synth.baselines` since it counts two
    FLOPs per multiply-add. The pass runs on a copy moved to the meta device
    (no arithmetic, no memory for activations), in eval mode; a model that cannot
    run on the meta device is counted on a copy on its own device instead.
    NASLib's tensorwatch count (megaflops) also counts some element-wise layers;
    convolutions dominate either count on NAS-Bench-201.
    """
    shape, dtype = tuple(inputs[:1].shape), inputs.dtype

    def count(device):
        return multiply_adds(copy.deepcopy(model).to(device).eval(), shape, dtype, device)

    try:
        return count("meta")
    except (NotImplementedError, RuntimeError):
        return count(inputs.device)


def multiply_adds(model, shape, dtype=None, device="meta") -> float:
    """Multiply-adds of `model` on one zero input of `shape`, counted by FlopCounterMode
    (two FLOPs per multiply-add). On the meta device nothing is computed or allocated.

    Autograd stays on: FlopCounterMode's module tracker hooks the gradients of
    tensor tuples passed between modules (PiT's stages pass (tokens, class
    tokens)) and fails on such tuples under `no_grad`.
    """
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(shape, dtype=dtype or torch.float32, device=device))
    return counter.get_total_flops() / 2
