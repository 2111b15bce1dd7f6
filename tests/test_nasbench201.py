"""NAS-Bench-201: the space and network (checked against NASLib's stored params and flops), NASLib keys,
and the nasbench201-zc benchmark source."""

import dataclasses
import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

import synth.bench.nasbench201 as nasbench201
import synth.bench.sources as sources
from synth.bench import benchmark_space, load_benchmark
from synth.errors import BenchError, SpaceError
from synth.models import NB201_EDGES, NB201_OPS, nasbench201_arch, nasbench201_key, nasbench201_string
from synth.space import count_params, load_space
from tests.conftest import SHARED_BENCHMARKS

ZC = SHARED_BENCHMARKS / "nasbench201-zc" / "zc_nasbench201.json"
needs_zc = pytest.mark.skipif(not ZC.is_file(), reason=f"{ZC} is not present")
DATASETS = {"cifar10": (10, 32, 725), "cifar100": (100, 32, 725), "ImageNet16-120": (120, 16, 724)}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, target, timeout=10.0):
        raise OSError("no network in tests")

    monkeypatch.setattr(sources, "download", refuse)


@pytest.fixture(scope="module")
def zc_raw():
    return json.loads(ZC.read_text())


def _meta_build(space, arch):
    with torch.device("meta"):
        return space.build(arch)


def _naslib_flops(model, img_size):
    """FLOPs by the convention of NASLib's model_stats (batch 1): conv and linear multiply-adds (no bias),
    2 per element for affine BatchNorm, 1 per element for ReLU, kernel area per pooled output,
    and C*(H+1)*(W+1) for the global pool."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, nn.BatchNorm2d):
            total += x.numel() * (2 if module.affine else 1)
        elif isinstance(module, nn.ReLU):
            total += x.numel()
        elif isinstance(module, nn.AvgPool2d):
            total += output.numel() * module.kernel_size**2
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            total += x.shape[1] * (x.shape[2] + 1) * (x.shape[3] + 1)
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(torch.zeros(1, 3, img_size, img_size, device="meta"))
    for handle in handles:
        handle.remove()
    return total


# ---------------------------------------------------------------- space and keys


def test_space_format_size_and_encoding():
    space = load_space("nasbench201")
    assert space.builder == "nasbench201" and space.size() == 5**6 == 15625
    assert space.fixed == {"num_classes": 10, "C": 16, "N": 5, "in_chans": 3, "img_size": 32}
    assert list(space.choices) == [f"edge_{i}_{j}" for i, j in NB201_EDGES]
    archs = list(space.enumerate())
    assert len(archs) == len({nasbench201_key(a) for a in archs}) == 15625
    sampled = space.sample_distinct(20, seed=0)
    assert all(space.validate(a) is a for a in sampled)
    # the encoding is NASLib's op-index tuple
    arch = nasbench201_arch("(0, 2, 3, 2, 3, 1)")
    assert space.encode(arch) == [0, 2, 3, 2, 3, 1] and space.decode([0, 2, 3, 2, 3, 1]) == arch
    assert arch["edge_1_2"] == "skip_connect" and arch["edge_1_3"] == "nor_conv_3x3"
    assert arch["edge_1_4"] == "nor_conv_1x1" and arch["edge_3_4"] == "none"


def test_naslib_key_round_trip():
    space = load_space("nasbench201")
    for arch in space.enumerate():
        key = nasbench201_key(arch)
        assert key == str(tuple(space.encode(arch)))
        assert nasbench201_arch(key) == arch
    assert nasbench201_key(nasbench201_arch((4, 0, 4, 1, 2, 0))) == "(4, 0, 4, 1, 2, 0)"
    assert nasbench201_string(nasbench201_arch("(0, 2, 3, 2, 3, 1)")) == (
        "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|"
    )
    for bad in ("(0, 2, 3)", "(0, 2, 3, 2, 3, 5)", "0, 2, 3, 2, 3, 1", "(a, 2, 3, 2, 3, 1)"):
        with pytest.raises(SpaceError, match="key"):
            nasbench201_arch(bad)
    with pytest.raises(SpaceError, match="nasbench201"):
        nasbench201_key({"edge_1_2": "conv"})


# ---------------------------------------------------------------- the network


def test_param_count_by_hand():
    """Cells of skip/none/pool edges hold no parameters, so every such network has the fixed part only."""
    c, classes = 16, 10
    stem = 3 * c * 9 + 2 * c
    reductions = sum(ci * co * 9 + 2 * co + co * co * 9 + 2 * co + ci * co for ci, co in ((c, 2 * c), (2 * c, 4 * c)))
    head = 2 * 4 * c + 4 * c * classes + classes
    fixed = stem + reductions + head
    assert fixed == 73306
    space = load_space("nasbench201")
    for op in ("none", "skip_connect", "avg_pool_3x3"):
        arch = {name: op for name in space.choices}
        assert count_params(_meta_build(space, arch)) == fixed
    # one 3x3 conv edge: 9C^2 + 2C (affine BN) per cell, N = 5 cells per stage
    arch = nasbench201_arch("(1, 1, 2, 1, 1, 1)")
    assert count_params(_meta_build(space, arch)) == fixed + 5 * sum(9 * w * w + 2 * w for w in (16, 32, 64))


@needs_zc
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_params_and_flops_match_naslib(zc_raw, dataset):
    """NASLib's `params` score is the parameter count in millions (six decimals: exact) and `flops` is
    MFLOPs; both match ours exactly, so the op placement (pool vs skip included) agrees."""
    classes, img_size, _ = DATASETS[dataset]
    space = load_space("nasbench201")
    space = dataclasses.replace(space, fixed={**space.fixed, "num_classes": classes, "img_size": img_size})
    rows = zc_raw[dataset]
    keys = list(rows)[:3] + random.Random(dataset).sample(list(rows), 3)
    for key in keys:
        model = _meta_build(space, nasbench201_arch(key))
        assert count_params(model) == round(rows[key]["params"]["score"] * 1e6)
        assert math.isclose(count_params(model) / 1e6, rows[key]["params"]["score"], abs_tol=5e-7)
        assert _naslib_flops(model, img_size) == round(rows[key]["flops"]["score"] * 1e6)


def test_network_structure_and_bn_settings():
    space = load_space("nasbench201")
    model = space.build(nasbench201_arch("(0, 2, 3, 2, 3, 1)"))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.affine and m.track_running_stats for m in bns)
    assert len(model.cells) == 17  # 3 x 5 cells and 2 reduction blocks
    avg = [m for m in model.modules() if isinstance(m, nn.AvgPool2d) and m.kernel_size == 3]
    assert not avg  # no avg_pool_3x3 edge in this architecture
    pooled = space.build(nasbench201_arch("(4, 4, 4, 4, 4, 4)"))
    pools = [m for m in pooled.modules() if isinstance(m, nn.AvgPool2d) and m.kernel_size == 3]
    assert len(pools) == 90 and all(not p.count_include_pad and p.padding == 1 and p.stride == 1 for p in pools)
    # an all-none cell passes zeros on: the output is the classifier bias for any input
    zero = space.build(nasbench201_arch("(1, 1, 1, 1, 1, 1)"))
    out = zero(torch.randn(2, 3, 32, 32))
    assert torch.allclose(out, zero.classifier.bias.expand(2, -1))


# ---------------------------------------------------------------- the benchmark source


@needs_zc
def test_loader_counts_tasks_and_reference_scores(zc_raw):
    for dataset, (classes, img_size, rows) in DATASETS.items():
        bench = load_benchmark(f"nasbench201-zc:{dataset}")
        raw = zc_raw[dataset]
        assert len(bench) == rows and bench.space == "nasbench201" and bench.tasks == ["val_accuracy"]
        assert bench.name == f"nasbench201-zc:{dataset}"
        assert bench.meta.arch_ids == list(raw)
        assert [nasbench201_key(a) for a in bench.archs] == list(raw)
        expected = np.array([r["val_accuracy"] for r in raw.values()])
        np.testing.assert_array_equal(bench.targets["val_accuracy"], expected)
        assert bench.meta.missing == {"val_accuracy": 0}
        refs = bench.meta.reference_scores
        assert sorted(refs) == sorted(nasbench201.NB201_ZC_PROXIES) and len(refs) == 12
        for proxy, values in refs.items():
            assert values.shape == (rows,) and values.dtype == float
            np.testing.assert_array_equal(values, [r[proxy]["score"] if proxy in r else np.nan for r in raw.values()])
        assert bench.meta.space_fixed == {"num_classes": classes, "img_size": img_size}
        space = benchmark_space(bench)
        assert space.fixed["num_classes"] == classes and space.fixed["img_size"] == img_size and space.fixed["C"] == 16
    # known values: first row, and NASLib's -inf nwot for (1, 0, 1, 4, 0, 1) kept as stored
    bench = load_benchmark("nasbench201-zc:cifar10", ["val_accuracy"])
    assert bench.targets["val_accuracy"][0] == pytest.approx(86.06)
    assert bench.meta.reference_scores["params"][0] == pytest.approx(0.615386)
    i = bench.meta.arch_ids.index("(1, 0, 1, 4, 0, 1)")
    assert bench.meta.reference_scores["nwot"][i] == -math.inf
    # the file's one absent score: synflow of (3, 2, 4, 0, 4, 4) on cifar10
    scores = bench.meta.reference_scores
    assert {p: int(np.isnan(v).sum()) for p, v in scores.items() if np.isnan(v).any()} == {"synflow": 1}
    assert np.isnan(scores["synflow"][bench.meta.arch_ids.index("(3, 2, 4, 0, 4, 4)")])


@needs_zc
def test_imagenet16_variant_builds_and_runs():
    bench = load_benchmark("nasbench201-zc:ImageNet16-120")
    space = benchmark_space(bench)
    assert "(1, 2, 2, 4, 0, 4)" not in bench.meta.arch_ids  # the one cifar architecture ImageNet16-120 lacks
    model = space.build(bench.archs[0])
    assert model.classifier.out_features == 120 and model.stem[0].in_channels == 3
    size = space.fixed["img_size"]
    out = model(torch.randn(2, space.fixed["in_chans"], size, size))
    assert out.shape == (2, 120) and torch.isfinite(out).all()
    out.sum().backward()


def test_bad_dataset_suffix_and_task():
    for bad in ("nasbench201-zc:cifar-10", "nasbench201-zc:imagenet", "nasbench201-zc"):
        with pytest.raises(BenchError, match=r"valid: nasbench201-zc:cifar10, nasbench201-zc:cifar100, nasbench201-zc:ImageNet16-120"):
            load_benchmark(bad)
    with pytest.raises(BenchError, match="did you mean `nasbench201-zc:cifar10`"):
        load_benchmark("nasbench201-zc:cifar1O")


@needs_zc
def test_unknown_task():
    with pytest.raises(BenchError, match="unknown task 'synflow'.*reference_scores"):
        load_benchmark("nasbench201-zc:cifar10", ["synflow"])


def _fake_file(tmp_path, monkeypatch, content):
    path = tmp_path / "zc_nasbench201.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    monkeypatch.setattr(nasbench201, "resolve_files", lambda named: [path])
    return path


def _row(acc=80.0, **scores):
    return {"val_accuracy": acc, **{p: {"score": s, "time": 0.1} for p, s in scores.items()}}


def test_missing_values_become_nan(tmp_path, monkeypatch):
    _fake_file(tmp_path, monkeypatch, {"cifar10": {
        "(0, 2, 3, 2, 3, 1)": _row(80.0, synflow=1.0, params=0.5),
        "(1, 2, 3, 2, 3, 1)": _row(None, synflow=None),
        "(2, 2, 3, 2, 3, 1)": {"synflow": {"score": 3.0}},
    }})
    bench = load_benchmark("nasbench201-zc:cifar10", rankable=False)  # one value: too few to rank
    assert bench.meta.missing == {"val_accuracy": 2}
    np.testing.assert_array_equal(bench.targets["val_accuracy"], [80.0, np.nan, np.nan])
    np.testing.assert_array_equal(bench.meta.reference_scores["synflow"], [1.0, np.nan, 3.0])
    assert np.isnan(bench.meta.reference_scores["snip"]).all()


def test_malformed_files_name_file_and_key(tmp_path, monkeypatch):
    cases = [
        ('{"cifar10": {', "not valid JSON"),
        ({"cifar100": {}}, "key 'cifar10': missing"),
        ({"cifar10": {}}, "key 'cifar10': no architectures"),
        ({"cifar10": {"(0, 2, 3)": _row()}}, r"key 'cifar10' -> '\(0, 2, 3\)'"),
        ({"cifar10": {"(0, 2, 3, 2, 3, 1)": [1, 2]}}, "a row must be a mapping"),
        ({"cifar10": {"(0, 2, 3, 2, 3, 1)": _row("high")}}, r"'val_accuracy': not a number"),
        ({"cifar10": {"(0, 2, 3, 2, 3, 1)": {**_row(), "snip": 4.0}}}, r"'snip': expected"),
        ({"cifar10": {"(0, 2, 3, 2, 3, 1)": _row(None)}}, "no values"),
    ]
    for content, message in cases:
        path = _fake_file(tmp_path, monkeypatch, content)
        with pytest.raises(BenchError, match=message) as info:
            load_benchmark("nasbench201-zc:cifar10")
        assert str(path) in str(info.value)


def test_checksum_and_missing_file(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "nasbench201-zc"
    folder.mkdir(parents=True)
    monkeypatch.setenv("SYNTH_DATA", str(tmp_path / "data"))
    with pytest.raises(BenchError, match="zc_nasbench201.json not found"):
        load_benchmark("nasbench201-zc:cifar10")
    (folder / "zc_nasbench201.json").write_text(json.dumps({"cifar10": {"(0, 2, 3, 2, 3, 1)": _row()}}))
    with pytest.raises(BenchError, match="sha256"):
        load_benchmark("nasbench201-zc:cifar10")
