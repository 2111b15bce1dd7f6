"""Model builders for search spaces, registered by name; each builds timm blocks from an architecture dict."""

from __future__ import annotations

from functools import partial

from synth.errors import SpaceError
from synth.space import register_builder

__all__ = ["build_vit", "build_pit", "QKV_MODES"]


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
