"""Gradient-statistics proxies: ZiCo and TF-TAS's DSS.

Both read weight gradients through `torch.autograd.grad`, so the caller's
`.grad` fields are never touched, and run inside `probe_mode`, which puts the
network in training mode and afterwards restores every module's mode and every
buffer (batch-norm running statistics), so the caller's model is unchanged.

The helpers here (`probe_mode`, `weight_layers`, `chunk_bounds`,
`chunk_gradient_moments`) are shared with synth.zoo.expressivity.
"""

from __future__ import annotations

import contextlib
import math

import torch

from synth.runtime import linear_layers_by_kind
from synth.zoo import register_proxy

__all__ = ["zico", "dss", "probe_mode", "weight_layers", "chunk_bounds", "chunk_gradient_moments", "WEIGHT_LAYERS"]

WEIGHT_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


@contextlib.contextmanager
def probe_mode(model, train: bool = True):
    """Run the body with `model` in training (or eval) mode; restore each module's mode and
    every buffer's value afterwards (a training-mode forward updates batch-norm running stats)."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    model.train(train)
    try:
        yield model
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, mode in modes:
            module.training = mode


def weight_layers(model) -> list:
    """Linear and convolution layers whose weight takes gradients, in module order (ZiCo's layers)."""
    return [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS) and m.weight.requires_grad]


def chunk_bounds(n: int, chunks: int) -> list[tuple[int, int]]:
    """[start, end) of `chunks` contiguous, near-equal parts of n samples (ZiCo's split)."""
    if not 1 <= chunks <= n:
        raise ValueError(f"cannot split a batch of {n} samples into {chunks} chunks")
    return [(i * n // chunks, (i + 1) * n // chunks) for i in range(chunks)]


class _Moments:
    """Element-wise running mean and sum of squared deviations (Welford), for a list of tensors."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, None, None

    def update(self, values):
        self.count += 1
        if self.mean is None:
            self.mean = [v.clone() for v in values]
            self.m2 = [torch.zeros_like(v) for v in values]
            return
        for mean, m2, v in zip(self.mean, self.m2, values):
            delta = v - mean
            mean.add_(delta / self.count)
            m2.add_(delta * (v - mean))

    def std(self):
        """Population standard deviation (numpy's default, as ZiCo's np.std)."""
        return [torch.sqrt(m2 / self.count) for m2 in self.m2]


def chunk_gradient_moments(model, inputs, targets, loss_fn, chunks: int, layers, of_abs: bool = False):
    """Per layer, statistics over chunks of the probe batch of the weight gradient of each chunk's loss.

    The batch is split into `chunks` contiguous parts; for each, loss_fn(model(x_c), y_c) is
    differentiated (autograd.grad, the caller's .grad untouched) with respect to the weights of
    `layers`. Returns (mean |g|, population std of g) per layer, or with `of_abs` (mean |g|,
    population std of |g|); lists of tensors shaped like the weights. Call it inside `probe_mode`.
    """
    weights = [m.weight for m in layers]
    moments, abs_sum = _Moments(), None
    for start, end in chunk_bounds(inputs.shape[0], chunks):
        loss = loss_fn(model(inputs[start:end]), targets[start:end])
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        grads = [torch.zeros_like(w) if g is None else g.detach() for g, w in zip(grads, weights)]
        absolute = [g.abs() for g in grads]
        abs_sum = absolute if abs_sum is None else [s + a for s, a in zip(abs_sum, absolute)]
        moments.update(absolute if of_abs else grads)
    return [s / moments.count for s in abs_sum], moments.std()


@register_proxy(
    "zico",
    paper="Li, Tang, Marculescu, Zhou et al., ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients, ICLR 2023",
    families=("cnn", "vit"),
)
def zico(model, inputs, targets, loss_fn, *, chunks: int = 2) -> float:
    """ZiCo (Li et al., ICLR 2023):

        ZiCo = sum over layers l of log( sum over weights w of l of mean_c |g_w,c| / std_c(g_w,c) )

    where g_w,c is the gradient of the loss of mini-batch c with respect to weight w. As in the
    official code: the layers are every convolution and linear layer (weights only, no biases),
    std is the population std over the mini-batches (np.std), weights whose std is zero are left
    out of a layer's sum, and a layer whose sum is zero contributes nothing. The network is in
    training mode.

    The mini-batches are the probe batch split into `chunks` (>= 2; default 2, ZiCo's
    split_data=2) contiguous parts, each chunk's gradient computed on its own (the official
    code's loop does not zero the gradients between splits, so its second "batch" is the sum of
    both; we follow the paper's definition of per-batch gradients).
    """
    if chunks < 2:
        raise ValueError("zico needs at least 2 chunks: the std over one mini-batch is zero")
    layers = weight_layers(model)
    if not layers:
        raise ValueError("zico: the model has no linear or convolution layers")
    with probe_mode(model, train=True):
        mean_abs, std = chunk_gradient_moments(model, inputs, targets, loss_fn, chunks, layers)
    score = 0.0
    for m, s in zip(mean_abs, std):
        nonzero = s > 0
        total = float((m[nonzero].double() / s[nonzero].double()).sum())
        if total > 0:
            score += math.log(total)
    return score


@register_proxy(
    "dss",
    paper="Zhou, Xiao, Wang et al., Training-free Transformer Architecture Search (TF-TAS, DSS indicator), CVPR 2022",
    families=("vit",),
    uses_data=False,
)
def dss(model, inputs, targets, loss_fn) -> float:
    """DSS indicator of TF-TAS (Zhou et al., CVPR 2022): synaptic diversity of MSA plus synaptic
    saliency of MLP,

        DSS = sum over MSA linears m of || dL/dW_m (.) W_m ||_nuc + sum over MLP linears m of sum |dL/dW_m (.) W_m|

    with (.) the element-wise product, ||.||_nuc the nuclear norm (sum of singular values),
    the MSA linears the `qkv` and `proj` layers of every attention module and the MLP linears
    `fc1` and `fc2` of every MLP module (synth.runtime.linear_layers_by_kind, so timm ViT, DeiT
    and PiT work).

    The gradients come from one forward and backward pass of an all-ones input shaped like the
    probe batch, with loss_fn(model(ones), targets), in training mode: the same pass as
    synth.runtime.collect_statistics on an all-ones batch, so this equals the `dss` named
    program of grammar/vit.yaml evaluated on those statistics (tested). Deviation from the
    official code, which differentiates the sum of the outputs after making every parameter
    positive (synflow-style linearisation, no labels): we use the caller's loss and the
    network's own signed weights, which keeps DSS a program of the grammar's statistics.
    The probe images are not read (only their shape); the labels enter through the loss.
    """
    kinds = linear_layers_by_kind(model)
    if not kinds["msa"] and not kinds["mlp"]:
        raise ValueError("dss: no attention (qkv, proj) or MLP (fc1, fc2) linear layers found")
    layers = kinds["msa"] + kinds["mlp"]
    weights = [m.weight for m in layers]
    with probe_mode(model, train=True):
        loss = loss_fn(model(torch.ones_like(inputs)), targets)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    score = 0.0
    for i, (g, w) in enumerate(zip(grads, weights)):
        if g is None:
            continue
        saliency = (g.detach().float() * w.detach().float()).double()
        if i < len(kinds["msa"]):
            score += float(torch.linalg.matrix_norm(saliency, ord="nuc"))
        else:
            score += float(saliency.abs().sum())
    return score
