"""Options for a search that generalises: resampled fitness, an inner validation pick over the Pareto
front, named programs in the first population, restarts."""

import json

import numpy as np
import pytest
from scipy import stats as sps

from synth.bench import inner_split, load_benchmark, split_indices
from synth.evaluator import Evaluator
from synth.evolve import EvolutionState, EvolveConfig, evolve, initial_population
from synth.fitness import resampled_jcm, resamples
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.run import pareto_front, run_evolve
from synth.symbolic import to_formula
from tests.interrupt import interrupt_at


def small(**kw):
    return EvolveConfig(population=kw.pop("population", 8), iterations=kw.pop("iterations", 6), sample_size=4, top_k=2, **kw)


def test_subsets_are_seeded_distinct_rows_of_the_split():
    rows = list(range(10, 50))
    a, b = resamples(rows, 5, 0.8, seed=3), resamples(rows, 5, 0.8, seed=3)
    assert a == b and a != resamples(rows, 5, 0.8, seed=4)
    for subset in a:
        assert len(subset) == 32 and len(set(subset)) == 32 and set(subset) <= set(rows)


def test_resampled_jcm_is_the_quantile_of_per_subset_kendalls():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=30)
    targets = {"a": scores + rng.normal(size=30), "b": -scores + 3 * rng.normal(size=30)}
    subsets = resamples(range(30), 7, 0.7, seed=1)
    by_hand = [np.mean([sps.kendalltau(scores[s], t[s]).statistic for t in targets.values()]) for s in subsets]
    assert resampled_jcm(scores, targets, subsets, 0.25) == pytest.approx(np.quantile(by_hand, 0.25))
    assert resampled_jcm(scores, targets, subsets, 0.5) == pytest.approx(np.median(by_hand))


def test_inner_split_holds_out_part_of_the_search_rows_only():
    search, test = split_indices(100, 0)
    fit, held = inner_split(search, 0.25, 0)
    assert sorted(fit + held) == search and not set(held) & set(fit) and not set(held) & set(test)
    assert len(held) == 15 and inner_split(search, 0.25, 0) == (fit, held)
    assert inner_split(search, 0.0, 0) == (search, [])


def test_pareto_front_keeps_only_unbeaten_fitness_per_complexity():
    class Memo:
        fitness_of = {"a": 0.30, "b": 0.50, "c": 0.40, "d": 0.55, "e": 0.55, "f": -1.0, "g": 0.70}
        complexity_of = {"a": 3, "b": 5, "c": 6, "d": 7, "e": 9, "f": 2, "g": 12}
        program_of = {k: k for k in fitness_of}

    # by hand: a (3, .30); b (5, .50) beats it; c is beaten by b; d (7, .55); e ties d with more nodes; g (12, .70)
    assert pareto_front(Memo) == ["a", "b", "d", "g"]


def test_validation_pick_is_the_fronts_best_on_the_held_out_fold(small_bench, tmp_path):
    record = run_evolve("vit", str(small_bench), tmp_path / "v", small(validation=0.34, seed=1))
    held = record["validation"]["rows"]
    assert held and set(held) <= set(record["split"]["search"]) and not set(held) & set(record["split"]["test"])
    front = record["validation"]["front"]
    chosen = max(front, key=lambda r: (r["validation"], -r["complexity"]))
    assert record["formula"] == chosen["formula"]
    bench = load_benchmark(str(small_bench))
    scores = np.array(record["scores"], dtype=float)
    by_hand = sps.kendalltau(scores[held], bench.targets["digits"][held]).statistic
    assert chosen["validation"] == pytest.approx(by_hand)
    complexities = [r["complexity"] for r in front]
    fitness = [r["fitness"] for r in front]
    assert complexities == sorted(complexities) and fitness == sorted(fitness)


def test_named_programs_start_the_population(small_bench):
    from synth.probe import Probe
    from synth.stats import load_statistics
    from synth.space import load_space

    grammar = load_grammar("vit")
    programs = ProgramSpace(grammar)
    bench = load_benchmark(str(small_bench))
    stats = load_statistics(load_space(bench.space), bench.archs, Probe(), grammar.statistics)
    search, _ = split_indices(len(bench), 0)
    config = small(seed_programs=True, population=12)
    evaluator = Evaluator(grammar, stats, bench.targets, search, config)
    import random

    members = initial_population(programs, evaluator, config, random.Random(0))
    named = {to_formula(programs.parse(text), grammar).canonical for text in grammar.programs.values()}
    valid_named = {key for key in named if evaluator.fitness_of[key] > -1}
    assert valid_named and valid_named <= {m.canonical for m in members}
    plain = initial_population(programs, Evaluator(grammar, stats, bench.targets, search, small(population=12)),
                               small(population=12), random.Random(0))
    assert not valid_named <= {m.canonical for m in plain}


def test_restarts_run_in_a_row_pick_over_all_and_resume_exactly(small_bench, tmp_path):
    cfg = dict(restarts=2, seed=5)
    straight = run_evolve("vit", str(small_bench), tmp_path / "a", small(**cfg))
    assert [h.get("restart") for h in straight["history"]] == [0] * 6 + [1] * 6
    checkpoint = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    archive = checkpoint["state"]["archive"]
    assert len(archive) == 8 and checkpoint["state"]["restart"] == 1
    every = archive + checkpoint["state"]["population"]
    assert straight["fitness"] == max(m["fitness"] for m in every)
    cut = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        run_evolve("vit", str(small_bench), cut, small(**cfg), progress=interrupt_at(9))  # restart 1, iteration 3
    state = EvolutionState.from_dict(json.loads((cut / "checkpoint.json").read_text())["state"])
    assert (state.restart, state.iteration, len(state.archive)) == (1, 3, 8)
    resumed = run_evolve(None, None, cut, small(**cfg), resume=True)
    assert (resumed["formula"], resumed["history"]) == (straight["formula"], straight["history"])


def test_top_share_reaches_the_fitness_of_a_run(small_bench, tmp_path):
    """The run's fitness is the mean over tasks of Kendall tau-b and the accuracy quantile of the
    single highest-scored search row (a share of 1/14 of the 14 search rows), computed by hand."""
    record = run_evolve("vit", str(small_bench), tmp_path / "t", small(metric="kendall_top", top_share=0.05, iterations=2))
    assert record["config"]["top_share"] == 0.05
    search = record["split"]["search"]
    scores = np.array(record["scores"], dtype=float)[search]
    accuracy = load_benchmark(str(small_bench)).targets["digits"][search]
    top = np.flatnonzero(scores == scores.max())
    quantile = np.mean([(sps.rankdata(accuracy)[i] - 1) / (len(search) - 1) for i in top])
    tau = sps.kendalltau(scores, accuracy).statistic
    assert record["fitness"] == pytest.approx((tau + 2 * quantile - 1) / 2)


def test_resample_seed_gives_runs_of_different_seeds_the_same_subsets(small_vit):
    grammar, bench, stats, search = small_vit

    def subsets(**kw):
        return Evaluator(grammar, stats, bench.targets, search, small(resamples=5, **kw)).subsets

    # by default the evolution seed draws them, as runs made before the option did
    assert subsets(seed=3) == resamples(search, 5, 0.8, seed=3) != subsets(seed=4)
    assert subsets(seed=3, resample_seed=9) == subsets(seed=4, resample_seed=9) == resamples(search, 5, 0.8, seed=9)
    with pytest.raises(ValueError, match=r"resample_seed.*--resample-seed"):
        small(resample_seed=-2).validate()
