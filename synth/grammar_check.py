"""Whole-grammar checks, made once every section parsed: the root type is reachable and its smallest
program fits the limits, every op's argument types can be produced, the initial population can be
grown within `max_size`, and the named programs parse against the grammar.
"""

from __future__ import annotations

import math

from synth.errors import GrammarError
from synth.grammar_yaml import Map
from synth.programs import ProgramSpace
from synth.symbolic import DegenerateProgram, to_formula

__all__ = ["min_heights", "min_sizes", "check_reachability", "check_initial_programs_fit", "parse_programs"]


def min_heights(types, terminals, primitives) -> dict[str, float]:
    """Smallest height of a tree of each type (terminal = 0); inf if none exists."""
    return _smallest(types, terminals, primitives, leaf=0, combine=lambda args: 1 + max(args))


def min_sizes(types, terminals, primitives) -> dict[str, float]:
    """Smallest number of nodes of a tree of each type; inf if none exists."""
    return _smallest(types, terminals, primitives, leaf=1, combine=lambda args: 1 + sum(args))


def _smallest(types, terminals, primitives, leaf, combine) -> dict[str, float]:
    best = {name: math.inf for name in types}
    for t in terminals.values():
        best[t.type] = leaf
    changed = True
    while changed:
        changed = False
        for p in primitives.values():
            value = combine([best[a] for a in p.args])
            if value < best[p.ret]:
                best[p.ret], changed = value, True
    return best


def check_reachability(ctx, raw, root, primitives, min_height, min_size, limits):
    if math.isinf(min_height[root]):
        raise ctx.error(
            ctx.line_of(raw, "root"), "root",
            f"root type {root!r} is unreachable: no combination of terminals and operations produces it",
        )
    limits_raw = raw.get("limits") or Map()
    too_small = [
        ("max_depth", limits.max_depth < min_height[root], f"depth {min_height[root]}"),
        ("init_depth", limits.init_depth[1] < min_height[root], f"depth {min_height[root]}, more than the initial maximum"),
        ("max_size", limits.max_size < min_size[root], f"{min_size[root]} nodes"),
    ]
    for key, failed, what in too_small:
        if failed:
            raise ctx.error(
                ctx.line_of(limits_raw, key) or ctx.line_of(raw, "limits"), f"limits.{key}",
                f"the smallest program of root type {root!r} has {what}",
            )
    ops = raw["operations"]
    for p in primitives.values():
        dead = [a for a in p.args if math.isinf(min_height[a])]
        if dead:
            raise ctx.error(
                ctx.item_line(ops, p.entry), f"operations[{p.entry}]",
                f"op {p.op!r} takes type {dead[0]!r}, which no terminal or operation produces",
            )


def _smallest_initial(root, terminals, primitives, min_height, lowest: int, deepest: int) -> float:
    """Nodes of the smallest program the initial generator (synth.programs.ProgramSpace._grow) can
    grow with `deepest` as its maximum depth: above depth `lowest` a branch may end in a terminal
    only where no operation fits, so every such program is bushy down to `lowest`."""
    has_terminal = {t.type for t in terminals.values()}
    memo: dict[tuple[str, int], float] = {}

    def smallest(type_name: str, depth: int) -> float:
        if (type_name, depth) not in memo:
            fitting = [p for p in primitives.values()
                       if p.ret == type_name and depth + 1 + max(min_height[a] for a in p.args) <= deepest]
            if type_name in has_terminal and (depth >= lowest or not fitting):
                memo[type_name, depth] = 1
            else:
                memo[type_name, depth] = min((1 + sum(smallest(a, depth + 1) for a in p.args) for p in fitting),
                                             default=math.inf)
        return memo[type_name, depth]

    return smallest(root, 0)


def check_initial_programs_fit(ctx, raw, root, terminals, primitives, min_height, limits):
    """The initial population is grown to at least `init_depth`'s minimum; if even the smallest such
    program exceeds `max_size`, generation would retry forever, so the file is refused here."""
    lo, hi = limits.init_depth
    lo = max(lo, min_height[root])
    size = min(_smallest_initial(root, terminals, primitives, min_height, lo, deepest) for deepest in range(lo, hi + 1))
    if size > limits.max_size:
        limits_raw = raw.get("limits") or Map()
        raise ctx.error(
            ctx.line_of(limits_raw, "init_depth") or ctx.line_of(raw, "limits"), "limits.init_depth",
            f"initial programs grow to depth {lo} at least, and the smallest such program has {size} nodes, "
            f"more than limits.max_size {limits.max_size}: lower init_depth's minimum or raise max_size",
        )


def parse_programs(ctx, raw, line, grammar) -> dict[str, str]:
    """Named programs: each text must parse against the grammar's primitive set, return the root
    type and not collapse to a constant. Limits are not applied (a named program may be larger
    than the programs evolution grows)."""
    if not isinstance(raw, dict):
        raise ctx.error(line, "programs", "must be a mapping of program name -> program text")
    space = ProgramSpace(grammar)
    programs = {}
    for name, text in raw.items():
        where, key_line = f"programs.{name}", ctx.line_of(raw, name)
        if not isinstance(name, str) or not name.strip():
            raise ctx.error(key_line, where, "a program name must be a non-empty string")
        if not isinstance(text, str) or not text.strip():
            raise ctx.error(key_line, where, "must be the program's text, e.g. 'layer_mean__msa_layer(fro__msa_w(msa_weight))'")
        text = " ".join(text.split())
        try:
            to_formula(space.parse(text, where=where), grammar)
        except GrammarError as exc:
            message = str(exc).removeprefix(f"{where}: ")
            raise ctx.error(key_line, where, f"does not parse against grammar {grammar.name!r}: {message}") from None
        except DegenerateProgram as exc:
            raise ctx.error(key_line, where, f"degenerate program: {exc}") from None
        programs[name] = text
    return programs
