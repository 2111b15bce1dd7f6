"""Model builders for search spaces, registered by name; each builds timm blocks from an architecture dict."""

from __future__ import annotations

from functools import cache, partial

from synth.errors import SpaceError
from synth.builders import register_builder

__all__ = [
    "build_vit", "build_pit", "build_nasbench201", "QKV_MODES",
    "NB201_OPS", "NB201_EDGES", "nasbench201_key", "nasbench201_arch", "nasbench201_string",
    "nasbench201_from_string",
]


QKV_MODES = ("3x", "64-per-head")


def _attention_64_per_head():
    """timm Attention with 64-wide heads (timm's Block wants a class, not a partial)."""
    from timm.layers import Attention

    class Attention64PerHead(Attention):
        def __init__(self, dim, num_heads=8, **kwargs):
            super().__init__(dim, num_heads=num_heads, attn_head_dim=64, **kwargs)

    return Attention64PerHead


@register_builder("vit")
def build_vit(arch: dict, *, norm_eps: float = 1e-6, qkv_bias: bool = True, qkv: str = "3x", **fixed):
    """A timm VisionTransformer whose blocks take per-layer head counts and MLP ratios.

    timm's constructor takes one head count and MLP ratio for all blocks, so the
    network is built with the first block's values and its blocks are then
    replaced by timm `Block`s with each layer's own values, and re-initialised
    with timm's ViT initialisation. (The order of these steps fixes the random
    stream, and with it the weights the embedded benchmark was trained from.)
    """
    import torch.nn as nn
    from timm.layers import Attention
    from timm.models.vision_transformer import Block, VisionTransformer, init_weights_vit_timm

    embed_dim = arch["embed_dim"]
    if qkv not in QKV_MODES:
        raise ValueError(f"qkv must be one of {QKV_MODES}, got {qkv!r}")
    # '3x': qkv = Linear(D, 3D), head_dim = D / heads (ViT-Bench-101 subnets);
    # '64-per-head': qkv = Linear(D, 3 * heads * 64), as in the AutoFormer supernet
    if qkv == "3x":
        bad = sorted({h for h in arch["num_heads"] if embed_dim % h})
        if bad:
            raise SpaceError(f"qkv '3x' needs embed_dim {embed_dim} divisible by the head count; not by {bad} (use qkv: 64-per-head)")
    attn = Attention if qkv == "3x" else _attention_64_per_head()
    norm = partial(nn.LayerNorm, eps=norm_eps)
    model = VisionTransformer(
        embed_dim=embed_dim,
        depth=arch["depth"],
        num_heads=arch["num_heads"][0],
        mlp_ratio=arch["mlp_ratio"][0],
        qkv_bias=qkv_bias,
        norm_layer=norm,
        attn_layer=attn,
        **fixed,
    )
    model.blocks = nn.Sequential(
        *(
            Block(embed_dim, heads, mlp_ratio=ratio, qkv_bias=qkv_bias, norm_layer=norm, attn_layer=attn)
            for heads, ratio in zip(arch["num_heads"], arch["mlp_ratio"])
        )
    )
    model.blocks.apply(init_weights_vit_timm)
    return model


@register_builder("pit")
def build_pit(arch: dict, **fixed):
    """timm's PoolingVisionTransformer: one base width per head in all three stages, one MLP ratio,
    depth and heads per stage."""
    from timm.models.pit import PoolingVisionTransformer

    return PoolingVisionTransformer(
        base_dims=[arch["base_dim"]] * 3,
        depth=list(arch["depth"]),
        heads=list(arch["heads"]),
        mlp_ratio=arch["mlp_ratio"],
        **fixed,
    )


# ---------------------------------------------------------------- NAS-Bench-201

NB201_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")  # NASLib's op indices 0..4
NB201_EDGES = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))  # NASLib's edge order; node 1 = cell input, 4 = output


def _edge_name(i: int, j: int) -> str:
    return f"edge_{i}_{j}"


def nasbench201_key(arch: dict) -> str:
    """NASLib's key of a nasbench201 architecture: the string of its op-index tuple, e.g. "(0, 2, 3, 2, 3, 1)"."""
    try:
        return str(tuple(NB201_OPS.index(arch[_edge_name(i, j)]) for i, j in NB201_EDGES))
    except (KeyError, ValueError):
        raise SpaceError(f"not a nasbench201 architecture (one op of {list(NB201_OPS)} per edge {[_edge_name(*e) for e in NB201_EDGES]}): {arch!r}") from None


def nasbench201_arch(key) -> dict:
    """The nasbench201 architecture of a NASLib key ("(0, 2, 3, 2, 3, 1)") or op-index sequence."""
    if isinstance(key, str):
        body = key.strip()
        try:
            if not (body.startswith("(") and body.endswith(")")):
                raise ValueError
            indices = [int(part) for part in body[1:-1].split(",")]
        except ValueError:
            raise SpaceError(f"not a NASLib nasbench201 key like '(0, 2, 3, 2, 3, 1)': {key!r}") from None
    else:
        indices = list(key)
    if len(indices) != len(NB201_EDGES) or not all(isinstance(i, int) and 0 <= i < len(NB201_OPS) for i in indices):
        raise SpaceError(f"a NASLib nasbench201 key holds {len(NB201_EDGES)} op indices in 0..{len(NB201_OPS) - 1}: {key!r}")
    return {_edge_name(i, j): NB201_OPS[k] for (i, j), k in zip(NB201_EDGES, indices)}


def nasbench201_string(arch: dict) -> str:
    """The NAS-Bench-201 / NATS-Bench API string, e.g. "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|"
    (node j lists its inputs i, numbered from 0)."""
    nasbench201_key(arch)  # validates
    nodes = ("|" + "|".join(f"{arch[_edge_name(i, j)]}~{i - 1}" for i in range(1, j)) + "|" for j in range(2, 5))
    return "+".join(nodes)


def nasbench201_from_string(text: str) -> dict:
    """The nasbench201 architecture of a NAS-Bench-201 / NATS-Bench API string (the inverse of
    nasbench201_string): node j's part lists `op~i` for each earlier node i, in order."""
    nodes = text.strip().split("+") if isinstance(text, str) else []
    items = [part[1:-1].split("|") if part.startswith("|") and part.endswith("|") else [] for part in nodes]
    expected = [[f"~{i - 1}" for i in range(1, j)] for j in range(2, 5)]
    if [[item[item.find("~"):] for item in node] for node in items] != expected or any(
            item.partition("~")[0] not in NB201_OPS for node in items for item in node):
        raise SpaceError(f"not a NAS-Bench-201 cell string like '|nor_conv_3x3~0|+|none~0|skip_connect~1|+"
                         f"|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|' (ops {list(NB201_OPS)}): {text!r}")
    ops = {(i, j): items[j - 2][i - 1].partition("~")[0] for i, j in NB201_EDGES}
    return {_edge_name(i, j): ops[i, j] for i, j in NB201_EDGES}


@cache
def _nasbench201_network():
    """The NAS-Bench-201 network class (defined on first use: torch is imported lazily)."""
    import torch.nn as nn

    class ReLUConvBN(nn.Sequential):
        """ReLU, convolution without bias (padding keeps the size at stride 1), BatchNorm."""

        def __init__(self, c_in, c_out, kernel, stride, bn):
            super().__init__(
                nn.ReLU(inplace=False),
                nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                bn(c_out),
            )

    class Zero(nn.Module):
        """The 'none' operation: zeros of the input's shape (kept in the autograd graph, as NAS-Bench-201 does)."""

        def forward(self, x):
            return x.mul(0.0)

    def make_op(name, c, bn):
        if name == "none":
            return Zero()
        if name == "skip_connect":
            return nn.Identity()
        if name == "nor_conv_3x3":
            return ReLUConvBN(c, c, 3, 1, bn)
        if name == "nor_conv_1x1":
            return ReLUConvBN(c, c, 1, 1, bn)
        if name == "avg_pool_3x3":
            return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        raise SpaceError(f"unknown NAS-Bench-201 operation {name!r}; known: {list(NB201_OPS)}")

    class Cell(nn.Module):
        """Four nodes; node j > 1 is the sum over i < j of edge (i, j) applied to node i; node 4 is the output."""

        def __init__(self, arch, c, bn):
            super().__init__()
            self.edges = nn.ModuleDict({f"{i}_{j}": make_op(arch[_edge_name(i, j)], c, bn) for i, j in NB201_EDGES})

        def forward(self, x):
            nodes = {1: x}
            for j in (2, 3, 4):
                total = None
                for i in range(1, j):
                    out = self.edges[f"{i}_{j}"](nodes[i])
                    total = out if total is None else total + out
                nodes[j] = total
            return nodes[4]

    class ResidualReduction(nn.Module):
        """ResNet basic block at stride 2: ReLU-Conv3x3/2-BN, ReLU-Conv3x3-BN, plus AvgPool2d(2)-Conv1x1 shortcut."""

        def __init__(self, c_in, c_out, bn):
            super().__init__()
            self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, bn)
            self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, bn)
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
            )

        def forward(self, x):
            return self.downsample(x) + self.conv_b(self.conv_a(x))

    class NASBench201Network(nn.Module):
        """Stem, three stages of `n` cells (c, 2c, 4c channels) with residual reductions between, BN-ReLU, pool, linear."""

        def __init__(self, arch, c, n, num_classes, in_chans, bn):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(in_chans, c, 3, padding=1, bias=False), bn(c))
            layers, width = [], c
            for stage, stage_width in enumerate((c, 2 * c, 4 * c)):
                if stage:
                    layers.append(ResidualReduction(width, stage_width, bn))
                    width = stage_width
                layers.extend(Cell(arch, width, bn) for _ in range(n))
            self.cells = nn.Sequential(*layers)
            self.lastact = nn.Sequential(bn(width), nn.ReLU(inplace=False))
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(width, num_classes)

        def forward(self, x):
            x = self.lastact(self.cells(self.stem(x)))
            return self.classifier(self.global_pool(x).flatten(1))

    return NASBench201Network


@register_builder("nasbench201")
def build_nasbench201(arch: dict, *, num_classes: int = 10, C: int = 16, N: int = 5, in_chans: int = 3,
                      img_size: int = 32, bn_affine: bool = True, bn_track_running_stats: bool = True):
    """The NAS-Bench-201 network of `arch` (one op per cell edge, shared by all cells).

    `img_size` is accepted for the space's probe and otherwise unused (the
    network ends in global pooling). BatchNorm is affine and tracks running
    statistics, as in NAS-Bench-201's trained networks; with these settings the
    parameter counts equal NASLib's stored `params` scores exactly.
    """
    import torch.nn as nn

    nasbench201_key(arch)  # a clear error for a malformed architecture
    bn = partial(nn.BatchNorm2d, affine=bn_affine, track_running_stats=bn_track_running_stats)
    return _nasbench201_network()(arch, C, N, num_classes, in_chans, bn)
