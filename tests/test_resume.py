"""Resuming `synth evolve`: the run keeps its settings and its grammar, ends where it would have, and
loses nothing to an interrupt after its first population."""

import json
import shutil

import pytest

from synth.cli import main
from synth.errors import RunDirError
from synth.evolve import EvolveConfig
from synth.resources import resource_dir
from synth.rundir import with_checksum
from synth.run import run_evolve
from tests.interrupt import interrupt_at


def short(**kw):
    return EvolveConfig(population=6, iterations=kw.pop("iterations", 8), sample_size=4, top_k=2, **kw)


def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(small_bench, tmp_path, capsys):
    straight = run_evolve("vit", str(small_bench), tmp_path / "a", short(seed=1))
    with pytest.raises(KeyboardInterrupt):
        run_evolve("vit", str(small_bench), tmp_path / "b", short(seed=1), progress=interrupt_at(3))
    # the CLI's defaults (200 iterations) must not stretch a run started with 8
    assert main(["--json", "evolve", "--resume", str(tmp_path / "b")]) == 0
    record = json.loads((tmp_path / "b" / "run.json").read_text())
    assert len(record["history"]) == 8
    assert (record["formula"], record["history"]) == (straight["formula"], straight["history"])


def test_an_interrupt_right_after_the_first_population_loses_nothing(small_bench, tmp_path):
    straight = run_evolve("vit", str(small_bench), tmp_path / "a", short(seed=2))
    with pytest.raises(KeyboardInterrupt):
        run_evolve("vit", str(small_bench), tmp_path / "b", short(seed=2), progress=interrupt_at(0, calls=2))
    checkpoint = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    assert checkpoint["state"]["iteration"] == 0 and len(checkpoint["state"]["population"]) == 6
    resumed = run_evolve(None, None, tmp_path / "b", resume=True)
    assert (resumed["formula"], resumed["history"]) == (straight["formula"], straight["history"])


def test_other_settings_on_resume_are_refused(small_bench, tmp_path, capsys):
    run_evolve("vit", str(small_bench), tmp_path / "r", short(seed=1, iterations=2))
    with pytest.raises(RunDirError, match="seed 5"):
        run_evolve(None, None, tmp_path / "r", short(seed=5, iterations=2), resume=True)
    assert main(["evolve", "--resume", str(tmp_path / "r"), "--seed", "3", "--population", "9"]) == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "--population" in err and "--extend" in err
    assert main(["evolve", "--out", str(tmp_path / "x"), "--extend", "5"]) == 2
    with pytest.raises(RunDirError, match="fewer"):
        run_evolve(None, None, tmp_path / "r", resume=True, extend=1)


def test_resume_from_another_directory_with_a_relative_grammar_path(small_bench, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(resource_dir("grammar") / "vit.yaml", work / "mine.yaml")
    monkeypatch.chdir(work)
    with pytest.raises(KeyboardInterrupt):
        run_evolve("mine.yaml", str(small_bench), work / "run", short(seed=0), progress=interrupt_at(2))
    monkeypatch.chdir(tmp_path)
    resumed = run_evolve(None, None, work / "run", resume=True)
    assert len(resumed["history"]) == 8


def test_an_edited_grammar_is_named_on_resume(small_bench, tmp_path):
    grammar = tmp_path / "mine.yaml"
    shutil.copy(resource_dir("grammar") / "vit.yaml", grammar)
    with pytest.raises(KeyboardInterrupt):
        run_evolve(str(grammar), str(small_bench), tmp_path / "run", short(seed=0), progress=interrupt_at(2))
    grammar.write_text(grammar.read_text().replace("max_size: 20", "max_size: 18"))
    with pytest.raises(RunDirError, match="changed since the checkpoint"):
        run_evolve(None, None, tmp_path / "run", resume=True)


def test_a_checkpoint_of_another_shape_is_a_clear_error(small_bench, tmp_path, capsys):
    run_evolve("vit", str(small_bench), tmp_path / "r", short(seed=0, iterations=1))
    path = tmp_path / "r" / "checkpoint.json"
    raw = json.loads(path.read_text())
    raw["config"]["no_such_setting"] = 1
    path.write_text(json.dumps(with_checksum({k: v for k, v in raw.items() if k != "sha256"})))  # intact, other shape
    assert main(["evolve", "--resume", str(tmp_path / "r")]) == 2
    assert "checkpoint.json" in capsys.readouterr().err


def test_a_split_that_cannot_rank_is_refused_before_any_work(tmp_path):
    """Five rows pass the benchmark's own check, but a 60/40 split leaves 2 test rows: refused up front."""
    from synth.errors import BenchError

    raw = json.loads((resource_dir("data") / "vit-digits.json").read_text())
    raw["rows"] = raw["rows"][:5]
    path = tmp_path / "five.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(BenchError, match="test split"):
        run_evolve("vit", str(path), tmp_path / "r", short(seed=0))
    assert not (tmp_path / "r" / "checkpoint.json").exists()


def test_bench_check_on_an_evolve_run_says_what_to_do(small_bench, tmp_path, capsys):
    run_evolve("vit", str(small_bench), tmp_path / "r", short(seed=0, iterations=1))
    assert main(["bench", "check", str(tmp_path / "r"), "--bench", str(small_bench)]) == 2
    err = capsys.readouterr().err
    assert "synth evolve run" in err and "synth search --proxy" in err and "--resume" not in err
