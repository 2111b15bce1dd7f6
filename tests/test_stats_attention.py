"""Attention maps and their gradients against timm's own (non-fused) attention, read by hooks."""

import copy

import torch
import torch.nn.functional as F

from synth import runtime
from tests.test_stats_table import batch, tiny_vit


def _timm_maps_and_grads(model, x, y):
    """Every block's softmax(q k^T / sqrt(d)) and dL/d(it), from timm's explicit attention path."""
    model = copy.deepcopy(model)
    maps = []

    def keep(module, args, out):
        out.retain_grad()
        maps.append(out)

    for block in model.blocks:
        block.attn.fused_attn = False  # timm then forms the map itself: attn_drop(softmax(...)) @ v
        block.attn.attn_drop.register_forward_hook(keep)
    model.train()
    F.cross_entropy(model(x), y).backward()
    return [(a.detach(), a.grad) for a in maps]


def test_attention_maps_and_gradients_match_timm():
    model = tiny_vit(seed=3, heads=(2, 4))
    x, y = batch(5, seed=3)
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, ["attn.map", "attn.map_grad", "msa.heads"])
    assert stats["attn.map"].layout.shapes == ((5 * 2 * 17, 17), (5 * 4 * 17, 17))
    reference = _timm_maps_and_grads(model, x, y)
    for (maps, grads), got, got_grad in zip(reference, stats["attn.map"].matrices(), stats["attn.map_grad"].matrices()):
        torch.testing.assert_close(got, maps.reshape(-1, 17), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(got_grad, grads.reshape(-1, 17), rtol=1e-4, atol=1e-8)
        torch.testing.assert_close(got.sum(dim=1), torch.ones(got.shape[0]))  # rows are distributions over keys
    # a row subset keeps the same (sample, head, query) rows of a map and its gradient
    sub = runtime.collect_statistics(copy.deepcopy(model), x, y, ["attn.map", "attn.map_grad"], max_rows=30, row_seed=2)
    keep = runtime._row_subset(5 * 4 * 17, 30, 2)
    torch.testing.assert_close(sub["attn.map"].matrices()[1], reference[1][0].reshape(-1, 17)[keep], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(sub["attn.map_grad"].matrices()[1], reference[1][1].reshape(-1, 17)[keep], rtol=1e-4, atol=1e-8)


def test_attention_statistics_leave_the_others_unchanged():
    """The maps are recomputed from the attention module's input without calling its qkv layer,
    so the hooks of the linear-layer statistics still see one call per layer."""
    model = tiny_vit(seed=4)
    x, y = batch(4, seed=4)
    others = [name for name in runtime.STATISTICS if not name.startswith("attn.")]
    alone = runtime.collect_statistics(copy.deepcopy(model), x, y, others, max_rows=40)
    together = runtime.collect_statistics(copy.deepcopy(model), x, y, list(runtime.STATISTICS), max_rows=40)
    for name in others:
        a, b = alone[name], together[name]
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else torch.equal(a.data, b.data), name
