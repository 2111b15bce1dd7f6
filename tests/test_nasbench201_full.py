"""The full NAS-Bench-201 table (`nasbench201:<dataset>`): cell strings, the sha256 check, where the file
is found, seeded samples, and agreement with NASLib's zero-cost file where the two share cells."""

import csv
import itertools
import json
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr

import synth.bench.nasbench201 as nasbench201
import synth.bench.sources as sources
from synth.bench import benchmark_space, load_benchmark, split_indices
from synth.errors import BenchError, SpaceError
from synth.models import nasbench201_arch, nasbench201_from_string, nasbench201_key, nasbench201_string
from synth.space import count_params, load_space
from tests.conftest import SHARED_BENCHMARKS

CSV = SHARED_BENCHMARKS / "nasbench201-full" / "nb201_test_acc_200ep.csv"
ZC = SHARED_BENCHMARKS / "nasbench201-zc" / "zc_nasbench201.json"
needs_table = pytest.mark.skipif(not CSV.is_file(), reason=f"{CSV} is not present")
needs_zc = pytest.mark.skipif(not ZC.is_file(), reason=f"{ZC} is not present")
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet16_120"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, target, timeout=10.0):
        raise AssertionError(f"the table must never be downloaded (asked for {url})")

    monkeypatch.setattr(sources, "download", refuse)


@pytest.fixture(scope="module")
def table():
    """The CSV read with the csv module alone: {cell string: {column: float}} (an independent reader)."""
    with open(CSV, newline="") as stream:
        return {row["arch"]: {k: float(v) for k, v in row.items() if k not in ("arch", "index")} for row in csv.DictReader(stream)}


# ---------------------------------------------------------------- cell strings


def test_cell_strings_by_hand():
    """Node j's part lists op~i for its inputs i = 0..j-1; NASLib's tuple orders edges (1,2) (1,3) (1,4) (2,3)
    (2,4) (3,4), i.e. node parts (t0) (t1 t3) (t2 t4 t5), ops numbered skip 0, none 1, conv3 2, conv1 3, pool 4."""
    cell = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert nasbench201_key(nasbench201_from_string(cell)) == "(4, 3, 3, 0, 0, 0)"
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert nasbench201_key(nasbench201_from_string(cell)) == "(2, 2, 0, 4, 2, 0)"
    cell = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"
    arch = nasbench201_from_string(cell)
    assert arch == {"edge_1_2": "none", "edge_1_3": "skip_connect", "edge_2_3": "nor_conv_1x1",
                    "edge_1_4": "avg_pool_3x3", "edge_2_4": "nor_conv_3x3", "edge_3_4": "none"}
    assert nasbench201_string(arch) == cell and list(arch) == list(load_space("nasbench201").choices)
    for key in ("(0, 2, 3, 2, 3, 1)", "(4, 0, 4, 1, 2, 0)"):
        assert nasbench201_from_string(nasbench201_string(nasbench201_arch(key))) == nasbench201_arch(key)


@pytest.mark.parametrize("bad", [
    "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~3|",  # input 3 of node 4 does not exist
    "|none~0|+|none~1|none~0|+|none~0|none~1|none~2|",  # inputs out of order
    "|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # node 2 has one input
    "|none~0|+|none~0|none~1|",  # a node missing
    "none~0+none~0|none~1+none~0|none~1|none~2", "", None,
])
def test_malformed_cell_strings_are_refused(bad):
    with pytest.raises(SpaceError, match="cell string"):
        nasbench201_from_string(bad)


# ---------------------------------------------------------------- the table


@needs_table
def test_every_cell_once_with_the_csv_numbers(table):
    full = load_benchmark("nasbench201:cifar10")
    space = load_space("nasbench201")
    assert len(full) == 15625 and full.tasks == ["cifar10"] and full.space == "nasbench201"
    assert {nasbench201_key(a) for a in full.archs} == {nasbench201_key(a) for a in space.enumerate()}
    assert full.meta.table == {"rows": 15625, "sample": None}
    assert full.targets["cifar10"].max() == pytest.approx(94.3733)
    row = full.meta.arch_ids.index("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    assert full.targets["cifar10"][row] == pytest.approx(93.66)  # line 3 of the file
    for dataset, column in DATASETS.items():
        bench = load_benchmark(f"nasbench201:{dataset}")
        assert bench.tasks == [dataset] and bench.meta.dataset == dataset
        expected = np.array([table[cell][column] for cell in bench.meta.arch_ids])
        assert np.array_equal(bench.targets[dataset], expected)
        assert [nasbench201_string(a) for a in bench.archs[:50]] == bench.meta.arch_ids[:50]
    fixed = benchmark_space(load_benchmark("nasbench201:ImageNet16-120")).fixed
    assert fixed["num_classes"] == 120 and fixed["img_size"] == 16


@needs_table
def test_tasks_across_datasets_and_unknown_ones(table):
    bench = load_benchmark("nasbench201:cifar100", ["cifar10", "cifar100", "ImageNet16-120"])
    assert bench.tasks == ["cifar10", "cifar100", "ImageNet16-120"]
    assert bench.meta.space_fixed["num_classes"] == 100  # the source's dataset fixes the network
    cell = bench.meta.arch_ids[7]
    assert bench.targets["ImageNet16-120"][7] == table[cell]["imagenet16_120"]
    with pytest.raises(BenchError, match="did you mean `ImageNet16-120`"):
        load_benchmark("nasbench201:cifar10", ["imagenet16-120"])
    for source, message in [("nasbench201:cifar1", "did you mean `nasbench201:cifar10`"), ("nasbench201", "no dataset"),
                            ("nasbench201:cifar10@x", "@N,seed=S or @N,seed=S,largest=F"),
                            ("nasbench201:cifar10@5,sed=1", "@N,seed=S or @N,seed=S,largest=F"),
                            ("nasbench201:cifar10@0", "at least one"), ("nasbench201:cifar10@15626", "table of 15625")]:
        with pytest.raises(BenchError, match=message):
            load_benchmark(source)


@needs_table
def test_a_damaged_copy_is_refused_naming_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "nasbench201-full"
    folder.mkdir(parents=True)
    copy = folder / CSV.name
    shutil.copy(CSV, copy)
    blob = bytearray(copy.read_bytes())
    blob[-3] = ord("9") if blob[-3] != ord("9") else ord("8")  # one digit of the last accuracy
    copy.write_bytes(bytes(blob))
    monkeypatch.setenv("SYNTH_DATA", str(tmp_path / "data"))
    with pytest.raises(BenchError, match="sha256") as info:
        load_benchmark("nasbench201:cifar10")
    assert str(copy) in str(info.value)


@needs_table
def test_found_in_the_user_cache_and_a_clear_error_when_nowhere(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNTH_CACHE", str(cache))
    monkeypatch.delenv("SYNTH_DATA", raising=False)
    with pytest.raises(BenchError) as info:
        load_benchmark("nasbench201:cifar10")
    message = str(info.value)
    assert str(cache / "benchmarks" / "nasbench201-full" / CSV.name) in message and "SYNTH_DATA" in message
    (cache / "benchmarks" / "nasbench201-full").mkdir(parents=True)
    shutil.copy(CSV, cache / "benchmarks" / "nasbench201-full" / CSV.name)
    assert len(load_benchmark("nasbench201:cifar100")) == 15625


def test_malformed_rows_name_the_line(tmp_path):
    good = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    path = tmp_path / "t.csv"
    path.write_text(f"index,arch,cifar10,cifar100,imagenet16_120\n0,{good},10,1,1\n1,|none~0|,10,1,1\n")
    with pytest.raises(BenchError, match=r"t\.csv:3: column 'arch'"):
        nasbench201._read_table(path)
    path.write_text(f"index,arch,cifar10,cifar100,imagenet16_120\n0,{good},10,1,1\n1,{good},10,1,1\n")
    with pytest.raises(BenchError, match=r"t\.csv:3: cell .* already on line 2"):
        nasbench201._read_table(path)
    path.write_text(f"index,arch,cifar10,cifar100\n0,{good},10,1\n")
    with pytest.raises(BenchError, match=r"t\.csv:1: missing column\(s\) \['imagenet16_120'\]"):
        nasbench201._read_table(path)
    path.write_text(f"index,arch,cifar10,cifar100,imagenet16_120\n0,{good},ten,1,1\n")
    with pytest.raises(BenchError, match="row 1, column 'cifar10': not a number"):
        nasbench201._read_table(path)


# ---------------------------------------------------------------- seeded samples


@needs_table
def test_samples_are_seeded_subsets_that_split_disjointly(table):
    full = load_benchmark("nasbench201:cifar10")
    a = load_benchmark("nasbench201:cifar10@300")
    b = load_benchmark("nasbench201:cifar10@300,seed=0")
    c = load_benchmark("nasbench201:cifar10@300,seed=1")
    assert len(a) == 300 and a.name == "nasbench201:cifar10@300,seed=0" and a.meta.table["sample"] == {"n": 300, "seed": 0}
    assert a.meta.arch_ids == b.meta.arch_ids and a.meta.arch_ids != c.meta.arch_ids
    assert len(set(a.meta.arch_ids)) == 300
    order = {cell: i for i, cell in enumerate(full.meta.arch_ids)}
    rows = [order[cell] for cell in a.meta.arch_ids]
    assert rows == sorted(rows)  # kept in table order
    assert np.array_equal(a.targets["cifar10"], [table[cell]["cifar10"] for cell in a.meta.arch_ids])
    assert [nasbench201_key(x) for x in a.archs] == [nasbench201_key(full.archs[r]) for r in rows]
    search, test = split_indices(len(a), seed=0)
    assert len(search) == 180 and len(test) == 120 and not set(search) & set(test)
    assert set(search) | set(test) == set(range(300))


@needs_table
def test_largest_samples_keep_the_biggest_cells_of_their_pool():
    """`@N,seed=S,largest=F`: the N cells with the most parameters (counted here on networks built
    directly) among the seeded pool `@N/F,seed=S`, ties at the cut included in no fixed order."""
    big = load_benchmark("nasbench201:cifar100@40,seed=2,largest=0.25", ["cifar10", "cifar100"])
    pool = load_benchmark("nasbench201:cifar100@160,seed=2")
    assert big.name == "nasbench201:cifar100@40,seed=2,largest=0.25" and len(big) == 40
    assert big.meta.table["sample"] == {"n": 40, "seed": 2, "largest": 0.25} and list(big.targets) == ["cifar10", "cifar100"]
    assert set(big.meta.arch_ids) < set(pool.meta.arch_ids)
    space = benchmark_space(pool)
    size = {cell: count_params(space.build(arch)) for cell, arch in zip(pool.meta.arch_ids, pool.archs)}
    kept = [size[c] for c in big.meta.arch_ids]
    dropped = [size[c] for c in pool.meta.arch_ids if c not in set(big.meta.arch_ids)]
    assert min(kept) >= max(dropped)
    assert sum(size[c] > min(kept) for c in pool.meta.arch_ids) <= 40  # every cell above the cut is kept
    order = {cell: i for i, cell in enumerate(pool.meta.arch_ids)}
    assert [order[c] for c in big.meta.arch_ids] == sorted(order[c] for c in big.meta.arch_ids)  # table order
    assert load_benchmark("nasbench201:cifar100@40,seed=2,largest=0.25").meta.arch_ids == big.meta.arch_ids
    assert load_benchmark("nasbench201:cifar100@40,seed=3,largest=0.25").meta.arch_ids != big.meta.arch_ids


@needs_table
@pytest.mark.parametrize("spec, message", [("@40,largest=0", "in \\(0, 1\\]"), ("@40,largest=1.5", "in \\(0, 1\\]"),
                                           ("@40,largest=a", "@N,seed=S,largest=F"), ("@40,size=1", "@N,seed=S,largest=F"),
                                           ("@40,seed", "@N,seed=S,largest=F")])
def test_malformed_sample_options_are_refused(spec, message):
    with pytest.raises(BenchError, match=message):
        load_benchmark(f"nasbench201:cifar10{spec}")


# ---------------------------------------------------------------- agreement with NASLib's file


@needs_table
@needs_zc
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_naslib_val_accuracies_rank_like_the_table(dataset):
    """An independent check of the mapping: NASLib's cells (op-index tuples) looked up in the table (cell
    strings) by architecture rank like NASLib's own validation accuracies."""
    full = load_benchmark(f"nasbench201:{dataset}")
    zc = load_benchmark(f"nasbench201-zc:{dataset}")
    acc = {nasbench201_key(a): v for a, v in zip(full.archs, full.targets[dataset])}
    assert spearmanr([acc[key] for key in zc.meta.arch_ids], zc.targets["val_accuracy"]).statistic > 0.95


@needs_table
@needs_zc
def test_no_other_edge_order_agrees_as_well():
    """Of all 720 orders of the six edges, the one used agrees best with NASLib (wrong orders still
    correlate, up to about 0.96, so the threshold alone would not prove the mapping)."""
    full = load_benchmark("nasbench201:cifar10")
    zc_raw = json.loads(ZC.read_text())["cifar10"]
    keys = list(zc_raw)
    val = [zc_raw[k]["val_accuracy"] for k in keys]
    acc = {tuple(json.loads("[" + nasbench201_key(a)[1:-1] + "]")): v for a, v in zip(full.archs, full.targets["cifar10"])}
    tuples = [tuple(json.loads("[" + k[1:-1] + "]")) for k in keys]
    agreement = {perm: spearmanr([acc[tuple(t[p] for p in perm)] for t in tuples], val).statistic
                 for perm in itertools.permutations(range(6))}
    best = max(agreement, key=agreement.get)
    assert best == (0, 1, 2, 3, 4, 5) and agreement[best] > 0.97
    assert sorted(agreement.values())[-2] < agreement[best] - 0.01
