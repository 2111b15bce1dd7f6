"""The statistics table (synth.runtime.STATISTICS): every row collected as declared, structural
numbers against hand counts, per-layer numbers through the cache, network-level unary ops through
sympy and an exported proxy.py."""

import importlib.util
import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn as nn

from synth import runtime
from synth.errors import GrammarError
from synth.execute import evaluate, to_source
from synth.export import proxy_source
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.space import load_space
from synth.probe import Probe
from synth.stats import load_statistics
from synth.symbolic import to_formula

DIGIT_ARCHS = [
    {"embed_dim": 32, "depth": 3, "mlp_ratio": [1.0, 2.0, 4.0], "num_heads": [2, 1, 4]},
    {"embed_dim": 16, "depth": 2, "mlp_ratio": [4.0, 2.0], "num_heads": [4, 1]},
    {"embed_dim": 8, "depth": 1, "mlp_ratio": [2.0], "num_heads": [2]},
]


def tiny_vit(seed=0, embed=16, heads=(2, 4), ratios=(2.0, 1.0)):
    """A timm ViT on 8x8 one-channel images (patch 2: 16 patches plus a class token = 17 tokens)."""
    from timm.models.vision_transformer import Block, VisionTransformer

    torch.manual_seed(seed)
    norm = partial(nn.LayerNorm, eps=1e-6)
    model = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=embed,
                              depth=len(heads), num_heads=heads[0], norm_layer=norm)
    model.blocks = nn.Sequential(*[Block(embed, h, mlp_ratio=r, qkv_bias=True, norm_layer=norm) for h, r in zip(heads, ratios)])
    return model


def batch(n=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def test_every_row_is_collected_with_its_role_at_every_site():
    model = tiny_vit()
    x, y = batch()
    stats = runtime.collect_statistics(model, x, y, list(runtime.STATISTICS))
    # qkv, proj; fc1, fc2; one activation, one attention per block; the patch embedding (a conv) and
    # the head (an fc); no batch norm, no ReLU module; each transformer block is a block
    counts = {"msa": 4, "mlp": 4, "act": 2, "attn": 2, "conv": 1, "fc": 1, "bn": 0, "relu": 0, "block": 2}
    assert set(stats) == set(runtime.STATISTICS)
    for name, row in runtime.STATISTICS.items():
        value = stats[name]
        if row.role == "tensor":
            assert isinstance(value, runtime.Layers) and value.layout.layers == counts[row.kind], name
        else:
            assert isinstance(value, torch.Tensor) and value.shape == (counts[row.kind],), name
        assert torch.isfinite(value.data if row.role == "tensor" else value).all(), name


def test_structural_numbers_by_hand():
    model = tiny_vit(embed=16, heads=(2, 4), ratios=(2.0, 1.0))
    x, y = batch()
    stats = runtime.collect_statistics(model, x, y, [n for n, r in runtime.STATISTICS.items() if r.role == "layer"])
    as_list = {name: v.tolist() for name, v in stats.items()}
    # MSA: qkv 16 -> 48, proj 16 -> 16 in both blocks; MLP: fc1 16 -> 32, fc2 32 -> 16, then 16 -> 16 twice
    assert as_list["msa.numel"] == [768, 256, 768, 256]
    assert as_list["msa.width_in"] == [16] * 4
    assert as_list["msa.width_out"] == [48, 16, 48, 16]
    assert as_list["msa.heads"] == [2, 2, 4, 4]
    assert as_list["msa.depth"] == as_list["mlp.depth"] == [1, 1, 2, 2]
    assert as_list["mlp.numel"] == [512, 512, 256, 256]
    assert as_list["mlp.width_in"] == [16, 32, 16, 16]
    assert as_list["mlp.width_out"] == [32, 16, 16, 16]
    assert as_list["msa.tokens"] == as_list["mlp.tokens"] == [17] * 4


def test_statistics_without_a_pass_leave_the_model_untouched():
    model = tiny_vit()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    x, y = batch()
    runtime.collect_statistics(model, x, y, ["msa.numel", "mlp.depth", "msa.heads", "mlp.weight"])
    assert calls == []  # weights and structure need no forward pass


def test_a_new_statistic_is_one_table_row(monkeypatch, tmp_path):
    row = runtime.Statistic("mlp", lambda site, captured, options: site.module.bias.detach().reshape(1, -1),
                            "after", "none", "tensor", "1 x out")
    monkeypatch.setitem(runtime.STATISTICS, "mlp.bias", row)
    model = tiny_vit()
    x, y = batch()
    biases = runtime.collect_statistics(model, x, y, ["mlp.bias"])["mlp.bias"].matrices()
    fc = [m for name, m in model.named_modules() if name.endswith(("fc1", "fc2"))]
    assert len(biases) == len(fc) == 4
    for got, module in zip(biases, fc):
        torch.testing.assert_close(got[0], module.bias.detach())
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: b\nroot: net\ntypes:\n  b: {kind: tensor, layer: l}\n  l: {kind: layer, network: net}\n"
        "  net: {kind: scalar}\nterminals:\n  bias: {type: b, stat: mlp.bias}\n"
        "operations:\n  - {op: l1, for: [b]}\n  - {op: layer_sum, for: [l]}\n"
    )
    assert load_grammar(str(path)).statistics == ("mlp.bias",)


def _grammar_with(tmp_path, terminal):
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: s\nroot: net\ntypes:\n  w: {kind: tensor, layer: l}\n  l: {kind: layer, network: net}\n"
        f"  net: {{kind: scalar}}\nterminals:\n  x: {{type: w, stat: msa.input}}\n  {terminal}\n"
        "operations:\n  - {op: mean, for: [w]}\n  - {op: layer_sum, for: [l]}\n"
    )
    return path


def test_grammar_checks_a_statistic_against_its_terminal_type(tmp_path):
    assert load_grammar(str(_grammar_with(tmp_path, "n: {type: l, stat: msa.numel}"))).statistics == ("msa.input", "msa.numel")
    with pytest.raises(GrammarError) as err:
        load_grammar(str(_grammar_with(tmp_path, "n: {type: w, stat: msa.numel}")))
    message = str(err.value)
    assert ":9: terminals.n.type:" in message and "one number per layer" in message and "layer type" in message
    with pytest.raises(GrammarError) as err:
        load_grammar(str(_grammar_with(tmp_path, "n: {type: l, stat: msa.weight}")))
    assert "one tensor per layer" in str(err.value)
    with pytest.raises(GrammarError) as err:
        load_grammar(str(_grammar_with(tmp_path, "n: {type: l, stat: msa.numels}")))
    assert "unknown statistic 'msa.numels'; did you mean `msa.numel`" in str(err.value)


def program_value(grammar, name, stats):
    """The value of the grammar's named program `name` on one network's statistics."""
    formula = to_formula(ProgramSpace(grammar).parse(grammar.programs[name]), grammar)
    return evaluate(formula.expr, grammar.terminal_values(stats))


@pytest.mark.parametrize("arch", DIGIT_ARCHS)
def test_params_program_counts_the_block_weights(arch):
    grammar = load_grammar("vit")
    space = load_space("vit-digits")
    model = space.build(arch, seed=0)
    x, y = Probe(batch_size=4).batch(space)
    stats = runtime.collect_statistics(model, x, y, grammar.statistics)
    d = arch["embed_dim"]
    by_hand = sum(3 * d * d + d * d + 2 * d * int(d * r) for r in arch["mlp_ratio"])  # qkv, proj, fc1, fc2
    counted = sum(p.numel() for n, p in model.named_parameters()
                  if n.startswith("blocks.") and n.endswith(("qkv.weight", "proj.weight", "fc1.weight", "fc2.weight")))
    assert program_value(grammar, "params", stats) == by_hand == counted


def test_per_layer_numbers_come_back_from_the_cache(tmp_path):
    space = load_space("vit-digits")
    names = ("act.code", "mlp.numel", "msa.heads", "msa.weight")
    probe = Probe(batch_size=4)
    fresh = load_statistics(space, DIGIT_ARCHS, probe, names, cache=tmp_path)
    cached = load_statistics(space, DIGIT_ARCHS, probe, names, cache=tmp_path)
    for arch, a, b in zip(DIGIT_ARCHS, fresh, cached):
        assert b["msa.heads"].tolist() == [h for h in arch["num_heads"] for _ in range(2)]
        assert torch.equal(a["mlp.numel"], b["mlp.numel"]) and torch.equal(a["msa.weight"].data, b["msa.weight"].data)
        assert torch.equal(a["act.code"].data, b["act.code"].data)
    uncached = load_statistics(space, DIGIT_ARCHS[:1], probe, names, cache=False)[0]
    assert torch.equal(uncached["mlp.numel"], fresh[0]["mlp.numel"])


def test_network_level_unary_ops_simplify_evaluate_and_export(tmp_path):
    grammar = load_grammar("vit")
    programs = ProgramSpace(grammar)
    params = grammar.programs["params"]
    square_of_log = to_formula(programs.parse(f"mul__net__net(log__net({params}), log__net({params}))"), grammar)
    squared = to_formula(programs.parse(f"square__net(log__net({params}))"), grammar)
    assert square_of_log.canonical == squared.canonical  # sympy merges log(p) * log(p) into log(p)**2
    formula = to_formula(programs.parse(f"sub__net__net(sqrt__net({params}), inverse__net(log__net({params})))"), grammar)
    assert "op_sqrt" in to_source(formula.expr) and "op_inverse" in to_source(formula.expr)

    space = load_space("vit-digits")
    probe = Probe(batch_size=4, max_rows=None)
    model = space.build(DIGIT_ARCHS[1], seed=0)
    inputs, targets = probe.batch(space)
    stats = runtime.collect_statistics(model, inputs, targets, grammar.statistics)
    count = program_value(grammar, "params", stats)
    engine = evaluate(formula.expr, grammar.terminal_values(stats))
    assert engine == pytest.approx(math.sqrt(count) - 1 / math.log(count), rel=1e-6)
    path = tmp_path / "proxy.py"
    path.write_text(proxy_source(formula, grammar, probe))
    spec = importlib.util.spec_from_file_location("exported_proxy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.score(model, inputs, targets) == pytest.approx(engine, rel=1e-6)
    assert np.isfinite(engine)


def test_every_statistic_value_moves_to_another_device():
    """Per-layer tensors (cnn.yaml's counts and depths) move beside Layers: run_evolve's move to a GPU,
    tried on torch's 'meta' device, which any machine has; the old move read `.layout` of every value."""
    import torch

    from synth.run import _move
    from synth.runtime import Layers

    layers = Layers.from_list([torch.ones(2, 3), torch.ones(4, 5)])
    moved = _move([{"conv.weight": layers, "conv.depth": torch.arange(3.0)}], "meta")[0]
    assert moved["conv.weight"].data.device.type == "meta" and moved["conv.depth"].device.type == "meta"
    assert moved["conv.weight"].layout.shapes == ((2, 3), (4, 5))
