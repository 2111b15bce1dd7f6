"""`synth bench merge`: joining benchmark files by architecture and seed, refusing files that were trained
differently, that disagree, or that leave rows without some seeds. Files are written by hand; nothing trains."""

import copy
import json

import numpy as np
import pytest

from synth.bench import load_benchmark, merge_benchmarks
from synth.cli import main
from synth.errors import InputError
from synth.resources import resource_dir
from synth.space import arch_key


@pytest.fixture(scope="module")
def embedded():
    return json.loads((resource_dir("data") / "vit-digits.json").read_text())


def part(bench, rows, seeds, **changes):
    """`bench` restricted to `rows` (indices) and to `seeds` (a subset of its seeds), with top-level `changes`."""
    pick = [bench["seeds"].index(s) for s in seeds]
    out = copy.deepcopy({k: v for k, v in bench.items() if k != "rows"})
    out.update(seeds=list(seeds), **changes)
    out["rows"] = []
    for i in rows:
        row = copy.deepcopy(bench["rows"][i])
        row["seed_acc"] = {t: [accs[j] for j in pick] for t, accs in row["seed_acc"].items()}
        row["acc"] = {t: sum(accs) / len(accs) for t, accs in row["seed_acc"].items()}
        row["train_seconds"] = 10.0 * len(seeds)
        out["rows"].append(row)
    return out


def write(path, bench):
    path.write_text(json.dumps(bench))
    return path


def test_more_seeds_of_the_same_architectures(tmp_path, embedded):
    a = write(tmp_path / "a.json", part(embedded, [0, 1, 2], [0], device="cpu"))  # records no dataset, as the embedded file
    b = write(tmp_path / "b.json", part(embedded, [2, 0, 1], [1, 2], sampling={"method": "architecture file"},
                                        dataset={"source": "digits"}, device="cuda"))
    merged = merge_benchmarks([a, b])
    assert merged["dataset"] == {"source": "digits"} and merged["device"] == "cpu, cuda"
    assert merged["seeds"] == [0, 1, 2]
    assert [r["arch"] for r in merged["rows"]] == [embedded["rows"][i]["arch"] for i in (0, 1, 2)]
    for row, original in zip(merged["rows"], embedded["rows"][:3]):
        s0, s1, s2 = original["seed_acc"]["digits"]
        assert row["seed_acc"]["digits"] == [s0, s1, s2]
        assert row["acc"]["digits"] == pytest.approx((s0 + s1 + s2) / 3)
        assert row["train_seconds"] == pytest.approx(10.0 + 20.0)
        assert row["params"] == original["params"]
    assert merged["merged_from"] == [str(a), str(b)]
    assert merged["sampling"] == {"method": "merged", "parts": [embedded["sampling"], {"method": "architecture file"}]}
    assert merged["recipe"] == embedded["recipe"] and merged["tasks"] == ["digits"]

    out = tmp_path / "merged.json"
    out.write_text(json.dumps(merged))
    bench = load_benchmark(str(out))
    expected = [np.mean(embedded["rows"][i]["seed_acc"]["digits"]) for i in (0, 1, 2)]
    np.testing.assert_allclose(bench.targets["digits"], expected)
    assert bench.meta.seeds == [0, 1, 2]


def test_more_architectures_with_the_same_seeds(tmp_path, embedded):
    a = write(tmp_path / "a.json", part(embedded, [0, 1], [0, 1, 2]))
    b = write(tmp_path / "b.json", part(embedded, [3, 1, 2], [0, 1, 2]))  # row 1 again, with the same values
    parts = []
    merged = merge_benchmarks([a, b], report=parts.append)
    assert [arch_key(r["arch"]) for r in merged["rows"]] == [arch_key(embedded["rows"][i]["arch"]) for i in (0, 1, 3, 2)]
    assert merged["seeds"] == [0, 1, 2]
    for row in merged["rows"]:
        original = next(r for r in embedded["rows"] if r["arch"] == row["arch"])
        assert row["seed_acc"] == original["seed_acc"]
        assert row["acc"]["digits"] == pytest.approx(sum(original["seed_acc"]["digits"]) / 3)
    assert merged["rows"][1]["train_seconds"] == pytest.approx(60.0)  # in both files: their times add up
    assert parts == [{"path": str(a), "rows": 2, "new_archs": 2, "gained_seeds": 0},
                     {"path": str(b), "rows": 3, "new_archs": 2, "gained_seeds": 0}]


def test_the_embedded_benchmark_split_by_seed_merges_back(tmp_path, embedded):
    everything = range(len(embedded["rows"]))
    a = write(tmp_path / "seed0.json", part(embedded, everything, [0]))
    b = write(tmp_path / "seeds12.json", part(embedded, everything, [1, 2]))
    merged = merge_benchmarks([a, b])
    assert merged["seeds"] == embedded["seeds"] == [0, 1, 2]
    assert len(merged["rows"]) == len(embedded["rows"])
    for row, original in zip(merged["rows"], embedded["rows"]):
        assert row["arch"] == original["arch"] and row["params"] == original["params"]
        assert row["seed_acc"]["digits"] == pytest.approx(original["seed_acc"]["digits"])
        assert row["acc"]["digits"] == pytest.approx(original["acc"]["digits"])


def test_rows_without_every_seed_are_an_error_saying_what_to_train(tmp_path, embedded):
    a = write(tmp_path / "a.json", part(embedded, [0, 1, 2], [0, 1]))
    b = write(tmp_path / "b.json", part(embedded, [1, 2, 3], [2]))  # rows 0 lack seed 2, row 3 lacks seeds 0 and 1
    with pytest.raises(InputError) as error:
        merge_benchmarks([a, b])
    message = str(error.value)
    assert "2 of 4 architectures" in message
    assert arch_key(embedded["rows"][0]["arch"]) in message and "[2]" in message
    assert "synth bench build --arch-file" in message and "--seeds 2" in message


def test_the_same_seed_with_different_accuracies_is_an_error(tmp_path, embedded):
    a = write(tmp_path / "a.json", part(embedded, [0, 1], [0, 1]))
    other = part(embedded, [1], [1, 2])
    other["rows"][0]["seed_acc"]["digits"][0] += 0.5
    b = write(tmp_path / "b.json", other)
    with pytest.raises(InputError) as error:
        merge_benchmarks([a, b])
    message = str(error.value)
    assert str(a) in message and str(b) in message
    assert arch_key(embedded["rows"][1]["arch"]) in message and "seed 1" in message


def test_files_trained_differently_are_not_merged(tmp_path, embedded):
    a = write(tmp_path / "a.json", part(embedded, [0], [0]))
    b = write(tmp_path / "b.json", part(embedded, [0], [1], recipe={**embedded["recipe"], "epochs": 5}))
    with pytest.raises(InputError, match=r"recipe\.epochs: 25 in .*a\.json, 5 in .*b\.json"):
        merge_benchmarks([a, b])
    c = write(tmp_path / "c.json", part(embedded, [0], [1], space="autoformer-tiny"))
    with pytest.raises(InputError, match=r"space: 'vit-digits' in .*a\.json, 'autoformer-tiny' in .*c\.json"):
        merge_benchmarks([a, c])
    d = write(tmp_path / "d.json", part(embedded, [0], [0], dataset={"source": "/data/x", "digest": "ab"}))
    e = write(tmp_path / "e.json", part(embedded, [0], [1], dataset={"source": "/data/x", "digest": "cd"}))
    with pytest.raises(InputError, match=r"dataset\.digest: 'ab' in .*d\.json, 'cd' in .*e\.json"):
        merge_benchmarks([d, e])


def test_params_must_agree(tmp_path, embedded):
    a = write(tmp_path / "a.json", part(embedded, [0], [0]))
    other = part(embedded, [0], [1])
    other["rows"][0]["params"] += 1
    with pytest.raises(InputError, match="parameters"):
        merge_benchmarks([a, write(tmp_path / "b.json", other)])


def test_inputs_must_be_synth_benchmarks_with_per_seed_accuracies(tmp_path, embedded):
    a = write(tmp_path / "a.json", part(embedded, [0], [0]))
    (tmp_path / "x.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(InputError, match="format"):
        merge_benchmarks([a, tmp_path / "x.json"])
    with pytest.raises(InputError, match="not found"):
        merge_benchmarks([a, tmp_path / "nope.json"])
    short = part(embedded, [0], [1, 2])
    short["rows"][0]["seed_acc"]["digits"].pop()
    with pytest.raises(InputError, match=r"rows\[0\]\.seed_acc\.digits: expected 2 accuracies"):
        merge_benchmarks([a, write(tmp_path / "short.json", short)])


def test_cli_writes_the_merged_file_and_reports_it(tmp_path, embedded, capsys):
    a = write(tmp_path / "a.json", part(embedded, [0, 1], [0]))
    b = write(tmp_path / "b.json", part(embedded, [0, 1], [1, 2]))
    c = write(tmp_path / "c.json", part(embedded, [2], [0, 1, 2]))
    out = tmp_path / "sub" / "merged.json"
    capsys.readouterr()
    assert main(["--json", "bench", "merge", str(a), str(b), str(c), "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["archs"] == 3 and report["seeds"] == [0, 1, 2] and report["out"] == str(out)
    assert [(f["new_archs"], f["gained_seeds"]) for f in report["files"]] == [(2, 0), (0, 2), (1, 0)]
    assert load_benchmark(str(out)).targets["digits"] == pytest.approx(
        [np.mean(embedded["rows"][i]["seed_acc"]["digits"]) for i in (0, 1, 2)])
    assert not list(out.parent.glob("*.tmp*"))

    assert main(["bench", "merge", str(a), str(b), "--out", str(tmp_path / "plain.json")]) == 0
    said = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "2 architectures x 3 seeds [0, 1, 2]" in said and "0 new architectures, 2 with new seeds" in said

    assert main(["bench", "merge", str(a), str(c), "--out", str(tmp_path / "bad.json")]) == 2
    assert "lack some of the merged seeds" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "bad.json").exists()
