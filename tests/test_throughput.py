"""Evolution throughput: bounded cost per program, counted rejections, generational mode, float32 nuclear norms."""

import math
import random
import time

import numpy as np
import pytest
import torch

import synth.evaluator as evaluator_module
from synth.evaluator import Evaluator
from synth.evolve import EvolutionState, EvolveConfig, evolve
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.run import run_evolve
from synth.runtime import Layers, op_nuclear

A = "layer_sum__mlp_layer(l1__mlp_w(mlp_weight))"
B = "layer_sum__mlp_layer(fro__mlp_w(mlp_weight))"
C = "layer_sum__msa_layer(l1__msa_w(msa_weight))"
D = "layer_sum__msa_layer(fro__msa_w(msa_weight))"
E = "layer_mean__mlp_layer(l1__mlp_w(mlp_weight))"


@pytest.fixture(scope="module")
def setting(small_vit):
    grammar, bench, stats, search = small_vit
    return grammar, ProgramSpace(grammar), bench, stats, search


def evaluator_for(setting, **config):
    grammar, _, bench, stats, search = setting
    return Evaluator(grammar, stats, bench.targets, search, EvolveConfig(**config))


def scripted(monkeypatch, behaviour):
    """Replace the evaluation the Evaluator calls by `behaviour[program index](call)`; count calls per program."""
    calls = {}

    def fake(expr, values, shared=None):
        key = str(expr)
        calls[key] = calls.get(key, 0) + 1
        return behaviour[key](calls[key])

    monkeypatch.setattr(evaluator_module, "evaluate", fake)
    return calls


def canonical(evaluator, programs, text):
    return evaluator.formula(programs.parse(text)).canonical


def test_a_program_past_the_time_limit_is_stopped_there_and_counted(setting, monkeypatch):
    _, programs, _, _, search = setting
    ev = evaluator_for(setting, time_limit=0.035)
    assert ev.clock is time.process_time  # statistics on the CPU: CPU seconds, whatever the machine's load
    slow, fast = canonical(ev, programs, A), canonical(ev, programs, B)
    clock = [0.0]  # a fake clock: the slow program takes 10 ms per architecture, the fast one none
    ev.clock = lambda: clock[0]

    def slow_score(call):
        clock[0] += 0.01
        return float(call)

    calls = scripted(monkeypatch, {slow: slow_score, fast: lambda call: float(call)})
    results = ev.fitness_many([programs.parse(A), programs.parse(B)])
    # 10 ms per architecture against a 35 ms limit: over it after the 4th architecture, never scored again
    assert calls[slow] == 4 and calls[fast] == len(search)
    assert results[0][0] == -1.0 and ev.reason_of[slow] == "time_limit"
    assert ev.seconds_of[slow] == pytest.approx(0.04) and ev.seconds_of[fast] == 0.0
    assert results[1][0] > -1.0 and fast not in ev.reason_of
    assert ev.rejections() == {"time_limit": 1}


def test_each_rejection_has_its_reason_and_a_failing_program_stops_at_once(setting, monkeypatch):
    _, programs, _, _, search = setting
    ev = evaluator_for(setting)
    keys = [canonical(ev, programs, t) for t in (A, B, C, D, E)]

    def raise_(exc):
        def f(call):
            raise exc

        return f

    calls = scripted(monkeypatch, {
        keys[0]: lambda call: math.nan if call == 3 else float(call),
        keys[1]: raise_(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")),
        keys[2]: raise_(ValueError("per-layer shapes differ")),
        keys[3]: lambda call: 7.0,
        keys[4]: lambda call: float(call),
    })
    results = ev.fitness_many([programs.parse(t) for t in (A, B, C, D, E)])
    assert [ev.reason_of.get(k) for k in keys] == ["non_finite", "out_of_memory", "error", "constant", None]
    assert [calls[k] for k in keys] == [3, 1, 1, len(search), len(search)]
    assert [r[0] for r in results[:4]] == [-1.0] * 4 and results[4][0] > -1.0
    assert ev.rejections() == {"out_of_memory": 1, "error": 1, "non_finite": 1, "constant": 1}


def test_memo_keeps_costs_and_reasons_and_reads_the_older_form(setting):
    _, programs, _, _, _ = setting
    ev = evaluator_for(setting)
    ev.fitness_many([programs.parse(t) for t in (A, B)])
    ev.degenerate = 3
    again = evaluator_for(setting)
    again.restore(ev.memo())
    assert (again.fitness_of, again.seconds_of, again.reason_of, again.degenerate) == (
        ev.fitness_of, ev.seconds_of, ev.reason_of, 3)
    older = evaluator_for(setting)
    older.restore({key: [fit, ev.complexity_of[key]] for key, fit in ev.fitness_of.items()})
    assert older.fitness_of == ev.fitness_of and older.seconds_of == {}
    costs = ev.costs()
    seconds = sorted(ev.seconds_of.values())
    assert costs["programs"] == 2 and costs["max_seconds"] == seconds[-1]
    assert costs["median_seconds"] == pytest.approx((seconds[0] + seconds[1]) / 2)


def test_generational_mode_scores_each_generation_in_one_pass(setting, monkeypatch):
    _, programs, _, _, _ = setting
    ev = evaluator_for(setting)
    config = EvolveConfig(population=8, iterations=5, sample_size=4, top_k=2, mode="generational", children=6, seed=4)
    batches = []
    original = Evaluator.fitness_many

    def spy(self, trees):
        batches.append(len(trees))
        return original(self, trees)

    monkeypatch.setattr(Evaluator, "fitness_many", spy)
    state = evolve(programs, ev, config)
    # the initial population's batches, then exactly one pass of 6 children per generation
    assert batches[-5:] == [6] * 5
    assert state.evaluations == 30 and len(state.history) == 5
    assert len(state.population) == 8
    best = [h["best_fitness"] for h in state.history]
    assert best == sorted(best)  # elitism holds
    assert all(0 <= h["accepted"] <= 6 for h in state.history)


def test_generational_runs_are_reproducible_and_resume_exactly(small_bench, tmp_path):
    cfg = dict(population=8, sample_size=4, top_k=2, mode="generational", children=5, seed=2)
    straight = run_evolve("vit", str(small_bench), tmp_path / "a", EvolveConfig(iterations=6, **cfg))
    again = run_evolve("vit", str(small_bench), tmp_path / "b", EvolveConfig(iterations=6, **cfg))
    assert (straight["formula"], straight["history"]) == (again["formula"], again["history"])
    run_evolve("vit", str(small_bench), tmp_path / "c", EvolveConfig(iterations=2, **cfg))
    resumed = run_evolve(None, None, tmp_path / "c", resume=True, extend=6)
    assert resumed["history"] == straight["history"] and resumed["formula"] == straight["formula"]
    programs = straight["programs"]
    assert len(programs) == straight["timing"]["distinct_programs"]
    assert all(p["seconds"] is not None and p["seconds"] >= 0 for p in programs)
    grammar = load_grammar("vit")
    space = ProgramSpace(grammar)
    from synth.symbolic import to_formula

    assert all(to_formula(space.parse(p["program"]), grammar).canonical == p["formula"] for p in programs)
    assert sum(p["reason"] is not None for p in programs) + straight["rejections"].get("degenerate", 0) == sum(
        straight["rejections"].values())


def test_progress_lines_reach_the_log(small_bench, tmp_path):
    lines = []
    run_evolve("vit", str(small_bench), tmp_path / "r", EvolveConfig(population=6, iterations=7, sample_size=4, top_k=2),
               log=lines.append, log_every=3)
    assert [line.split(",")[0] for line in lines if line.startswith("statistics ")] == ["statistics 24/24 architectures"]
    progress = [line for line in lines if line.startswith("iteration ")]
    assert [line.split()[1] for line in progress] == ["3/7:", "6/7:", "7/7:"]
    assert all("best" in line and "median" in line and "programs scored" in line for line in progress)


def test_bad_throughput_settings_are_refused():
    for bad in (dict(time_limit=-1), dict(time_limit=math.inf), dict(mode="islands"), dict(children=0)):
        with pytest.raises(ValueError):
            EvolveConfig(**bad).validate()


def test_nuclear_norms_match_a_float64_svd():
    """Weight-like matrices and the nearly rank-one ones programs make of them (exp, sigmoid, a
    leading singular value 1e6 times the rest): within 1e-6 relative of a float64 SVD."""
    g = torch.Generator().manual_seed(0)
    w = lambda r, c: torch.randn(r, c, generator=g) * 0.02  # noqa: E731
    mats = [w(960, 240), w(240, 960).exp(), torch.sigmoid(w(720, 240)), w(240, 240) ** 2, w(720, 240) * w(720, 240),
            w(240, 720), torch.ones(960, 240) + 1e-4 * torch.randn(960, 240, generator=g), w(240, 960).exp().log()]
    got = op_nuclear(Layers.from_list(mats)).double()
    expected = torch.stack([torch.linalg.svdvals(m.double()).sum() for m in mats])
    assert torch.all((got - expected).abs() / expected < 1e-6), (got, expected)
