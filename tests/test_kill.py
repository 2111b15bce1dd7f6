"""`synth evolve` killed with SIGKILL at several moments, then resumed, ends with exactly the result of
an uninterrupted run with the same seed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


ARGS = ["evolve", "--grammar", "vit", "--population", "6", "--iterations", "10", "--sample-size", "4",
        "--top-k", "2", "--seed", "3", "--log-every", "1"]


def synth(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "synth", "--quiet", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> bool:
    """SIGKILL `process` once `ready()` holds (polled every 20 ms); False if it ended first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.02)
    process.wait()
    return False


def iterations_done(out):
    def ready():
        try:
            return json.loads((out / "checkpoint.json").read_text())["state"]["iteration"]
        except (OSError, ValueError, KeyError):
            return -1
    return ready


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment of every run here: its own statistics cache, shared by the runs of this module."""
    return {**os.environ, "SYNTH_CACHE": str(tmp_path_factory.mktemp("kill-cache"))}


@pytest.fixture(scope="module")
def uninterrupted(small_bench, tmp_path_factory, env):
    """The uninterrupted run, as a process of its own like the killed and resumed ones (a test process's
    thread count and other state must not differ between the runs compared)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    process = synth(env, *ARGS, "--bench", str(small_bench), "--out", str(out))
    assert process.wait(timeout=300) == 0, process.stderr.read()
    return json.loads((out / "run.json").read_text())


@pytest.mark.parametrize("point", ["statistics", "first population", "iteration 4", "iteration 8"])
def test_sigkill_then_resume_gives_the_uninterrupted_result(small_bench, tmp_path, env, uninterrupted, point):
    out = tmp_path / "killed"
    process = synth(env, *ARGS, "--bench", str(small_bench), "--out", str(out))
    done = iterations_done(out)
    ready = {
        "statistics": lambda: (out / ".synth.lock").exists(),  # killed while measuring statistics
        "first population": lambda: done() >= 0,
        "iteration 4": lambda: done() >= 4,
        "iteration 8": lambda: done() >= 8,
    }[point]
    killed = kill_when(process, ready)
    assert killed, f"the run ended before the kill point ({process.stderr.read()})"
    # with a checkpoint, resume; killed before the first one, the same command again (nothing to lose)
    again = synth(env, "evolve", "--resume", str(out)) if (out / "checkpoint.json").exists() else synth(
        env, *ARGS, "--bench", str(small_bench), "--out", str(out))
    assert again.wait(timeout=300) == 0, again.stderr.read()
    a, b = uninterrupted, json.loads((out / "run.json").read_text())
    assert (b["formula"], b["fitness"], b["history"]) == (a["formula"], a["fitness"], a["history"])
    assert b["test"] == a["test"]
