"""benchmarks/reselect.py: candidates are the programs within --within of the run's best, each is
scored on the selection benchmark's search rows under the run's own fitness settings, and OUT is a
run directory the rest of synth reads."""

import json

import pytest

import synth
from synth.run import run_evolve
from synth.config import EvolveConfig

SMALL = dict(population=6, iterations=4, sample_size=4, top_k=2, seed=2)


@pytest.fixture(scope="module")
def small_run(small_bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("reselect") / "run"
    run_evolve("vit", str(small_bench), out, EvolveConfig(**SMALL))
    return out


def test_on_the_run_own_benchmark_every_score_is_the_run_fitness(benchmark_script, small_run, small_bench, tmp_path):
    script = benchmark_script("reselect")
    record = json.loads((small_run / "run.json").read_text())
    scored = [p for p in record["programs"] if p["fitness"] is not None and p["fitness"] > -1]
    summary = script.reselect(small_run, str(small_bench), 2.0, tmp_path / "out")  # JCMs lie in [-1, 1]
    assert len(summary["candidates"]) == len(scored) > 1
    for c in summary["candidates"]:
        assert c["selection"] == pytest.approx(c["run_fitness"], abs=1e-12)
    best = max(scored, key=lambda p: p["fitness"])["fitness"]
    assert summary["candidates"][0]["selection"] == pytest.approx(best)
    picked = synth.Evolution.load(tmp_path / "out")
    assert picked.best.formula == summary["pick"]
    assert (tmp_path / "out" / "proxy.py").is_file()
    assert json.loads((tmp_path / "out" / "selection.json").read_text())["pick"] == summary["pick"]


def test_within_bounds_the_candidates(benchmark_script, small_run):
    script = benchmark_script("reselect")
    record = synth.Evolution.load(small_run).record
    assert all(p["fitness"] >= record.fitness - 0.05 for p in script.candidates(record, 0.05))
    tight = script.candidates(record, 0.0)
    assert tight and all(p["fitness"] == record.fitness for p in tight)


def test_a_benchmark_without_the_run_own_is_refused(benchmark_script, small_run, tmp_path):
    script = benchmark_script("reselect")
    with pytest.raises(SystemExit, match="does not hold the run's own benchmark"):
        script.reselect(small_run, "vit-digits", 0.01, tmp_path / "out")
