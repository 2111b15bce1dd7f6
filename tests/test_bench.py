"""Benchmark files: loading, bad input, the split, and a build that resumes after a kill."""

import json
import math

import numpy as np
import pytest

from synth.bench import FORMAT, build_benchmark, load_benchmark, seed_noise_summary, split_indices
from synth.errors import BenchError
from synth.space import arch_key, load_space
from synth.train import Recipe


def write_bench(path, rows, tasks=("a", "b")):
    path.write_text(json.dumps({"format": FORMAT, "space": "vit-digits", "tasks": list(tasks), "rows": rows}))
    return path


ARCH = {"embed_dim": 8, "depth": 1, "mlp_ratio": [1.0], "num_heads": [1]}


def test_missing_values_become_nan_for_that_task_only(tmp_path):
    rows = [{"arch": ARCH, "acc": {"a": 50.0, "b": None}}, {"arch": ARCH, "acc": {"a": 60.0, "b": 1.0}}, {"arch": ARCH, "acc": {"a": 70.0}},
            {"arch": ARCH, "acc": {"a": 80.0, "b": 2.0}}, {"arch": ARCH, "acc": {"a": 90.0, "b": 3.0}}]
    bench = load_benchmark(str(write_bench(tmp_path / "b.json", rows)))
    np.testing.assert_array_equal(bench.targets["a"], [50.0, 60.0, 70.0, 80.0, 90.0])
    assert np.isnan(bench.targets["b"][[0, 2]]).all() and bench.targets["b"][1] == 1.0
    assert bench.meta.missing == {"a": 0, "b": 2}


def test_all_missing_or_non_numeric_values_are_errors(tmp_path):
    rows = [{"arch": ARCH, "acc": {"a": 50.0}}, {"arch": ARCH, "acc": {"a": 60.0}}]
    with pytest.raises(BenchError, match="'b' has no values"):
        load_benchmark(str(write_bench(tmp_path / "b.json", rows)))
    rows = [{"arch": ARCH, "acc": {"a": "n/a", "b": 1.0}}]
    with pytest.raises(BenchError, match=r"rows\[0\]\.acc\.a"):
        load_benchmark(str(write_bench(tmp_path / "c.json", rows)))


def test_truncated_file_is_a_clear_error(tmp_path):
    path = write_bench(tmp_path / "b.json", [{"arch": ARCH, "acc": {"a": 1.0, "b": 2.0}}])
    path.write_text(path.read_text()[:-20])
    with pytest.raises(BenchError, match="truncated"):
        load_benchmark(str(path))


def test_wrong_format_and_missing_keys(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(BenchError, match="format"):
        load_benchmark(str(tmp_path / "x.json"))
    with pytest.raises(BenchError, match=r"rows\[0\]"):
        load_benchmark(str(write_bench(tmp_path / "y.json", [{"acc": {}}])))
    with pytest.raises(BenchError, match="not found"):
        load_benchmark(str(tmp_path / "nope.json"))


def test_split_is_seeded_disjoint_and_complete():
    search, test = split_indices(50, seed=3)
    assert len(search) == 30 and len(test) == 20
    assert sorted(search + test) == list(range(50))
    assert (search, test) == split_indices(50, seed=3)
    assert search != split_indices(50, seed=4)[0]


@pytest.mark.parametrize("name, rows", [(None, 120), ("pit-digits", 60)])
def test_embedded_benchmarks_carry_signal(name, rows):
    bench = load_benchmark(name)
    assert len(bench) == rows
    space = load_space(bench.space)
    assert all(space.validate(arch) == arch for arch in bench.archs)
    assert len(bench.meta.seeds) >= 3
    assert {"epochs", "lr", "batch_size", "dataset"} <= set(bench.meta.recipe)
    for row in bench.meta.rows:
        assert len(row["seed_acc"]["digits"]) == len(bench.meta.seeds)
        assert row["acc"]["digits"] == pytest.approx(np.mean(row["seed_acc"]["digits"]))
    noise = seed_noise_summary({"tasks": bench.tasks, "rows": bench.meta.rows})["digits"]
    assert noise["arch_std"] > 3 * noise["seed_std"]


def test_killed_build_resumes_without_retraining(tmp_path, monkeypatch):
    space = load_space("vit-digits")
    archs = space.sample_distinct(2, seed=0)
    recipe = Recipe(epochs=1)
    out = tmp_path / "bench.json"
    import synth.bench.build as bench_module

    # a previous build with the same recipe finished (arch 0, seed 0) and was killed mid-way through the next line
    partial = out.with_name(out.name + ".partial.jsonl")
    record = {"key": arch_key(archs[0]), "seed": 0, "acc": 12.5, "seconds": 1.0, "device": "cpu", **bench_module._provenance(recipe, {"source": "digits"})}
    partial.write_text(json.dumps(record) + "\n" + '{"key": "cut')
    trained = []

    real_job = bench_module._train_job

    def spy(job):
        trained.append((arch_key(job[1]), job[2]))
        return real_job(job)

    monkeypatch.setattr(bench_module, "_train_job", spy)
    result = build_benchmark(space, archs, [0], recipe, out, workers=1)
    assert trained == [(arch_key(archs[1]), 0)]
    assert result["rows"][0]["seed_acc"]["digits"] == [12.5]  # kept, not retrained
    assert 0 <= result["rows"][1]["acc"]["digits"] <= 100
    assert json.loads(out.read_text())["rows"][1]["arch"] == archs[1]
    assert not math.isnan(json.loads(out.read_text())["rows"][1]["acc"]["digits"])  # 2 rows: too few to load as a benchmark
    lines = partial.read_text().splitlines()
    assert lines[1] == '{"key": "cut' and json.loads(lines[2])["key"] == arch_key(archs[1])  # the cut line did not swallow the new record


@pytest.mark.parametrize("name", [None, "pit-digits"])
def test_embedded_benchmark_reproduces_from_its_recipe(name):
    """Retraining the smallest architecture with seed 0 and the stored recipe gives the stored accuracy,
    to within the seed-to-seed spread the benchmark records for that architecture. On the CPU that
    built a benchmark the result is bitwise equal; another CPU's kernels round differently, and 25
    epochs can amplify that: on an AMD EPYC (AVX-512) machine the smallest PiT retrains to 53.99
    against the stored 52.88 (seeds 52.88 / 52.32 / 53.62), while its seed 1 and the smallest ViT
    reproduce exactly. Another data split, learning rate or epoch count lands outside that range
    (48.05, 37.66 and 49.35 with split seed 1, lr 0.001 and 20 epochs); weight decay 0 does not."""
    import torch

    from synth.train import train_and_evaluate

    bench = load_benchmark(name)
    rows = bench.meta.rows
    i = min(range(len(rows)), key=lambda k: rows[k]["params"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the build's workers ran
    try:
        acc = train_and_evaluate(load_space(bench.space), rows[i]["arch"], bench.meta.seeds[0], Recipe(**bench.meta.recipe))
    finally:
        torch.set_num_threads(threads)
    seeds = rows[i]["seed_acc"]["digits"]
    assert acc == pytest.approx(seeds[0], abs=max(seeds) - min(seeds))


def test_an_unknown_benchmark_name_lists_the_embedded_ones():
    with pytest.raises(BenchError, match="embedded: vit-digits, pit-digits"):
        load_benchmark("pit-digit")


def test_named_sources_are_one_registry():
    """vit-bench-101 and NAS-Bench-201's two sources share one Registry: a name cannot be taken twice,
    an unknown name gets the close ones, and every name a user may write is listed."""
    import dataclasses

    from synth.bench.sources import SOURCES, source_names
    from synth.registry import DuplicateName

    assert SOURCES.names() == ["nasbench201", "nasbench201-zc", "vit-bench-101"]
    assert {"vit-bench-101", "nasbench201:cifar10", "nasbench201-zc:ImageNet16-120"} <= set(source_names())
    with pytest.raises(DuplicateName):
        SOURCES.register("vit-bench-101", dataclasses.replace(SOURCES.get("vit-bench-101"), folder="elsewhere"))
    with pytest.raises(BenchError, match="did you mean `vit-bench-101`"):
        SOURCES.get("vit-bench-11")


def test_meta_is_typed_and_round_trips_through_json():
    """Benchmark.meta's fields are attributes (recipe, seeds, rows, missing); a file's other keys stay
    in `extra`; to_dict/from_dict give the same record back."""
    from synth.bench import Benchmark
    from synth.rundir import json_text

    bench = load_benchmark()
    assert bench.meta.seeds == [0, 1, 2] and bench.meta.recipe["dataset"] == "digits" and len(bench.meta.rows) == len(bench)
    assert bench.meta.extra["format"] == FORMAT and bench.meta.missing == {"digits": 0}
    back = Benchmark.from_dict(json.loads(json_text(bench.to_dict())))
    assert back.meta == bench.meta and back.archs == bench.archs


def test_a_run_records_embedded_source_loads_the_embedded_benchmark():
    """A run on the embedded default records its source as 'embedded:vit-digits' (synth.run); scripts
    that reload a run's benchmark from its record pass that text back."""
    from synth.bench import load_benchmark

    default, named = load_benchmark(), load_benchmark("embedded:vit-digits")
    assert named.name == default.name and named.archs == default.archs
    assert all((named.targets[t] == default.targets[t]).all() for t in default.tasks)
    assert load_benchmark("embedded:pit-digits").archs == load_benchmark("pit-digits").archs
