"""Statistics computed by worker processes: the same cache entries as one process writes (to the
last bits that a different thread count may change), progress reported to the end, and cached
entries left alone."""

import pytest
import torch

from synth.grammar import load_grammar
from synth.probe import Probe
from synth.space import load_space
from synth.stats import load_statistics, statistics_for


@pytest.fixture
def small():
    space = load_space("vit-digits")
    archs = [{"embed_dim": 16, "depth": 1, "mlp_ratio": [2.0], "num_heads": [2]},
             {"embed_dim": 8, "depth": 2, "mlp_ratio": [1.0, 2.0], "num_heads": [1, 2]},
             {"embed_dim": 16, "depth": 2, "mlp_ratio": [1.0, 1.0], "num_heads": [1, 1]}]
    return space, archs, Probe(dataset="gaussian", batch_size=8, max_rows=32)


def values(record: dict) -> dict:
    return {name: (v if isinstance(v, torch.Tensor) else v.data).float() for name, v in record.items()}


def test_workers_write_the_entries_one_process_computes(tmp_path, small):
    space, archs, probe = small
    stats = tuple(sorted(load_grammar("vit").statistics))
    seen = []
    got = load_statistics(space, archs, probe, stats, cache=tmp_path, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(list((tmp_path / "stats").rglob("*.bin"))) == 3
    for record, arch in zip(got, archs):
        want = values(statistics_for(space, arch, probe, stats))
        have = values(record)
        assert set(have) == set(want)
        for name in want:
            torch.testing.assert_close(have[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_workers_leave_cached_entries_and_count_them_done(tmp_path, small):
    space, archs, probe = small
    stats = tuple(sorted(load_grammar("vit").statistics))
    load_statistics(space, archs[:1], probe, stats, cache=tmp_path)
    entry = next((tmp_path / "stats").rglob("*.bin"))
    before = entry.stat().st_mtime_ns
    seen = []
    load_statistics(space, archs, probe, stats, cache=tmp_path, workers=2, progress=lambda d, t: seen.append(d))
    assert entry.stat().st_mtime_ns == before
    assert seen[0] == 1 and seen[-1] == 3 and seen == sorted(seen)


def test_evolve_cli_computes_statistics_with_workers(small_bench, tmp_path, monkeypatch):
    from synth.cli import main

    monkeypatch.setenv("SYNTH_CACHE", str(tmp_path / "cache"))
    code = main(["-q", "evolve", "--bench", str(small_bench), "--workers", "2", "--population", "4", "--iterations", "3",
                 "--sample-size", "4", "--top-k", "2", "--out", str(tmp_path / "run")])
    assert code == 0
    assert (tmp_path / "run" / "run.json").is_file()
    assert len(list((tmp_path / "cache" / "stats").rglob("*.bin"))) == 24
