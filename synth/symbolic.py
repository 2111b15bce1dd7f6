"""Programs as sympy expressions: simplification, canonical keys, LaTeX and complexity.

A program tree (DEAP prefix list) becomes a sympy expression built bottom-up
through each op's sympy form (synth.ops). sympy's automatic canonicalisation
and the ops' own exact identities do the simplification: terms are ordered,
like terms merged (``x*x`` -> ``x**2``, ``-(-x)`` -> ``x``), so two programs
that compute the same thing share one canonical key and one fitness.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from synth.ops import OPS

__all__ = ["Formula", "DegenerateProgram", "to_formula", "symbol"]


class DegenerateProgram(ValueError):
    """The program collapses to a constant where a tensor is needed (e.g. ``mean(x - x)``).

    Such a program's value would depend on shapes sympy cannot see, and it
    scores every architecture alike, so it is rejected rather than evaluated.
    """


@dataclass(frozen=True)
class Formula:
    expr: sympy.Expr
    canonical: str  # the key fitness is memoised under
    latex: str
    complexity: int  # number of nodes of the simplified expression


def symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a terminal; terminals are real-valued tensors."""
    return sympy.Symbol(name, real=True)


def _build(nodes, position, grammar):
    """Expression for the subtree starting at `position`; returns (expr, next position)."""
    node = nodes[position]
    if node.arity == 0:
        return symbol(node.name), position + 1
    primitive = grammar.primitives[node.name]
    spec = OPS[primitive.op]
    args, nxt = [], position + 1
    for _ in range(node.arity):
        arg, nxt = _build(nodes, nxt, grammar)
        args.append(arg)
    if spec.shape_dependent and any(not arg.free_symbols for arg in args):
        raise DegenerateProgram(f"{primitive.op} applied to a constant")
    return spec.sympy(*args), nxt


def to_formula(nodes, grammar, terminal_latex: dict[str, str] | None = None) -> Formula:
    """Simplified formula of a program given as a DEAP prefix list of nodes."""
    expr, end = _build(list(nodes), 0, grammar)
    if end != len(nodes):
        raise ValueError("malformed program: trailing nodes")
    if not expr.free_symbols:
        raise DegenerateProgram("the program is a constant")
    latex_names = {symbol(name): tex for name, tex in (terminal_latex or {}).items() if tex}
    return Formula(
        expr=expr,
        canonical=str(expr),
        latex=sympy.latex(expr, symbol_names=latex_names),
        complexity=sum(1 for _ in sympy.preorder_traversal(expr)),
    )
