import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


SHARED_BENCHMARKS = ROOT.parent / "shared" / "benchmarks"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Statistics caches go to a per-session temp folder, never the user's cache; named
    benchmarks resolve through SYNTH_DATA, by default the shared folder beside the checkout."""
    monkeypatch.setenv("SYNTH_CACHE", str(tmp_path_factory.getbasetemp() / "synth-cache"))
    if not os.environ.get("SYNTH_DATA") and SHARED_BENCHMARKS.is_dir():
        monkeypatch.setenv("SYNTH_DATA", str(SHARED_BENCHMARKS))


@pytest.fixture(scope="session")
def small_bench(tmp_path_factory):
    """The first 24 rows of the embedded benchmark as a benchmark file (fast tests)."""
    import json

    from synth.resources import resource_dir

    raw = json.loads((resource_dir("data") / "vit-digits.json").read_text())
    raw["rows"] = raw["rows"][:24]
    path = tmp_path_factory.mktemp("bench") / "small.json"
    path.write_text(json.dumps(raw))
    return path
