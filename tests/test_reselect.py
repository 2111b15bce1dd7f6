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


def search_kendall(run_dir, tasks):
    """Kendall tau-b of a run's recorded scores with each task on its recorded search rows, by scipy."""
    from scipy.stats import kendalltau

    from synth.bench import load_benchmark

    record = json.loads((run_dir / "run.json").read_text())
    bench = load_benchmark(record["bench"]["source"])
    rows = record["split"]["search"]
    scores = [record["scores"][r] for r in rows]
    return {t: kendalltau(scores, [bench.targets[t][r] for r in rows], variant="b").statistic for t in tasks}


def test_the_floor_is_the_reference_run_kendall_and_keeps_only_candidates_above_it(benchmark_script, small_run, small_bench, tmp_path):
    script = benchmark_script("reselect")
    tasks = json.loads((small_run / "run.json").read_text())["bench"]["tasks"]
    reference = search_kendall(small_run, tasks)
    floor = script.Floor(str(small_bench), small_run, tolerance=0.05)
    summary = script.reselect(small_run, str(small_bench), 2.0, tmp_path / "out", floor=floor)
    assert summary["floor"]["kendall"] == pytest.approx({t: reference[t] - 0.05 for t in tasks})
    kept = [c for c in summary["candidates"] if c["kept"]]
    assert kept and len(kept) < len(summary["candidates"])  # the floor binds on this run
    for c in summary["candidates"]:
        assert c["kept"] == all(c["floor_kendall"][t] >= reference[t] - 0.05 for t in tasks)
    best_kept = max(kept, key=lambda c: c["selection"])
    assert summary["pick"] == best_kept["formula"]
    assert synth.Evolution.load(tmp_path / "out").best.formula == summary["pick"]
    # the run's own winner is as good as itself on its own rows: it is always kept
    winner = json.loads((small_run / "run.json").read_text())["formula"]
    assert any(c["kept"] for c in summary["candidates"] if c["formula"] == winner)


def test_a_floor_no_candidate_keeps_and_a_floor_outside_the_bench_are_refused(benchmark_script, small_run, small_bench, tmp_path):
    script = benchmark_script("reselect")
    with pytest.raises(SystemExit, match="keeps the floor"):
        script.reselect(small_run, str(small_bench), 2.0, tmp_path / "a", floor=script.Floor(str(small_bench), small_run, -2.0))
    with pytest.raises(SystemExit, match="is not one of --bench's benchmarks"):
        script.reselect(small_run, str(small_bench), 2.0, tmp_path / "b", floor=script.Floor("vit-digits", small_run))


def test_the_floor_part_of_a_joined_benchmark_is_its_own_columns(benchmark_script, small_bench, tmp_path):
    import numpy as np

    from synth.bench.joined import JoinedBenchmark

    script = benchmark_script("reselect")
    raw = json.loads(small_bench.read_text())
    raw["rows"] = raw["rows"][:12]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(raw))
    source = f"{small_bench}+{other}"
    bench = JoinedBenchmark(source)
    tasks = script.part_tasks(bench, source, str(other))
    assert tasks and len(tasks) == len(bench.parts[1].targets)
    rows_of_other = np.arange(len(bench.parts[0]), len(bench))
    for task in tasks:
        known = np.flatnonzero(~np.isnan(bench.targets[task]))
        assert set(known) <= set(rows_of_other)


def test_a_fixed_floor_keeps_candidates_at_or_above_it_on_every_task(benchmark_script, small_run, small_bench, tmp_path):
    script = benchmark_script("reselect")
    summary = script.reselect(small_run, str(small_bench), 2.0, tmp_path / "out", floor=script.Floor(str(small_bench), value=0.3))
    assert set(summary["floor"]["kendall"].values()) == {0.3}
    for c in summary["candidates"]:
        assert c["kept"] == all(v >= 0.3 for v in c["floor_kendall"].values())
    assert summary["candidates"][0]["kept"] and not summary["floor"]["fell_back"]


def test_with_fallback_a_floor_no_candidate_keeps_picks_the_closest(benchmark_script, small_run, small_bench, tmp_path):
    script = benchmark_script("reselect")
    floor = script.Floor(str(small_bench), value=2.0, fallback=True)  # Kendall never reaches 2
    summary = script.reselect(small_run, str(small_bench), 2.0, tmp_path / "out", floor=floor)
    assert summary["floor"]["fell_back"]
    closest = max(summary["candidates"], key=lambda c: min(c["floor_kendall"].values()))
    assert summary["pick"] == closest["formula"]


def hand_top_quality(scores, accuracy, cells):
    """Mean accuracy quantile (0 worst, 1 best, ties averaged) of the `cells` highest scores, as 2q - 1."""
    from scipy.stats import rankdata

    quantile = (rankdata(accuracy) - 1) / (len(accuracy) - 1)
    best = sorted(range(len(scores)), key=lambda i: -scores[i])[:cells]
    return 2 * sum(quantile[i] for i in best) / cells - 1


def test_pick_by_top_cells_is_the_best_top_quality_computed_by_hand(benchmark_script, small_run, small_bench, tmp_path):
    import numpy as np

    from synth.bench import load_benchmark

    script = benchmark_script("reselect")
    top = script.Top(str(small_bench), cells=3)
    summary = script.reselect(small_run, str(small_bench), 2.0, tmp_path / "out", top=top)
    assert summary["candidates"][0]["top"] == max(c["top"] for c in summary["candidates"])
    assert summary["pick"] == summary["candidates"][0]["formula"]
    picked = json.loads((tmp_path / "out" / "run.json").read_text())
    bench = load_benchmark(picked["bench"]["source"])
    rows = picked["split"]["search"]
    scores = [picked["scores"][r] for r in rows]
    assert len(set(scores)) == len(scores)  # no ties at the cut on this run: the hand version needs none
    by_hand = np.mean([hand_top_quality(scores, [bench.targets[t][r] for r in rows], 3) for t in bench.targets])
    assert summary["candidates"][0]["top"] == pytest.approx(by_hand)


def test_the_command_line_refuses_a_floor_without_its_level(benchmark_script, small_run, small_bench, tmp_path):
    script = benchmark_script("reselect")
    with pytest.raises(SystemExit):
        script.main([str(small_run), "--bench", str(small_bench), "--out", str(tmp_path / "o"), "--floor-part", str(small_bench)])
    with pytest.raises(SystemExit):
        script.main([str(small_run), "--bench", str(small_bench), "--out", str(tmp_path / "o"), "--floor-value", "0.5"])
