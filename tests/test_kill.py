"""`synth evolve`, `synth search`, `synth zoo` and `synth bench build` killed with SIGKILL at several
moments, then resumed, end with exactly the result of an uninterrupted run with the same settings.

Every run is a process of its own (the uninterrupted one too), so thread counts and other process
state cannot differ between the runs compared."""

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
    """`synth --quiet ARGS` started in the background."""
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


# ---------------------------------------------------------------- synth search

SEARCH = ["search", "--proxy", "grad_norm", "--space", "vit-digits", "--population", "8", "--iterations", "6",
          "--parents", "4", "--mutations", "5", "--crossovers", "5", "--seed", "2", "--probe-batch", "16"]


def search_result(out) -> dict:
    """What a search decides (its picks, history and memo size), without timings and versions."""
    raw = json.loads((out / "search.json").read_text())
    return {key: raw[key] for key in ("top", "history", "evaluated", "tied_at_top", "failed", "errors")}


def search_progress(out):
    """(iterations checkpointed, architectures checkpointed as scored, memo lines written): -1s before any."""
    def progress():
        try:
            state = json.loads((out / "checkpoint.json").read_text())["state"]
            lines = (out / "evaluated.jsonl").read_text().count("\n")
            return state["iteration"], len(state.get("scored", {})), lines
        except (OSError, ValueError, KeyError):
            return -1, -1, -1
    return progress


@pytest.fixture(scope="module")
def straight_search(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("straight-search") / "s"
    process = synth(env, *SEARCH, "--out", str(out))
    assert process.wait(timeout=300) == 0, process.stderr.read()
    return search_result(out)


@pytest.mark.parametrize("point", ["first population", "between checkpoints", "iteration 3"])
def test_sigkill_then_resume_a_search(tmp_path, env, straight_search, point):
    out = tmp_path / "s"
    process = synth(env, *SEARCH, "--out", str(out))
    progress = search_progress(out)
    ready = {
        "first population": lambda: progress()[0] >= 0 and progress()[1] > 0,
        "between checkpoints": lambda: progress()[0] >= 1 and progress()[2] > progress()[1],  # records after the last checkpoint
        "iteration 3": lambda: progress()[0] >= 3,
    }[point]
    assert kill_when(process, ready), f"the search ended before the kill point ({process.stderr.read()})"
    again = synth(env, "search", "--resume", str(out))
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert search_result(out) == straight_search


# ---------------------------------------------------------------- synth zoo


def zoo_args(bench, report) -> list[str]:
    return ["zoo", "--bench", str(bench), "--proxies", "grad_norm,synflow,nwot", "--probe-batch", "16", "--json", str(report)]


def zoo_result(report) -> dict:
    """Every proxy's scores and correlations (not its timings)."""
    raw = json.loads(report.read_text())
    return {name: {key: entry[key] for key in ("scores", "kendall", "spearman", "pearson", "errors")}
            for name, entry in raw["proxies"].items()}


@pytest.mark.parametrize("scored", [1, 12])
def test_sigkill_then_rerun_a_zoo(small_bench, tmp_path, scored):
    """The zoo resumes by running the same command again: each architecture's scores are cached as they
    are made, so only the architecture being scored at the kill is scored again."""
    straight_env = {**os.environ, "SYNTH_CACHE": str(tmp_path / "cache-a")}
    assert synth(straight_env, *zoo_args(small_bench, tmp_path / "a.json")).wait(timeout=300) == 0
    env = {**os.environ, "SYNTH_CACHE": str(tmp_path / "cache-b")}
    process = synth(env, *zoo_args(small_bench, tmp_path / "b.json"))
    cached = lambda: len(list((tmp_path / "cache-b" / "zoo").rglob("*.json")))  # noqa: E731
    assert kill_when(process, lambda: cached() >= scored), f"the zoo ended before the kill ({process.stderr.read()})"
    assert not (tmp_path / "b.json").exists()
    again = synth(env, *zoo_args(small_bench, tmp_path / "b.json"))
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert zoo_result(tmp_path / "b.json") == zoo_result(tmp_path / "a.json")


# ---------------------------------------------------------------- synth bench build

BUILD_ARCHS = [
    {"embed_dim": 8, "depth": 1, "mlp_ratio": [1.0], "num_heads": [1]},
    {"embed_dim": 8, "depth": 1, "mlp_ratio": [2.0], "num_heads": [1]},
    {"embed_dim": 16, "depth": 1, "mlp_ratio": [1.0], "num_heads": [2]},
    {"embed_dim": 8, "depth": 2, "mlp_ratio": [1.0, 1.0], "num_heads": [1, 1]},
]


def build_args(tmp_path, out) -> list[str]:
    archs = tmp_path / "archs.json"
    if not archs.exists():
        archs.write_text(json.dumps(BUILD_ARCHS))
    return ["bench", "build", "--arch-file", str(archs), "--epochs", "1", "--seeds", "0,1", "--workers", "1", "--out", str(out)]


def build_result(out) -> dict:
    raw = json.loads(out.read_text())
    return {"rows": [{key: row[key] for key in ("arch", "params", "acc", "seed_acc")} for row in raw["rows"]],
            **{key: raw[key] for key in ("tasks", "recipe", "dataset", "seeds", "sampling")}}


def finished_records(partial) -> int:
    try:
        return sum(1 for line in partial.read_bytes().split(b"\n")[:-1] if line.strip())
    except OSError:
        return 0


@pytest.mark.parametrize("records, how", [(1, "same command"), (5, "--resume")])
def test_sigkill_then_resume_a_bench_build(tmp_path, records, how):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert synth(env, *build_args(tmp_path, tmp_path / "a.json")).wait(timeout=300) == 0
    out = tmp_path / "b.json"
    process = synth(env, *build_args(tmp_path, out))
    partial = out.with_name(out.name + ".partial.jsonl")
    assert kill_when(process, lambda: finished_records(partial) >= records), f"the build ended first ({process.stderr.read()})"
    assert not out.exists()
    again = synth(env, *build_args(tmp_path, out)) if how == "same command" else synth(env, "bench", "build", "--resume", str(out))
    assert again.wait(timeout=300) == 0, again.stderr.read()
    result, straight = build_result(out), build_result(tmp_path / "a.json")
    straight["sampling"]["arch_file"] = result["sampling"]["arch_file"]
    assert result == straight
