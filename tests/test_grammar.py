"""Grammar files: the shipped vit grammar, malformed files reported by file and line, the CLI's exit code.

Expected line numbers are found in the YAML text each test writes (the line
that holds the offending key), never taken from the loader.
"""

import math
import re
from pathlib import Path

import pytest

from synth.errors import GrammarError
from synth.grammar import load_grammar
from synth.ops import OPS

ROOT = Path(__file__).resolve().parents[1]

# A small valid grammar that the malformed cases below each break in one place.
BASE = """\
name: tiny
description: a tiny grammar for tests
root: net
limits:
  max_depth: 4
  max_size: 10
  init_depth: [2, 3]
types:
  w:   {kind: tensor, layer: lay}
  x:   {kind: tensor, layer: lay}
  lay: {kind: layer, network: net}
  net: {kind: scalar}
terminals:
  weight: {type: w, stat: msa.weight}
  act:    {type: x, stat: msa.input}
operations:
  - {op: log, for: [w, x]}
  - {op: add, for: [w, lay]}
  - {op: fro, for: [w, x]}
  - {op: layer_mean, for: [lay]}
"""


def write(tmp_path, text, name="grammar.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text, needle):
    """1-based number of the one line of `text` that contains `needle`."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


def edit(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


def grammar_error(path):
    with pytest.raises(GrammarError) as info:
        load_grammar(str(path))
    return str(info.value)


def assert_at(message, path, line, key=None):
    assert message.startswith(f"{path}:{line}: "), message
    if key is not None:
        assert f": {key}: " in message, message


# ---------------------------------------------------------------- the shipped grammar


def test_vit_grammar_loads_with_auto_prox_ops_and_all_statistics():
    g = load_grammar("vit")
    assert Path(g.path).resolve() == (ROOT / "grammar" / "vit.yaml").resolve()
    ops = {p.op for p in g.primitives.values()}
    auto_prox = {"log", "abs", "square", "exp", "zscore", "minmax", "relu", "inverse", "fro", "l1", "softmax",
                 "sigmoid", "log_softmax", "sqrt", "neg", "mean", "std", "add", "sub", "mul"}
    assert auto_prox <= ops, auto_prox - ops
    assert any(OPS[op].role == "matmul" for op in ops)
    stats = {f"{module}.{quantity}" for module in ("msa", "mlp")
             for quantity in ("weight", "weight_grad", "input", "output_grad")}
    assert stats <= set(g.statistics)  # Auto-Prox's 8; the others are checked in tests/test_stats_*.py
    assert g.root == "net" and g.types["net"].kind == "scalar"
    assert math.isfinite(g.min_height[g.root]) and g.min_height[g.root] <= g.limits.max_depth
    # a per-layer structural number -> aggregation is the shortest way to the network score
    assert g.min_height[g.root] == 1


def test_vit_grammar_signatures_follow_the_typing_rules():
    g = load_grammar("vit.yaml")
    for p in g.primitives.values():
        role, args, ret = OPS[p.op].role, [g.types[a] for a in p.args], g.types[p.ret]
        if role == "unary":
            assert p.args == (p.ret,)
        elif role == "binary":
            assert p.args == (p.ret, p.ret)
        elif role == "reduce":
            assert args[0].kind == "tensor" and args[0].layer == p.ret
        elif role == "aggregate":
            assert args[0].kind == "layer" and args[0].network == p.ret
        elif role == "kernel":
            assert args[0].kind == "tensor" and ret.kind == "kernel"
        elif role == "kernel_reduce":
            assert args[0].kind == "kernel" and args[0].network == p.ret
        else:
            assert len(args) == 2 and {t.kind for t in (*args, ret)} == {"tensor"}
            assert len({t.layer for t in (*args, ret)}) == 1
    # the three products that vit.yaml spells out, for both layer kinds (y = x W^T + b)
    products = {(p.op, p.args, p.ret) for p in g.primitives.values() if OPS[p.op].role == "matmul"}
    for kind in ("msa", "mlp"):
        assert ("matmul_tn", (f"{kind}_gy", f"{kind}_x"), f"{kind}_w") in products
        assert ("matmul_nt", (f"{kind}_x", f"{kind}_w"), f"{kind}_gy") in products
        assert ("matmul", (f"{kind}_gy", f"{kind}_w"), f"{kind}_x") in products


# ---------------------------------------------------------------- valid custom grammars


def test_minimal_custom_grammar_loads(tmp_path):
    text = """\
name: minimal
root: score
types:
  t: {kind: tensor, layer: per_layer}
  per_layer: {kind: layer, network: score}
  score: {kind: scalar}
terminals:
  w: {type: t, stat: mlp.weight_grad}
operations:
  - {op: abs, for: [t]}
  - {op: l1, for: [t]}
  - {op: mul, for: [per_layer]}
  - {op: layer_sum, for: [per_layer]}
"""
    g = load_grammar(str(write(tmp_path, text)))
    assert g.name == "minimal" and g.root == "score"
    assert g.min_height == {"t": 0, "per_layer": 1, "score": 2}
    assert g.statistics == ("mlp.weight_grad",)
    assert {(p.op, p.args, p.ret) for p in g.primitives.values()} == {
        ("abs", ("t",), "t"),
        ("l1", ("t",), "per_layer"),
        ("mul", ("per_layer", "per_layer"), "per_layer"),
        ("layer_sum", ("per_layer",), "score"),
    }
    # limits not given: the documented defaults
    assert (g.limits.max_depth, g.limits.max_size, g.limits.init_depth) == (8, 24, (2, 6))


def test_min_height_through_a_matrix_product(tmp_path):
    # w has no terminal: it is only made by matmul_tn, so w is 1 deep, its layer type 2, the root 3
    text = """\
name: chain
root: net
types:
  x: {kind: tensor, layer: lay}
  gy: {kind: tensor, layer: lay}
  w: {kind: tensor, layer: lay}
  lay: {kind: layer, network: net}
  net: {kind: scalar}
terminals:
  inp: {type: x, stat: mlp.input}
  grad: {type: gy, stat: mlp.output_grad}
operations:
  - {op: matmul_tn, signatures: ["gy, x -> w"]}
  - {op: nuclear, for: [w]}
  - {op: layer_mean, for: [lay]}
"""
    g = load_grammar(str(write(tmp_path, text)))
    assert g.min_height == {"x": 0, "gy": 0, "w": 1, "lay": 2, "net": 3}

    too_shallow = edit(text, "root: net\n", "root: net\nlimits: {max_depth: 2, init_depth: [1, 2]}\n")
    path = write(tmp_path, too_shallow, "shallow.yaml")
    message = grammar_error(path)
    assert_at(message, path, line_of(too_shallow, "limits:"), "limits.max_depth")


def test_base_grammar_is_valid(tmp_path):
    g = load_grammar(str(write(tmp_path, BASE)))
    assert g.min_height == {"w": 0, "x": 0, "lay": 1, "net": 2}
    assert len(g.primitives) == 7  # log x2, add x2, fro x2, layer_mean
    assert g.limits.init_depth == (2, 3)


# ---------------------------------------------------------------- malformed grammars


def test_yaml_syntax_error(tmp_path):
    text = edit(BASE, "root: net\n", "root: net: oops\n")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "root: net: oops"))
    assert "invalid YAML" in message


def test_unknown_op_suggests_near_miss(tmp_path):
    text = edit(BASE, "{op: log,", "{op: lgo,")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "op: lgo"), "operations[0].op")
    assert "unknown op 'lgo'" in message and "did you mean `log`" in message


def test_unknown_type_in_terminal(tmp_path):
    text = edit(BASE, "act:    {type: x,", "act:    {type: xx,")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "type: xx"), "terminals.act.type")
    assert "unknown type 'xx'" in message


def test_unknown_type_in_signature_names_its_line(tmp_path):
    text = BASE + """\
  - op: matmul_nt
    signatures:
      - "x, w -> x"
      - "x, w -> xw"
"""
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, '"x, w -> xw"'), "operations[4].signatures")
    assert "unknown type 'xw'" in message


@pytest.mark.parametrize(
    "entry, words",
    [
        # element-wise binary with two different tensor types
        ('{op: add, signatures: ["w, x -> w"]}', "element-wise op 'add' needs both arguments and the result of one type"),
        # element-wise unary changing the type
        ('{op: exp, signatures: ["w -> x"]}', "must return its argument's type"),
        # reduction to a layer type that is not the tensor type's
        ('{op: mean, signatures: ["w -> lay2"]}', "reduction 'mean' maps a tensor type to its layer type"),
        # reduction of a layer type
        ('{op: sum, signatures: ["lay -> lay"]}', "reduction 'sum' maps a tensor type to its layer type"),
        # aggregation to a type other than the network type
        ('{op: layer_sum, signatures: ["lay -> lay"]}', "aggregation 'layer_sum' maps a layer type to its network type"),
        # wrong arity
        ('{op: sub, signatures: ["w -> w"]}', "op 'sub' takes 2 argument(s)"),
        ('{op: fro, signatures: ["w, w -> lay"]}', "op 'fro' takes 1 argument(s)"),
        # matrix product across layer kinds
        ('{op: matmul, signatures: ["w, v -> w"]}', "a matrix product combines tensor types of the same layers"),
    ],
)
def test_ill_typed_signature(tmp_path, entry, words):
    text = edit(BASE, "  lay: {kind: layer, network: net}\n",
                "  lay: {kind: layer, network: net}\n  lay2: {kind: layer, network: net}\n  v: {kind: tensor, layer: lay2}\n")
    text += f"  - {entry}\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, entry), "operations[4]")
    assert "ill-typed signature" in message and words in message


def test_derived_signature_of_wrong_kind(tmp_path):
    text = BASE + "  - {op: std, for: [lay]}\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "op: std"), "operations[4]")
    assert "reduction 'std' applies to tensor types; 'lay' is a layer type" in message


def test_matrix_product_needs_explicit_signatures(tmp_path):
    text = BASE + "  - {op: matmul_tn, for: [w]}\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "op: matmul_tn"), "operations[4]")
    assert "signatures" in message


def test_unreachable_root(tmp_path):
    # without the aggregation nothing produces the network type
    text = edit(BASE, "  - {op: layer_mean, for: [lay]}\n", "")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "root:"), "root")
    assert "root type 'net' is unreachable" in message


def test_op_taking_a_type_nothing_produces(tmp_path):
    text = edit(BASE, "  net: {kind: scalar}\n", "  net: {kind: scalar}\n  dead: {kind: tensor, layer: lay}\n")
    text += "  - {op: exp, for: [dead]}\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "op: exp"), "operations[4]")
    assert "'exp'" in message and "'dead'" in message


def test_unknown_top_level_key_suggests(tmp_path):
    text = edit(BASE, "limits:\n", "limit:\n")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "limit:"), "limit")
    assert "unknown key" in message and "did you mean `limits`" in message


@pytest.mark.parametrize("stat", ["msa.weights", "attn.weight", "mlp.gradient"])
def test_unknown_statistic(tmp_path, stat):
    text = edit(BASE, "stat: msa.weight}", f"stat: {stat}}}")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, f"stat: {stat}"), "terminals.weight.stat")
    assert f"unknown statistic {stat!r}" in message


def test_statistic_without_module(tmp_path):
    text = edit(BASE, "stat: msa.weight}", "stat: weight}")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "stat: weight}"), "terminals.weight.stat")


def test_missing_root(tmp_path):
    text = edit(BASE, "root: net\n", "")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert message.startswith(f"{path}: root: ")
    assert "missing required key" in message


def test_unknown_type_key_and_kind(tmp_path):
    text = edit(BASE, "x:   {kind: tensor,", "x:   {knid: tensor,")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "knid"), "types.x.knid")
    assert "did you mean `kind`" in message

    text = edit(BASE, "x:   {kind: tensor,", "x:   {kind: matrix,")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "kind: matrix"), "types.x.kind")


def test_tensor_type_needs_a_layer_type(tmp_path):
    text = edit(BASE, "x:   {kind: tensor, layer: lay}", "x:   {kind: tensor, layer: net}")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "layer: net"), "types.x.layer")
    assert "'net' is a scalar type, expected a layer type" in message


def test_op_declared_twice(tmp_path):
    text = BASE + "  - {op: log, for: [x]}\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "{op: log, for: [x]}"), "operations[4]")
    assert "declared twice" in message


def test_unknown_grammar_name():
    with pytest.raises(GrammarError, match="no-such-grammar"):
        load_grammar("no-such-grammar")


def test_dead_type_reported_at_the_declaring_entry(tmp_path):
    text = edit(BASE, "  net: {kind: scalar}\n", "  net: {kind: scalar}\n  dead: {kind: tensor, layer: lay}\n")
    text += "  - {op: log, for: [dead]}\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "[dead]"), "operations[4]")


def test_groups_must_be_a_mapping(tmp_path):
    text = BASE + "groups: [w, x]\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "groups:"), "groups")


# ---------------------------------------------------------------- the CLI


def test_cli_malformed_grammar_exits_2_naming_the_file(tmp_path, capsys, monkeypatch):
    from synth.cli import main

    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps stderr at the terminal width
    text = edit(BASE, "{op: log,", "{op: lgo,")
    path = write(tmp_path, text, "bad.yaml")
    out_dir = tmp_path / "run"
    code = main(["evolve", "--grammar", str(path), "--iterations", "1", "--out", str(out_dir)])
    err = capsys.readouterr().err.replace("\n", "")
    assert code == 2
    assert f"{path}:{line_of(text, 'op: lgo')}:" in err
    assert "unknown op 'lgo'" in err
    assert not out_dir.exists()


# ---------------------------------------------------------------- the documentation


def test_readme_operator_table_lists_exactly_the_ops():
    readme = (ROOT / "grammar" / "README.md").read_text()
    section = readme[readme.index("## Operators"):].split("\n## ")[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|", section, re.M)
    assert sorted(name for name, _ in rows) == sorted(name for name, spec in OPS.items() if not spec.plugin)  # synth's own
    assert all(OPS[name].role == role for name, role in rows)


def test_duplicate_key_is_reported_at_its_second_line(tmp_path):
    text = edit(BASE, "root: net\n", "root: net\nroot: lay\n")
    path = write(tmp_path, text)
    assert_at(grammar_error(path), path, line_of(text, "root: lay"), "root")


def test_terminal_must_have_a_tensor_type(tmp_path):
    text = edit(BASE, "act:    {type: x, stat: msa.input}", "act:    {type: net, stat: msa.input}")
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "act:"), "terminals.act.type")
    assert "tensor type" in message


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("  init_depth: [2, 3]\n", "  init_depth: [0, 1]\n", "limits.init_depth"),
        ("  max_size: 10\n", "  max_size: 2\n", "limits.max_size"),
        ("  max_depth: 4\n", "  max_depth: true\n", "limits.max_depth"),
    ],
)
def test_limits_too_small_for_any_program(tmp_path, old, new, key):
    text = edit(BASE, old, new)
    path = write(tmp_path, text)
    assert_at(grammar_error(path), path, line_of(text, new.strip()), key)


# ---------------------------------------------------------------- named programs


def test_vit_grammar_names_the_dss_program():
    from synth.programs import ProgramSpace

    g = load_grammar("vit")
    assert set(g.programs) >= {"dss"}
    tree = ProgramSpace(g).parse(g.programs["dss"])
    assert str(tree) == g.programs["dss"]  # stored in the engine's own spelling
    names = [node.name for node in tree]
    assert names.count("nuclear__msa_w") == 1 and names.count("l1__mlp_w") == 1
    assert {"msa_weight_grad", "msa_weight", "mlp_weight_grad", "mlp_weight"} <= set(names)


def test_named_programs_load_with_whitespace_normalised(tmp_path):
    text = BASE + """\
programs:
  plain: layer_mean__lay(fro__w(weight))
  folded: >-
    layer_mean__lay(add__lay__lay(fro__w(log__w(weight)),
        fro__x(act)))
"""
    g = load_grammar(str(write(tmp_path, text)))
    assert g.programs == {
        "plain": "layer_mean__lay(fro__w(weight))",
        "folded": "layer_mean__lay(add__lay__lay(fro__w(log__w(weight)), fro__x(act)))",
    }
    assert load_grammar(str(write(tmp_path, BASE, "none.yaml"))).programs == {}


@pytest.mark.parametrize(
    "program, words",
    [
        ("layer_mean__lay(fro__w(wieght))", "'wieght' is not a name of grammar 'tiny'"),
        ("layer_mean__lay(fro__x(weight))", "'weight' returns w, expected x"),
        ("fro__w(weight)", "'fro__w' returns lay, expected net"),
        ("layer_mean__lay(fro__w(weight)) weight", "too many nodes"),
        ("layer_mean__lay(add__lay__lay(fro__w(weight)))", "program ends early"),
        ("layer_mean__lay(fro__w(sub__w__w(weight, weight)))", "degenerate program"),
    ],
)
def test_named_program_that_does_not_parse_names_file_line_and_program(tmp_path, program, words):
    text = BASE + "  - {op: sub, for: [w]}\nprograms:\n  good: layer_mean__lay(fro__w(weight))\n"
    text += f"  bad:\n    {program}\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "  bad:"), "programs.bad")
    assert words in message, message


def test_programs_must_be_a_mapping(tmp_path):
    text = BASE + "programs: [layer_mean__lay(fro__w(weight))]\n"
    path = write(tmp_path, text)
    message = grammar_error(path)
    assert_at(message, path, line_of(text, "programs:"), "programs")
    assert "mapping" in message


def test_named_program_needs_a_text(tmp_path):
    text = BASE + "programs:\n  empty:\n"
    path = write(tmp_path, text)
    assert_at(grammar_error(path), path, line_of(text, "empty:"), "programs.empty")
