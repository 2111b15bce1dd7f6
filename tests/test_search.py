"""`synth search`: variation operators, budgets, the memo, resumption, proxies of every kind, the CLI."""

import itertools
import json
import random

import numpy as np
import pytest

from synth.cli import main
from synth.errors import InputError, RunDirError
from synth.search import EVALUATED, SearchConfig, crossover, mutate, parse_count, run_search, search_probe
from synth.space import arch_key, count_params, load_space

SPACES = ["vit-digits", "autoformer-tiny", "pit", "nasbench201"]


def vit_digits_params(arch):
    """Parameter count of a vit-digits network worked out by hand from timm's ViT layout (patch 2,
    1 channel, 16 patches + class token, 10 classes): embedding 5D, class token D, positions 17D,
    final norm 2D, head 10D + 10, and per block with hidden width h = D * ratio:
    norms 4D, qkv 3D^2 + 3D, proj D^2 + D, fc1 Dh + h, fc2 hD + D."""
    d = arch["embed_dim"]
    blocks = sum(4 * d * d + 2 * d * int(d * r) + 9 * d + int(d * r) for r in arch["mlp_ratio"])
    return 35 * d + 10 + blocks


def vit_digits_macs(arch):
    """Multiply-adds of one 8x8 image through a vit-digits network by hand (17 tokens; see
    tests/test_baselines.py): patch embedding, then per block qkv, attention, proj and the MLP, then the head."""
    t, d = 17, arch["embed_dim"]
    blocks = sum(t * d * 3 * d + 2 * t * t * d + t * d * d + 2 * t * d * int(d * r) for r in arch["mlp_ratio"])
    return 16 * 4 * d + blocks + d * 10


def small_config(**kw):
    return SearchConfig(**{"population": 8, "iterations": 3, "parents": 4, "mutations": 4, "crossovers": 4, **kw})


def test_hand_parameter_formula_matches_the_built_networks():
    space = load_space("vit-digits")
    for arch in space.sample_distinct(6, seed=1):
        assert count_params(space.build(arch)) == vit_digits_params(arch)


@pytest.mark.parametrize("name", SPACES)
def test_mutation_and_crossover_give_legal_architectures(name):
    space, rng = load_space(name), random.Random(0)
    archs = space.sample_distinct(6, seed=0)
    for _ in range(100):
        a, b = rng.choice(archs), rng.choice(archs)
        space.validate(mutate(space, a, 0.5, rng))
        space.validate(crossover(space, a, b, rng))
    assert all(mutate(space, a, 0.0, rng) == a for a in archs)


def test_crossover_takes_every_choice_from_a_parent():
    space, rng = load_space("vit-digits"), random.Random(3)
    a = {"embed_dim": 8, "depth": 2, "mlp_ratio": [1.0, 1.0], "num_heads": [1, 1]}
    b = {"embed_dim": 64, "depth": 4, "mlp_ratio": [4.0, 4.0, 4.0, 4.0], "num_heads": [4, 4, 4, 4]}
    children = [crossover(space, a, b, rng) for _ in range(200)]
    for child in children:
        assert child["embed_dim"] in (8, 64) and child["depth"] in (2, 4)
        for i, (ratio, heads) in enumerate(zip(child["mlp_ratio"], child["num_heads"])):
            assert ratio in ({1.0, 4.0} if i < 2 else {4.0}) and heads in ({1, 4} if i < 2 else {4})
    # both parents contribute, roughly half each
    share = sum(c["embed_dim"] == 8 for c in children) / len(children)
    assert 0.35 < share < 0.65


def test_mutation_rate_is_the_chance_each_choice_is_redrawn():
    space, rng = load_space("autoformer-tiny"), random.Random(0)
    arch = space.sample(rng)
    changed = total = 0
    for _ in range(400):
        child = mutate(space, {**arch, "depth": arch["depth"]}, 0.3, rng)
        if child["depth"] != arch["depth"]:
            continue
        for ratio_a, ratio_c in zip(arch["mlp_ratio"], child["mlp_ratio"]):
            changed += ratio_a != ratio_c
            total += 1
    # a redraw from two values changes the value half the time: 0.3 * 0.5
    assert abs(changed / total - 0.15) < 0.02


def test_parse_count():
    assert parse_count("6M") == 6e6 and parse_count("1.5G") == 1.5e9 and parse_count("250k") == 2.5e5
    assert parse_count("1e6") == 1e6
    for bad in ("six", "-3M", "0"):
        with pytest.raises(ValueError):
            parse_count(bad)


def test_search_respects_the_budget_scores_each_architecture_once_and_climbs(tmp_path):
    """With #params as the proxy under a 30k budget, the search's best is the largest network within
    the budget, or close to it; the true maximum is found by enumerating the space by hand."""
    space = load_space("vit-digits")
    budget = 30_000
    best_possible = max(
        p for d, depth in itertools.product([8, 16, 32, 64], [1, 2, 3, 4])
        for ratios in itertools.combinations_with_replacement([1.0, 2.0, 4.0], depth)
        if (p := vit_digits_params({"embed_dim": d, "mlp_ratio": list(ratios)})) <= budget)
    config = SearchConfig(population=20, iterations=8, parents=5, mutations=8, crossovers=8, max_params=budget)
    result = run_search("params", space, config, tmp_path / "s")
    lines = [json.loads(x) for x in (tmp_path / "s" / EVALUATED).read_text().splitlines()]
    keys = [r["key"] for r in lines]
    assert len(keys) == len(set(keys)) == result["evaluated"] <= 20 + 8 * 16
    for r in lines:
        assert r["params"] == vit_digits_params(r["arch"]) <= budget
        assert r["score"] == r["params"]
    top = result["top"]
    assert [t["score"] for t in top] == sorted((r["score"] for r in lines), reverse=True)[:5]
    assert top[0]["params"] >= 0.97 * best_possible
    assert [t["flops"] for t in top] == pytest.approx([vit_digits_macs(t["arch"]) for t in top])
    history = [h["best_score"] for h in result["history"]]
    assert history == sorted(history)  # elitist: the best never gets worse
    assert all(space.decode(t["encoding"]) == t["arch"] for t in top)


def test_impossible_budget_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no architecture within the budget"):
        run_search("params", load_space("vit-digits"), small_config(max_params=100, max_draws=20), tmp_path / "s")


def test_killed_search_resumes_to_the_same_result(tmp_path, monkeypatch):
    import synth.search.scorer as search_module

    space, config = load_space("vit-digits"), small_config(seed=4)
    whole = run_search("l2_norm", space, config, tmp_path / "whole")

    real = search_module._score_in_worker
    calls = []

    def dies_after_13(arch, count_flops, *seeds):
        calls.append(arch_key(arch))
        if len(calls) > 13:
            raise KeyboardInterrupt
        return real(arch, count_flops, *seeds)

    monkeypatch.setattr(search_module, "_score_in_worker", dies_after_13)
    with pytest.raises(KeyboardInterrupt):
        run_search("l2_norm", space, config, tmp_path / "cut")
    monkeypatch.setattr(search_module, "_score_in_worker", real)
    with pytest.raises(RunDirError, match="--resume"):
        run_search("l2_norm", space, config, tmp_path / "cut")
    log = tmp_path / "cut" / EVALUATED
    with log.open("a") as f:
        f.write('{"key": "cut sho')  # a line the kill cut short
    first_part = log.read_text()
    resumed = run_search(None, None, None, tmp_path / "cut", resume=True)
    assert log.read_text().startswith(first_part)  # nothing lost or rescored
    keys = [json.loads(line)["key"] for line in log.read_text().splitlines() if not line.startswith('{"key": "cut sho')]
    assert len(keys) == len(set(keys)) == whole["evaluated"]  # the cut line swallowed no record after it
    assert resumed["top"] == whole["top"] and resumed["history"] == whole["history"]
    assert resumed["evaluated"] == whole["evaluated"]


def test_exported_proxy_and_run_directory_with_its_probe(tmp_path):
    space = load_space("vit-digits")
    run = tmp_path / "run"
    run.mkdir()
    # a proxy file is the user's: it scores the sum of the probe inputs seen by the model's first layer
    (run / "proxy.py").write_text(
        "FORMULA = 'depth'\n"
        "def score(model, inputs, targets):\n"
        "    return float(len(model.blocks)) + float(inputs.shape[0]) / 1000\n")
    (run / "run.json").write_text(json.dumps({"bench": {"space": "vit-digits"},
                                              "probe": {"dataset": "digits", "batch_size": 32, "max_rows": 64}}))
    probe = search_probe(space, str(run), {})
    assert (probe.dataset, probe.batch_size, probe.max_rows) == ("digits", 32, 64)
    assert search_probe(load_space("autoformer-tiny"), str(run), {}).dataset == "gaussian"
    assert search_probe(space, "params", {"batch_size": 8}).batch_size == 8
    result = run_search(str(run), space, small_config(), tmp_path / "s")
    assert result["probe"]["batch_size"] == 32
    assert result["top"][0]["arch"]["depth"] == 4 and result["top"][0]["score"] == pytest.approx(4.032)
    by_file = run_search(str(run / "proxy.py"), space, small_config(), tmp_path / "s2")
    assert by_file["probe"]["dataset"] == "gaussian" and by_file["top"][0]["score"] == pytest.approx(4.064)


def test_worker_processes_give_the_same_search(tmp_path):
    """Also with finalists re-ranked over init seeds, which the workers build the networks from."""
    space, config = load_space("vit-digits"), small_config(iterations=1, finalists=4, init_seeds=(0, 3))
    one = run_search("synflow", space, config, tmp_path / "one")
    two = run_search("synflow", space, config, tmp_path / "two", workers=2)
    assert [t["key"] for t in one["top"]] == [t["key"] for t in two["top"]]
    assert [t["score"] for t in one["top"]] == pytest.approx([t["score"] for t in two["top"]], rel=1e-6)
    scores = [[[s["score"] for s in f["scores"]] for f in run["finalists"]] for run in (one, two)]
    assert np.array(scores[0]) == pytest.approx(np.array(scores[1]), rel=1e-6)
    assert any(row[0] != row[1] for row in scores[0])  # synflow reads the weights, so init seed 3 scores differ


def test_cli_prints_writes_json_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["--json", "search", "--proxy", "params", "--space", "vit-digits", "--max-params", "20k", "--population", "6",
            "--iterations", "1", "--mutations", "3", "--crossovers", "3", "--top-k", "3", "--out", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "search.json").read_text())
    assert printed["top"] == saved["top"] and len(saved["top"]) == 3
    assert all(t["params"] <= 20_000 for t in saved["top"]) and saved["config"]["max_params"] == 20_000
    assert main(argv) == 2  # the directory already holds a search
    assert "--resume" in capsys.readouterr().err
    assert main(["--json", "search", "--resume", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["top"] == saved["top"]
    assert main(["search", "--space", "vit-digits"]) == 2
    assert main(["search", "--proxy", "params", "--space", "vit-digits", "--max-params", "lots"]) == 2
    assert main(["search", "--proxy", "no_such_proxy", "--space", "vit-digits", "--out", str(tmp_path / "x")]) == 2
    assert main(["search", "--resume", str(tmp_path / "nothing")]) == 2


def test_equal_scores_rank_the_smaller_network_first(tmp_path):
    """A proxy that only sees depth ties every network of one depth; the search then reports the
    smallest of the deepest, whatever order the ties were scored in."""
    run = tmp_path / "depth"
    run.mkdir()
    (run / "proxy.py").write_text("def score(model, inputs, targets):\n    return float(len(model.blocks))\n")
    result = run_search(str(run / "proxy.py"), load_space("vit-digits"), small_config(iterations=2), tmp_path / "s")
    top = result["top"]
    assert all(t["score"] == 4.0 for t in top[:2])
    assert [t["params"] for t in top if t["score"] == 4.0] == sorted(t["params"] for t in top if t["score"] == 4.0)

def test_ties_at_the_top_are_counted_and_reported(tmp_path, capsys):
    """A depth-only proxy ties every network of depth 4: search.json counts them (checked against the
    memo by hand) and the CLI says the pick among them is the tie rule's; #params ties the networks
    that differ in head counts only, and its count matches the memo too."""
    run = tmp_path / "depth"
    run.mkdir()
    (run / "proxy.py").write_text("def score(model, inputs, targets):\n    return float(len(model.blocks))\n")
    argv = ["search", "--proxy", str(run / "proxy.py"), "--space", "vit-digits", "--population", "8",
            "--iterations", "2", "--mutations", "4", "--crossovers", "4", "--out", str(tmp_path / "s")]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "s" / "search.json").read_text())
    memo = [json.loads(x) for x in (tmp_path / "s" / EVALUATED).read_text().splitlines()]
    deepest = sum(1 for r in memo if r["arch"]["depth"] == 4)
    assert deepest >= 2 and saved["tied_at_top"] == deepest
    assert f"{deepest} scored architectures share the top score" in " ".join(capsys.readouterr().err.split())

    distinct = run_search("params", load_space("vit-digits"), small_config(seed=1), tmp_path / "p")
    memo = [json.loads(x) for x in (tmp_path / "p" / EVALUATED).read_text().splitlines()]
    assert distinct["tied_at_top"] == sum(1 for r in memo if r["params"] == distinct["top"][0]["params"])


def test_flops_budget_holds_and_each_network_is_counted_once(tmp_path, monkeypatch):
    """Under --max-flops every scored network's multiply-adds (by hand) are within the budget, and the
    scoring worker is never asked to count what the budget check counted already; without a FLOPs
    budget the worker counts them all."""
    import synth.search.scorer as search_module

    real, asked = search_module._score_in_worker, []

    def spy(arch, count_flops, *seeds):
        asked.append(count_flops)
        return real(arch, count_flops, *seeds)

    monkeypatch.setattr(search_module, "_score_in_worker", spy)
    budget = 200_000
    result = run_search("params", load_space("vit-digits"), small_config(max_flops=budget), tmp_path / "f")
    memo = [json.loads(x) for x in (tmp_path / "f" / EVALUATED).read_text().splitlines()]
    assert len(asked) == len(memo) == result["evaluated"] and not any(asked)
    assert all(r["flops"] == pytest.approx(vit_digits_macs(r["arch"])) and r["flops"] <= budget for r in memo)
    asked.clear()
    run_search("params", load_space("vit-digits"), small_config(), tmp_path / "n")
    memo = [json.loads(x) for x in (tmp_path / "n" / EVALUATED).read_text().splitlines()]
    assert asked and all(asked) and all(r["flops"] == pytest.approx(vit_digits_macs(r["arch"])) for r in memo)
