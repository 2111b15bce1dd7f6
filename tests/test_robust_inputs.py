"""Bad input ends in exit 2 with a message naming the file (and line, key or task), before any work:
bytes that are not UTF-8, nesting deep enough to exhaust the stack, malformed space and benchmark
files, benchmarks that cannot rank anything, nonsense counts, and a grammar whose initial programs
cannot fit its size limit (which used to leave generation retrying)."""

import copy
import json

import pytest
import yaml

from synth.bench import FORMAT, load_benchmark, require_rankable
from synth.cli import main
from synth.errors import BenchError, GrammarError, InputError, SpaceError
from synth.grammar import load_grammar
from synth.resources import resource_dir
from synth.space import load_space

ARCH = {"embed_dim": 8, "depth": 1, "mlp_ratio": [1.0], "num_heads": [1]}


def _bench(path, rows, tasks=("a",)):
    path.write_text(json.dumps({"format": FORMAT, "space": "vit-digits", "tasks": list(tasks), "rows": rows}))
    return path


def _rows(values, task="a"):
    return [{"arch": ARCH, "acc": {task: v}} for v in values]


# ---------------------------------------------------------------- encodings and nesting


def test_a_grammar_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: vit\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(GrammarError, match=rf"{path}:2: not UTF-8 text \(byte 0xe9\)"):
        load_grammar(str(path))


@pytest.mark.parametrize("loader,error", [(load_grammar, GrammarError), (load_space, SpaceError)])
def test_yaml_nested_too_deeply_is_an_input_error(tmp_path, loader, error):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(error, match=f"{path}: invalid YAML: nested too deeply"):
        loader(str(path))


def test_benchmark_json_not_utf8_or_nested_too_deeply(tmp_path):
    latin = tmp_path / "latin1.json"
    latin.write_bytes(b'{"format": "\xe9"}')
    with pytest.raises(BenchError, match=f"{latin}:1: not UTF-8"):
        load_benchmark(str(latin))
    deep = tmp_path / "deep.json"
    deep.write_text('{"rows": ' + "[" * 200000 + "]" * 200000 + "}")
    with pytest.raises(BenchError, match=f"{deep}: .*nested too deeply"):
        load_benchmark(str(deep))


def test_cli_turns_a_non_utf8_grammar_into_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    assert main(["evolve", "--grammar", str(path), "--out", str(tmp_path / "run")]) == 2
    assert f"{path}:1: not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- space files

SPACE_DEFECTS = {
    "unknown fixed argument": (lambda d: d["fixed"].update(bogus=3), "bogus"),
    "no depth": (lambda d: d["choices"].pop("depth"), "depth"),
    "choices as a list": (lambda d: d.__setitem__("choices", [8, 16]), "'choices' must be a mapping"),
    "string values": (lambda d: d["choices"].__setitem__("embed_dim", ["a", "b"]), "embed_dim"),
    "mixed values": (lambda d: d["choices"].__setitem__("embed_dim", [8, "b"]), "choices.embed_dim"),
    "negative image size": (lambda d: d["fixed"].__setitem__("img_size", -8), "fixed.img_size"),
    "depth zero": (lambda d: d["choices"].__setitem__("depth", [0]), "choices.depth"),
    "depth as a list": (lambda d: d["choices"].__setitem__("depth", [[0]]), "choices.depth"),
    "values not a list": (lambda d: d["per_layer"].__setitem__("num_heads", 4), "per_layer.num_heads"),
    "name not a string": (lambda d: d.__setitem__("name", ["x"]), "'name' must be a non-empty string"),
    "lists of mixed values": (lambda d: d["choices"].__setitem__("embed_dim", [[1, "a"], [1, 2]]), "comparable"),
}


@pytest.fixture(scope="module")
def digits_space():
    return yaml.safe_load((resource_dir("spaces") / "vit-digits.yaml").read_text())


@pytest.mark.parametrize("defect", list(SPACE_DEFECTS))
def test_malformed_space_files_are_refused_at_load(defect, tmp_path, digits_space):
    edit, named = SPACE_DEFECTS[defect]
    raw = copy.deepcopy(digits_space)
    edit(raw)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpaceError) as caught:
        load_space(str(path))
    assert str(caught.value).startswith(f"{path}: ") and named in str(caught.value)


def test_a_malformed_space_leaves_no_files_in_out(tmp_path, digits_space, capsys):
    raw = copy.deepcopy(digits_space)
    raw["fixed"]["bogus"] = 3
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "search"
    assert main(["search", "--proxy", "synflow", "--space", str(path), "--out", str(out)]) == 2
    assert str(path) in capsys.readouterr().err
    assert not out.exists()


def test_shipped_spaces_pass_the_load_checks():
    for path in sorted(resource_dir("spaces").glob("*.yaml")):
        assert load_space(str(path)).name == path.stem


# ---------------------------------------------------------------- benchmark files


@pytest.mark.parametrize("rows,named", [
    (5, "rows: must be a non-empty list"),
    ([], "rows: must be a non-empty list"),
    ([5], r"rows\[0\] lacks"),
    ([{"arch": ARCH, "acc": [70.0]}], r"rows\[0\]\.acc: must be a mapping"),
    ([{"arch": [8, 1], "acc": {"a": 70.0}}], r"rows\[0\]\.arch: must be a mapping"),
])
def test_malformed_benchmark_rows_are_refused(tmp_path, rows, named):
    path = _bench(tmp_path / "b.json", rows)
    with pytest.raises(BenchError, match=f"{path}: {named}"):
        load_benchmark(str(path))


@pytest.mark.parametrize("values,named", [
    ([70.0, 70.0, 70.0, 70.0], "every architecture has accuracy 70; a constant cannot rank anything"),
    ([70.0, 71.0], "2 of 2 architectures have an accuracy; ranking needs at least 3"),
    ([70.0, None, None, 71.0], "2 of 4 architectures have an accuracy"),
    ([70.0, 71.0, -50.0], "accuracy -50 is not a percentage"),
    ([70.0, 71.0, 1e9], "accuracy 1e[+]09 is not a percentage"),
])
def test_benchmarks_that_cannot_rank_are_refused_naming_file_and_task(tmp_path, values, named):
    path = _bench(tmp_path / "b.json", _rows(values))
    with pytest.raises(BenchError, match=f"{path}: task 'a': {named}"):
        load_benchmark(str(path))


def test_a_split_with_too_few_usable_rows_is_refused(tmp_path):
    bench = load_benchmark(str(_bench(tmp_path / "b.json", _rows([60.0, 61.0, None, None, 62.0, 63.0]))))
    require_rankable(bench, [0, 1, 4], "search split")
    with pytest.raises(BenchError, match="task 'a': 2 of 4 architectures in the test split have an accuracy"):
        require_rankable(bench, [1, 2, 3, 5], "test split")


def test_evolve_refuses_a_constant_benchmark_before_any_work(tmp_path, capsys):
    path = _bench(tmp_path / "b.json", _rows([50.0] * 10))
    assert main(["evolve", "--bench", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "a constant cannot rank anything" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_zoo_refuses_a_split_part_that_cannot_rank(tmp_path, capsys):
    path = _bench(tmp_path / "b.json", _rows([50.0, 51.0, 52.0, 53.0]))
    assert main(["zoo", "--bench", str(path), "--proxies", "params", "--split", "test"]) == 2
    assert "ranking needs at least 3" in capsys.readouterr().err


# ---------------------------------------------------------------- nonsense counts


@pytest.mark.parametrize("argv", [
    ["zoo", "--sample", "-3"], ["zoo", "--sample", "0"], ["zoo", "--probe-batch", "0"],
    ["search", "--probe-batch", "-2"], ["evolve", "--probe-batch", "0"], ["evolve", "--probe-rows", "-1"],
    ["evolve", "--probe-rows", "many"],
])
def test_counts_below_one_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


# ---------------------------------------------------------------- a grammar that cannot start

TINY_GRAMMAR = """\
name: tiny
root: net
limits:
  max_depth: 8
  max_size: {max_size}
  init_depth: [6, 8]
types:
  w: {{kind: tensor, layer: l}}
  l: {{kind: layer, network: net}}
  net: {{kind: scalar}}
terminals:
  x: {{type: w, stat: msa.weight}}
operations:
  - {{op: abs, for: [w]}}
  - {{op: add, for: [w]}}
  - {{op: mean, for: [w]}}
  - {{op: layer_mean, for: [l]}}
"""


def test_init_depth_whose_smallest_program_exceeds_max_size_is_refused_at_load(tmp_path):
    # grown to depth 6 at least: layer_mean(mean(abs(abs(abs(abs(x)))))) has 7 nodes, the fewest possible
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_GRAMMAR.format(max_size=6))
    with pytest.raises(GrammarError, match=rf"{path}:6: limits.init_depth: .* 7 nodes, more than limits.max_size 6"):
        load_grammar(str(path))
    path.write_text(TINY_GRAMMAR.format(max_size=7))
    assert load_grammar(str(path)).limits.max_size == 7


def test_every_input_error_is_exit_code_2():
    for error in (GrammarError, SpaceError, BenchError):
        assert issubclass(error, InputError) and error("x").exit_code == 2
