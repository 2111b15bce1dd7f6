"""Saliency proxies from network pruning, as NAS-Bench-Suite-Zero scores them.

Abdelfattah et al. (ICLR 2021) turned pruning-at-initialisation saliencies into
network scores by summing them over all weights; NASLib (NAS-Bench-Suite-Zero,
Krishnakumar et al., NeurIPS 2022) computes them the same way. Conventions
shared by every proxy here, all as in NASLib:

- the weights scored are those of every `nn.Conv2d` and `nn.Linear` layer
  (biases, normalisation and embedding parameters are left out);
- one forward/backward pass of the probe batch through `loss_fn`, on a copy of
  the model whose batch-norm layers use batch statistics (train mode); synth
  also turns dropout-like layers off on that copy so a score is deterministic,
  which changes nothing on NAS-Bench-201 (it has none);
- a per-weight saliency is summed over all weights of all scored layers.

A proxy never touches the caller's model: it works on a deep copy.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from synth.zoo import register_proxy

__all__ = ["synflow", "snip", "grasp", "fisher", "grad_norm", "l2_norm", "plain"]

_ABDELFATTAH = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021"
_SCORED = (nn.Conv2d, nn.Linear)


def _scored_layers(net) -> list:
    """The layers whose weights NASLib scores: every Conv2d and Linear, in `modules()` order."""
    return [m for m in net.modules() if isinstance(m, _SCORED)]


def _working_copy(model):
    """A deep copy for one measurement: batch norm in train mode (batch statistics, as NASLib
    measures), every other layer in eval mode (no dropout), no stale gradients, all floating
    parameters differentiable."""
    net = copy.deepcopy(model)
    net.eval()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
    net.zero_grad(set_to_none=True)
    for p in net.parameters():
        if p.is_floating_point():
            p.requires_grad_(True)
    return net


def _weight_grads(model, inputs, targets, loss_fn):
    """[(weight, dL/dweight)] for every scored layer of a working copy; an unused weight gets a zero gradient."""
    net = _working_copy(model)
    weights = [m.weight for m in _scored_layers(net)]
    with torch.enable_grad():
        loss = loss_fn(net(inputs), targets)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w.detach(), torch.zeros_like(w) if g is None else g.detach()) for w, g in zip(weights, grads)]


def _total(values) -> float:
    """Sum of 0-d tensors in double precision, as a float."""
    return float(sum((v.double() for v in values), torch.zeros((), dtype=torch.float64)))


@register_proxy("snip", paper="Lee et al., SNIP: Single-shot Network Pruning based on Connection Sensitivity, "
                "ICLR 2019")
def snip(model, inputs, targets, loss_fn) -> float:
    """SNIP connection sensitivity summed over weights: sum_l sum |dL/dW_l * W_l|.

    NASLib takes the gradient with respect to an all-ones multiplicative mask on
    each weight, which equals dL/dW * W; synth uses that identity directly.
    """
    return _total((g * w).abs().sum() for w, g in _weight_grads(model, inputs, targets, loss_fn))


@register_proxy("plain", paper=_ABDELFATTAH)
def plain(model, inputs, targets, loss_fn) -> float:
    """First-order Taylor saliency without the absolute value: sum_l sum dL/dW_l * W_l (signed)."""
    return _total((g * w).sum() for w, g in _weight_grads(model, inputs, targets, loss_fn))


@register_proxy("grad_norm", paper=_ABDELFATTAH)
def grad_norm(model, inputs, targets, loss_fn) -> float:
    """Sum over layers of the Euclidean (Frobenius) norm of each layer's weight gradient:
    sum_l ||dL/dW_l||_2, not the norm of the whole gradient vector (NASLib's summation)."""
    return _total(g.double().norm() for _, g in _weight_grads(model, inputs, targets, loss_fn))


@register_proxy("l2_norm", paper=_ABDELFATTAH, uses_data=False)
def l2_norm(model, inputs, targets, loss_fn) -> float:
    """Sum over layers of the Euclidean (Frobenius) norm of each layer's weight: sum_l ||W_l||_2."""
    with torch.no_grad():
        return _total(m.weight.double().norm() for m in _scored_layers(model))


@register_proxy("grasp", paper="Wang et al., Picking Winning Tickets Before Training by Preserving Gradient Flow, "
                "ICLR 2020")
def grasp(model, inputs, targets, loss_fn) -> float:
    """GraSP with NASLib's sign: sum_l sum -W_l * (H g)_l.

    g is the gradient of the loss with respect to all scored weights, H the
    Hessian of the loss with respect to them, and H g is obtained as the
    gradient of stop_gradient(g) . g (double backpropagation). Wang et al. score
    a weight by -W * Hg and prune the highest scores; NASLib sums -W * Hg as a
    network score because it then correlates positively with accuracy, and
    synth follows NASLib. NASLib's temperature T = 1 and single pass are used.
    """
    net = _working_copy(model)
    weights = [m.weight for m in _scored_layers(net)]
    # fused attention kernels have no double backward; the math kernel computes the same attention
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
        first = torch.autograd.grad(loss_fn(net(inputs), targets), weights, allow_unused=True)
        first = [torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, first)]
        second = torch.autograd.grad(loss_fn(net(inputs), targets), weights, create_graph=True, allow_unused=True)
        terms = [(g * f).sum() for g, f in zip(first, second) if f is not None]
        z = sum(terms) if terms else None
        if z is None or not z.requires_grad:
            return 0.0  # the gradient does not depend on the weights: H g = 0
        hg = torch.autograd.grad(z, weights, allow_unused=True)
    return _total((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None)


@register_proxy("fisher", paper="Turner et al., BlockSwap: Fisher-guided Block Substitution for Network Compression "
                "on a Budget, ICLR 2020 (after Theis et al., Faster gaze prediction with dense networks and Fisher "
                "pruning, 2018)")
def fisher(model, inputs, targets, loss_fn) -> float:
    """Fisher channel saliency: sum_l fan_in_l * sum_k 0.5 * mean_n (sum_p a_nkp * dL/da_nkp)^2.

    a is the output of a scored layer (a conv or linear layer, before any
    normalisation), k an output channel, p a position (a conv map's pixels, a
    ViT's tokens), n a sample. As in NASLib, each channel's value is spread over
    the channel's weights before the sum, so it counts fan_in_l times
    (prod(weight.shape[1:]) = in_channels/groups * kernel area for a conv,
    in_features for a linear layer).

    Deviation from NASLib, ViTs only: for a linear layer applied to tokens,
    (batch, tokens, features), NASLib's code sums over the *feature* axis and then
    broadcasts per-token values onto weights, which is not a channel saliency;
    synth sums over every axis but batch and the last (features), so a linear
    layer's channels are its output features at every token. For convolutions
    and 2-D linear outputs (all of NAS-Bench-201) the two agree.
    """
    net = _working_copy(model)
    records = []  # (layer, detached output, channel axis, output gradient filled by the tensor hook)

    def keep(layer, args, output):
        if not (isinstance(output, torch.Tensor) and output.requires_grad):
            return None
        record = [layer, output.detach(), 1 if isinstance(layer, nn.Conv2d) else output.dim() - 1, None]
        records.append(record)

        def save_grad(grad):
            record[3] = grad.detach()

        output.register_hook(save_grad)
        return output.clone()  # a later in-place op changes the clone, never the recorded output

    handles = [m.register_forward_hook(keep) for m in _scored_layers(net)]
    try:
        with torch.enable_grad():
            loss_fn(net(inputs), targets).backward()
    finally:
        for handle in handles:
            handle.remove()
    terms = []
    for layer, act, axis, grad in records:
        if grad is None:
            continue
        prod = (act.double() * grad.double()).movedim(axis, -1)  # batch first, channels last
        per_channel = prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(1)  # (batch, channels)
        saliency = 0.5 * per_channel.pow(2).mean(0)
        terms.append(saliency.sum() * math.prod(layer.weight.shape[1:]))
    return _total(terms)


@register_proxy("synflow", paper="Tanaka et al., Pruning neural networks without any data by iteratively "
                "conserving synaptic flow, NeurIPS 2020", uses_data=False)
def synflow(model, inputs, targets, loss_fn) -> float:
    """log of the synaptic flow: log sum_l sum |W_l * dR/dW_l|, R = sum of f_|theta|(1).

    On a double-precision copy whose parameters are all made absolute and whose
    batch-norm layers are bypassed (identity), R is the sum of the outputs for a
    single all-ones input shaped like one probe image. The data only give the
    shape. NASLib stores the natural log of the sum (its predictor applies it
    after the measure), so synth returns the log as well; a zero sum (an output
    that does not depend on the weights) gives -inf, where NASLib stores 0.
    The copy runs in eval mode (no dropout); with batch norm bypassed this is
    what NASLib computes on NAS-Bench-201. Layer norm, which NASLib never meets,
    is kept (with absolute affine parameters).
    """
    net = copy.deepcopy(model).double().eval()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.forward = _identity
    net.zero_grad(set_to_none=True)
    with torch.no_grad():
        for p in net.parameters():
            if p.is_floating_point():
                p.abs_()
                p.requires_grad_(True)
    weights = [m.weight for m in _scored_layers(net)]
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    with torch.enable_grad():
        flow = net(ones).sum()
        if not flow.requires_grad:
            return -math.inf  # the output does not depend on any weight
        grads = torch.autograd.grad(flow, weights, allow_unused=True)
    total = _total((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None)
    if math.isnan(total):
        return math.nan
    return math.log(total) if total > 0 else -math.inf


def _identity(x):
    return x
