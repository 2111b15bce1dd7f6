"""sympy formulas executed by torch: directly in the engine, or as Python source for export.

One table maps each sympy node to the synth.runtime function that computes it;
the engine walks the expression calling those functions, and the exporter
prints the same calls as source, so both compute the same numbers.
"""

from __future__ import annotations

import math

import sympy
import torch

from synth import runtime
from synth.ops import OPS
from synth.symbolic import DegenerateProgram

__all__ = ["evaluate", "to_source", "RUNTIME_OF", "runtime_name", "plugin_op"]

# sympy node -> name of the synth.runtime function computing it
RUNTIME_OF = {
    "Add": "op_add",
    "Mul": "op_mul",
    "Pow": "op_pow",
    "exp": "op_exp",
    "Abs": "op_abs",
    "logabs": "op_log",
    "sqrtabs": "op_sqrt",
    "inv": "op_inverse",
    "relu": "op_relu",
    "sigmoid": "op_sigmoid",
    "zscore": "op_zscore",
    "minmax": "op_minmax",
    "softmax": "op_softmax",
    "log_softmax": "op_log_softmax",
    "matmul": "op_matmul",
    "matmul_tn": "op_matmul_tn",
    "matmul_nt": "op_matmul_nt",
    "mean": "op_mean",
    "std": "op_std",
    "tsum": "op_sum",
    "fro": "op_fro",
    "l1": "op_l1",
    "nuclear": "op_nuclear",
    "layer_mean": "op_mean",
    "layer_sum": "op_sum",
    "layer_max": "op_max",
    "layer_min": "op_min",
    "hamming_kernel": "op_hamming_kernel",
    "logdet": "op_logdet",
    "channel_mean": "op_channel_mean",
    "channel_std": "op_channel_std",
    "channel_norm": "op_channel_norm",
}


def plugin_op(expr: sympy.Basic) -> str | None:
    """The name of the plugin op a sympy node applies (its opaque function bears the op's name),
    or None for a node of synth's own."""
    name = type(expr).__name__
    spec = OPS.get(name) if name not in RUNTIME_OF else None
    return name if spec is not None and spec.plugin else None


def runtime_name(expr: sympy.Basic) -> str:
    """The runtime function computing a node: RUNTIME_OF's, or `op_plugin` for a plugin op (called
    with the op's name first)."""
    name = type(expr).__name__
    if name in RUNTIME_OF:
        return RUNTIME_OF[name]
    if plugin_op(expr):
        return "op_plugin"
    raise NotImplementedError(f"no torch mapping for sympy node {name!r}: add it to synth.execute.RUNTIME_OF")


def _number(expr) -> float | int:
    return int(expr) if expr.is_Integer else float(expr)


def evaluate(expr: sympy.Expr, values: dict[str, object], shared: dict | None = None) -> float:
    """The formula's value, given the terminals' values ({terminal name: Layers}).

    Sub-expressions repeated in the formula are computed once. Pass one
    `shared` dict to several calls on the same values to share, between
    formulas, the sub-expressions that reduce to per-layer or network scalars
    (small to keep, and where the expensive work ends); whole per-layer
    tensors are kept only while one formula is evaluated.
    """
    memo: dict[sympy.Basic, object] = {}
    small = memo if shared is None else shared

    def walk(node):
        if node in memo:
            return memo[node]
        if node in small:
            return small[node]
        if node.is_Symbol:
            result = values[node.name]
            if isinstance(result, (runtime.Layers, torch.Tensor)):
                result = result.float()  # statistics may be stored in bfloat16
        elif node.is_Number:
            result = _number(node)
        elif node.is_Pow:
            if not node.exp.is_Number:
                raise DegenerateProgram(f"non-numeric exponent in {node}")
            result = runtime.op_pow(walk(node.base), _number(node.exp))
        else:
            named = (plugin_op(node),) if plugin_op(node) else ()
            result = getattr(runtime, runtime_name(node))(*named, *(walk(arg) for arg in node.args))
        (memo if isinstance(result, runtime.Layers) else small)[node] = result
        return result

    out = walk(expr)
    value = float(out) if not isinstance(out, list) else math.nan
    return value


def to_source(expr: sympy.Expr, values_name: str = "S") -> str:
    """Python source computing the formula from `values_name[terminal name]` with runtime functions."""
    if expr.is_Symbol:
        return f"{values_name}[{expr.name!r}]"
    if expr.is_Number:
        return repr(_number(expr))
    if expr.is_Pow:
        return f"op_pow({to_source(expr.base, values_name)}, {_number(expr.exp)!r})"
    named = [repr(plugin_op(expr))] if plugin_op(expr) else []
    args = ", ".join(named + [to_source(arg, values_name) for arg in expr.args])
    return f"{runtime_name(expr)}({args})"
