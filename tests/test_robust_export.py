"""Text from a grammar file never runs as code in an exported proxy.py.

Every text field a grammar can carry gets hostile values (ones that close the docstring and run a
command, a trailing backslash, a NUL byte, line separators). The grammar is either refused at load
(GrammarError) or the exported file imports without running anything, keeps the text as data in its
docstring, and scores a network like the engine does.
"""

import ast
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from synth.errors import GrammarError
from synth.export import docstring_literal, proxy_source
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.resources import resource_dir
from synth.space import load_space
from synth.probe import Probe
from synth.symbolic import to_formula

ARCH = {"embed_dim": 16, "depth": 2, "mlp_ratio": [2.0, 4.0], "num_heads": [1, 2]}


def _payloads(marker: Path) -> list[str]:
    run = f'__import__("pathlib").Path({json.dumps(str(marker))}).write_text("ran")'
    return [
        f'x"""; {run}; r"""',
        f"x'''; {run}; r'''",
        f'a\n"""\n{run}\nr"""\nb',
        f'x\\"""; {run}; r"""',
        "ends in a backslash \\",
        "a NUL \x00 byte, a carriage \r return, a line\u2028separator, \\N{BULLET}",
        f'"""{run}"""',
    ]


def _set_field(raw: dict, field: str, value: str) -> dict:
    """The vit grammar's YAML with one text field (given as a dotted path) set to `value`."""
    if field == "name":
        raw["name"] = value
    elif field == "description":
        raw["description"] = value
    elif field == "type doc":
        raw["types"]["msa_w"]["doc"] = value
    elif field == "terminal latex":
        raw["terminals"]["msa_weight"]["latex"] = value
    elif field == "terminal doc":
        raw["terminals"]["msa_weight"]["doc"] = value
    elif field == "terminal stat":
        raw["terminals"]["msa_weight"]["stat"] = value
    elif field == "terminal name":
        raw["terminals"][value] = raw["terminals"].pop("mlp_input")
    elif field == "program name":
        raw["programs"][value] = raw["programs"]["dss"]
    else:
        raise AssertionError(field)
    return raw


FIELDS = ["name", "description", "type doc", "terminal latex", "terminal doc", "terminal stat", "terminal name",
          "program name"]


@pytest.fixture(scope="module")
def probe_batch():
    space = load_space("vit-digits")
    probe = Probe(dataset="gaussian", batch_size=4, max_rows=64)
    inputs, targets = probe.batch(space)
    return space, probe, inputs, targets


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"hostile_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("field", FIELDS)
def test_hostile_grammar_text_never_runs_in_the_exported_proxy(field, tmp_path, probe_batch):
    space, probe, inputs, targets = probe_batch
    base = yaml.safe_load((resource_dir("grammar") / "vit.yaml").read_text())
    marker = tmp_path / "marker"
    for n, payload in enumerate(_payloads(marker)):
        grammar_file = tmp_path / f"g{n}.yaml"
        grammar_file.write_text(yaml.safe_dump(_set_field(yaml.safe_load(yaml.safe_dump(base)), field, payload)))
        try:
            grammar = load_grammar(str(grammar_file))
        except GrammarError:
            continue  # refused at load, naming the file: nothing reaches generated code
        latex = {t.name: t.latex for t in grammar.terminals.values()}
        formula = to_formula(ProgramSpace(grammar).parse(grammar.programs["dss"]), grammar, latex)
        proxy = tmp_path / f"proxy{n}.py"
        proxy.write_text(proxy_source(formula, grammar, probe, 0.5, "test"), encoding="utf-8")
        module = _import(proxy)
        assert not marker.exists(), f"{field}: importing the exported proxy ran the payload {payload!r}"
        shown = {"name": repr(payload), "terminal latex": payload}.get(field, "")
        assert shown in module.__doc__  # the text is kept, as data
        model = space.build(ARCH, seed=0)
        value = module.score(model, inputs, targets)
        assert value == value and value > 0  # DSS is a sum of norms: finite and positive


@pytest.mark.parametrize("text", [
    "", "plain", 'one " quote', 'three """ quotes', "ends in \\", "ends in quote\"", "\\N{BULLET} \\x41 \\u0041",
    "tab\tNUL\x00 CR\r FF\x0c LS\u2028 surrogate \ud800", "é ∇W_{\\mathrm{msa}}\nsecond line\n", "'''", "\\",
])
def test_docstring_literal_evaluates_back_to_its_text(text):
    literal = docstring_literal(text)
    assert ast.literal_eval(literal) == text
    module = ast.parse(literal + "\nx = 1\n")
    assert len(module.body) == 2  # one string statement, then the code after it


def test_hostile_plugin_names_are_refused_before_any_code_runs(tmp_path):
    """A grammar's `plugins` entries, and the op and statistic names a plugin registers, reach an
    exported proxy.py (as the modules it imports, the ops it calls): each is refused unless it is
    a plain name, so none can carry code; a refused grammar imports nothing."""
    from synth.plugins import register_op, register_statistic

    marker = tmp_path / "marker"
    base = yaml.safe_load((resource_dir("grammar") / "vit.yaml").read_text())
    for n, payload in enumerate([*_payloads(marker), "os; import os", "a-b", "..up", "x.__init__ ", ""]):
        grammar_file = tmp_path / f"p{n}.yaml"
        grammar_file.write_text(yaml.safe_dump({**base, "plugins": [payload]}))
        with pytest.raises(GrammarError, match=r":\d+: plugins: must be a list of Python module names"):
            load_grammar(str(grammar_file), allow_plugins=True)
        with pytest.raises(ValueError, match="identifier"):
            register_op(payload, role="unary")
        with pytest.raises(ValueError, match="kind.quantity"):
            register_statistic(f"mlp.{payload}", at="after")
    assert not marker.exists()
