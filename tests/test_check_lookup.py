"""`synth bench check` against a benchmark that records no recipe: picks are looked up, not trained,
and placed among all of the benchmark's architectures (NAS-Bench-201: all 15,625 cells)."""

import csv
import json

import numpy as np
import pytest

from synth.bench import load_benchmark
from synth.bench.check import lookup_picks, records_recipe, search_picks
from synth.cli import main
from synth.errors import InputError
from synth.models import nasbench201_from_string
from tests.conftest import SHARED_BENCHMARKS
from tests.test_check import fake_search

CSV = SHARED_BENCHMARKS / "nasbench201-full" / "nb201_test_acc_200ep.csv"
needs_table = pytest.mark.skipif(not CSV.is_file(), reason=f"{CSV} is not present")
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"  # tied best
LINE_3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def column():
    """{dataset column: every accuracy of the CSV}, read with the csv module alone."""
    with open(CSV, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("cifar10", "cifar100", "imagenet16_120")}


def test_a_benchmark_without_a_recipe_is_looked_up(tmp_path, small_bench):
    raw = json.loads(small_bench.read_text())
    del raw["recipe"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(raw))
    bench = load_benchmark(str(bare))
    assert not records_recipe(bench) and records_recipe(load_benchmark(str(small_bench)))
    accs = np.array([row["acc"]["digits"] for row in raw["rows"]])
    i = int(np.argsort(accs)[len(accs) // 2])
    (report,) = lookup_picks(bench, search_picks(fake_search(tmp_path / "s", raw["rows"][i]["arch"])))
    assert report["acc"] == accs[i] and report["task"] == "digits" and report["seed_noise"] is None
    assert report["percentile"] == pytest.approx(100 * np.sum(accs <= accs[i]) / len(accs))
    assert report["rank"] == 1 + np.sum(accs > accs[i]) and report["of"] == 24
    other = dict(raw["rows"][i]["arch"], depth=raw["rows"][i]["arch"]["depth"] + 7)
    with pytest.raises(InputError, match="not among the 24 architectures"):
        lookup_picks(bench, search_picks(fake_search(tmp_path / "t", other)))


def test_a_lookup_names_the_best_architecture_the_search_scored_and_its_place(tmp_path, small_bench):
    """Besides its pick, a lookup reports the most accurate architecture among all the search scored
    (evaluated.jsonl), its percentile, and the place the search's ranking gave it: by score, then the
    smaller network first. Here the best of four scored networks ties the second-highest score with
    a smaller network, so it is placed third."""
    from synth.rundir import append_record
    from synth.space import arch_key

    raw = json.loads(small_bench.read_text())
    del raw["recipe"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(raw))
    bench = load_benchmark(str(bare))
    accs = np.array([row["acc"]["digits"] for row in raw["rows"]])
    best, *others = [int(i) for i in np.argsort(-accs)[[0, 5, 9, 14]]]
    scores = {others[0]: 9.0, others[1]: 5.0, best: 5.0, others[2]: 1.0}
    params = {others[0]: 10.0, others[1]: 20.0, best: 30.0, others[2]: 5.0}
    search = fake_search(tmp_path / "s", raw["rows"][others[0]]["arch"])
    with open(search / "evaluated.jsonl", "w") as sink:
        for i, score in scores.items():
            arch = raw["rows"][i]["arch"]
            append_record(sink, {"key": arch_key(arch), "arch": arch, "score": score,
                                 "seconds": 0.1, "error": None, "params": params[i], "flops": 1.0, "generation": 0})
    (report,) = lookup_picks(bench, search_picks(search))
    assert report["best_scored"] == {"acc": accs[best], "percentile": pytest.approx(100 * np.mean(accs <= accs[best])),
                                     "place": 3, "scored": 4}
    result = json.loads((search / "search.json").read_text())  # re-ranked finalists come first, in their order
    result["finalists"] = [{"key": arch_key(raw["rows"][i]["arch"])} for i in (others[2], best)]
    (search / "search.json").write_text(json.dumps(result))
    (report,) = lookup_picks(bench, search_picks(search))
    assert report["best_scored"]["place"] == 2
    (bare_search,) = lookup_picks(bench, search_picks(fake_search(tmp_path / "t", raw["rows"][best]["arch"])))
    assert bare_search["best_scored"] is None  # a search directory without evaluated.jsonl


@needs_table
def test_known_cells_get_the_table_numbers_and_percentile(tmp_path, column):
    picks = search_picks(fake_search(tmp_path / "a", nasbench201_from_string(LINE_3), space="nasbench201"))
    picks += search_picks(fake_search(tmp_path / "b", nasbench201_from_string(BEST_C10), space="nasbench201", seed=1))
    report = lookup_picks(load_benchmark("nasbench201:cifar10"), picks)
    assert [r["acc"] for r in report] == [93.66, 94.3733] and [r["arch_id"] for r in report] == [LINE_3, BEST_C10]
    c10 = column["cifar10"]
    assert report[0]["percentile"] == pytest.approx(100 * np.count_nonzero(c10 <= 93.66) / 15625)
    assert report[0]["rank"] == 1 + np.count_nonzero(c10 > 93.66) and report[0]["of"] == 15625
    assert report[0]["gap"] == pytest.approx(94.3733 - 93.66)
    assert report[1]["percentile"] == 100.0 and report[1]["rank"] == 1 and report[1]["gap"] == 0.0
    (in16,) = lookup_picks(load_benchmark("nasbench201:ImageNet16-120"), picks[:1])
    assert in16["acc"] == 44.0333 and in16["task"] == "ImageNet16-120"
    assert in16["percentile"] == pytest.approx(100 * np.mean(column["imagenet16_120"] <= 44.0333))
    both = lookup_picks(load_benchmark("nasbench201:cifar100", ["cifar100", "cifar10"]), picks[:1])
    assert [(r["task"], r["acc"]) for r in both] == [("cifar100", 70.2933), ("cifar10", 93.66)]


@needs_table
def test_cli_looks_up_without_training(tmp_path, column, capsys):
    cells = [LINE_3, LINE_3, BEST_C10]
    searches = [fake_search(tmp_path / f"s{i}", nasbench201_from_string(c), space="nasbench201", proxy=p, seed=i)
                for i, (c, p) in enumerate(zip(cells, ["nwot", "nwot", "params"]))]
    out = tmp_path / "check.json"
    assert main(["--json", "bench", "check", *map(str, searches), "--bench", "nasbench201:cifar100", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lookup"] is True and not out.exists()
    assert [p["acc"] for p in report["picks"]] == [70.2933, 70.2933, 73.22]
    nwot = report["by_proxy"]["nwot"]["cifar100"]
    assert nwot["picks"] == 2 and nwot["mean_acc"] == pytest.approx(70.2933)
    assert nwot["mean_percentile"] == pytest.approx(100 * np.mean(column["cifar100"] <= 70.2933))
    assert main(["bench", "check", str(searches[0]), "--bench", "nasbench201:cifar10@20,seed=3"]) == 2
    assert "check against the whole table" in " ".join(capsys.readouterr().err.split())
    vit = fake_search(tmp_path / "vit", {"embed_dim": 192}, space="vit-digits")
    assert main(["bench", "check", str(vit), "--bench", "nasbench201:cifar10"]) == 2


@needs_table
@pytest.mark.slow
def test_a_search_on_nasbench201_is_checked_against_the_table(tmp_path, column, capsys):
    """End to end: synth search on the nasbench201 space, then its pick looked up in the table."""
    search = tmp_path / "search"
    assert main(["--json", "search", "--space", "nasbench201", "--proxy", "params", "--population", "3", "--iterations", "1",
                 "--mutations", "1", "--crossovers", "1", "--top-k", "2", "--out", str(search)]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert main(["--json", "bench", "check", str(search), "--bench", "nasbench201:cifar10", "--top", "2"]) == 0
    report = json.loads(capsys.readouterr().out)["picks"]
    with open(CSV, newline="") as stream:
        acc = {row["arch"]: float(row["cifar10"]) for row in csv.DictReader(stream)}
    for entry, pick in zip(top, report):
        assert nasbench201_from_string(pick["arch_id"]) == entry["arch"]
        assert pick["acc"] == acc[pick["arch_id"]]
        assert pick["percentile"] == pytest.approx(100 * np.mean(column["cifar10"] <= pick["acc"]))
