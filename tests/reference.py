"""An independent reference for program values: a plain per-layer Python loop over lists of tensors.

Written from the ops' definitions (grammar/README.md), not from synth.runtime,
so tests can check the engine's fast evaluation and sympy's simplification against it.
"""

import torch

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
    "layer_max": torch.amax,
    "layer_min": torch.amin,
    # samples i, j: the number of units whose codes are equal, counted by comparison over all layers
    "hamming_kernel": lambda x: sum((t[:, None, :] == t[None, :, :]).sum(-1).double() for t in x),
    "logdet": lambda k: torch.log(torch.linalg.eigvalsh(k.double()).abs()).sum(),
    # over the rows of each column, kept as a 1 x columns row
    "channel_mean": each(lambda t: t.mean(dim=0, keepdim=True)),
    "channel_std": each(lambda t: t.std(dim=0, unbiased=False, keepdim=True)),
    "channel_norm": each(lambda t: t.pow(2).sum(dim=0, keepdim=True).sqrt()),
}


def per_layer_lists(values: dict) -> dict:
    """{terminal: list of per-layer tensors} from engine values (per-layer numbers stay one 1-D tensor)."""
    return {name: v.matrices() if hasattr(v, "matrices") else v for name, v in values.items()}


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


def random_formulas(programs, grammar, rng):
    """Endless (tree, formula) pairs of random programs, degenerate ones skipped."""
    while True:
        tree = programs.random_tree(rng)
        try:
            yield tree, to_formula(tree, grammar)
        except DegenerateProgram:
            continue
