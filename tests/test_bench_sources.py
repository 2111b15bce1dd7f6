"""Named benchmark sources (ViT-Bench-101): resolution, checksums, row files, tasks, bad input."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch

import synth.bench.sources as sources
from synth.bench import load_benchmark
from synth.errors import BenchError
from tests.conftest import SHARED_BENCHMARKS

VB = SHARED_BENCHMARKS / "vit-bench-101"
pytestmark = pytest.mark.skipif(not VB.is_dir(), reason=f"{VB} is not present")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(url, target, timeout=10.0):
        raise OSError("no network in tests")

    monkeypatch.setattr(sources, "download", refuse)


def test_vit_bench_101_loads_both_files_with_default_tasks(monkeypatch, no_network):
    monkeypatch.setenv("SYNTH_DATA", str(SHARED_BENCHMARKS))
    bench = load_benchmark("vit-bench-101")
    first = torch.load(VB / "gt_autoformer.pth", weights_only=True)
    second = torch.load(VB / "gt_autoformer_2.pth", weights_only=True)
    assert len(bench) == len(first) + len(second) == 200
    assert bench.space == "autoformer-tiny"
    assert bench.tasks == ["c100_kd", "flower_kd", "chaoyang_kd"]
    assert bench.archs[0]["embed_dim"] == first[0]["arch"]["hidden_dim"] and "hidden_dim" not in bench.archs[0]
    assert bench.targets["c100_kd"][0] == pytest.approx(first[0]["c100_kd_acc"]) == pytest.approx(76.06)
    assert bench.targets["flower_kd"][9] == pytest.approx(48.5607)  # the known outlier, kept
    assert bench.targets["chaoyang_kd"][150] == pytest.approx(second[50]["chaoyang_kd_acc"])
    keys = [json.dumps(a, sort_keys=True) for a in bench.archs]
    assert len(set(keys[:100]) & set(keys[100:])) == 0
    assert bench.meta.provenance[150] == {"file": str(VB / "gt_autoformer_2.pth"), "row": 50}


def test_tasks_selection_missing_and_flags(monkeypatch, no_network):
    monkeypatch.setenv("SYNTH_DATA", str(SHARED_BENCHMARKS))
    bench = load_benchmark("vit-bench-101:autoformer", ["imagenet_super", "flower_base"])
    assert bench.meta.missing == {"imagenet_super": 0, "flower_base": 100}  # None in gt_autoformer_2.pth
    assert np.isnan(bench.targets["flower_base"][100:]).all()
    assert "supernet" in bench.meta.flags["imagenet_super"]
    with pytest.raises(BenchError, match="c100_kd"):
        load_benchmark("vit-bench-101", ["c100_kdd"])


def test_checksum_mismatch_is_reported(tmp_path, monkeypatch, no_network):
    folder = tmp_path / "data" / "vit-bench-101"
    folder.mkdir(parents=True)
    for name in ("gt_autoformer.pth", "gt_autoformer_2.pth"):
        shutil.copy(VB / name, folder / name)
    blob = bytearray((folder / "gt_autoformer.pth").read_bytes())
    blob[100] ^= 0xFF
    (folder / "gt_autoformer.pth").write_bytes(bytes(blob))
    monkeypatch.setenv("SYNTH_DATA", str(tmp_path / "data"))
    with pytest.raises(BenchError, match="sha256"):
        load_benchmark("vit-bench-101")


def test_resolution_order_and_clear_error(tmp_path, monkeypatch, no_network):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNTH_CACHE", str(cache))
    monkeypatch.delenv("SYNTH_DATA", raising=False)
    with pytest.raises(BenchError) as info:
        load_benchmark("vit-bench-101")
    message = str(info.value)
    assert str(cache / "benchmarks" / "vit-bench-101" / "gt_autoformer.pth") in message
    assert "raw.githubusercontent.com" in message and "SYNTH_DATA" in message
    (cache / "benchmarks" / "vit-bench-101").mkdir(parents=True)
    for name in ("gt_autoformer.pth", "gt_autoformer_2.pth"):
        shutil.copy(VB / name, cache / "benchmarks" / "vit-bench-101" / name)
    assert len(load_benchmark("vit-bench-101")) == 200  # from the cache


def test_truncated_pth_is_a_clear_error(tmp_path):
    data = (VB / "gt_autoformer.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError, match="truncated"):
        load_benchmark(str(cut))


def row(acc):
    return {"arch": {"hidden_dim": 192, "depth": 12, "mlp_ratio": [4.0] * 12, "num_heads": [3] * 12}, **acc}


def test_row_files_in_three_formats_handle_missing_values(tmp_path):
    rows = [row({"c100_kd_acc": 70.0, "flower_kd_acc": None}), row({"c100_kd_acc": 71.5, "flower_kd_acc": 60.0})]
    torch.save(rows, tmp_path / "r.pth")
    (tmp_path / "r.json").write_text(json.dumps(rows))
    with open(tmp_path / "r.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["arch", "c100_kd_acc", "flower_kd_acc"])
        writer.writeheader()
        for r in rows:
            writer.writerow({"arch": json.dumps(r["arch"]), "c100_kd_acc": r["c100_kd_acc"], "flower_kd_acc": r["flower_kd_acc"] or ""})
    for name in ("r.pth", "r.json", "r.csv"):
        bench = load_benchmark(str(tmp_path / name), ["c100_kd", "flower_kd"], rankable=False)  # two rows: parsing only
        np.testing.assert_allclose(bench.targets["c100_kd"], [70.0, 71.5])
        assert np.isnan(bench.targets["flower_kd"][0]) and bench.targets["flower_kd"][1] == 60.0
        assert bench.meta.missing == {"c100_kd": 0, "flower_kd": 1}
        assert bench.space == "autoformer-tiny"


def test_non_numeric_value_names_row_and_column(tmp_path):
    torch.save([row({"c100_kd_acc": 70.0}), row({"c100_kd_acc": "bad"})], tmp_path / "r.pth")
    with pytest.raises(BenchError, match=r"row 1, column 'c100_kd_acc'"):
        load_benchmark(str(tmp_path / "r.pth"), ["c100_kd"])
