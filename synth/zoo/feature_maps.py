"""Feature-map proxies: MeCo (the correlation of each layer's feature map) and Zen-NAS (how the
pre-pooling features move under a small input perturbation, at a Gaussian initialisation).

Both leave the caller's model as it was: MeCo's forward pass runs inside `probe_mode` (training
mode; module modes and buffers restored afterwards) and Zen, which re-initialises the weights,
works on a deep copy.
"""

from __future__ import annotations

import copy
import math

import torch

from synth.zoo import register_proxy
from synth.zoo.gradient_stats import WEIGHT_LAYERS, probe_mode

__all__ = ["meco", "zen"]


# ---------------------------------------------------------------- MeCo


def _min_corr_eigenvalues(features):
    """Per sample, the minimum eigenvalue of the Pearson correlation matrix of the rows of
    `features` (batch, variables, observations); 0 where it is singular by construction."""
    b, v, o = features.shape
    if v >= o:  # the centred rows span at most o - 1 dimensions: singular, lambda_min = 0
        return torch.zeros(b, dtype=torch.float64)
    x = features.double()
    x = x - x.mean(dim=2, keepdim=True)
    norms = torch.linalg.vector_norm(x, dim=2, keepdim=True)
    constant = norms.squeeze(2) == 0
    x = x / torch.where(norms == 0, 1.0, norms)
    corr = x @ x.transpose(1, 2)  # a constant row gets an all-zero row and column (MeCo's NaN -> 0)
    eig = torch.linalg.eigvalsh(corr)[:, 0]
    return torch.where(constant.any(dim=1), torch.zeros_like(eig), eig).cpu()


@register_proxy(
    "meco",
    paper="Jiang, Wang, Bie, MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue of Correlation, NeurIPS 2023",
    families=("cnn", "vit"),
)
def meco(model, inputs, targets, loss_fn) -> float:
    """MeCo (Jiang et al., NeurIPS 2023):

        MeCo = sum over layers l of lambda_min( P(f_l(x)) )

    f_l(x) the feature map layer l produces for one sample x, reshaped to (first axis, rest),
    and P its Pearson correlation matrix: channels correlated over pixels for a convolution's
    (C, H, W) output, as in the paper; for a transformer's (tokens, features) linear output
    this is, as in the official code (which reshapes every output to (size(0), -1)), tokens
    correlated over features. The layers are the convolution and linear layers (the official
    code hooks every module, containers included, so it counts some outputs several times);
    outputs without such a 2-D per-sample map (the classifier's logits) are skipped, as they
    contribute 0 in the official code. A constant row makes the official correlation NaN,
    set to 0, and the minimum eigenvalue 0; with at least as many rows as observations the
    matrix is singular and lambda_min = 0, returned without an eigendecomposition.

    The paper uses a single sample; here lambda_min is averaged over the samples of the probe
    batch (with a batch of one this is the paper's score). One forward in training mode, no
    gradients; labels and loss_fn are unused.
    """
    layers = [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    if not layers:
        raise ValueError("meco: the model has no linear or convolution layers")
    values = []

    def hook(module, args, output):
        if isinstance(output, torch.Tensor) and output.dim() >= 3:
            values.append(_min_corr_eigenvalues(output.detach().reshape(output.shape[0], output.shape[1], -1)).mean())

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with probe_mode(model, train=True), torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    if not values:
        raise ValueError("meco: no layer produced a feature map (batch, first axis, rest)")
    return float(torch.stack(values).sum())


# ---------------------------------------------------------------- Zen-NAS


def _gaussian_init(model, generator):
    """Zen-NAS's initialisation: convolution and linear weights ~ N(0, 1), their biases 0;
    normalisation layers' affine weight 1 and bias 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, WEIGHT_LAYERS):
                m.weight.normal_(0.0, 1.0, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.fill_(1.0)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()


def _pre_gap_features(model, x):
    """The network's features before global pooling: `forward_features` where the model has it
    (timm models: (B, C, H, W) for CNNs, the final-normed (B, tokens, D) for ViTs); otherwise the
    input of the last pooling module called, or the output if there is none."""
    if callable(getattr(model, "forward_features", None)):
        return model.forward_features(x)
    pools = [m for m in model.modules() if isinstance(m, (torch.nn.AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool2d,
                                                           torch.nn.AdaptiveAvgPool3d, torch.nn.AvgPool2d))]
    seen = []
    handles = [p.register_forward_pre_hook(lambda module, args: seen.append(args[0])) for p in pools]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen[-1] if seen else out


@register_proxy(
    "zen",
    paper="Lin, Wang, Sun et al., Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition, ICCV 2021",
    families=("cnn", "vit"),
    uses_data=False,
)
def zen(model, inputs, targets, loss_fn, *, alpha: float = 0.01, seed: int = 0, gaussian_init: bool = True) -> float:
    """Zen-score (Lin et al., ICCV 2021):

        Zen = log E_{x, e} || f(x) - f(x + alpha e) ||_F + sum over BN layers i of log sigma_i,
        sigma_i = sqrt( mean over channels of the variance BN_i divides by )

    x, e ~ N(0, 1) shaped like the probe batch (the probe images are not used; x then e are drawn
    from a torch.Generator seeded with `seed` on the batch's device), alpha = 0.01,
    f the pre-global-pooling feature map (`forward_features` for timm models), ||.||_F per
    sample, E the mean over the batch. As in the paper, the score is taken on a copy whose
    convolution and linear weights are re-drawn from N(0, 1) (biases 0, norm affines 1/0;
    `gaussian_init=False` keeps the network's own weights), in training mode, so BN uses batch
    statistics; sigma_i is that batch variance of the clean input x (the official code reads
    running_var after the forward passes, which approximates it).

    Networks without batch norm (ViTs): the compensation term is empty and the score is the
    log feature-difference norm alone. LayerNorm is not compensated: Zen's term restores the
    scale that BN removes from the single path of a plain CNN, while a pre-norm transformer's
    LayerNorms only rescale the inputs of residual branches whose outputs are added to an
    un-normalised stream, so no product of per-layer scales gives the un-normalised network's
    output; the final norm is part of f. Deterministic: the draws use a generator seeded by
    `seed`. Labels and loss_fn are unused.
    """
    net = copy.deepcopy(model)
    device = inputs.device
    generator = torch.Generator(device=device).manual_seed(seed)
    if gaussian_init:
        _gaussian_init(net, torch.Generator(device=next(net.parameters()).device).manual_seed(seed + 1))
    x = torch.randn(inputs.shape, generator=generator, device=device, dtype=torch.float32)
    e = torch.randn(inputs.shape, generator=generator, device=device, dtype=torch.float32)
    variances = []

    def bn_hook(module, args):
        t = args[0].detach().float().transpose(0, 1).reshape(args[0].shape[1], -1)
        variances.append(t.var(dim=1, unbiased=True).mean())

    net.train()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        handles = [m.register_forward_pre_hook(bn_hook) for m in bns]
        try:
            clean = _pre_gap_features(net, x)
        finally:
            for handle in handles:
                handle.remove()
        mixed = _pre_gap_features(net, x + alpha * e)
    diff = (clean - mixed).double().reshape(clean.shape[0], -1)
    expressivity = float(torch.linalg.vector_norm(diff, dim=1).mean())
    return math.log(expressivity) + sum(0.5 * math.log(float(v)) for v in variances)
