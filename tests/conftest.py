import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


SHARED_BENCHMARKS = ROOT.parent / "shared" / "benchmarks"


@pytest.fixture
def benchmark_script():
    """A loader of benchmarks/NAME.py as a module (the scripts are not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


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


@pytest.fixture(scope="session")
def small_vit(small_bench):
    """(grammar, benchmark, statistics, search rows) of `small_bench` under the vit grammar and the
    default probe: what tests that score programs by hand start from."""
    from synth.bench import load_benchmark, split_indices
    from synth.grammar import load_grammar
    from synth.probe import Probe
    from synth.space import load_space
    from synth.stats import load_statistics

    grammar = load_grammar("vit")
    bench = load_benchmark(str(small_bench))
    stats = load_statistics(load_space(bench.space), bench.archs, Probe(), grammar.statistics)
    search, _ = split_indices(len(bench), 0)
    return grammar, bench, stats, search
