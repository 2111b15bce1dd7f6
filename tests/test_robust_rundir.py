"""Run directories are never lost silently: an existing run is refused, one process at a time writes a
directory, and an --out that cannot be written fails with exit 2 before any work; JSON is strict."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synth.cli import main
from synth.errors import RunDirError
from synth.rundir import LOCK, json_text, locked_run_dir, write_json

TINY = ["--population", "4", "--iterations", "2", "--sample-size", "2", "--top-k", "1"]


def _evolve(small_bench, out, *extra):
    return main(["evolve", "--bench", str(small_bench), *TINY, "--out", str(out), *extra])


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_evolve_refuses_a_directory_holding_a_run(small_bench, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"formula": "earlier"}')
    assert _evolve(small_bench, run) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--force" in err and "--resume" in err
    assert (run / "run.json").read_text() == '{"formula": "earlier"}'
    assert not (run / LOCK).exists()


@pytest.mark.slow
def test_evolve_force_replaces_the_run(small_bench, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"formula": "earlier"}')
    assert _evolve(small_bench, run, "--force") == 0
    record = json.loads((run / "run.json").read_text())
    assert record["formula"] != "earlier" and (run / "proxy.py").is_file()
    assert not (run / LOCK).exists()


def test_evolve_refuses_a_directory_another_live_process_writes(small_bench, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(f"{os.getppid()}\n")  # our parent: alive
    assert _evolve(small_bench, run) == 2
    err = capsys.readouterr().err
    assert f"in use by process {os.getppid()}" in err
    assert (run / LOCK).read_text() == f"{os.getppid()}\n"  # still the other process's


def test_search_refuses_a_directory_another_live_process_writes(tmp_path, capsys):
    run = tmp_path / "search"
    run.mkdir()
    (run / LOCK).write_text(f"{os.getppid()}\n")
    assert main(["search", "--proxy", "synflow", "--space", "vit-digits", "--out", str(run)]) == 2
    assert "in use by process" in capsys.readouterr().err


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK).write_text(f"{_dead_pid()}\n")
    with locked_run_dir(tmp_path):
        assert (tmp_path / LOCK).read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / LOCK).exists()


def test_a_lock_of_a_killed_unreaped_process_is_stale(tmp_path):
    if not Path("/proc/self/stat").exists():
        pytest.skip("zombies are told apart through /proc")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK).write_text(f"{child.pid}\n")
        child.kill()
        import time

        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)  # dead, not reaped yet: a zombie
        with locked_run_dir(tmp_path):
            assert (tmp_path / LOCK).read_text() == f"{os.getpid()}\n"
    finally:
        child.wait()


def test_a_lock_that_is_not_a_pid_is_stale(tmp_path):
    (tmp_path / LOCK).write_text("garbage")
    with locked_run_dir(tmp_path):
        assert (tmp_path / LOCK).read_text() == f"{os.getpid()}\n"


def test_a_folder_made_for_nothing_is_removed_again(tmp_path):
    with pytest.raises(RunDirError):
        with locked_run_dir(tmp_path / "new"):
            raise RunDirError("bad input found after the lock was taken")
    assert not (tmp_path / "new").exists()


RACER = textwrap.dedent(
    """
    import sys, time
    from synth.errors import RunDirError
    from synth.rundir import locked_run_dir
    time.sleep(float(sys.argv[2]) - time.time())  # all start together
    try:
        with locked_run_dir(sys.argv[1]):
            print("got", flush=True)
            time.sleep(2)
    except RunDirError:
        print("busy", flush=True)
    """
)


@pytest.mark.parametrize("stale", [False, True])
def test_two_processes_racing_for_one_directory_cannot_both_hold_it(tmp_path, stale):
    import time

    run = tmp_path / "run"
    run.mkdir()
    if stale:
        (run / LOCK).write_text(f"{_dead_pid()}\n")
    start = str(time.time() + 1.5)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(run), start], stdout=subprocess.PIPE, text=True)
              for _ in range(4)]
    answers = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert answers == ["busy", "busy", "busy", "got"]


@pytest.mark.parametrize("make_out", ["a file", "below a file", "a name too long"])
def test_an_out_that_cannot_be_written_fails_with_exit_2_before_any_work(small_bench, tmp_path, capsys, make_out):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = {"a file": blocker, "below a file": blocker / "run", "a name too long": tmp_path / ("x" * 300)}[make_out]
    assert _evolve(small_bench, out) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "run directory" not in err.split("error:")[0]  # refused before the run starts
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_fails_with_exit_2(small_bench, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert _evolve(small_bench, folder / "run") == 2
    finally:
        folder.chmod(0o755)


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_writers_write_null_for_nan_and_infinity(tmp_path, capsys):
    import numpy as np

    payload = {"kendall": {"a": float("nan"), "b": np.float32("inf"), "c": np.float64(0.5)}, "n": np.int64(3),
               "scores": [1.0, -float("inf")]}
    expected = {"kendall": {"a": None, "b": None, "c": 0.5}, "n": 3, "scores": [1.0, None]}
    write_json(tmp_path / "run.json", payload)
    assert _strict((tmp_path / "run.json").read_text()) == expected
    assert _strict(json_text(payload)) == expected
    from synth.cli._output import Output

    Output(json_mode=True).json(payload)
    assert _strict(capsys.readouterr().out) == expected
