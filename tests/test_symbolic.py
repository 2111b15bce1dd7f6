"""sympy simplification: merged forms share a key, and simplified formulas rank like raw trees."""

import random

import numpy as np
import pytest
from scipy.stats import rankdata

from synth.bench import load_benchmark
from synth.execute import evaluate
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.space import load_space
from synth.probe import Probe
from synth.stats import load_statistics
from synth.symbolic import DegenerateProgram, to_formula
from tests.reference import per_layer_lists, random_formulas, straightforward

@pytest.fixture(scope="module")
def grammar():
    return load_grammar("vit")


@pytest.fixture(scope="module")
def programs(grammar):
    return ProgramSpace(grammar)


def test_equivalent_programs_share_a_canonical_key(grammar, programs):
    same = [
        "layer_mean__msa_layer(mean__msa_w(mul__msa_w__msa_w(msa_weight, msa_weight)))",
        "layer_mean__msa_layer(mean__msa_w(square__msa_w(msa_weight)))",
        "layer_mean__msa_layer(mean__msa_w(neg__msa_w(neg__msa_w(square__msa_w(msa_weight)))))",
    ]
    keys = {to_formula(programs.parse(p), grammar).canonical for p in same}
    assert len(keys) == 1
    other = to_formula(programs.parse("layer_mean__msa_layer(mean__msa_w(abs__msa_w(msa_weight)))"), grammar)
    assert other.canonical not in keys


def test_degenerate_programs_are_rejected(grammar, programs):
    with pytest.raises(DegenerateProgram):
        to_formula(programs.parse("layer_mean__mlp_layer(fro__mlp_w(sub__mlp_w__mlp_w(mlp_weight, mlp_weight)))"), grammar)


def test_latex_uses_terminal_names(grammar, programs):
    tree = programs.parse("layer_sum__mlp_layer(fro__mlp_w(mlp_weight_grad))")
    f = to_formula(tree, grammar, {n: t.latex for n, t in grammar.terminals.items()})
    assert r"\nabla W_{\mathrm{mlp}}" in f.latex
    assert f.canonical == "layer_sum(fro(mlp_weight_grad))"


def test_simplified_formula_ranks_all_benchmark_architectures_like_the_raw_tree(grammar, programs):
    bench = load_benchmark(None)
    stats = load_statistics(load_space(bench.space), bench.archs, Probe(), grammar.statistics)
    values = [grammar.terminal_values(rec) for rec in stats]
    lists = [per_layer_lists(v) for v in values]
    rng = random.Random(0)
    checked = 0
    for tree, formula in random_formulas(programs, grammar, rng):
        if checked == 12:
            break
        raw = np.array([straightforward(tree, grammar, plain) for plain in lists])
        simplified = np.array([evaluate(formula.expr, v) for v in values])
        if not np.all(np.isfinite(raw)):
            assert not np.all(np.isfinite(simplified)) or np.allclose(raw, simplified, equal_nan=True)
            continue
        np.testing.assert_allclose(simplified, raw, rtol=2e-4, atol=1e-6, err_msg=str(tree))
        order = np.argsort(raw)
        gaps = np.diff(raw[order]) > 1e-4 * np.abs(raw[order][1:]).clip(min=1e-6)
        if gaps.all():  # no near-ties: the ranking must be identical
            np.testing.assert_array_equal(rankdata(simplified), rankdata(raw), err_msg=str(tree))
        checked += 1


def test_generated_and_mutated_programs_are_well_formed(grammar, programs, small_bench):
    """Typing alone keeps shapes compatible: no program raises a shape error on real statistics."""
    bench = load_benchmark(str(small_bench))
    stats = load_statistics(load_space(bench.space), bench.archs[:2], Probe(), grammar.statistics)
    lists = [per_layer_lists(grammar.terminal_values(rec)) for rec in stats]
    rng = random.Random(1)
    for _ in range(150):
        tree = programs.mutate(programs.random_tree(rng), rng, 0.5, 0.5)
        for plain in lists:
            straightforward(tree, grammar, plain)  # raises on any shape mismatch
