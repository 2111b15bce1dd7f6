"""Proxies read from input Jacobians and activation patterns, as NAS-Bench-Suite-Zero scores them.

All three run one forward pass of the probe batch on a copy of the model whose
batch-norm layers use batch statistics (train mode, as NASLib measures) and
whose other layers are in eval mode (no dropout, so the score is deterministic;
NAS-Bench-201 has no dropout). The caller's model is never touched.

The input Jacobian used by jacov and epe_nas is NASLib's (after Mellor et al.'s
first version): for each sample n, J_n = d(sum_k f_k(x_n))/dx_n, the gradient of
the sum of the logits with respect to the input image, flattened. (Samples
interact only through batch statistics.) Correlations are computed in double
precision as `numpy.corrcoef` does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from synth.zoo import register_proxy
from synth.zoo.expressivity import activation_modules
from synth.zoo.saliency import _working_copy

__all__ = ["jacov", "nwot", "epe_nas"]

_K = 1e-5  # NASLib's regulariser inside the logs of jacov and epe_nas


def _input_jacobians(model, inputs):
    """(J, number of outputs): J[n] = gradient of the sum of the logits of sample n w.r.t. its input, flattened."""
    net = _working_copy(model)
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = net(x)
        if not out.requires_grad:  # the output does not depend on the input
            return np.zeros((x.shape[0], x[0].numel())), out.shape[-1]
        (jac,) = torch.autograd.grad(out.sum(), x)
    return jac.reshape(jac.shape[0], -1).double().cpu().numpy(), out.shape[-1]


def _corrcoef(rows: np.ndarray) -> np.ndarray:
    """Pearson correlation between the rows; NaN where a row is constant (as numpy gives, without its warning)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.corrcoef(rows)


@register_proxy("jacov", paper="Mellor et al., Neural Architecture Search without Training, arXiv:2006.04647v1 2020")
def jacov(model, inputs, targets, loss_fn) -> float:
    """Jacobian covariance: -sum_i [log(l_i + k) + 1/(l_i + k)], k = 1e-5.

    l_i are the eigenvalues of the correlation matrix (samples x samples) of the
    input Jacobians J_n. The score is at most -N for a batch of N and reaches
    it when the Jacobians are uncorrelated. NaN when a Jacobian is constant
    (the correlation is undefined, e.g. an output independent of the input) or
    an eigenvalue falls below -k; NASLib stores -1e8 for such networks.
    NASLib uses a general eigen-solver; synth uses the symmetric one (same
    values, always real).
    """
    jac, _ = _input_jacobians(model, inputs)
    corr = _corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return math.nan
    eig = np.linalg.eigvalsh(corr) + _K
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(-np.sum(np.log(eig) + 1.0 / eig))


@register_proxy("epe_nas", paper="Lopes et al., EPE-NAS: Efficient Performance Estimation Without Training for "
                "Neural Architecture Search, ICANN 2021")
def epe_nas(model, inputs, targets, loss_fn) -> float:
    """Per-class Jacobian correlation score of EPE-NAS, in NASLib's form.

    Group the input Jacobians J_n by label. For each class c with rows J_c,
    s_c = sum_ij log(|corr(J_c)_ij| + k), k = 1e-5 (a class seen once has the
    1x1 correlation 1, so s_c = log(1 + k)). With C the number of outputs:
    - C <= 100: score = sum_c |s_c|;
    - C > 100: s_c is divided by the class's sample count, classes seen once
      are dropped, and score = sum_{c, c'} |s_c - s_c'| / (number of classes kept).
    NaN when a correlation is undefined (a constant Jacobian) or, for C > 100,
    no class is seen twice; NASLib stores -1e8 for such networks.
    """
    jac, n_classes = _input_jacobians(model, inputs)
    labels = targets.detach().cpu().reshape(-1).tolist()
    by_class: dict = {}
    for row, label in zip(jac, labels):
        by_class.setdefault(label, []).append(row)
    many = n_classes > 100
    per_class = []
    for rows in by_class.values():
        if len(rows) == 1:
            if many:
                continue
            s = math.log(1 + _K) if np.ptp(rows[0]) > 0 else math.nan
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                s = float(np.sum(np.log(np.abs(_corrcoef(np.stack(rows))) + _K)))
            if many:
                s /= len(rows)
        per_class.append(s)
    if not many:
        return float(sum(abs(s) for s in per_class))
    if not per_class:
        return math.nan
    s = np.asarray(per_class)
    return float(np.abs(s[:, None] - s[None, :]).sum() / len(s))


@register_proxy("nwot", paper="Mellor et al., Neural Architecture Search without Training, ICML 2021")
def nwot(model, inputs, targets, loss_fn) -> float:
    """log |det K_H|, K_H[i, j] = number of activation units where samples i and j agree.

    A unit is the input of an activation layer (every module that
    `synth.zoo.expressivity.activation_modules` finds: ReLU for CNNs, GELU for ViTs), binarised as c = (input > 0); all
    layers' units are pooled, so K_H = sum_layers [c c^T + (1 - c)(1 - c)^T], which
    is the number of units minus the Hamming distance of the codes. -inf when
    K_H is singular (NASLib stores -inf too). Activations applied as functions
    (`F.relu`) rather than modules are not seen, as in NASLib. Codes are taken
    before the activation runs, so an in-place ReLU is read correctly.
    """
    net = _working_copy(model)
    n = inputs.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=inputs.device)

    def count(module, args):
        nonlocal kernel
        code = (args[0].detach().reshape(args[0].shape[0], -1) > 0).double()
        kernel = kernel + code @ code.T + (1 - code) @ (1 - code).T

    handles = [m.register_forward_pre_hook(count) for m in activation_modules(net)]
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel.cpu()).logabsdet)
