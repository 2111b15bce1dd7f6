"""`--init-from`: a run started from the best programs of finished runs (a warm start, or islands
evolved on different fitnesses merged), an equal share per run under the new run's own fitness."""

import json
import math
import random

import pytest

from synth.errors import GrammarError, RunDirError
from synth.evaluator import Evaluator
from synth.evolve import EvolveConfig, initial_population
from synth.programs import ProgramSpace
from synth.run import run_evolve, warm_start_programs


def small(**kw):
    return EvolveConfig(population=kw.pop("population", 8), iterations=kw.pop("iterations", 4), sample_size=4, top_k=2, **kw)


def test_each_source_gives_its_best_programs_an_equal_share(small_vit):
    grammar, bench, stats, search = small_vit
    programs = ProgramSpace(grammar)
    rng = random.Random(7)
    texts = {"run-a": [str(programs.random_tree(rng)) for _ in range(10)],
             "run-b": [str(programs.random_tree(rng)) for _ in range(10)]}
    config = small(population=5, time_limit=0.0)  # no time limit: a loaded machine changes nothing
    members = initial_population(programs, Evaluator(grammar, stats, bench.targets, search, config), config,
                                 random.Random(0), texts)
    # by hand, on a fresh evaluator: each source's programs scored one by one, the best 5 distinct valid ones
    judge = Evaluator(grammar, stats, bench.targets, search, config)
    expected, seen = [], set()
    for run in ("run-a", "run-b"):
        scored = [judge.fitness(programs.parse(t)) for t in texts[run]]
        ranked = sorted({key: fit for fit, key in scored if key is not None and fit > -1}.items(), key=lambda kv: -kv[1])
        best = [key for key, _ in ranked if key not in seen][: math.ceil(5 / 2)]
        seen.update(best)
        expected += best
    assert len(expected) == 6  # two shares of 3 for a population of 5: the second source's last one is cut
    assert [m.canonical for m in members] == expected[:5]


def test_a_source_of_another_grammar_is_named(small_vit):
    grammar, bench, stats, search = small_vit
    config = small()
    evaluator = Evaluator(grammar, stats, bench.targets, search, config)
    with pytest.raises(GrammarError, match=r"runs/cnn-s0: program 2 of the warm start: 'layer_sum__conv_layer' is not a name of grammar 'vit'"):
        initial_population(ProgramSpace(grammar), evaluator, config, random.Random(0),
                           {"runs/cnn-s0": ["layer_sum__mlp_layer(mean__mlp_x(mlp_input))", "layer_sum__conv_layer(fro__conv_w(conv_weight))"]})


def test_a_run_starts_from_finished_runs(small_bench, tmp_path):
    first = run_evolve("vit", str(small_bench), tmp_path / "a", small(seed=1))
    second = run_evolve("vit", str(small_bench), tmp_path / "b", small(seed=2))
    merged = run_evolve("vit", str(small_bench), tmp_path / "m", small(seed=3, iterations=0, init_from=f"{tmp_path / 'a'},{tmp_path / 'b'}"))
    population = json.loads((tmp_path / "m" / "checkpoint.json").read_text())["state"]["population"]
    canon = {m["canonical"] for m in population}
    # the same fitness on the same rows: each source's winner is among its best and starts the new run
    assert {first["canonical"], second["canonical"]} <= canon
    assert merged["fitness"] >= max(first["fitness"], second["fitness"])
    assert merged["config"]["init_from"].endswith("b")


def test_source_programs_are_the_runs_best_and_a_missing_run_is_named(small_bench, tmp_path):
    record = run_evolve("vit", str(small_bench), tmp_path / "a", small(seed=1))
    sources = warm_start_programs(f" {tmp_path / 'a'} ,", population=2)
    valid = sorted((p for p in record["programs"] if p["fitness"] > -1), key=lambda p: -p["fitness"])
    assert list(sources) == [str(tmp_path / "a")] and len(sources[str(tmp_path / "a")]) == min(6, len(valid))
    fitness = {p["program"]: p["fitness"] for p in record["programs"]}
    assert [fitness[t] for t in sources[str(tmp_path / "a")]] == [p["fitness"] for p in valid[:6]]
    assert fitness[sources[str(tmp_path / "a")][0]] >= record["fitness"]  # a program it scored may beat its final pick
    with pytest.raises(RunDirError, match=r"nowhere/run.json: no run record"):
        warm_start_programs(f"{tmp_path / 'a'},{tmp_path / 'nowhere'}", population=2)
