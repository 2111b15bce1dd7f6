"""Crossover and insertion, the two optional ways a child is made besides Auto-Prox's node mutation:
every child is a well-typed program of the grammar, built exactly as the operator says (checked by
brute force over all the ways it could have been built), and the default run is untouched."""

import random

import pytest

from synth.config import EvolveConfig
from synth.errors import ConfigError
from synth.evolve import EvolutionState, Member, _variant
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.run import run_evolve


@pytest.fixture(scope="module")
def cnn():
    grammar = load_grammar("cnn")
    return grammar, ProgramSpace(grammar)


def subtrees(tokens, tree):
    """Every (start, stop) of a complete subtree of `tree`, found with DEAP's own search."""
    return [(i, tree.searchSubtree(i).stop) for i in range(len(tokens))]


def test_crossover_swaps_one_non_root_subtree_for_a_donor_subtree_of_its_type(cnn):
    grammar, programs = cnn
    parent = programs.parse(grammar.programs["params"])
    donor = programs.parse(grammar.programs["grad_norm"])
    p, d = [n.name for n in parent], [n.name for n in donor]
    donor_names = {n.name for n in donor} - {n.name for n in parent}
    changed = 0
    for seed in range(200):
        child = programs.crossover(parent, donor, random.Random(seed))
        programs.parse(str(child))  # well typed, or GrammarError
        c = [n.name for n in child]
        assert c[0] == p[0]
        ways = [(i, j) for i, i_end in subtrees(p, parent)[1:] for j, j_end in subtrees(d, donor)
                if p[:i] + d[j:j_end] + p[i_end:] == c and parent[i].ret is donor[j].ret]
        assert ways, f"seed {seed}: {c} is not the parent with one subtree from the donor"
        changed += bool(donor_names & set(c))
    assert changed > 50  # the donor's own nodes do arrive


def test_crossover_without_a_shared_type_returns_the_parent(cnn):
    grammar, programs = cnn
    parent = programs.parse("layer_sum__conv_layer(conv_params)")
    donor = programs.parse("layer_sum__fc_layer(fc_params)")
    child = programs.crossover(parent, donor, random.Random(0))
    assert str(child) == str(parent)


def test_insert_puts_one_node_above_a_subtree_and_keeps_the_rest(cnn):
    grammar, programs = cnn
    parent = programs.parse(grammar.programs["snip"])
    p = [n.name for n in parent]
    for seed in range(200):
        child = programs.insert(parent, random.Random(seed))
        programs.parse(str(child))
        c = [n.name for n in child]
        assert len(c) > len(p)
        # removing the inserted node and its other arguments must give the parent back
        recovered = []
        for k, k_end in subtrees(c, child):
            start = k + 1
            for _ in range(child[k].arity):
                stop = child.searchSubtree(start).stop
                if c[:k] + c[start:stop] + c[k_end:] == p and child[k].ret is child[start].ret:
                    recovered.append(k)
                start = stop
        assert recovered, f"seed {seed}: {c} is not the parent with one node inserted"


def test_default_variant_is_node_mutation_with_the_same_random_stream(cnn):
    grammar, programs = cnn
    tree = programs.parse(grammar.programs["zico"])
    state = EvolutionState(population=[Member(str(tree), "k", 0.5)])
    config = EvolveConfig()
    a, b = random.Random(7), random.Random(7)
    assert str(_variant(programs, state, config, a, tree)) == str(programs.mutate(tree, b, 0.5, 0.3))
    assert a.getstate() == b.getstate()


def test_probabilities_are_validated():
    with pytest.raises(ConfigError, match="insert_prob"):
        EvolveConfig(crossover_prob=0.7, insert_prob=0.5).validate()
    with pytest.raises(ConfigError, match="crossover_prob"):
        EvolveConfig(crossover_prob=1.5).validate()


def test_run_with_crossover_and_insertion_is_reproducible_and_resumable(small_bench, tmp_path):
    def config(iterations):
        return EvolveConfig(population=8, iterations=iterations, sample_size=4, top_k=2, seed=2,
                            crossover_prob=0.3, insert_prob=0.3)

    straight = run_evolve("vit", str(small_bench), tmp_path / "a", config(12))
    again = run_evolve("vit", str(small_bench), tmp_path / "b", config(12))
    assert (straight["formula"], straight["history"]) == (again["formula"], again["history"])
    run_evolve("vit", str(small_bench), tmp_path / "cut", config(5))
    resumed = run_evolve(None, None, tmp_path / "cut", resume=True, extend=12)
    assert resumed["history"] == straight["history"]
    best = [h["best_fitness"] for h in straight["history"]]
    assert best == sorted(best)


def test_with_crossover_on_the_population_holds_no_two_copies_of_a_formula(small_bench, tmp_path):
    config = EvolveConfig(population=8, iterations=30, sample_size=4, top_k=2, seed=0, crossover_prob=0.5, insert_prob=0.2)
    run_evolve("vit", str(small_bench), tmp_path / "x", config)
    import json

    from synth.rundir import CHECKPOINT

    state = EvolutionState.from_dict(json.loads((tmp_path / "x" / CHECKPOINT).read_text())["state"])
    keys = [m.canonical for m in state.population]
    assert len(keys) == len(set(keys)) == 8
