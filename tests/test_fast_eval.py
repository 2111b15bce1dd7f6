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
from synth.stats import Probe, load_statistics
from synth.symbolic import DegenerateProgram, to_formula

EPS = 1e-12


def each(fn):
    """Lift a per-tensor function to lists of per-layer tensors (and apply it to scalars as is)."""
    return lambda x: [fn(t) for t in x] if isinstance(x, list) else fn(x)


def pair(fn):
    def apply(a, b):
        if isinstance(a, list):
            return [fn(x, y) for x, y in zip(a, b)]
        return fn(a, b)

    return apply


def reduce(fn):
    return lambda x: torch.stack([fn(t) for t in x])


STRAIGHT = {
    "log": each(lambda t: torch.log(t.abs() + EPS)),
    "abs": each(torch.abs),
    "square": each(lambda t: t * t),
    "exp": each(torch.exp),
    "sqrt": each(lambda t: t.abs().sqrt()),
    "inverse": each(lambda t: torch.where(t < 0, -1.0, 1.0) / t.abs().clamp_min(EPS)),
    "neg": each(lambda t: -t),
    "relu": each(torch.relu),
    "sigmoid": each(torch.sigmoid),
    "zscore": each(lambda t: (t - t.mean()) / (t.std(unbiased=False) + EPS)),
    "minmax": each(lambda t: (t - t.min()) / (t.max() - t.min() + EPS)),
    "softmax": each(lambda t: torch.softmax(t, dim=-1)),
    "log_softmax": each(lambda t: torch.log_softmax(t, dim=-1)),
    "add": pair(lambda a, b: a + b),
    "sub": pair(lambda a, b: a - b),
    "mul": pair(lambda a, b: a * b),
    "matmul": pair(lambda a, b: a @ b),
    "matmul_tn": pair(lambda a, b: a.T @ b),
    "matmul_nt": pair(lambda a, b: a @ b.T),
    "mean": reduce(torch.mean),
    "std": reduce(lambda t: t.std(unbiased=False)),
    "sum": reduce(torch.sum),
    "fro": reduce(lambda t: t.pow(2).sum().sqrt()),
    "l1": reduce(lambda t: t.abs().sum()),
    "nuclear": reduce(lambda t: torch.linalg.svdvals(t.double()).sum().float()),
    "layer_mean": torch.mean,
    "layer_sum": torch.sum,
}


def straightforward(tree, grammar, lists):
    nodes = list(tree)

    def walk(i):
        node = nodes[i]
        if node.arity == 0:
            return lists[node.name], i + 1
        args, j = [], i + 1
        for _ in range(node.arity):
            arg, j = walk(j)
            args.append(arg)
        return STRAIGHT[grammar.primitives[node.name].op](*args), j

    return float(walk(0)[0])


def test_fast_and_straightforward_evaluation_agree(small_bench):
    grammar = load_grammar("vit")
    programs = ProgramSpace(grammar)
    bench = load_benchmark(str(small_bench))
    stats = load_statistics(load_space(bench.space), bench.archs[:6], Probe(), grammar.statistics)
    values = [{t.name: rec[t.stat] for t in grammar.terminals.values()} for rec in stats]
    lists = [{name: [m.clone() for m in layers.matrices()] for name, layers in v.items()} for v in values]
    lists64 = [{name: [m.double() for m in ms] for name, ms in plain.items()} for plain in lists]
    rng = random.Random(7)
    compared = 0
    while compared < 40:
        tree = programs.random_tree(rng)
        try:
            formula = to_formula(tree, grammar)
        except DegenerateProgram:
            continue
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
