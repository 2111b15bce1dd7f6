"""The operator library: every op a grammar may name, with its role, torch code and sympy form.

Roles decide the signatures an op can have in a grammar:

- ``unary``: element-wise, T -> T (any tensor or per-layer type);
- ``binary``: element-wise, T, T -> T (both arguments of one type);
- ``reduce``: per-layer tensor -> per-layer scalar (T -> the type's ``layer``);
- ``aggregate``: per-layer scalars -> network scalar (L -> the type's ``network``);
- ``matmul``: matrix products; their signatures are spelled out in the grammar;
- ``kernel``: per-layer per-sample values (rows are samples) -> one samples x samples
  kernel of the network, pooled over layers; signatures spelled out in the grammar;
- ``kernel_reduce``: a kernel -> network scalar (K -> the kernel type's ``network``);
- ``channel``: per-layer (rows x columns) tensor -> per-layer 1 x columns tensor, reduced over
  the rows (samples and positions of activation rows: one value per channel); signatures
  spelled out in the grammar, since the result's shape depends on the statistic.

Ops are rows of one table, `OPS`, behind a `synth.registry.Registry` (`OP_REGISTRY`): a name is
taken once, and an unknown name is answered with close matches. Plugins add rows through
`synth.register_op` (synth.plugins).

Element-wise ops map to sympy forms that sympy may simplify exactly (``x*x`` is
``x**2``); protected or non-element-wise ops map to opaque sympy functions so
sympy never applies an identity that the torch code does not satisfy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy

from synth.errors import GrammarError
from synth.registry import Registry

__all__ = ["OpSpec", "OPS", "OP_REGISTRY", "ROLES", "SYMPY_FUNCTIONS", "opaque"]

ROLES = ("unary", "binary", "reduce", "aggregate", "matmul", "kernel", "kernel_reduce", "channel")


def opaque(name: str, latex: str, *, nonnegative: bool = False, idempotent: bool = False, nargs: int = 1):
    """A sympy function class `name` that sympy cannot see through.

    `latex` is a format string with {0}, {1} for the arguments' LaTeX.
    Idempotent functions collapse f(f(x)) to f(x), an identity the torch code
    satisfies (up to the EPS protection) and which keeps canonical keys short.
    """

    def eval_(cls, *args):
        if idempotent and len(args) == 1 and isinstance(args[0], cls):
            return args[0]
        return None

    def latex_(self, printer, exp=None):
        tex = latex.format(*(printer._print(a) for a in self.args))
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    attrs = {"nargs": nargs, "eval": classmethod(eval_), "_latex": latex_, "is_real": True}
    if nonnegative:
        attrs["is_nonnegative"] = True
    return type(name, (sympy.Function,), attrs)


logabs = opaque("logabs", r"\log\left|{0}\right|")
sqrtabs = opaque("sqrtabs", r"\sqrt{{\left|{0}\right|}}", nonnegative=True)
inv = opaque("inv", r"\frac{{1}}{{{0}}}")
relu = opaque("relu", r"\operatorname{{relu}}\left({0}\right)", nonnegative=True, idempotent=True)
sigmoid = opaque("sigmoid", r"\sigma\left({0}\right)", nonnegative=True)
zscore = opaque("zscore", r"\operatorname{{z}}\left({0}\right)", idempotent=False)
minmax = opaque("minmax", r"\operatorname{{minmax}}\left({0}\right)", nonnegative=True)
softmax = opaque("softmax", r"\operatorname{{softmax}}\left({0}\right)", nonnegative=True)
log_softmax = opaque("log_softmax", r"\log\operatorname{{softmax}}\left({0}\right)")
mean = opaque("mean", r"\operatorname{{mean}}\left({0}\right)")
std = opaque("std", r"\operatorname{{std}}\left({0}\right)", nonnegative=True)
tsum = opaque("tsum", r"\operatorname{{sum}}\left({0}\right)")
fro = opaque("fro", r"\left\|{0}\right\|_F", nonnegative=True)
l1 = opaque("l1", r"\left\|{0}\right\|_1", nonnegative=True)
nuclear = opaque("nuclear", r"\left\|{0}\right\|_*", nonnegative=True)
layer_mean = opaque("layer_mean", r"\operatorname{{mean}}_{{l}}\left({0}\right)")
layer_sum = opaque("layer_sum", r"\sum_{{l}}\left({0}\right)")
layer_max = opaque("layer_max", r"\max_{{l}}\left({0}\right)")
layer_min = opaque("layer_min", r"\min_{{l}}\left({0}\right)")
matmul = opaque("matmul", r"{0}\,{1}", nargs=2)
matmul_tn = opaque("matmul_tn", r"{0}^{{\top}}{1}", nargs=2)
matmul_nt = opaque("matmul_nt", r"{0}\,{1}^{{\top}}", nargs=2)
hamming_kernel = opaque("hamming_kernel", r"K_{{H}}\left({0}\right)", nonnegative=True)
logdet = opaque("logdet", r"\log\left|\det {0}\right|")
channel_mean = opaque("channel_mean", r"\operatorname{{mean}}_{{c}}\left({0}\right)")
channel_std = opaque("channel_std", r"\operatorname{{std}}_{{c}}\left({0}\right)", nonnegative=True)
channel_norm = opaque("channel_norm", r"\left\|{0}\right\|_{{c}}", nonnegative=True)

SYMPY_FUNCTIONS = {
    cls.__name__: cls
    for cls in (
        logabs, sqrtabs, inv, relu, sigmoid, zscore, minmax, softmax, log_softmax, mean, std, tsum,
        fro, l1, nuclear, layer_mean, layer_sum, layer_max, layer_min, matmul, matmul_tn, matmul_nt, hamming_kernel, logdet,
        channel_mean, channel_std, channel_norm,
    )
}


@dataclass(frozen=True)
class OpSpec:
    """One operator: its role and its sympy form (synth.execute maps sympy forms to torch)."""

    name: str
    role: str
    sympy: Callable[..., sympy.Expr]
    doc: str
    whole_tensor: bool = False  # the value at one element depends on the whole tensor (normalisations)
    plugin: str | None = None  # the plugin module that registered the op; None for synth's own

    @property
    def shape_dependent(self) -> bool:
        """Whether applying the op to a constant gives a value that depends on the unseen shape."""
        return self.whole_tensor or self.role in ("reduce", "aggregate", "matmul", "kernel", "kernel_reduce", "channel")

    @property
    def arity(self) -> int:
        return 2 if self.role in ("binary", "matmul") else 1


def _spec(name, role, form, doc, whole_tensor=False):
    return OpSpec(name, role, form, doc, whole_tensor)


OPS: dict[str, OpSpec] = {}
OP_REGISTRY: Registry[OpSpec] = Registry("op", GrammarError, items=OPS)

for _builtin in (
    # element-wise unary
    _spec("log", "unary", logabs, "log|x|, protected: log(|x| + 1e-12)"),
    _spec("abs", "unary", sympy.Abs, "|x|"),
    _spec("square", "unary", lambda x: x**2, "x squared"),
    _spec("exp", "unary", sympy.exp, "e to the x"),
    _spec("sqrt", "unary", sqrtabs, "sqrt|x|, protected"),
    _spec("inverse", "unary", inv, "1/x with |x| clamped below at 1e-12, sign kept"),
    _spec("neg", "unary", lambda x: -x, "-x"),
    _spec("relu", "unary", relu, "max(x, 0)"),
    _spec("sigmoid", "unary", sigmoid, "1 / (1 + e^-x)"),
    _spec("zscore", "unary", zscore, "(x - mean) / std over the layer's tensor", whole_tensor=True),
    _spec("minmax", "unary", minmax, "(x - min) / (max - min) over the layer's tensor", whole_tensor=True),
    _spec("softmax", "unary", softmax, "softmax along the last axis", whole_tensor=True),
    _spec("log_softmax", "unary", log_softmax, "log-softmax along the last axis", whole_tensor=True),
    # element-wise binary
    _spec("add", "binary", lambda a, b: a + b, "a + b"),
    _spec("sub", "binary", lambda a, b: a - b, "a - b"),
    _spec("mul", "binary", lambda a, b: a * b, "a * b (element-wise)"),
    # matrix products
    _spec("matmul", "matmul", matmul, "a @ b per layer"),
    _spec("matmul_tn", "matmul", matmul_tn, "a^T @ b per layer"),
    _spec("matmul_nt", "matmul", matmul_nt, "a @ b^T per layer"),
    # reductions to a per-layer scalar
    _spec("mean", "reduce", mean, "mean of the layer's tensor"),
    _spec("std", "reduce", std, "population standard deviation of the layer's tensor"),
    _spec("sum", "reduce", tsum, "sum of the layer's tensor"),
    _spec("fro", "reduce", fro, "Frobenius (L2) norm of the layer's tensor"),
    _spec("l1", "reduce", l1, "L1 norm (sum of absolute values)"),
    _spec("nuclear", "reduce", nuclear, "nuclear norm (sum of singular values)"),
    # aggregations over layers
    _spec("layer_mean", "aggregate", layer_mean, "mean over layers"),
    _spec("layer_sum", "aggregate", layer_sum, "sum over layers"),
    _spec("layer_max", "aggregate", layer_max, "largest value over layers: one exploding layer is not averaged away"),
    _spec("layer_min", "aggregate", layer_min, "smallest value over layers: one vanishing layer is not averaged away"),
    # per-sample kernels, pooled over layers, and their reductions
    _spec("hamming_kernel", "kernel", hamming_kernel,
          "samples x samples agreement counts of 0/1 codes, summed over layers: c c^T + (1 - c)(1 - c)^T"),
    _spec("logdet", "kernel_reduce", logdet, "log |det K| of a samples x samples kernel"),
    # channel-wise reductions: over the rows of each layer's matrix, one value per column
    _spec("channel_mean", "channel", channel_mean, "mean over the rows of each column (per channel)"),
    _spec("channel_std", "channel", channel_std, "population std over the rows of each column (per channel)"),
    _spec("channel_norm", "channel", channel_norm, "Euclidean norm over the rows of each column (per channel)"),
):
    OP_REGISTRY.register(_builtin.name, _builtin)
