"""sympy simplification: merged forms share a key, and simplified formulas rank like raw trees."""

import random

import numpy as np
import pytest
from scipy.stats import rankdata

from synth import runtime as rt
from synth.bench import load_benchmark
from synth.execute import evaluate
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.space import load_space
from synth.stats import Probe, load_statistics
from synth.symbolic import DegenerateProgram, to_formula

# The raw tree's meaning, op by op, written independently of synth.ops' sympy forms.
RAW = {
    "log": rt.op_log, "abs": rt.op_abs, "square": lambda x: rt.op_pow(x, 2), "exp": rt.op_exp,
    "sqrt": rt.op_sqrt, "inverse": rt.op_inverse, "neg": lambda x: rt.op_mul(x, -1), "relu": rt.op_relu,
    "sigmoid": rt.op_sigmoid, "zscore": rt.op_zscore, "minmax": rt.op_minmax, "softmax": rt.op_softmax,
    "log_softmax": rt.op_log_softmax, "add": rt.op_add, "sub": lambda a, b: rt.op_add(a, rt.op_mul(b, -1)),
    "mul": rt.op_mul, "matmul": rt.op_matmul, "matmul_tn": rt.op_matmul_tn, "matmul_nt": rt.op_matmul_nt,
    "mean": rt.op_mean, "std": rt.op_std, "sum": rt.op_sum, "fro": rt.op_fro, "l1": rt.op_l1,
    "nuclear": rt.op_nuclear, "layer_mean": rt.op_mean, "layer_sum": rt.op_sum,
}


def run_raw(tree, grammar, values):
    """Evaluate a DEAP prefix tree node by node, with no sympy involved."""
    nodes = list(tree)

    def walk(i):
        node = nodes[i]
        if node.arity == 0:
            return values[node.name], i + 1
        args, j = [], i + 1
        for _ in range(node.arity):
            arg, j = walk(j)
            args.append(arg)
        return RAW[grammar.primitives[node.name].op](*args), j

    return float(walk(0)[0])


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
    values = [{t.name: rec[t.stat] for t in grammar.terminals.values()} for rec in stats]
    rng = random.Random(0)
    checked = 0
    while checked < 12:
        tree = programs.random_tree(rng)
        try:
            formula = to_formula(tree, grammar)
        except DegenerateProgram:
            continue
        raw = np.array([run_raw(tree, grammar, v) for v in values])
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
    values = [{t.name: rec[t.stat] for t in grammar.terminals.values()} for rec in stats]
    rng = random.Random(1)
    for _ in range(150):
        tree = programs.mutate(programs.random_tree(rng), rng, 0.5, 0.5)
        for v in values:
            run_raw(tree, grammar, v)  # raises on any shape mismatch
