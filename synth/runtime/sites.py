"""Where statistics are measured: the modules of a network, found by structure and grouped by kind.

Part of the torch-only runtime that `synth.export` copies into every exported `proxy.py`.
"""

import torch

SITE_KINDS = ("msa", "mlp", "act", "attn", "conv", "bn", "relu", "fc", "block")  # sites_by_kind's, then block_sites'


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


def block_sites(model, inputs):
    """The model's blocks as Sites, in forward order (depth: 1-based index): the outermost modules that
    have sub-modules, are neither the model itself nor a container (nn.Sequential, a subclass of it,
    ModuleList or ModuleDict: a chain of layers or blocks, not one block), and return a tensor of
    their input's shape.

    A block is where a network can be read as x -> x + f(x) or x -> f(x) at one width: a
    NAS-Bench-201 cell, a ResNet basic block without downsampling, a timm transformer block (a
    downsampling block is not one). Shapes are
    seen in one forward pass of the first two samples, in eval mode and without gradients, so
    nothing (running statistics included) changes; the model's mode is restored.
    """
    parents = dict(model.named_modules())
    calls, handles = {}, []  # module name -> (first call's order, whether every call kept the shape)

    def recorder(name):
        def pre_hook(module, args):
            if name not in calls:
                calls[name] = [len(calls), True]

        def hook(module, args, output):
            keeps = bool(args) and torch.is_tensor(args[0]) and torch.is_tensor(output) and args[0].shape == output.shape
            calls[name][1] = calls[name][1] and keeps

        return pre_hook, hook

    for name, module in parents.items():
        containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)
        if name and not isinstance(module, containers) and any(True for _ in module.children()):
            pre_hook, hook = recorder(name)
            handles += [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(hook)]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(inputs[:2])
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    kept = {name for name, (_, keeps) in calls.items() if keeps}
    outermost = [name for name in kept if not any(name.startswith(other + ".") for other in kept)]
    ordered = sorted(outermost, key=lambda name: calls[name][0])
    return [Site(parents[name], depth) for depth, name in enumerate(ordered, start=1)]


def linear_layers_by_kind(model):
    """The model's linear layers grouped as {'msa': [...], 'mlp': [...]} in forward order (see sites_by_kind)."""
    sites = sites_by_kind(model)
    return {kind: [site.module for site in sites[kind]] for kind in ("msa", "mlp")}
