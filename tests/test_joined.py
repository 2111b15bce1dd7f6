"""Evolving on several benchmarks at once (`--bench a+b`): rows concatenated, each task NaN outside
its own benchmark, each benchmark split as it would be alone, and a fitness that is the mean of the
benchmarks' own correlations (checked against scipy on each benchmark separately)."""

import json

import numpy as np
import pytest
import scipy.stats as sps

from synth.bench import load_benchmark, split_indices
from synth.bench.joined import JoinedBenchmark, benchmark_sources
from synth.errors import BenchError
from synth.evolve import EvolveConfig
from synth.probe import Probe
from synth.run import run_evolve
from tests.conftest import SHARED_BENCHMARKS


def test_sources_split_on_plus_unless_a_file_is_named(tmp_path):
    assert benchmark_sources(None) == [None]
    assert benchmark_sources("vit-digits") == ["vit-digits"]
    assert benchmark_sources("vit-digits+pit-digits") == ["vit-digits", "pit-digits"]
    odd = tmp_path / "a+b.json"
    odd.write_text("{}")
    assert benchmark_sources(str(odd)) == [str(odd)]
    with pytest.raises(BenchError, match="empty benchmark name"):
        benchmark_sources("vit-digits++pit-digits")


def test_joined_rows_tasks_and_splits():
    joined = JoinedBenchmark("vit-digits+pit-digits")
    vit, pit = load_benchmark("vit-digits"), load_benchmark("pit-digits")
    assert len(joined) == len(vit) + len(pit)
    assert joined.tasks == ["vit-digits:digits", "pit-digits:digits"]
    a, b = joined.targets["vit-digits:digits"], joined.targets["pit-digits:digits"]
    assert np.array_equal(a[: len(vit)], vit.targets["digits"]) and np.isnan(a[len(vit):]).all()
    assert np.array_equal(b[len(vit):], pit.targets["digits"]) and np.isnan(b[: len(vit)]).all()
    search, test = joined.split(3, 0.6)
    vs, vt = split_indices(len(vit), 3, 0.6)
    ps, pt = split_indices(len(pit), 3, 0.6)
    assert search == vs + [len(vit) + i for i in ps]
    assert test == vt + [len(vit) + i for i in pt]
    assert joined.probe({}) == Probe()


def test_one_benchmark_is_itself():
    joined, alone = JoinedBenchmark(None), load_benchmark(None)
    assert joined.tasks == alone.tasks and len(joined) == len(alone)
    assert joined.split(0, 0.6) == split_indices(len(alone), 0, 0.6)


def test_tasks_apply_to_every_benchmark():
    joined = JoinedBenchmark("vit-digits+pit-digits", ["digits"])
    assert joined.tasks == ["vit-digits:digits", "pit-digits:digits"]
    with pytest.raises(BenchError, match="nope"):
        JoinedBenchmark("vit-digits+pit-digits", ["nope"])


@pytest.mark.skipif(not (SHARED_BENCHMARKS / "nasbench201-full").is_dir(), reason="no NAS-Bench-201 table")
def test_an_architecture_in_two_samples_is_searched_only_where_none_tests_it():
    """Seeded draws are nested, so `@30,largest=0.5` (the larger half of the pool `@60`) lies inside
    `@60`: a shared cell that either split tests must be in no search row."""
    source = "nasbench201:cifar10@60+nasbench201:cifar10@30,largest=0.5"
    joined = JoinedBenchmark(source, ["cifar10", "ImageNet16-120"])
    whole, big = load_benchmark("nasbench201:cifar10@60"), load_benchmark("nasbench201:cifar10@30,largest=0.5")
    assert set(big.meta.arch_ids) < set(whole.meta.arch_ids) and len(joined.tasks) == 4
    cells = whole.meta.arch_ids + big.meta.arch_ids
    ws, wt = split_indices(60, 4, 0.6)
    bs, bt = split_indices(30, 4, 0.6)
    tested = {whole.meta.arch_ids[i] for i in wt} | {big.meta.arch_ids[i] for i in bt}
    search, test = joined.split(4, 0.6)
    assert test == wt + [60 + i for i in bt]
    assert search == [r for r in ws + [60 + i for i in bs] if cells[r] not in tested]
    assert len(search) < len(ws) + len(bs) and not {cells[r] for r in search} & {cells[r] for r in test}


def test_differing_probes_are_refused(small_bench, tmp_path):
    raw = json.loads(small_bench.read_text())
    raw["recipe"].pop("dataset")  # no packaged data: its default probe is Gaussian noise
    noisy = tmp_path / "noisy.json"
    noisy.write_text(json.dumps(raw))
    joined = JoinedBenchmark(f"pit-digits+{noisy}")
    with pytest.raises(BenchError, match="probes differ"):
        joined.probe({})
    assert joined.probe({"dataset": "digits", "batch_size": 64, "max_rows": 2048}).dataset == "digits"


def test_joined_run_fitness_is_the_mean_of_each_benchmarks_kendall(tmp_path):
    config = EvolveConfig(population=6, iterations=4, sample_size=4, top_k=2, seed=0)
    record = run_evolve("vit", "vit-digits+pit-digits", tmp_path / "run", config)
    assert record["bench"]["name"] == "vit-digits+pit-digits"
    assert set(record["test"]["kendall"]) == {"vit-digits:digits", "pit-digits:digits"}
    scores = np.array([np.nan if s is None else s for s in record["scores"]], dtype=float)
    vit, pit = load_benchmark("vit-digits"), load_benchmark("pit-digits")
    vs, _ = split_indices(len(vit), 0, 0.6)
    ps, _ = split_indices(len(pit), 0, 0.6)
    want = np.mean([sps.kendalltau(scores[vs], vit.targets["digits"][vs]).statistic,
                    sps.kendalltau(scores[[len(vit) + i for i in ps]], pit.targets["digits"][ps]).statistic])
    assert record["fitness"] == pytest.approx(want, abs=1e-12)


@pytest.mark.skipif(not (SHARED_BENCHMARKS / "nasbench201-full").is_dir(), reason="no NAS-Bench-201 table")
def test_held_out_cells_leave_out_every_joined_sample(benchmark_script):
    script = benchmark_script("nb201_heldout")
    parts = ["nasbench201:cifar10@60", "nasbench201:cifar10@30,seed=1,largest=0.5"]
    records = [{"bench": {"source": "+".join(parts)}}]
    cells, excluded = script.held_out_cells(records, 500, seed=1)
    seen = set().union(*(load_benchmark(p).meta.arch_ids for p in parts))
    assert excluded == len(seen) == 90 - len(set(load_benchmark(parts[0]).meta.arch_ids) & set(load_benchmark(parts[1]).meta.arch_ids))
    assert len(cells) == 500 and not seen & set(cells.meta.arch_ids)
