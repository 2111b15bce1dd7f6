"""`synth search --finalists N --init-seeds ...`: the best N re-ranked by mean rank over initialisations."""

import json

import numpy as np
import pytest
import torch

from synth.cli import main
from synth.errors import ConfigError
from synth.search import SearchConfig, run_search, search
from synth.search.finalists import FINALISTS, mean_ranks
from synth.space import load_space


def small_config(**kw):
    return SearchConfig(**{"population": 8, "iterations": 2, "parents": 4, "mutations": 4, "crossovers": 4, **kw})


def weight_norm_sum(space, arch, seed):
    """l2_norm by hand: the sum of the Frobenius norms of every Linear and Conv2d weight, on the network
    built from init seed `seed`."""
    model = space.build(arch, seed=seed)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return sum(float(m.weight.detach().double().norm()) for m in layers)


def test_mean_ranks_by_hand():
    scores = np.array([[3.0, 1.0, 2.0],
                       [2.0, 2.0, np.nan],
                       [1.0, 3.0, 2.0],
                       [1.0, 0.0, 5.0]])
    # column 0: 3 > 2 > 1 = 1 -> ranks 1, 2, 3.5, 3.5; column 1: 3 > 2 > 1 > 0 -> 3, 2, 1, 4;
    # column 2: 5 > 2 = 2 > NaN -> 2.5, 4, 2.5, 1
    expected = np.array([1 + 3 + 2.5, 2 + 2 + 4, 3.5 + 1 + 2.5, 3.5 + 4 + 1]) / 3
    assert mean_ranks(scores) == pytest.approx(expected)


def test_finalists_are_scored_under_each_init_seed_and_ordered_by_mean_rank(tmp_path):
    space = load_space("vit-digits")
    config = small_config(seed=3, finalists=6, init_seeds=(0, 5, 7), top_k=8)
    plain = run_search("l2_norm", space, small_config(seed=3, top_k=8), tmp_path / "plain")
    result = run_search("l2_norm", space, config, tmp_path / "ranked")
    assert result.evaluated == plain.evaluated  # the re-ranking scores no new architecture
    finalists = result.finalists
    assert len(finalists) == 6 and sorted(f["search_rank"] for f in finalists) == list(range(1, 7))
    by_rank = {f["search_rank"]: f for f in finalists}
    for pick in plain.top[:6]:  # the finalists are the plain search's best six
        final = by_rank[pick.rank]
        by_seed = {s["init_seed"]: s["score"] for s in final["scores"]}
        assert final["key"] == pick.key and by_seed[0] == pick.score and {s["probe_seed"] for s in final["scores"]} == {0}
        for seed in (5, 7):
            assert by_seed[seed] == pytest.approx(weight_norm_sum(space, pick.arch, seed), rel=1e-9)
    # mean rank worked out here from the scores: rank 1 is the largest at each seed
    table = np.array([[s["score"] for s in f["scores"]] for f in finalists])
    ranks = np.array([[1 + np.sum(col > v) + (np.sum(col == v) - 1) / 2 for v in col] for col in table.T]).T.mean(axis=1)
    assert [f["mean_rank"] for f in finalists] == pytest.approx(list(ranks))
    assert all(a["mean_rank"] < b["mean_rank"] or (a["mean_rank"] == b["mean_rank"] and a["search_rank"] < b["search_rank"])
               for a, b in zip(finalists, finalists[1:]))
    assert [t.key for t in result.top[:6]] == [f["key"] for f in finalists]
    assert [t.key for t in result.top[6:]] == [t.key for t in plain.top[6:]]  # beyond the finalists, the search's order
    assert result.top[0].mean_rank == finalists[0]["mean_rank"] and result.top[7].mean_rank is None
    assert len((tmp_path / "ranked" / FINALISTS).read_text().splitlines()) == 12  # seeds 5 and 7; seed 0 is reused


def test_finalists_over_probe_batches_and_initialisations(tmp_path):
    """Every (init seed, probe seed) pair is scored: the network built from the init seed, on the probe
    batch drawn with the probe seed, as the zoo's grad_norm scores it outside the search."""
    from dataclasses import replace

    from synth.probe import Probe
    from synth.zoo import get_proxy

    space = load_space("vit-digits")
    config = small_config(seed=2, finalists=3, init_seeds=(0, 4), probe_seeds=(0, 9))
    result = run_search("grad_norm", space, config, tmp_path / "s")
    probe = Probe(**result.probe)
    for final in result.finalists:
        assert [(s["init_seed"], s["probe_seed"]) for s in final["scores"]] == [(0, 0), (0, 9), (4, 0), (4, 9)]
        arch = json.loads(final["key"])
        for setting in final["scores"][1:]:
            inputs, targets = replace(probe, seed=setting["probe_seed"]).batch(space)
            model = space.build(space.validate(arch), seed=setting["init_seed"])
            assert setting["score"] == pytest.approx(get_proxy("grad_norm")(model, inputs, targets), rel=1e-6)
    assert len({round(s["score"], 9) for s in result.finalists[0]["scores"]}) == 4  # batch and weights both matter


def test_interrupted_reranking_resumes_without_scoring_again(tmp_path, monkeypatch):
    import synth.search.scorer as scorer_module

    space, config = load_space("vit-digits"), small_config(seed=1, finalists=5, init_seeds=(2, 0, 4))
    whole = run_search("l2_norm", space, config, tmp_path / "whole")
    real, reranked = scorer_module._score_in_worker, []

    def dies_in_the_reranking(arch, count_flops, init_seed=None, probe_seed=None):
        if init_seed is not None:
            reranked.append(init_seed)
            if len(reranked) > 7:
                raise KeyboardInterrupt
        return real(arch, count_flops, init_seed, probe_seed)

    monkeypatch.setattr(scorer_module, "_score_in_worker", dies_in_the_reranking)
    with pytest.raises(KeyboardInterrupt):
        run_search("l2_norm", space, config, tmp_path / "cut")
    monkeypatch.setattr(scorer_module, "_score_in_worker", real)
    assert len((tmp_path / "cut" / FINALISTS).read_text().splitlines()) == 7
    reranked.clear()
    monkeypatch.setattr(scorer_module, "_score_in_worker", dies_in_the_reranking)
    resumed = search(out=tmp_path / "cut", resume=True)
    assert len(reranked) == 3  # 10 re-rankings (seeds 2 and 4) less the 7 already written
    assert resumed.finalists == whole.finalists and resumed.top == whole.top


def test_finalist_settings_are_checked():
    with pytest.raises(ConfigError, match="at least two init_seeds or probe_seeds"):
        small_config(finalists=3, init_seeds=(0,), probe_seeds=(2,)).validate()
    with pytest.raises(ConfigError, match="finalists is 0"):
        small_config(init_seeds=(0, 1)).validate()
    with pytest.raises(ConfigError, match="probe_seeds repeats"):
        small_config(finalists=3, probe_seeds=(1, 1)).validate()
    small_config(finalists=3, probe_seeds=(0, 1)).validate()  # the probe's own init seed, two batches
    with pytest.raises(ConfigError, match="repeats"):
        small_config(finalists=3, init_seeds=(0, 1, 0)).validate()
    with pytest.raises(ConfigError, match="non-negative integers"):
        small_config(finalists=3, init_seeds=(0, -1)).validate()


def test_cli_reranks_and_reports_mean_ranks(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["search", "--proxy", "l2_norm", "--space", "vit-digits", "--population", "6", "--iterations", "1",
                 "--parents", "3", "--mutations", "3", "--crossovers", "3", "--finalists", "4", "--init-seeds", "0,1",
                 "--out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["finalists"]) == 4 and printed["config"]["init_seeds"] == [0, 1]
    assert printed["top"][0]["key"] == printed["finalists"][0]["key"]
    assert json.loads((out / "search.json").read_text())["finalists"] == printed["finalists"]
    with pytest.raises(SystemExit) as exc:
        main(["search", "--proxy", "l2_norm", "--space", "vit-digits", "--finalists", "4", "--init-seeds", "0,x"])
    assert exc.value.code == 2
    assert "comma-separated list of integer seeds" in capsys.readouterr().err
