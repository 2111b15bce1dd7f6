"""Checkpoints, log records and cache entries carry a checksum: a damaged one is detected, reported
with a warning and its work done again, never used (and the result is what an intact run gives)."""

import hashlib
import json
import math
import warnings

import pytest
import torch

from synth.bench import build_benchmark
from synth.cli import main
from synth.errors import DamagedFileWarning, RunDirError
from synth.evolve import EvolveConfig
from synth.grammar import load_grammar
from synth.rundir import append_record, read_checked_record, read_jsonl, write_checkpoint
from synth.run import run_evolve
from synth.search import EVALUATED, SearchConfig, run_search
from synth.space import load_space
from synth.probe import Probe
from synth.stats import load_statistics, statistics_for
from synth.train import Recipe
from synth.zoo.scoring import resolve_proxies, score_architectures
from tests.interrupt import interrupt_at


def independent_sha256(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def damage_a_number(path, old: str, new: str) -> None:
    """Change one number in a JSON file so that it still parses (what a flipped digit on disk does)."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# ---------------------------------------------------------------- checkpoints


def test_a_checkpoint_stores_the_sha256_of_its_content_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.json"
    first, second = {"state": {"iteration": 1, "x": [0.5, None]}}, {"state": {"iteration": 2, "x": [0.25, 3]}}
    write_checkpoint(path, first)
    write_checkpoint(path, second)
    stored = json.loads(path.read_text())
    assert stored.pop("sha256") == independent_sha256(second) and stored == second
    previous = json.loads((tmp_path / "checkpoint.prev.json").read_text())
    assert previous.pop("sha256") == independent_sha256(first) and previous == first
    assert read_checked_record(path, "none") == second


def test_a_damaged_checkpoint_falls_back_to_the_previous_one_with_a_warning(tmp_path):
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, {"state": {"iteration": 1}})
    write_checkpoint(path, {"state": {"iteration": 2}})
    damage_a_number(path, '"iteration": 2', '"iteration": 7')
    with pytest.warns(DamagedFileWarning, match="checkpoint.json: damaged"):
        assert read_checked_record(path, "none") == {"state": {"iteration": 1}}
    damage_a_number(tmp_path / "checkpoint.prev.json", '"iteration": 1', '"iteration": 5')
    with pytest.raises(RunDirError, match="checkpoint.prev.json: damaged"):
        read_checked_record(path, "none")


def test_a_checkpoint_cut_short_falls_back_too(tmp_path):
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, {"state": {"iteration": 1}})
    write_checkpoint(path, {"state": {"iteration": 2}})
    path.write_text(path.read_text()[:15])
    with pytest.warns(DamagedFileWarning, match="unreadable"):
        assert read_checked_record(path, "none") == {"state": {"iteration": 1}}


def test_an_evolve_run_resumed_from_a_damaged_checkpoint_ends_as_the_uninterrupted_run(small_bench, tmp_path, capsys):
    config = EvolveConfig(population=6, iterations=6, sample_size=4, top_k=2, seed=2)
    straight = run_evolve("vit", str(small_bench), tmp_path / "a", config)
    with pytest.raises(KeyboardInterrupt):
        run_evolve("vit", str(small_bench), tmp_path / "b", config, progress=interrupt_at(3))
    checkpoint = tmp_path / "b" / "checkpoint.json"
    damage_a_number(checkpoint, '"iteration": 3', '"iteration": 4')
    assert main(["evolve", "--resume", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "checkpoint.json: damaged" in err
    record = json.loads((tmp_path / "b" / "run.json").read_text())
    assert (record["formula"], record["fitness"], record["history"]) == (straight["formula"], straight["fitness"], straight["history"])


# ---------------------------------------------------------------- logs


def test_a_damaged_log_record_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "log.jsonl"
    with path.open("a") as sink:
        for i in range(3):
            append_record(sink, {"key": f"k{i}", "score": i + 0.5})
    lines = path.read_text().splitlines()
    assert all(json.loads(line)["sha256"] == independent_sha256({"key": f"k{i}", "score": i + 0.5}) for i, line in enumerate(lines))
    damage_a_number(path, '"score": 1.5', '"score": 9.5')
    with pytest.warns(DamagedFileWarning, match="1 record"):
        assert read_jsonl(path) == [{"key": "k0", "score": 0.5}, {"key": "k2", "score": 2.5}]


def test_a_search_with_a_damaged_memo_record_rescores_it_and_gets_the_same_result(tmp_path, monkeypatch):
    import synth.search.scorer as search_module

    space = load_space("vit-digits")
    config = SearchConfig(population=6, iterations=2, parents=3, mutations=3, crossovers=3, seed=1)
    whole = run_search("params", space, config, tmp_path / "whole")

    real, calls = search_module._score_in_worker, []

    def dies_after_8(arch, count_flops, *seeds):
        calls.append(arch)
        if len(calls) > 8:
            raise KeyboardInterrupt
        return real(arch, count_flops, *seeds)

    monkeypatch.setattr(search_module, "_score_in_worker", dies_after_8)
    with pytest.raises(KeyboardInterrupt):
        run_search("params", space, config, tmp_path / "cut")
    monkeypatch.setattr(search_module, "_score_in_worker", real)
    log = tmp_path / "cut" / EVALUATED
    first = json.loads(log.read_text().splitlines()[0])
    damage_a_number(log, f'"score": {json.dumps(first["score"])}', f'"score": {json.dumps(first["score"] * 10)}')
    with pytest.warns(DamagedFileWarning, match="evaluated.jsonl: 1 record"):
        resumed = run_search(None, None, None, tmp_path / "cut", resume=True)
    assert resumed["top"] == whole["top"] and resumed["history"] == whole["history"]


def test_a_build_retrains_a_damaged_record(tmp_path):
    space = load_space("vit-digits")
    archs = [{"embed_dim": 8, "depth": 1, "mlp_ratio": [1.0], "num_heads": [1]}]
    recipe = Recipe(epochs=1)
    first = build_benchmark(space, archs, [0, 1], recipe, tmp_path / "b.json")
    partial = tmp_path / "b.json.partial.jsonl"
    record = json.loads(partial.read_text().splitlines()[0])
    damage_a_number(partial, f'"acc": {json.dumps(record["acc"])}', '"acc": 0.123456')
    with pytest.warns(DamagedFileWarning, match="1 record"):
        again = build_benchmark(space, archs, [0, 1], recipe, tmp_path / "b.json")
    assert again["rows"][0]["seed_acc"] == first["rows"][0]["seed_acc"]  # retrained, to the same accuracy
    with pytest.warns(DamagedFileWarning):  # the damaged line stays in the log, skipped each time
        assert len(read_jsonl(partial)) == 2  # the two intact records: the retrained one and the other seed


# ---------------------------------------------------------------- caches


@pytest.fixture()
def tiny():
    space = load_space("vit-digits")
    archs = [{"embed_dim": 16, "depth": 1, "mlp_ratio": [2.0], "num_heads": [2]},
             {"embed_dim": 8, "depth": 2, "mlp_ratio": [1.0, 2.0], "num_heads": [1, 2]}]
    return space, archs, Probe(dataset="gaussian", batch_size=8, max_rows=32)


def stats_values(record: dict) -> dict:
    return {name: (value if isinstance(value, torch.Tensor) else value.data).clone() for name, value in record.items()}


@pytest.mark.parametrize("damage", ["flipped byte", "cut short", "header"])
def test_a_damaged_statistics_entry_is_recomputed_with_a_warning(tmp_path, tiny, damage):
    space, archs, probe = tiny
    stats = tuple(load_grammar("vit").statistics)
    load_statistics(space, archs, probe, stats, cache=tmp_path)
    entries = sorted((tmp_path / "stats").rglob("*.bin"))
    assert len(entries) == 2
    data = entries[0]
    if damage == "flipped byte":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0x10
        data.write_bytes(bytes(raw))
    elif damage == "cut short":
        data.write_bytes(data.read_bytes()[:-4])
    else:
        data.with_suffix(".json").write_text('{"format": 2, "dtype"')
    with pytest.warns(DamagedFileWarning, match="recomputing"):
        again = load_statistics(space, archs, probe, stats, cache=tmp_path)
    fresh = [statistics_for(space, arch, probe, tuple(sorted(stats))) for arch in archs]
    for got, want in zip(again, fresh):
        for name, value in stats_values(want).items():
            assert torch.equal(stats_values(got)[name], value.to(stats_values(got)[name].dtype)), name
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedFileWarning)  # rewritten intact: no warning the next time
        load_statistics(space, archs, probe, stats, cache=tmp_path)


def test_a_damaged_zoo_entry_is_rescored_with_a_warning(tmp_path, tiny):
    space, archs, probe = tiny
    entries = resolve_proxies(["grad_norm", "params"], space)
    first = score_architectures(entries, space, archs, probe, cache=tmp_path)
    cached = sorted((tmp_path / "zoo").rglob("*.json"))[0]
    raw = json.loads(cached.read_text())
    key = next(k for k in raw if k.startswith("params@"))
    raw[key][0] = raw[key][0] + 1000  # a plausible but wrong score, still valid JSON
    cached.write_text(json.dumps(raw))
    with pytest.warns(DamagedFileWarning, match="damaged zoo cache entry"):
        again = score_architectures(entries, space, archs, probe, cache=tmp_path)
    for name in ("grad_norm", "params"):
        assert [s for s in again[name]["scores"] if not math.isnan(s)] == [s for s in first[name]["scores"] if not math.isnan(s)]
