"""The Python API (synth.Evolution, synth.search, the loaders) against the run directories and
files the engine writes, and the README's Python example run as it stands."""

import csv
import filecmp
import importlib.util
import json
import re

import numpy as np
import pytest

import synth
from synth.cli import main
from synth.config import EvolveConfig
from synth.rundir import json_text
from synth.run import run_evolve
from tests.conftest import ROOT, SHARED_BENCHMARKS

SMALL = dict(population=6, iterations=4, sample_size=4, top_k=2, seed=2)


@pytest.fixture(scope="module")
def fitted(small_bench, tmp_path_factory):
    return synth.Evolution("vit", str(small_bench), out=tmp_path_factory.mktemp("api") / "run", **SMALL).fit()


def _exported(path):
    spec = importlib.util.spec_from_file_location("exported_proxy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_is_the_engine_run(fitted, small_bench, tmp_path):
    engine = run_evolve("vit", str(small_bench), tmp_path / "engine", EvolveConfig(**SMALL))
    assert (fitted.record.formula, fitted.record.fitness, fitted.record.history) == (engine.formula, engine.fitness, engine.history)


def test_record_is_run_json_byte_for_byte_and_reads_back(fitted):
    text = (fitted.run_dir / "run.json").read_text()
    assert json_text(fitted.record.to_dict(), indent=1) + "\n" == text
    loaded = synth.Evolution.load(fitted.run_dir)
    assert json_text(loaded.record.to_dict(), indent=1) + "\n" == text
    raw = json.loads(text)
    assert loaded.record["hall_of_fame"] == raw["hall_of_fame"] and loaded.record.config.metric == raw["config"]["metric"]
    with pytest.raises(KeyError):
        loaded.record["no_such_key"]


def test_hall_of_fame_is_the_csv_with_sympy_and_latex(fitted):
    with (fitted.run_dir / "hall_of_fame.csv").open() as f:
        rows = list(csv.DictReader(f))
    hof = fitted.hall_of_fame
    assert [(str(p.complexity), repr(p.fitness), p.formula) for p in hof] == [(r["complexity"], r["fitness"], r["formula"]) for r in rows]
    assert all(str(p.sympy) == p.formula for p in hof)  # the canonical key is the sympy form's text
    assert [line.split()[-1] for line in repr(hof).splitlines()[1:]] == [p.formula.split()[-1] for p in hof]
    best = fitted.best
    assert (best.formula, best.latex, best.fitness) == (fitted.record.formula, fitted.record.latex, fitted.record.fitness)


def test_best_exports_the_run_proxy_and_scores_as_the_run_did(fitted, small_bench):
    best = fitted.best
    assert best.torch_source == (fitted.run_dir / "proxy.py").read_text()
    exported = _exported(fitted.run_dir / "proxy.py")
    bench = synth.load_benchmark(str(small_bench))
    space = synth.load_space(bench.space)
    from synth.probe import Probe

    inputs, targets = Probe(**fitted.record.probe).batch(space)
    for row in fitted.record.split["search"][:3]:
        model = space.build(bench.archs[row], seed=fitted.record.probe["init_seed"])
        engine = fitted.record.scores[row]  # scored by the run from its cached statistics
        direct, by_file = best.score(model, inputs, targets), exported.score(model, inputs, targets)
        assert direct == pytest.approx(engine, rel=1e-5, abs=1e-6) and by_file == pytest.approx(engine, rel=1e-5, abs=1e-6)


def test_formulas_share_one_pass_of_statistics(fitted, small_bench):
    """score_statistics on one pass collecting what every hall-of-fame formula reads gives each
    formula's own score (a pass of its statistics alone)."""
    from synth.probe import Probe
    from synth.runtime import collect_statistics

    hof = fitted.hall_of_fame[:4]
    bench = synth.load_benchmark(str(small_bench))
    space = synth.load_space(bench.space)
    probe = Probe(**fitted.record.probe)
    inputs, targets = probe.batch(space)
    needed = {stat for p in hof for stat in p.statistics.values()}
    assert len(needed) > min(len(p.statistics) for p in hof)  # the shared pass collects more than some formula reads
    for row in fitted.record.split["test"][:2]:
        model = space.build(bench.archs[row], seed=probe.init_seed)
        shared = collect_statistics(model, inputs, targets, needed, probe.max_rows, probe.seed)
        for proxy in hof:
            model.zero_grad(set_to_none=True)
            assert proxy.score_statistics(shared) == pytest.approx(proxy.score(model, inputs, targets), rel=1e-5, abs=1e-6)


def test_save_writes_the_same_run_directory_and_load_reads_it(fitted, tmp_path):
    saved = fitted.save(tmp_path / "copy")
    for name in ("run.json", "proxy.py", "hall_of_fame.csv", "checkpoint.json"):
        assert filecmp.cmp(fitted.run_dir / name, saved / name, shallow=False), name
    again = synth.Evolution.load(saved)
    assert again.record == fitted.record and again.config == fitted.record.config.to_dict()


def test_load_reads_a_synth_evolve_run_and_refuses_a_folder_without_run_json(small_bench, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--quiet", "evolve", "--bench", str(small_bench), "--out", str(out), "--population", "6",
                 "--iterations", "3", "--sample-size", "4", "--top-k", "2"]) == 0
    loaded = synth.Evolution.load(out)
    assert loaded.best.formula == json.loads((out / "run.json").read_text())["formula"]
    assert loaded.bench == str(small_bench) and loaded.config["iterations"] == 3
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "checkpoint.pkl").write_bytes(b"not read")
    with pytest.raises(synth.RunDirError, match="run.json"):
        synth.Evolution.load(tmp_path / "empty")


@pytest.mark.parametrize("settings, named", [
    (dict(populaton=8), "`population`"),
    (dict(top_k=30), "`top_k`"),
    (dict(population="20"), "`population`"),
    (dict(metric="tau"), "`metric`"),
    (dict(probe={"batch": 8}), "`batch_size`"),
])
def test_config_errors_are_input_errors_naming_the_setting(settings, named, tmp_path):
    with pytest.raises(synth.ConfigError, match=named) as caught:
        synth.Evolution(out=tmp_path / "never", **settings).fit()
    assert isinstance(caught.value, synth.InputError) and caught.value.exit_code == 2
    assert not (tmp_path / "never").exists()  # refused before any work


def test_unfitted_evolution_says_how_to_get_a_run():
    with pytest.raises(RuntimeError, match="fit"):
        synth.Evolution().best


def test_search_returns_the_typed_search_json(tmp_path):
    result = synth.search("params", "vit-digits", out=tmp_path / "s", population=6, iterations=1, parents=3, mutations=3,
                          crossovers=3, top_k=3, max_params="20k")
    saved = (tmp_path / "s" / "search.json").read_text()
    assert json_text(result.to_dict(), indent=1) + "\n" == saved
    assert isinstance(result, synth.SearchResult) and result.config.max_params == 20_000
    assert [t.params for t in result.top] == sorted(t.params for t in result.top)[::-1]  # params proxy: biggest first
    assert all(t.params <= 20_000 for t in result.top) and result.top[0].rank == 1


@pytest.mark.parametrize("settings, named", [
    (dict(populaton=6), "`population`"), (dict(max_params="lots"), "`max_params`"), (dict(workers=0), "`workers`"),
])
def test_search_settings_errors_name_the_setting(settings, named, tmp_path):
    with pytest.raises(synth.ConfigError, match=named):
        synth.search("params", "vit-digits", out=tmp_path / "s", **settings)


def _through_json(record):
    return type(record).from_dict(json.loads(json_text(record.to_dict())))


def test_loaders_return_records_that_survive_json(small_bench):
    grammar, space = synth.load_grammar("vit"), synth.load_space("vit-digits")
    assert _through_json(grammar) == grammar and _through_json(space) == space
    bench = synth.load_benchmark(str(small_bench))
    rows = json.loads(small_bench.read_text())["rows"]
    assert bench.to_dict()["targets"]["digits"] == [row["acc"]["digits"] for row in rows]
    back = _through_json(bench)
    assert (back.name, back.space, back.archs, back.tasks) == (bench.name, bench.space, [r["arch"] for r in rows], ["digits"])
    np.testing.assert_array_equal(back.targets["digits"], bench.targets["digits"])


@pytest.mark.skipif(not (SHARED_BENCHMARKS / "nasbench201-zc").is_dir(), reason="needs the shared NAS-Bench-Suite-Zero file")
def test_a_benchmark_with_reference_scores_and_missing_values_survives_json(monkeypatch):
    monkeypatch.setenv("SYNTH_DATA", str(SHARED_BENCHMARKS))
    bench = synth.load_benchmark("nasbench201-zc:cifar10")
    back = _through_json(bench)
    assert back.meta.arch_ids == bench.meta.arch_ids
    for name, scores in bench.meta.reference_scores.items():  # NaN and infinities come back as NaN
        expected = np.where(np.isfinite(scores), scores, np.nan)
        np.testing.assert_array_equal(np.array(back.meta.reference_scores[name], dtype=float), expected)


def test_synth_search_is_the_module_and_the_function():
    import synth.search as module

    assert synth.search is module and callable(module) and module.run_search


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python block, as written, in a scratch folder."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (Python API)", "exec"), {})
    printed = capsys.readouterr().out
    assert "complexity" in printed and (tmp_path / "runs" / "api-search" / "search.json").is_file()
