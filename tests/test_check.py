"""`synth bench check`: picks trained with a benchmark's own recipe land where the benchmark says."""

import json

import numpy as np
import pytest

from synth.bench import load_benchmark
from synth.bench.check import _benchmark_seed_accs, check_picks, placement, search_picks, seed_noise_placement
from synth.cli import main
from synth.errors import InputError, RunDirError
from synth.resources import resource_dir


def test_placement_by_hand():
    accs = [1.0, 2.0, 3.0, 4.0, float("nan")]
    assert placement(accs, 3.0) == {"percentile": 75.0, "rank": 2, "of": 4, "best": 4.0, "gap": 1.0}
    assert placement(accs, 5.0) == {"percentile": 100.0, "rank": 1, "of": 4, "best": 4.0, "gap": -1.0}
    assert placement(accs, 0.5)["percentile"] == 0.0 and placement(accs, 0.5)["rank"] == 5


@pytest.fixture
def one_seed_bench(tmp_path):
    """The embedded benchmark cut to its seed-0 accuracies, so a pick is trained once."""
    raw = json.loads((resource_dir("data") / "vit-digits.json").read_text())
    raw["seeds"] = raw["seeds"][:1]
    for row in raw["rows"]:
        row["seed_acc"] = {"digits": row["seed_acc"]["digits"][:1]}
        row["acc"] = {"digits": row["seed_acc"]["digits"][0]}
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(raw))
    return path


def fake_search(folder, arch, space="vit-digits", proxy="params", seed=0):
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps({
        "proxy": proxy, "space": {"name": space}, "config": {"seed": seed},
        "top": [{"rank": 1, "arch": arch, "score": 1.0, "params": 754.0}]}))
    return folder


def test_a_benchmark_architecture_picked_again_lands_where_the_benchmark_has_it(one_seed_bench, tmp_path):
    """Training is deterministic on one thread, so the smallest benchmark architecture, picked by a
    search and trained with the recipe, gets its stored accuracy and the placement that goes with it."""
    import torch

    bench = load_benchmark(str(one_seed_bench))
    i = min(range(len(bench)), key=lambda k: bench.meta.rows[k]["params"])
    stored = bench.targets["digits"][i]
    search = fake_search(tmp_path / "s", bench.archs[i])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (report,) = check_picks(bench, search_picks(search), tmp_path / "check.json", workers=1)
    finally:
        torch.set_num_threads(threads)
    assert report["acc"] == pytest.approx(stored, abs=1e-9) and report["in_benchmark"] == pytest.approx(stored)
    accs = bench.targets["digits"]
    assert report["percentile"] == pytest.approx(100 * np.mean(accs <= stored))
    assert report["rank"] == 1 + int(np.sum(accs > stored)) and report["gap"] == pytest.approx(accs.max() - stored)


def test_bad_searches_and_benchmarks_without_a_recipe(tmp_path, small_bench):
    bench = load_benchmark(str(small_bench))
    with pytest.raises(RunDirError, match="no search result"):
        search_picks(tmp_path / "nothing")
    other = fake_search(tmp_path / "o", {"edge_1_2": "none"}, space="nasbench201")
    with pytest.raises(InputError, match="nasbench201"):
        check_picks(bench, search_picks(other), tmp_path / "c.json")
    raw = json.loads(small_bench.read_text())
    del raw["recipe"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(raw))
    arch = raw["rows"][0]["arch"]
    with pytest.raises(InputError, match="records no training recipe"):
        check_picks(load_benchmark(str(bare)), search_picks(fake_search(tmp_path / "s", arch)), tmp_path / "c.json")


def test_cli_reports_placement_as_json(one_seed_bench, tmp_path, capsys):
    raw = json.loads(one_seed_bench.read_text())
    raw["recipe"]["epochs"] = 1  # a fast recipe: the placement is what is checked here
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(raw))
    arch = raw["rows"][0]["arch"]
    searches = [fake_search(tmp_path / f"s{i}", arch, proxy=p, seed=i) for i, p in enumerate(["params", "params", "run/x"])]
    argv = ["--json", "bench", "check", *map(str, searches), "--bench", str(fast), "--out", str(tmp_path / "c.json"), "--workers", "1"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["picks"]) == 3 and len({p["acc"] for p in report["picks"]}) == 1  # one architecture, trained once
    assert len(json.loads((tmp_path / "c.json").read_text())["rows"]) == 1
    assert report["by_proxy"]["params"]["picks"] == 2 and report["by_proxy"]["run/x"]["picks"] == 1
    accs = np.array([r["acc"]["digits"] for r in raw["rows"]])
    acc = report["picks"][0]["acc"]
    assert report["picks"][0]["percentile"] == pytest.approx(100 * np.mean(accs <= acc))
    assert report["picks"][0]["seed_noise"] is None  # one seed: nothing to resample
    assert main(["bench", "check", str(tmp_path / "missing")]) == 2


def test_seed_noise_placement_by_hand():
    """Benchmark A has seeds (0, 2), B (1, 1); a pick at (1, 1). A's resampled mean is 0, 1 or 2 with
    chances 1/4, 1/2, 1/4, so the pick (always 1) is at the 100th percentile unless A draws 2 (50th)."""
    bench = [[0.0, 2.0], [1.0, 1.0]]
    noise = seed_noise_placement(bench, [1.0, 1.0], draws=20000)
    assert noise["percentile_interval"] == [50.0, 100.0]
    assert noise["chance_at_or_above"] == pytest.approx(0.75, abs=0.015)
    # picked again, A shares its own resampled mean: it always ties itself, and beats B when A draws 1 or 2
    again = seed_noise_placement(bench, [0.0, 2.0], same_as=0, draws=20000)
    assert again["chance_at_or_above"] == pytest.approx(0.75, abs=0.015)
    # the embedded benchmark's seeds, in benchmark order: their means are its stored accuracies
    embedded = load_benchmark()
    seeds = _benchmark_seed_accs(embedded, "digits")
    assert np.mean(seeds, axis=1) == pytest.approx(embedded.targets["digits"])
    # without seed noise there is nothing to resample: the interval is the plain percentile
    still = seed_noise_placement([[1.0, 1.0], [3.0, 3.0], [2.0, float("nan")]], [2.0, 2.0])
    assert still["percentile_interval"] == pytest.approx([200 / 3, 200 / 3]) and still["chance_at_or_above"] == 0.0
    assert seed_noise_placement([[1.0], [2.0]], [1.5]) is None
