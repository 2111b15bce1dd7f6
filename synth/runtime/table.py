"""The statistics table (STATISTICS, one row per statistic) and `collect_statistics`, which measures
the rows a program needs in one forward and backward pass with hooks.

Part of the torch-only runtime that `synth.export` copies into every exported `proxy.py`; plugins
add rows through `synth.register_statistic` (synth.plugins), never by importing synth here.
"""

import warnings

import torch
import torch.nn.functional as F

from synth.runtime.readers import (_affine, _attention, _attention_grad, _channel_width, _channels_last,
                                   _conv_sample_grad_moments, _grad_of, _norm_ratio, _patch_rows, _rows,
                                   _sample_grad_moments, _scalar, _sign_codes, _spatial, _trainable_numel)
from synth.runtime.sites import block_sites, sites_by_kind
from synth.runtime.values import Layers


class Statistic:
    """One row of the statistics table.

    `read(site, captured, options)` returns the statistic at one site: a matrix for role
    'tensor' (the statistic is a Layers), a number for role 'layer' (a 1-D tensor, one entry
    per site). `at` says when it is read: 'after' the pass, from the module; in a forward
    pre-hook ('forward', `captured['input']` is the module's input); in a forward hook once
    the module has run ('output', `captured['output']` is its output too); or in a backward hook
    ('backward', `captured` also holds 'output_grad', the loss gradient at the output, and
    'input_grad', the one at the input, None where the input takes no gradient).
    `needs` is the pass it needs: 'none', 'forward' or 'backward'. `shape` is its shape per
    site, in words.
    """

    __slots__ = ("kind", "read", "at", "needs", "role", "shape")

    def __init__(self, kind, read, at, needs, role, shape):
        self.kind, self.read, self.at, self.needs, self.role, self.shape = kind, read, at, needs, role, shape


def _linear_statistics(kind):
    """The statistics every linear-layer kind (msa, mlp) offers, named 'kind.quantity'."""
    rows = {
        "weight": (lambda s, c, o: s.module.weight.detach().float(), "after", "none", "tensor", "out x in"),
        "weight_grad": (lambda s, c, o: s.module.weight.grad.detach().float(), "after", "backward", "tensor", "out x in"),
        "input": (lambda s, c, o: _rows(c["input"], o), "forward", "forward", "tensor", "(samples x tokens) x in"),
        "output_grad": (lambda s, c, o: _rows(c["output_grad"], o), "backward", "backward", "tensor", "(samples x tokens) x out"),
        "sample_grad_abs_mean": (lambda s, c, o: _sample_grad_moments(c)[0], "backward", "backward", "tensor", "out x in"),
        "sample_grad_std": (lambda s, c, o: _sample_grad_moments(c)[1], "backward", "backward", "tensor", "out x in"),
        "numel": (lambda s, c, o: _scalar(s.module.weight.numel()), "after", "none", "layer", "one number"),
        "width_in": (lambda s, c, o: _scalar(s.module.weight.shape[1]), "after", "none", "layer", "one number"),
        "width_out": (lambda s, c, o: _scalar(s.module.weight.shape[0]), "after", "none", "layer", "one number"),
        "tokens": (lambda s, c, o: _scalar(c["input"].shape[-2] if c["input"].dim() >= 3 else 1), "forward", "forward", "layer", "one number"),
        "depth": (lambda s, c, o: _scalar(s.depth), "after", "none", "layer", "one number"),
    }
    return {f"{kind}.{quantity}": Statistic(kind, *row) for quantity, row in rows.items()}


def _conv_statistics():
    """Convolution statistics, weight-shaped as (out, in/groups x kh x kw) matrices and inputs as im2col
    rows (see `_patch_rows`), so every matrix product a linear layer allows is shape-consistent here."""
    weight = "out x (in x kh x kw)"
    rows = {
        "weight": (lambda s, c, o: s.module.weight.detach().float().reshape(s.module.weight.shape[0], -1), "after", "none", "tensor", weight),
        "weight_grad": (lambda s, c, o: _grad_of(s.module.weight).reshape(s.module.weight.shape[0], -1), "after", "backward", "tensor", weight),
        "input": (lambda s, c, o: _patch_rows(s.module, c["input"], o), "forward", "forward", "tensor", "(samples x out positions) x (in x kh x kw)"),
        "output_grad": (lambda s, c, o: _rows(_channels_last(c["output_grad"]), o), "backward", "backward", "tensor", "(samples x out positions) x out"),
        "sample_grad_abs_mean": (lambda s, c, o: _conv_sample_grad_moments(s, c)[0], "backward", "backward", "tensor", weight),
        "sample_grad_std": (lambda s, c, o: _conv_sample_grad_moments(s, c)[1], "backward", "backward", "tensor", weight),
        "numel": (lambda s, c, o: _scalar(s.module.weight.numel()), "after", "none", "layer", "one number"),
        "params": (lambda s, c, o: _scalar(_trainable_numel(s.module)), "after", "none", "layer", "one number"),
        "width_in": (lambda s, c, o: _scalar(s.module.in_channels), "after", "none", "layer", "one number"),
        "width_out": (lambda s, c, o: _scalar(s.module.out_channels), "after", "none", "layer", "one number"),
        "kernel": (lambda s, c, o: _scalar(s.module.weight[0, 0].numel()), "after", "none", "layer", "one number"),
        "spatial": (lambda s, c, o: _scalar(_spatial(c["input"])), "forward", "forward", "layer", "one number"),
        "depth": (lambda s, c, o: _scalar(s.depth), "after", "none", "layer", "one number"),
    }
    return {f"conv.{quantity}": Statistic("conv", *row) for quantity, row in rows.items()}


def _activation_statistics(kind):
    """What batch-norm (bn) and ReLU (relu) layers share: input rows (samples x positions, channels), channel
    count, positions per sample and depth index."""
    rows = {
        "input": (lambda s, c, o: _rows(_channels_last(c["input"]), o), "forward", "forward", "tensor", "(samples x positions) x channels"),
        "width": (lambda s, c, o: _scalar(_channel_width(c["input"])), "forward", "forward", "layer", "one number"),
        "spatial": (lambda s, c, o: _scalar(_spatial(c["input"])), "forward", "forward", "layer", "one number"),
        "depth": (lambda s, c, o: _scalar(s.depth), "after", "none", "layer", "one number"),
    }
    return {f"{kind}.{quantity}": Statistic(kind, *row) for quantity, row in rows.items()}


def _cnn_statistics():
    """Every statistic of the convolutional kinds: conv, bn, relu and fc (a linear kind, plus `params`)."""
    return {
        **_conv_statistics(),
        **_activation_statistics("bn"),
        "bn.output_grad": Statistic("bn", lambda s, c, o: _rows(_channels_last(c["output_grad"]), o), "backward", "backward",
                                    "tensor", "(samples x positions) x channels"),
        "bn.weight": Statistic("bn", lambda s, c, o: _affine(s.module, "weight"), "after", "none", "tensor", "1 x channels"),
        "bn.weight_grad": Statistic("bn", lambda s, c, o: _affine(s.module, "weight_grad"), "after", "backward", "tensor", "1 x channels"),
        "bn.params": Statistic("bn", lambda s, c, o: _scalar(_trainable_numel(s.module)), "after", "none", "layer", "one number"),
        **_activation_statistics("relu"),
        "relu.code": Statistic("relu", lambda s, c, o: _sign_codes(_channels_last(c["input"]), o), "forward", "forward", "tensor",
                               "samples x (kept positions x channels)"),
        **_linear_statistics("fc"),
        "fc.params": Statistic("fc", lambda s, c, o: _scalar(_trainable_numel(s.module)), "after", "none", "layer", "one number"),
    }


def _block_statistics():
    """Statistics of blocks (see `block_sites`): how much a block scales its input's norm on the way
    forward and the loss gradient's on the way back (AZ-NAS's trainability reads the latter per
    block), its parameter count and depth index."""
    rows = {
        "gain": (lambda s, c, o: _norm_ratio(c["output"], c["input"]), "output", "forward", "layer", "one number"),
        "grad_gain": (lambda s, c, o: _norm_ratio(c["input_grad"], c["output_grad"]), "backward", "backward", "layer", "one number"),
        "params": (lambda s, c, o: _scalar(sum(p.numel() for p in s.module.parameters() if p.requires_grad)), "after", "none",
                   "layer", "one number"),
        "depth": (lambda s, c, o: _scalar(s.depth), "after", "none", "layer", "one number"),
    }
    return {f"block.{quantity}": Statistic("block", *row) for quantity, row in rows.items()}


STATISTICS = {
    **_linear_statistics("msa"),
    **_linear_statistics("mlp"),
    "msa.heads": Statistic("msa", lambda s, c, o: _scalar(s.heads), "after", "none", "layer", "one number"),
    "act.code": Statistic("act", lambda s, c, o: _sign_codes(c["input"], o), "forward", "forward", "tensor",
                          "samples x (kept tokens x hidden units)"),
    "attn.map": Statistic("attn", lambda s, c, o: _rows(_attention(s, c)[0], o), "forward", "forward", "tensor",
                          "(samples x heads x query tokens) x key tokens"),
    "attn.map_grad": Statistic("attn", lambda s, c, o: _rows(_attention_grad(s, c), o), "backward", "backward", "tensor",
                               "(samples x heads x query tokens) x key tokens"),
    **_cnn_statistics(),
    **_block_statistics(),
}
QUANTITIES = tuple(name.partition(".")[2] for name in STATISTICS if name.startswith("mlp."))  # of every linear kind


def _hooks_for(site, rows, captured, options, values):
    """Register the hooks computing `rows` ({name: Statistic}) at `site`; returns their handles."""
    forward, output, backward = ({n: r for n, r in rows.items() if r.at == at} for at in ("forward", "output", "backward"))
    handles = []

    def pre_hook(module, args):
        captured["input"] = args[0]
        for name, row in forward.items():
            values[name] = row.read(site, captured, options)
        if not output and not backward:
            del captured["input"]

    def hook(module, args, result):
        captured["output"] = result
        for name, row in output.items():
            values[name] = row.read(site, captured, options)
        del captured["output"]
        if not backward:
            del captured["input"]

    def backward_hook(module, grad_input, grad_output):
        captured["output_grad"], captured["input_grad"] = grad_output[0], grad_input[0] if grad_input else None
        for name, row in backward.items():
            values[name] = row.read(site, captured, options)
        captured.clear()

    if forward or output or backward:
        handles.append(site.module.register_forward_pre_hook(pre_hook))
    if output:
        handles.append(site.module.register_forward_hook(hook))
    if backward:
        handles.append(site.module.register_full_backward_hook(backward_hook))
    return handles


def collect_statistics(model, inputs, targets, wanted, max_rows=None, row_seed=0):
    """Statistics of one forward and backward pass with cross-entropy, by name (see STATISTICS).

    Only what `wanted` needs is run: no backward pass when no gradient is
    wanted, no pass at all for weights and structure alone.

    Returns {name: value}: a Layers (one matrix per site) for a 'tensor'
    statistic, a 1-D tensor (one number per site) for a 'layer' statistic.
    Activations and output gradients are flattened to (samples x tokens,
    features); with `max_rows`, each layer keeps a seeded subset of at most
    that many rows, the same rows for its input and its output gradient, so
    their products stay meaningful while memory stays bounded. Weight
    gradients and per-sample gradient moments are always exact.
    """
    wanted = sorted(set(wanted))
    for name in wanted:
        if name not in STATISTICS:
            raise ValueError(f"unknown statistic {name!r}")
    sites = sites_by_kind(model)
    if any(STATISTICS[n].kind == "block" for n in wanted):
        sites["block"] = block_sites(model, inputs)
    options = {"max_rows": max_rows, "row_seed": row_seed}
    per_site, handles = {}, []  # (kind, index) -> {name: value}
    for kind, kind_sites in sites.items():
        rows = {n: STATISTICS[n] for n in wanted if STATISTICS[n].kind == kind and STATISTICS[n].at != "after"}
        for i, site in enumerate(kind_sites):
            per_site[(kind, i)] = {}
            handles += _hooks_for(site, rows, {}, options, per_site[(kind, i)])
    needs = {STATISTICS[n].needs for n in wanted}
    try:
        model.zero_grad(set_to_none=True)
        model.train()
        if "backward" in needs:
            with warnings.catch_warnings():  # a stem conv's input (the images) takes no gradient: expected
                warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with respect to module outputs")
                F.cross_entropy(model(inputs), targets).backward()
        elif "forward" in needs:
            with torch.no_grad():  # activations only: no graph, no backward pass
                model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    stats = {}
    for name in wanted:
        row = STATISTICS[name]
        values = [
            row.read(site, {}, options) if row.at == "after" else per_site[(row.kind, i)][name]
            for i, site in enumerate(sites[row.kind])
        ]
        stats[name] = Layers.from_list(values) if row.role == "tensor" else torch.stack(values) if values else torch.zeros(0)
    return stats
