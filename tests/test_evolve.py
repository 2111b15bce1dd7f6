"""The evolution loop: reproducible by seed, resumable, and its CLI and run directory contract."""

import json

import pytest

from synth.cli import main
from synth.evolve import EvolveConfig
from synth.run import run_evolve


def short(**kw):
    return EvolveConfig(population=8, iterations=kw.pop("iterations", 12), sample_size=4, top_k=2, **kw)


def test_same_seed_same_formula_and_fitness(small_bench, tmp_path):
    a = run_evolve("vit", str(small_bench), tmp_path / "a", short(seed=3))
    b = run_evolve("vit", str(small_bench), tmp_path / "b", short(seed=3))
    assert (a["formula"], a["fitness"], a["history"]) == (b["formula"], b["fitness"], b["history"])


def test_resumed_run_equals_uninterrupted_run(small_bench, tmp_path):
    straight = run_evolve("vit", str(small_bench), tmp_path / "straight", short(seed=1, iterations=12))
    run_evolve("vit", str(small_bench), tmp_path / "cut", short(seed=1, iterations=5))
    resumed = run_evolve(None, None, tmp_path / "cut", resume=True, extend=12)
    assert resumed["history"] == straight["history"]
    assert (resumed["formula"], resumed["fitness"]) == (straight["formula"], straight["fitness"])


def test_history_is_monotone_and_fitness_in_range(small_bench, tmp_path):
    record = run_evolve("vit", str(small_bench), tmp_path / "r", short(seed=0))
    best = [h["best_fitness"] for h in record["history"]]
    assert best == sorted(best)  # elitism: the best never gets worse
    assert len(best) == 12
    assert -1.0 <= record["fitness"] <= 1.0


def test_cli_writes_the_run_directory_contract(small_bench, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["--json", "evolve", "--grammar", "vit.yaml", "--bench", str(small_bench), "--out", str(out),
                 "--population", "6", "--iterations", "4", "--sample-size", "4", "--top-k", "2", "--seed", "2"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    record = json.loads((out / "run.json").read_text())
    assert printed["formula"] == record["formula"]
    for key in ("formula", "latex", "canonical", "fitness", "test", "baselines", "split", "config", "seed", "versions", "history"):
        assert key in record, key
    assert set(record["test"]) == {"kendall", "spearman", "pearson"}
    assert set(record["baselines"]["params"]["kendall"]) == {"digits"}
    assert set(record["baselines"]) == {"params", "flops"}
    assert sorted(record["split"]["search"] + record["split"]["test"]) == list(range(24))
    assert len(record["history"]) == 4 and record["seed"] == 2
    assert (out / "proxy.py").is_file() and (out / "checkpoint.json").is_file()


def test_cli_rejects_bad_settings(capsys):
    assert main(["evolve", "--top-k", "30", "--iterations", "1"]) == 2
    assert "top-k" in capsys.readouterr().err


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["evolve", "--resume", str(tmp_path)]) == 2
    assert "checkpoint.json" in capsys.readouterr().err


@pytest.mark.slow
def test_default_settings_on_the_embedded_benchmark_are_reproducible(tmp_path):
    """The README's main job, twice: Auto-Prox defaults, same seed, same formula and fitness."""
    a = run_evolve("vit", None, tmp_path / "a", EvolveConfig())
    b = run_evolve("vit", None, tmp_path / "b", EvolveConfig())
    assert (a["formula"], a["fitness"]) == (b["formula"], b["fitness"])
    assert len(a["history"]) == 200 and a["fitness"] > 0.5
