"""Expressivity proxies read from activation patterns: SWAP, L-SWAG and TE-NAS (MeCo and Zen-NAS,
which read feature maps, are in synth.zoo.feature_maps).

Activation patterns (swap, l_swag, te_nas) are read with forward pre-hooks on
activation modules (ReLU, GELU, SiLU, ... as `nn.Module`s; functional
activations inside a `forward` cannot be seen): a unit is "on" when its
pre-activation is > 0. For ReLU this is exactly the sign of the post-activation
that SWAP and TE-NAS binarise; for GELU (timm ViTs) it is the sign of the GELU
input, the extension L-SWAG uses. A unit ("neuron") is one (position, channel)
pair: a token and a feature for (batch, tokens, features) inputs, a pixel and a
channel for (batch, channels, height, width) inputs.

Memory is bounded for 224 px ViTs with large batches: patterns are folded into
running summaries inside the hooks (packed 63-sample integer codes per unit for
SWAP, a batch x batch "differs" matrix for TE-NAS) instead of being kept, and a
layer with more than `max_neurons` units (default 2**20; a ViT-B/16 MLP at
224 px has 197 x 3072 = 605k) keeps a seeded random subset of its positions
(tokens or pixels), the same positions for every sample, all channels of each.
At the default this never triggers for ViT-B/16 at 224 px nor for ResNets at
224 px, so the counts there are exact.

Every proxy leaves the caller's model as it was: forward passes run inside
`probe_mode` (training mode; module modes and buffers restored afterwards),
and gradients are taken with autograd.grad (the caller's .grad untouched).
"""

from __future__ import annotations

import contextlib
import math

import torch

from synth.zoo import register_proxy
from synth.zoo.gradient_stats import chunk_gradient_moments, probe_mode, weight_layers

__all__ = ["swap", "l_swag", "te_nas", "activation_modules"]

MAX_NEURONS = 2**20  # units per activation layer above which positions are subsampled
_ACTIVATIONS = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU, torch.nn.PReLU, torch.nn.GELU, torch.nn.SiLU,
                torch.nn.ELU, torch.nn.Hardswish, torch.nn.Mish)
# activation classes of other libraries (timm's own GELU, QuickGELU, ...), matched by class name
_ACTIVATION_NAMES = {"ReLU", "ReLU6", "LeakyReLU", "GELU", "GELUTanh", "QuickGELU", "SiLU", "Swish", "ELU",
                     "Hardswish", "HardSwish", "Mish"}


def activation_modules(model) -> list:
    """The model's activation modules, in module order."""
    return [m for m in model.modules() if isinstance(m, _ACTIVATIONS) or type(m).__name__ in _ACTIVATION_NAMES]


# ---------------------------------------------------------------- activation patterns


def _binarise(pre, max_neurons: int, seed: int):
    """(batch, units) bool: pre-activation > 0 for every unit (position x channel), at most
    `max_neurons` units (a seeded subset of positions, all channels of each)."""
    x = pre.detach()
    b = x.shape[0]
    if x.dim() >= 4:  # (B, C, *spatial) -> (B, positions, C)
        x = x.flatten(2).transpose(1, 2)
    elif x.dim() == 3:  # (B, tokens, features)
        pass
    else:  # (B, features) or (B,)
        x = x.reshape(b, 1, -1)
    positions, channels = x.shape[1], x.shape[2]
    if positions * channels > max_neurons:
        keep = max(1, max_neurons // channels)
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(positions, generator=generator)[:keep].sort().values.to(x.device)
        x = x[:, index]
    return (x > 0).reshape(b, -1)


def _pack(bits):
    """(units, words) int64: each unit's on/off pattern over the samples, 63 samples per word."""
    samples, units = bits.shape
    words = []
    for start in range(0, samples, 63):
        code = torch.zeros(units, dtype=torch.int64, device=bits.device)
        for j, row in enumerate(bits[start : start + 63]):
            code |= row.to(torch.int64) << j
        words.append(code)
    return torch.stack(words, dim=1)


class _NeuronPatterns:
    """SWAP's count: the number of distinct per-unit patterns across the samples (rows of the
    units x samples binary matrix), accumulated layer by layer as a running set of codes."""

    def __init__(self):
        self.codes = None

    def add(self, bits):
        codes = torch.unique(_pack(bits), dim=0)
        self.codes = codes if self.codes is None else torch.unique(torch.cat([self.codes, codes]), dim=0)

    def count(self) -> int:
        return 0 if self.codes is None else int(self.codes.shape[0])


class _SamplePatterns:
    """TE-NAS's linear-region count: the number of distinct per-sample patterns over all units
    (rows of the samples x units binary matrix), accumulated as a samples x samples 'differs' matrix."""

    def __init__(self, samples: int, device):
        self.differ = torch.zeros(samples, samples, dtype=torch.bool, device=device)

    def add(self, bits):
        on = bits.float()
        disagree = on @ (1 - on).T
        self.differ |= (disagree + disagree.T) > 0

    def count(self) -> int:
        same = (~self.differ).sum(dim=1).double()  # each sample's pattern multiplicity
        return int(round(float((1.0 / same).sum())))


@contextlib.contextmanager
def _pattern_hooks(modules, sinks, max_neurons: int):
    """Feed the binarised pre-activation of every call of `modules` to each sink's `add`."""

    def hook_for(index):
        def hook(module, args):
            bits = _binarise(args[0], max_neurons, seed=index)
            for sink in sinks:
                sink.add(bits)

        return hook

    handles = [m.register_forward_pre_hook(hook_for(i)) for i, m in enumerate(modules)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _swap_count(model, inputs, modules, max_neurons: int) -> int:
    patterns = _NeuronPatterns()
    with probe_mode(model, train=True), torch.no_grad(), _pattern_hooks(modules, [patterns], max_neurons):
        model(inputs)
    return patterns.count()


def _window(items: list, window) -> list:
    """The part of `items` between fractions lo and hi of its length: items[floor(lo n) : ceil(hi n)]
    (at least one)."""
    lo, hi = window
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"window must be (lo, hi) with 0 <= lo < hi <= 1, got {window!r}")
    n = len(items)
    start = min(math.floor(lo * n), n - 1)
    return items[start : max(start + 1, math.ceil(hi * n))]


def _need_activations(name: str, model) -> list:
    modules = activation_modules(model)
    if not modules:
        raise ValueError(f"{name}: the model has no activation modules (nn.ReLU, nn.GELU, ...) to hook")
    return modules


# ---------------------------------------------------------------- SWAP and L-SWAG


@register_proxy(
    "swap",
    paper="Peng, Song, Li et al., SWAP-Score: A Novel Training-free Metric Based on Sample-Wise Activation Patterns, ICLR 2024",
    families=("cnn", "vit"),
)
def swap(model, inputs, targets, loss_fn, *, max_neurons: int = MAX_NEURONS) -> float:
    """SWAP (Peng et al., ICLR 2024): the cardinality of the set of sample-wise activation patterns,

        SWAP = | { (1[z_u(x_1) > 0], ..., 1[z_u(x_B) > 0]) : u a unit of any activation layer } |

    z_u the pre-activation of unit u: the units x samples binary matrix of all activation
    layers is formed and its distinct rows are counted (at most 2^B). As in the official code,
    all activation layers are pooled, every spatial position (token) of every channel is a
    unit, the network is in training mode, and the probe batch is the input. ReLU is binarised
    as in the paper; GELU and other activations by the sign of their input (L-SWAG's
    extension). This is the plain SWAP score: the regularised variant's Gaussian factor in the
    parameter count needs a target size (mu, sigma) per search space and is not applied.
    Labels and loss_fn are unused.
    """
    return float(_swap_count(model, inputs, _need_activations("swap", model), max_neurons))


@register_proxy(
    "l_swag",
    paper="Casarin, Escalera, Lanz, L-SWAG: Layer-Sample Wise Activation with Gradients information for Zero-Shot NAS on Vision Transformers, CVPR 2025",
    families=("cnn", "vit"),
)
def l_swag(model, inputs, targets, loss_fn, *, window=(0.0, 1.0), chunks: int | None = None,
           max_neurons: int = MAX_NEURONS) -> float:
    """L-SWAG (Casarin et al., CVPR 2025): L-SWAG = Lambda x Psi over a window of layers,

        Lambda = sum over layers l in the window of log( sum over weights w of l of 1 / std_s(|g_w,s|) )
        Psi    = SWAP's count of distinct unit activation patterns over the window's activation layers

    g_w,s the gradient of sample s's loss with respect to w (ZiCo with the mean |g| replaced by
    1). The layers of Lambda are the convolution and linear layers (as ZiCo), those of Psi the
    activation modules, each list in module order; `window=(lo, hi)` keeps the part between
    fractions lo and hi of each list (items[floor(lo n) : ceil(hi n)]). The paper tunes the
    window per benchmark; without one to follow, the default is the whole network.

    `chunks` splits the probe batch for the gradient statistics; the default (None) is one
    chunk per sample, i.e. per-sample gradients (B backward passes of one sample; with
    batch-norm in training mode each sample is normalised by its own statistics). As in ZiCo,
    std is the population std, weights with zero std are left out, and a layer whose sum is
    zero contributes nothing. Psi is computed as in `swap` (GELU binarised by the sign of its
    input, positions subsampled above `max_neurons` units per layer).
    """
    layers, acts = weight_layers(model), _need_activations("l_swag", model)
    if not layers:
        raise ValueError("l_swag: the model has no linear or convolution layers")
    chunks = inputs.shape[0] if chunks is None else chunks
    if chunks < 2:
        raise ValueError("l_swag needs at least 2 chunks (samples) for a variance")
    layers, acts = _window(layers, window), _window(acts, window)
    with probe_mode(model, train=True):
        _, std_abs = chunk_gradient_moments(model, inputs, targets, loss_fn, chunks, layers, of_abs=True)
    lam = 0.0
    for s in std_abs:
        s = s[s > 0].double()
        total = float((1.0 / s).sum()) if s.numel() else 0.0
        if total > 0:
            lam += math.log(total)
    psi = _swap_count(model, inputs, acts, max_neurons)
    return lam * psi


# ---------------------------------------------------------------- TE-NAS


@register_proxy(
    "te_nas",
    paper="Chen, Gong, Wang, Neural Architecture Search on ImageNet in Four GPU Hours: A Theoretically Inspired Perspective (TE-NAS), ICLR 2021",
    families=("cnn", "vit"),
)
def te_nas(model, inputs, targets, loss_fn, *, max_neurons: int = MAX_NEURONS) -> float:
    """TE-NAS (Chen et al., ICLR 2021): trainability (condition number of the NTK, lower is
    better) and expressivity (number of linear regions, higher is better), combined as

        score = log R - log kappa,   kappa = lambda_max(Theta) / lambda_min(Theta)

    Theta is the empirical NTK on the probe batch, Theta_ij = <J_i, J_j>, J_i the gradient of
    the sum of sample i's logits with respect to every parameter whose name contains 'weight'
    (as the official code; one forward of the whole batch in training mode, one backward per
    sample). R is the number of linear regions the batch falls into: the number of distinct
    per-sample activation patterns over all activation layers (units binarised by the sign of
    their pre-activation, so GELU is treated like ReLU), counted as sum_i 1 / #{j : pattern_j =
    pattern_i} as in the official code; a network without activations has one region.

    Why this combination: the paper prunes by the sum of the two *ranks* over the candidates,
    which needs a population; a single network's score must be rank-free. Ranks are invariant
    to monotone transforms, so -log kappa and log R each order networks exactly as their ranks
    do, and both quantities span orders of magnitude, so logs put them on a common relative
    scale: score = log(R / kappa), which raises with R and falls with kappa in equal relative
    measure. Eigenvalues are taken in float64 and lambda_min is floored at 1e-12 lambda_max, so
    a singular NTK (more samples than parameters, duplicate samples) gets a finite, worst score.

    Caveat: R cannot exceed the batch size. TE-NAS counts regions over many (1000+) small
    samples; on a probe batch of B images R is usually B, and the score is then -log kappa
    plus a constant. Storage: the B x (#weights) Jacobian is kept in float32.
    """
    modules = activation_modules(model)
    params = [p for name, p in model.named_parameters() if "weight" in name and p.requires_grad]
    if not params:
        raise ValueError("te_nas: the model has no weight parameters")
    regions = _SamplePatterns(inputs.shape[0], inputs.device)
    rows = []
    with probe_mode(model, train=True):  # buffers are restored after the backward passes, which check them
        with _pattern_hooks(modules, [regions], max_neurons):
            logits = model(inputs)
        for i in range(inputs.shape[0]):
            grads = torch.autograd.grad(logits[i].sum(), params, retain_graph=i + 1 < inputs.shape[0], allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g.detach()).reshape(-1) for g, p in zip(grads, params)]))
    jacobian = torch.stack(rows)
    del rows, logits
    ntk = torch.zeros(jacobian.shape[0], jacobian.shape[0], dtype=torch.float64, device=jacobian.device)
    for start in range(0, jacobian.shape[1], 1 << 22):
        block = jacobian[:, start : start + (1 << 22)].double()
        ntk += block @ block.T
    eig = torch.linalg.eigvalsh(ntk)
    top = float(eig[-1])
    if not top > 0:
        raise ValueError("te_nas: the NTK is zero (no gradient reaches the weights)")
    kappa = top / max(float(eig[0]), 1e-12 * top)
    return math.log(regions.count()) - math.log(kappa)
