"""Plugins: a grammar's own ops and statistics, registered by a user module, loaded only when allowed.

The tutorial in grammar/README.md is run from its code blocks; its op and statistic are checked
against the same quantities computed here by hand (own hooks on the MLP layers), through the engine
and through an exported proxy.py run in a fresh process.
"""

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synth.errors import GrammarError, RunDirError
from synth.evolve import EvolveConfig
from synth.execute import evaluate
from synth.export import proxy_source
from synth.grammar import load_grammar
from synth.probe import Probe
from synth.programs import ProgramSpace
from synth.run import run_evolve
from synth.runtime import collect_statistics
from synth.space import load_space
from synth.symbolic import to_formula

README = Path(__file__).resolve().parents[1] / "grammar" / "README.md"
ARCH = {"embed_dim": 16, "depth": 2, "mlp_ratio": [2.0, 4.0], "num_heads": [1, 2]}
PROGRAM = "layer_sum__l(add__l__l(mean__r(softsign__r(row_norm)), fro__w(softsign__w(mlp_weight))))"


def tutorial_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the README's tutorial section, in order."""
    section = README.read_text().split("### Tutorial: one op and one statistic", 1)[1]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def write_tutorial_files(folder: Path) -> None:
    """The blocks that are files (their first line is '# NAME'), written into `folder`."""
    for language, code in tutorial_blocks():
        first = code.split("\n", 1)[0]
        if language in ("python", "yaml") and re.fullmatch(r"# [\w.]+\.(py|yaml)", first):
            (folder / first[2:]).write_text(code)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tutorial")
    write_tutorial_files(folder)
    return folder, load_grammar(str(folder / "my_grammar.yaml"), allow_plugins=True)


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1", "SYNTH_CACHE": str(tmp_path / "cache"), **extra}


def test_the_tutorial_runs_as_written(tmp_path):
    write_tutorial_files(tmp_path)
    blocks = tutorial_blocks()
    commands = [shlex.split(line) for lang, code in blocks if lang == "bash" for line in code.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["synth", "evolve"]] * 2 and "--allow-plugins" in commands[1]
    refused = subprocess.run([sys.executable, "-m", "synth", *commands[0][1:]], cwd=tmp_path, env=_env(tmp_path),
                             capture_output=True, text=True)
    assert refused.returncode == 2
    assert "my_grammar.yaml:4: plugins:" in refused.stderr and "--allow-plugins" in refused.stderr
    assert not (tmp_path / "runs" / "mine" / "run.json").exists()
    done = subprocess.run([sys.executable, "-m", "synth", *commands[1][1:]], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "runs" / "mine" / "run.json").read_text())
    assert record["config"]["iterations"] == 3 and -1 <= record["fitness"] <= 1
    checkpoint = json.loads((tmp_path / "runs" / "mine" / "checkpoint.json").read_text())
    assert list(checkpoint["plugins"]) == ["my_ops"]
    script = [code for lang, code in blocks if lang == "python" and not code.startswith("# ")]
    assert len(script) == 1
    ran = subprocess.run([sys.executable, "-c", script[0]], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "{'my_ops': '" in ran.stdout and (tmp_path / "runs" / "mine-py" / "proxy.py").is_file()


def _mlp_input_norms(model, inputs, targets):
    """Per MLP linear layer (fc1, fc2 of every MLP module, in order), the Euclidean norms of its input
    rows, from hooks of this test's own."""
    captured, handles = [], []
    for module in model.modules():
        if hasattr(module, "fc1") and hasattr(module, "fc2"):
            for layer in (module.fc1, module.fc2):
                handles.append(layer.register_forward_pre_hook(
                    lambda m, args: captured.append(args[0].detach().reshape(-1, args[0].shape[-1]).norm(dim=1))))
    with torch.no_grad():
        model(inputs)
    for handle in handles:
        handle.remove()
    return captured


def test_the_tutorial_op_and_statistic_compute_what_they_say(tutorial):
    folder, grammar = tutorial
    space, probe = load_space("vit-digits"), Probe(dataset="gaussian", batch_size=4, max_rows=None)
    inputs, targets = probe.batch(space)
    model = space.build(ARCH, seed=0)
    stats = collect_statistics(model, inputs, targets, grammar.statistics)
    norms = _mlp_input_norms(model, inputs, targets)
    assert len(norms) == 4
    for matrix, expected in zip(stats["mlp.input_row_norm"].matrices(), norms):
        torch.testing.assert_close(matrix, expected.reshape(1, -1))
    formula = to_formula(ProgramSpace(grammar).parse(PROGRAM), grammar)
    value = evaluate(formula.expr, grammar.terminal_values(stats))
    weights = [layer.weight.detach() for m in model.modules() if hasattr(m, "fc1") for layer in (m.fc1, m.fc2)]
    by_hand = sum(float((n / (1 + n)).mean() + (w / (1 + w.abs())).norm()) for n, w in zip(norms, weights))
    assert value == pytest.approx(by_hand, rel=1e-5)
    assert "softsign" in formula.canonical and r"\operatorname{softsign}" in formula.latex


CHILD = """
import importlib.util, json, sys, torch
from synth.space import load_space
spec = importlib.util.spec_from_file_location("proxy", sys.argv[1])
proxy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(proxy)
data = torch.load(sys.argv[2], weights_only=True)
model = load_space("vit-digits").build(json.loads(sys.argv[3]), seed=0)
print(json.dumps({"score": proxy.score(model, data["inputs"], data["targets"])}))
"""


def test_an_exported_proxy_imports_the_plugin_it_needs_and_scores_as_the_engine(tutorial, tmp_path):
    folder, grammar = tutorial
    space, probe = load_space("vit-digits"), Probe(dataset="gaussian", batch_size=4, max_rows=32)
    inputs, targets = probe.batch(space)
    formula = to_formula(ProgramSpace(grammar).parse(PROGRAM), grammar)
    source = proxy_source(formula, grammar, probe, 0.5, "test")
    assert "PLUGINS = {'my_ops': (('softsign',), ('mlp.input_row_norm',))}" in source
    assert "def softsign" not in source and ".norm(dim=1).reshape(1, -1)" not in source  # no plugin code copied
    assert "needs torch, synth and the synth plugin modules my_ops" in source
    (tmp_path / "proxy.py").write_text(source)
    torch.save({"inputs": inputs, "targets": targets}, tmp_path / "batch.pt")
    (tmp_path / "child.py").write_text(CHILD)
    argv = [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "proxy.py"), str(tmp_path / "batch.pt"), json.dumps(ARCH)]
    done = subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path, PYTHONPATH=str(folder)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stats = collect_statistics(space.build(ARCH, seed=0), inputs, targets, grammar.statistics, 32, probe.seed)
    engine = evaluate(formula.expr, grammar.terminal_values(stats))
    assert json.loads(done.stdout.splitlines()[-1])["score"] == pytest.approx(engine, rel=1e-6)
    missing = subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert missing.returncode != 0 and "ImportError: this proxy uses ops or statistics of the synth plugin module 'my_ops'" in missing.stderr


def _grammar_naming(tmp_path: Path, plugin_source: str, module: str = "refused_plugin") -> Path:
    (tmp_path / f"{module}.py").write_text(plugin_source)
    text = (README.parent / "vit.yaml").read_text().replace("root: net", f"root: net\nplugins: [{module}]", 1)
    (tmp_path / "g.yaml").write_text(text)
    return tmp_path / "g.yaml"


def test_plugins_are_never_imported_without_permission(tmp_path):
    marker = tmp_path / "imported"
    path = _grammar_naming(tmp_path, f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    with pytest.raises(GrammarError) as caught:
        load_grammar(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}:") and ": plugins: " in message
    assert "--allow-plugins" in message and "allow_plugins=True" in message and "refused_plugin" in message
    assert not marker.exists() and "refused_plugin" not in sys.modules


@pytest.mark.parametrize("source, problem", [
    ("import synth\n@synth.register_op('fro', role='reduce')\ndef fro(t):\n    return t\n", "op 'fro' is registered twice"),
    ("import synth\n@synth.register_op('Abs', role='unary')\ndef f(t):\n    return t\n", "taken by a sympy function"),
    ("import synth\n@synth.register_statistic('msa.weight', at='after')\ndef f(site, captured):\n    return 0\n",
     "statistic 'msa.weight' is registered twice"),
    ("import synth\n@synth.register_statistic('head.weight', at='after')\ndef f(site, captured):\n    return 0\n",
     "kind one of msa, mlp"),
    ("raise RuntimeError('broken plugin')\n", "RuntimeError: broken plugin"),
])
def test_a_plugin_that_fails_to_load_is_reported_against_the_grammar(tmp_path, source, problem):
    module = f"failing_{abs(hash(source))}"
    path = _grammar_naming(tmp_path, source, module)
    with pytest.raises(GrammarError, match=re.escape(problem)) as caught:
        load_grammar(str(path), allow_plugins=True)
    assert str(caught.value).startswith(f"{path}:") and f"plugins[0]: plugin '{module}' failed to load" in str(caught.value)


def test_a_resumed_run_needs_the_plugins_it_started_with(tutorial, small_bench, tmp_path):
    folder, grammar = tutorial
    config = EvolveConfig(population=6, iterations=2, sample_size=3, top_k=2, seed=0)
    run_evolve(str(folder / "my_grammar.yaml"), str(small_bench), tmp_path / "run", config, allow_plugins=True)
    checkpoint = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert checkpoint["plugins"] == grammar.plugins == {"my_ops": hashlib.sha256((folder / "my_ops.py").read_bytes()).hexdigest()}
    with pytest.raises(GrammarError, match="--allow-plugins"):
        run_evolve(None, None, tmp_path / "run", None, resume=True)
    plugin = folder / "my_ops.py"
    original = plugin.read_text()
    try:
        plugin.write_text(original + "# edited since the run started\n")
        with pytest.raises(RunDirError, match="plugins .* differ from the checkpoint's"):
            run_evolve(None, None, tmp_path / "run", None, resume=True, allow_plugins=True)
    finally:
        plugin.write_text(original)
