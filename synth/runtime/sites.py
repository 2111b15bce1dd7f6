"""Where statistics are measured: the modules of a network, found by structure and grouped by kind.

Part of the torch-only runtime that `synth.export` copies into every exported `proxy.py`.
"""

import torch

SITE_KINDS = ("msa", "mlp", "act", "attn", "conv", "bn", "relu", "fc")  # every kind sites_by_kind returns


class Site:
    """One module a statistic is measured at: the module, its depth (for msa, mlp, act and attn the
    1-based index of its attention or MLP block in forward order; for conv, bn, relu and fc its
    1-based index among the model's layers of its kind), and its attention module's head count (MSA only)."""

    __slots__ = ("module", "depth", "heads")

    def __init__(self, module, depth, heads=None):
        self.module, self.depth, self.heads = module, depth, heads


def sites_by_kind(model):
    """{'msa', 'mlp', 'act', 'attn', 'conv', 'bn', 'relu', 'fc': [...]}: the Sites of the model.

    Found by structure, not class name, so any timm ViT family model works
    (VisionTransformer, DeiT, PiT): an attention module (kind attn) holds `qkv`
    and `proj` linear layers (kind msa); an MLP module holds `fc1` and `fc2`
    (kind mlp) and, between them, its hidden activation module `act` (kind act), in forward
    order. The convolutional kinds (conv, bn, relu, fc) come from `_cnn_sites`; a ViT has a
    conv (its patch embedding) and an fc (its head) too, read only when a grammar names them.
    """
    kinds = {"msa": [], "mlp": [], "act": [], "attn": []}
    for module in model.modules():
        if isinstance(getattr(module, "qkv", None), torch.nn.Linear) and isinstance(
            getattr(module, "proj", None), torch.nn.Linear
        ):
            depth, heads = len(kinds["msa"]) // 2 + 1, getattr(module, "num_heads", None)
            kinds["msa"] += [Site(module.qkv, depth, heads), Site(module.proj, depth, heads)]
            kinds["attn"].append(Site(module, depth, heads))
        elif isinstance(getattr(module, "fc1", None), torch.nn.Linear) and isinstance(
            getattr(module, "fc2", None), torch.nn.Linear
        ):
            depth = len(kinds["mlp"]) // 2 + 1
            kinds["mlp"] += [Site(module.fc1, depth), Site(module.fc2, depth)]
            if isinstance(getattr(module, "act", None), torch.nn.Module):
                kinds["act"].append(Site(module.act, depth))
    claimed = {id(site.module) for kind in ("msa", "mlp") for site in kinds[kind]}
    return {**kinds, **_cnn_sites(model, claimed)}


def _cnn_sites(model, claimed):
    """{'conv': [...], 'bn': [...], 'relu': [...], 'fc': [...]}: convolutional-network Sites, in module order.

    Found by module type, so any torch CNN works (NAS-Bench-201's networks, ResNets, ...): every
    `nn.Conv2d` (kind conv), every batch-norm layer (kind bn), every `nn.ReLU` module (kind relu;
    functional relus cannot be seen) and every `nn.Linear` not already an MSA or MLP site (kind
    fc: a CNN's classifier, a ViT's head). A Site's depth is its 1-based index among its kind.
    """
    kinds = {"conv": [], "bn": [], "relu": [], "fc": []}
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            kind = "conv"
        elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            kind = "bn"
        elif isinstance(module, torch.nn.ReLU):
            kind = "relu"
        elif isinstance(module, torch.nn.Linear) and id(module) not in claimed:
            kind = "fc"
        else:
            continue
        kinds[kind].append(Site(module, len(kinds[kind]) + 1))
    return kinds


def linear_layers_by_kind(model):
    """The model's linear layers grouped as {'msa': [...], 'mlp': [...]} in forward order (see sites_by_kind)."""
    sites = sites_by_kind(model)
    return {kind: [site.module for site in sites[kind]] for kind in ("msa", "mlp")}
