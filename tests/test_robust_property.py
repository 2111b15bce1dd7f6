"""Property tests: the grammar, space, recipe and benchmark loaders, fed random and adversarial files (raw
text and bytes, random YAML/JSON documents, valid files with one value replaced or removed, Python
tags), either load or raise an InputError subclass (exit code 2). Never another exception."""

import copy
import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.bench import FORMAT, load_benchmark
from synth.errors import InputError
from synth.grammar import load_grammar
from synth.resources import resource_dir
from synth.space import load_space
from synth.train import Recipe

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True) \
    | st.text(max_size=12) | st.sampled_from(["", "[/x]", 'x"""', "msa.weight", "tensor", "net", "->", "-8", "1e9"])
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8) | st.integers(0, 9), inner, max_size=4), max_leaves=12)


def _paths(node, prefix=()):
    """Every position in a parsed document, as a path of keys and indices."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _mutated(base, data) -> object:
    """`base` with one position replaced by a random document or removed."""
    raw = copy.deepcopy(base)
    path = data.draw(st.sampled_from(list(_paths(raw))))
    if not path:
        return data.draw(documents)
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(documents)
    return raw


def _loads_or_input_error(load, path) -> None:
    try:
        load(str(path))
    except InputError as exc:
        assert str(path) in str(exc) or "neither a file" in str(exc), f"message does not name the file: {exc}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


BASES = {
    "grammar": (load_grammar, yaml.safe_load((resource_dir("grammar") / "vit.yaml").read_text())),
    "space": (load_space, yaml.safe_load((resource_dir("spaces") / "vit-digits.yaml").read_text())),
    "recipe": (Recipe.from_file, Recipe().to_dict()),
}


@pytest.mark.parametrize("kind", list(BASES))
@SETTINGS
@given(data=st.data())
def test_a_yaml_file_with_one_value_changed_loads_or_is_an_input_error(kind, folder, data):
    load, base = BASES[kind]
    path = folder / f"mutated-{kind}.yaml"
    path.write_text(yaml.safe_dump(_mutated(base, data), allow_unicode=True))
    _loads_or_input_error(load, path)


@pytest.mark.parametrize("kind", list(BASES))
@SETTINGS
@given(document=documents)
def test_a_random_yaml_document_is_an_input_error(kind, folder, document):
    load, _ = BASES[kind]
    path = folder / f"random-{kind}.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    _loads_or_input_error(load, path)


@pytest.mark.parametrize("kind", list(BASES))
@SETTINGS
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_raw_bytes_and_text_are_an_input_error(kind, folder, content):
    load, _ = BASES[kind]
    path = folder / f"raw-{kind}.yaml"
    path.write_bytes(content)
    _loads_or_input_error(load, path)


PYTHON_TAGS = [
    "name: !!python/object/apply:os.system ['echo pwned']\n",
    "name: !!python/name:os.system\n",
    "!!python/object/new:subprocess.Popen [['true']]\n",
    "name: &a [*a]\n",  # a recursive alias
    "a: &x [1]\nb: *x\nc: *x\n" * 3,
]


@pytest.mark.parametrize("kind", list(BASES))
@pytest.mark.parametrize("text", PYTHON_TAGS)
def test_python_tags_and_aliases_are_input_errors(kind, folder, text):
    load, _ = BASES[kind]
    path = folder / f"tags-{kind}.yaml"
    path.write_text(text)
    with pytest.raises(InputError):
        load(str(path))


ARCHS = [{"embed_dim": d, "depth": 1, "mlp_ratio": [1.0], "num_heads": [1]} for d in (8, 16, 32, 64)]
BENCH = {"format": FORMAT, "space": "vit-digits", "tasks": ["a"],
         "rows": [{"arch": a, "acc": {"a": 50.0 + i}} for i, a in enumerate(ARCHS)]}


@SETTINGS
@given(data=st.data())
def test_a_benchmark_with_one_value_changed_loads_or_is_an_input_error(folder, data):
    path = folder / "mutated-bench.json"
    path.write_text(json.dumps(_mutated(BENCH, data)))
    _loads_or_input_error(load_benchmark, path)


@SETTINGS
@given(accuracies=st.lists(st.none() | st.floats(allow_nan=True, allow_infinity=False), min_size=1, max_size=6))
def test_benchmark_accuracies_load_only_when_they_can_rank(folder, accuracies):
    path = folder / "accuracies.json"
    rows = [{"arch": ARCHS[i % 4], "acc": {"a": v}} for i, v in enumerate(accuracies)]
    path.write_text(json.dumps({**BENCH, "rows": rows}))
    try:
        bench = load_benchmark(str(path))
    except InputError:
        return
    usable = [v for v in accuracies if v is not None and not math.isnan(v)]
    assert len(usable) >= 3 and len(set(usable)) > 1 and all(0 <= v <= 100 for v in usable)
    assert len(bench) == len(accuracies)


@SETTINGS
@given(content=st.binary(max_size=200) | documents.map(lambda d: json.dumps(d).encode()))
def test_random_benchmark_files_are_input_errors(folder, content):
    path = folder / "random-bench.json"
    path.write_bytes(content)
    _loads_or_input_error(load_benchmark, path)
