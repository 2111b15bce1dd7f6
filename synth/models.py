"""Model builders for search spaces, registered by name; each builds timm blocks from an architecture dict."""

from __future__ import annotations

from functools import partial

from synth.space import register_builder

__all__ = ["build_vit"]


@register_builder("vit")
def build_vit(arch: dict, *, norm_eps: float = 1e-6, qkv_bias: bool = True, **fixed):
    """A timm VisionTransformer whose blocks take per-layer head counts and MLP ratios.

    timm's constructor takes one head count and MLP ratio for all blocks, so the
    network is built with the first block's values and its blocks are then
    replaced by timm `Block`s with each layer's own values, and re-initialised
    with timm's ViT initialisation.
    """
    import torch.nn as nn
    from timm.models.vision_transformer import Block, VisionTransformer, init_weights_vit_timm

    embed_dim, depth = arch["embed_dim"], arch["depth"]
    norm = partial(nn.LayerNorm, eps=norm_eps)
    model = VisionTransformer(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=arch["num_heads"][0],
        mlp_ratio=arch["mlp_ratio"][0],
        qkv_bias=qkv_bias,
        norm_layer=norm,
        **fixed,
    )
    model.blocks = nn.Sequential(
        *(
            Block(embed_dim, heads, mlp_ratio=ratio, qkv_bias=qkv_bias, norm_layer=norm)
            for heads, ratio in zip(arch["num_heads"], arch["mlp_ratio"])
        )
    )
    model.blocks.apply(init_weights_vit_timm)
    return model
