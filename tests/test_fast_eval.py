"""The engine's fast evaluation (flat buffers, batched per shape) equals a straightforward
per-layer Python loop over plain tensors, program by program, to float tolerance."""

import random

import numpy as np
import torch

from synth.bench import load_benchmark
from synth.execute import evaluate
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.space import load_space
from synth.probe import Probe
from synth.stats import load_statistics
from tests.reference import per_layer_lists, random_formulas, straightforward


def test_fast_and_straightforward_evaluation_agree(small_bench):
    grammar = load_grammar("vit")
    programs = ProgramSpace(grammar)
    bench = load_benchmark(str(small_bench))
    stats = load_statistics(load_space(bench.space), bench.archs[:6], Probe(), grammar.statistics)
    values = [grammar.terminal_values(rec) for rec in stats]
    lists = [{name: [m.clone() for m in ms] if isinstance(ms, list) else ms.clone() for name, ms in per_layer_lists(v).items()} for v in values]
    lists64 = [{name: [m.double() for m in ms] if isinstance(ms, list) else ms.double() for name, ms in p.items()} for p in lists]
    rng = random.Random(7)
    compared = 0
    for tree, formula in random_formulas(programs, grammar, rng):
        if compared == 40:
            break
        fast = np.array([evaluate(formula.expr, v) for v in values])
        slow = np.array([straightforward(tree, grammar, plain) for plain in lists])
        exact = np.array([straightforward(tree, grammar, plain) for plain in lists64])
        if not np.all(np.isfinite(slow)) or not np.allclose(slow, exact, rtol=1e-4, atol=1e-6):
            continue  # ill-conditioned in float32 (e.g. log of a mean that is zero up to rounding)
        np.testing.assert_allclose(fast, slow, rtol=1e-3, atol=1e-6, err_msg=str(formula.canonical))
        compared += 1


def test_nuclear_norm_through_gram_eigenvalues_matches_svd():
    from synth.runtime import Layers, op_nuclear

    torch.manual_seed(0)
    mats = [torch.randn(6, 9), torch.randn(9, 6), torch.randn(6, 9), torch.randn(4, 4)]
    expected = torch.stack([torch.linalg.svdvals(m.double()).sum() for m in mats]).float()
    torch.testing.assert_close(op_nuclear(Layers.from_list(mats)), expected, rtol=1e-5, atol=1e-5)


def test_run_long_scalar_memo_changes_no_fitness_and_stays_bounded(small_bench):
    """Fitness through the Evaluator (scalar sub-expressions memoised across programs, memo
    trimmed to a small size here) equals the JCM of each program's scores computed alone."""
    from synth.bench import split_indices
    from synth.evaluator import Evaluator
    from synth.evolve import EvolveConfig
    from synth.fitness import jcm

    grammar = load_grammar("vit")
    programs = ProgramSpace(grammar)
    bench = load_benchmark(str(small_bench))
    stats = load_statistics(load_space(bench.space), bench.archs, Probe(), grammar.statistics)
    search, _ = split_indices(len(bench), 0)
    evaluator = Evaluator(grammar, stats, bench.targets, search, EvolveConfig())
    evaluator.scalar_memo_size = 8
    rng = random.Random(3)
    pairs = []
    for tree, formula in random_formulas(programs, grammar, rng):
        if len(pairs) == 30:
            break
        if formula.canonical not in evaluator.fitness_of:
            pairs.append((evaluator.fitness(tree)[0], formula))
    for fitness, formula in pairs:
        alone = np.array([evaluate(formula.expr, grammar.terminal_values(rec)) for rec in stats])
        expected = jcm(np.where(np.isfinite(alone), alone, np.nan), bench.targets, search)
        assert fitness == expected or np.isclose(fitness, expected, rtol=1e-9), formula.canonical
    # trimmed before each pass: at most the limit plus one program's nodes (max_size) remain
    assert max(len(evaluator._scalars[i]) for i in search) <= 8 + grammar.limits.max_size
