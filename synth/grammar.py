"""Grammar files: YAML declaring types, terminals, operations, root type and limits.

`load_grammar` parses and checks a file completely before any program is
generated, so a mistake is reported once, naming the file and the line of the
offending key, instead of surfacing as an IndexError deep inside DEAP. The
language is documented in grammar/README.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from synth.errors import GrammarError, RunDirError
from synth.ops import OPS
from synth.programs import ProgramSpace
from synth.resources import read_yaml
from synth.runtime import STATISTICS
from synth.symbolic import DegenerateProgram, to_formula

__all__ = ["Grammar", "TypeDef", "Terminal", "Primitive", "Limits", "load_grammar"]

KINDS = ("tensor", "layer", "scalar", "kernel")
_TOP_KEYS = ("name", "description", "root", "limits", "types", "groups", "terminals", "operations", "programs")
_TYPE_KEYS = ("kind", "layer", "network", "doc")
_TERMINAL_KEYS = ("type", "stat", "latex", "doc")
_OPERATION_KEYS = ("op", "for", "signatures")
_LIMIT_KEYS = ("max_depth", "max_size", "init_depth")


@dataclass(frozen=True)
class TypeDef:
    name: str
    kind: str  # tensor | layer | scalar
    layer: str | None = None  # tensor types: the per-layer scalar type their reductions return
    network: str | None = None  # layer and kernel types: the network scalar type their aggregations (reductions) return
    doc: str = ""


@dataclass(frozen=True)
class Terminal:
    name: str
    type: str
    stat: str  # statistic 'kind.quantity', a name of synth.runtime.STATISTICS
    latex: str = ""


@dataclass(frozen=True)
class Primitive:
    """One op at one signature; `name` is unique in the grammar (DEAP needs that)."""

    name: str
    op: str
    args: tuple[str, ...]
    ret: str
    entry: int = -1  # index of the `operations` entry that declared it (for error messages)


@dataclass(frozen=True)
class Limits:
    max_depth: int = 8  # depth of a program tree, root at depth 0
    max_size: int = 24  # number of nodes
    init_depth: tuple[int, int] = (2, 6)  # depth range of the initial random programs


@dataclass(frozen=True)
class Grammar:
    name: str
    path: str
    root: str
    types: dict[str, TypeDef]
    terminals: dict[str, Terminal]
    primitives: dict[str, Primitive]
    limits: Limits
    description: str = ""
    min_height: dict[str, int] = field(default_factory=dict)  # smallest tree height producing each type
    programs: dict[str, str] = field(default_factory=dict)  # named programs: name -> program text (checked at load)

    def terminal_values(self, record: dict) -> dict:
        """{terminal name: value} from one architecture's statistics {statistic: value}."""
        return {t.name: record[t.stat] for t in self.terminals.values()}

    @property
    def statistics(self) -> tuple[str, ...]:
        """The statistics the terminals name, sorted: what the cache must hold."""
        return tuple(sorted({t.stat for t in self.terminals.values()}))

    def to_dict(self) -> dict:
        """The checked grammar as JSON-ready data; `from_dict` reads it back (unchecked: it was)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "Grammar":
        limits = raw["limits"]
        return cls(**{
            **raw,
            "types": {name: TypeDef(**t) for name, t in raw["types"].items()},
            "terminals": {name: Terminal(**t) for name, t in raw["terminals"].items()},
            "primitives": {name: Primitive(**{**p, "args": tuple(p["args"])}) for name, p in raw["primitives"].items()},
            "limits": Limits(**{**limits, "init_depth": tuple(limits["init_depth"])}),
        })


# ---------------------------------------------------------------- YAML with line numbers


class _Map(dict):
    lines: dict
    line: int


class _Seq(list):
    lines: list
    line: int


class _LineLoader(yaml.SafeLoader):
    """Safe loader whose mappings and lists remember the line of each key and item."""


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = _Map()
    out.line, out.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key in out.lines:
            problem = f"{key}: key given twice" if key in out.lines else f"{key!r} cannot be a key"
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader, node):
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


class _Context:
    """Formats errors as 'file:line: key: message'."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where, key: str, message: str) -> GrammarError:
        line = None
        if isinstance(where, int):
            line = where
        elif where is not None:
            line = getattr(where, "line", None)
        location = f"{self.path}:{line}" if line else str(self.path)
        return GrammarError(f"{location}: {key}: {message}")

    def line_of(self, mapping, key):
        lines = getattr(mapping, "lines", {})
        return lines.get(key, getattr(mapping, "line", None))

    def check_keys(self, mapping, allowed, where_key: str):
        if not isinstance(mapping, dict):
            raise self.error(mapping, where_key, f"expected a mapping, got {type(mapping).__name__}")
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=3)
                suggestion = f"; did you mean {', '.join(map(repr, hint))}?" if hint else ""
                raise self.error(
                    self.line_of(mapping, key),
                    f"{where_key}.{key}" if where_key else str(key),
                    f"unknown key{suggestion} (allowed: {', '.join(allowed)})",
                )


# ---------------------------------------------------------------- parsing


def load_grammar(name_or_path: str) -> Grammar:
    """Load and fully check a grammar given by path or by shipped name ('vit')."""
    path, raw = read_yaml(name_or_path, "grammar", GrammarError, _LineLoader)
    ctx = _Context(path)
    if not isinstance(raw, dict):
        raise ctx.error(None, "(top level)", "a grammar file must be a mapping")
    ctx.check_keys(raw, _TOP_KEYS, "")
    for key in ("name", "root", "types", "terminals", "operations"):
        if key not in raw:
            raise ctx.error(None, key, "missing required key")
    types = _parse_types(ctx, raw["types"])
    groups = _parse_groups(ctx, raw.get("groups") or _Map(), types)
    terminals = _parse_terminals(ctx, raw["terminals"], types)
    primitives = _parse_operations(ctx, raw["operations"], types, groups)
    limits = _parse_limits(ctx, raw.get("limits") or _Map())
    root = raw["root"]
    if not _is_name(root, types):
        raise ctx.error(ctx.line_of(raw, "root"), "root", f"unknown type {root!r}{_suggest(root, types)}")
    min_height = _min_heights(types, terminals, primitives)
    _check_reachability(ctx, raw, root, primitives, min_height, _min_sizes(types, terminals, primitives), limits)
    _check_initial_programs_fit(ctx, raw, root, terminals, primitives, min_height, limits)
    grammar = Grammar(
        name=str(raw["name"]),
        path=str(path),
        root=root,
        types=types,
        terminals=terminals,
        primitives=primitives,
        limits=limits,
        description=str(raw.get("description", "")).strip(),
        min_height=min_height,
    )
    if raw.get("programs") is None:
        return grammar
    return dataclasses.replace(grammar, programs=_parse_programs(ctx, raw["programs"], ctx.line_of(raw, "programs"), grammar))


def _is_name(value, known) -> bool:
    """Whether `value` is one of the `known` names; a list or mapping where a name belongs is not."""
    return isinstance(value, str) and value in known


def _suggest(name, known) -> str:
    hint = difflib.get_close_matches(str(name), list(known), n=3)
    return f"; did you mean {', '.join(map(repr, hint))}?" if hint else f" (known: {', '.join(sorted(known))})"


def _parse_types(ctx, raw) -> dict[str, TypeDef]:
    if not isinstance(raw, dict) or not raw:
        raise ctx.error(raw, "types", "must be a non-empty mapping of type names")
    types = {}
    for name, spec in raw.items():
        where = f"types.{name}"
        ctx.check_keys(spec, _TYPE_KEYS, where)
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ctx.error(ctx.line_of(spec, "kind"), f"{where}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        types[name] = TypeDef(name, kind, spec.get("layer"), spec.get("network"), str(spec.get("doc", "")))
    for name, spec in raw.items():
        t = types[name]
        for key, want_kind, owner_kinds in (("layer", "layer", ("tensor",)), ("network", "scalar", ("layer", "kernel"))):
            target = getattr(t, key)
            if target is None:
                if t.kind in owner_kinds:
                    raise ctx.error(spec, f"types.{name}", f"a {t.kind} type needs '{key}:' (a {want_kind} type)")
                continue
            if not _is_name(target, types):
                raise ctx.error(ctx.line_of(spec, key), f"types.{name}.{key}", f"unknown type {target!r}{_suggest(target, types)}")
            if types[target].kind != want_kind:
                raise ctx.error(ctx.line_of(spec, key), f"types.{name}.{key}", f"{target!r} is a {types[target].kind} type, expected a {want_kind} type")
    return types


def _parse_groups(ctx, raw, types) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise ctx.error(raw, "groups", "must be a mapping of group name -> list of type names")
    groups = {}
    for name, members in raw.items():
        if name in types:
            raise ctx.error(ctx.line_of(raw, name), f"groups.{name}", "a group may not share a name with a type")
        if not isinstance(members, list) or not members:
            raise ctx.error(ctx.line_of(raw, name), f"groups.{name}", "must be a non-empty list of type names")
        for i, member in enumerate(members):
            if not _is_name(member, types):
                line = members.lines[i] if hasattr(members, "lines") else None
                raise ctx.error(line, f"groups.{name}", f"unknown type {member!r}{_suggest(member, types)}")
        groups[name] = list(members)
    return groups


def _parse_terminals(ctx, raw, types) -> dict[str, Terminal]:
    if not isinstance(raw, dict) or not raw:
        raise ctx.error(raw, "terminals", "must be a non-empty mapping of terminal names")
    terminals = {}
    for name, spec in raw.items():
        where = f"terminals.{name}"
        ctx.check_keys(spec, _TERMINAL_KEYS, where)
        if not str(name).isidentifier():
            raise ctx.error(ctx.line_of(raw, name), where, "a terminal name must be an identifier")
        type_name = spec.get("type")
        if not isinstance(type_name, str) or type_name not in types:
            raise ctx.error(ctx.line_of(spec, "type"), f"{where}.type", f"unknown type {type_name!r}{_suggest(type_name, types)}")
        stat = spec.get("stat")
        if not isinstance(stat, str) or stat not in STATISTICS:
            raise ctx.error(
                ctx.line_of(spec, "stat"), f"{where}.stat",
                f"unknown statistic {stat!r}{_suggest(stat, STATISTICS)}",
            )
        want = STATISTICS[stat].role
        if types[type_name].kind != want:
            holds = "one tensor per layer" if want == "tensor" else "one number per layer"
            raise ctx.error(
                ctx.line_of(spec, "type"), f"{where}.type",
                f"statistic {stat!r} holds {holds}, so the terminal's type must be a {want} type; {type_name!r} is a {types[type_name].kind} type",
            )
        terminals[name] = Terminal(name, type_name, stat, str(spec.get("latex", "")))
    return terminals


def _parse_signature(ctx, text, line, where, types) -> tuple[tuple[str, ...], str]:
    if not isinstance(text, str) or text.count("->") != 1:
        raise ctx.error(line, where, f"a signature reads 'type, type -> type', got {text!r}")
    left, right = (part.strip() for part in text.split("->"))
    args = tuple(a.strip() for a in left.split(",")) if left else ()
    for name in (*args, right):
        if name not in types:
            raise ctx.error(line, where, f"unknown type {name!r}{_suggest(name, types)}")
    return args, right


def _signatures_for(ctx, spec, entry, where, types, groups):
    """The (args, ret) pairs one operation entry declares."""
    role = spec.role
    line = ctx.line_of(entry, "op")
    if "signatures" in entry:
        sigs = entry["signatures"]
        if not isinstance(sigs, list) or not sigs:
            raise ctx.error(ctx.line_of(entry, "signatures"), f"{where}.signatures", "must be a non-empty list")
        out = []
        for i, text in enumerate(sigs):
            sig_line = sigs.lines[i] if hasattr(sigs, "lines") else line
            out.append(_parse_signature(ctx, text, sig_line, f"{where}.signatures", types))
        return out
    if role in ("matmul", "kernel", "channel"):
        what = {"matmul": "a matrix product", "kernel": "a kernel of per-sample values",
                "channel": "a channel-wise reduction"}[role]
        raise ctx.error(line, where, f"op {spec.name!r} is {what}: list its 'signatures' explicitly")
    on = entry.get("for")
    if not isinstance(on, list) or not on:
        raise ctx.error(line, where, "needs 'for: [types or groups]' or 'signatures: [...]'")
    names = []
    for i, item in enumerate(on):
        if _is_name(item, groups):
            names += groups[item]
        elif _is_name(item, types):
            names.append(item)
        else:
            raise ctx.error(on.lines[i], f"{where}.for", f"unknown type or group {item!r}{_suggest(item, [*types, *groups])}")
    out = []
    for name in dict.fromkeys(names):
        t = types[name]
        if role == "unary":
            out.append(((name,), name))
        elif role == "binary":
            out.append(((name, name), name))
        elif role == "reduce":
            if t.kind != "tensor":
                raise ctx.error(line, where, f"reduction {spec.name!r} applies to tensor types; {name!r} is a {t.kind} type")
            out.append(((name,), t.layer))
        elif role == "aggregate":
            if t.kind != "layer":
                raise ctx.error(line, where, f"aggregation {spec.name!r} applies to layer types; {name!r} is a {t.kind} type")
            out.append(((name,), t.network))
        elif role == "kernel_reduce":
            if t.kind != "kernel":
                raise ctx.error(line, where, f"kernel reduction {spec.name!r} applies to kernel types; {name!r} is a {t.kind} type")
            out.append(((name,), t.network))
    return out


def _check_signature(ctx, spec, args, ret, line, where, types):
    """Typing rules that keep every program well formed."""
    sig = f"{', '.join(args)} -> {ret}"
    if len(args) != spec.arity:
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: op {spec.name!r} takes {spec.arity} argument(s)")
    if spec.role == "unary" and args[0] != ret:
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: element-wise op {spec.name!r} must return its argument's type")
    if spec.role == "binary" and not (args[0] == args[1] == ret):
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: element-wise op {spec.name!r} needs both arguments and the result of one type (equal shapes)")
    if spec.role == "reduce" and (types[args[0]].kind != "tensor" or types[args[0]].layer != ret):
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: reduction {spec.name!r} maps a tensor type to its layer type")
    if spec.role == "aggregate" and (types[args[0]].kind != "layer" or types[args[0]].network != ret):
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: aggregation {spec.name!r} maps a layer type to its network type")
    if spec.role == "kernel" and (types[args[0]].kind != "tensor" or types[ret].kind != "kernel"):
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: kernel {spec.name!r} maps a tensor type (one row per sample) to a kernel type")
    if spec.role == "kernel_reduce" and (types[args[0]].kind != "kernel" or types[args[0]].network != ret):
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: kernel reduction {spec.name!r} maps a kernel type to its network type")
    if spec.role == "channel" and ({types[args[0]].kind, types[ret].kind} != {"tensor"} or types[args[0]].layer != types[ret].layer):
        raise ctx.error(line, where, f"ill-typed signature {sig!r}: channel-wise reduction {spec.name!r} maps a tensor type to a tensor type of the same layers")
    if spec.role == "matmul":
        kinds = {types[a].kind for a in (*args, ret)}
        layer_types = {types[a].layer for a in (*args, ret)}
        if kinds != {"tensor"} or len(layer_types) != 1:
            raise ctx.error(line, where, f"ill-typed signature {sig!r}: a matrix product combines tensor types of the same layers")


def _parse_operations(ctx, raw, types, groups) -> dict[str, Primitive]:
    if not isinstance(raw, list) or not raw:
        raise ctx.error(raw, "operations", "must be a non-empty list")
    primitives: dict[str, Primitive] = {}
    for i, entry in enumerate(raw):
        where = f"operations[{i}]"
        ctx.check_keys(entry, _OPERATION_KEYS, where)
        op = entry.get("op")
        if not isinstance(op, str) or op not in OPS:
            raise ctx.error(ctx.line_of(entry, "op") or raw.lines[i], f"{where}.op", f"unknown op {op!r}{_suggest(op, OPS)}")
        spec = OPS[op]
        for args, ret in _signatures_for(ctx, spec, entry, where, types, groups):
            _check_signature(ctx, spec, args, ret, ctx.line_of(entry, "op"), where, types)
            name = "__".join((op, *args)) if spec.role in ("binary", "matmul") else f"{op}__{args[0]}"
            if name in primitives:
                raise ctx.error(ctx.line_of(entry, "op"), where, f"op {op!r} is declared twice for {', '.join(args)}")
            primitives[name] = Primitive(name, op, args, ret, i)
    return primitives


def _parse_limits(ctx, raw) -> Limits:
    ctx.check_keys(raw, _LIMIT_KEYS, "limits")
    defaults = Limits()
    values = {}
    for key in ("max_depth", "max_size"):
        value = raw.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ctx.error(ctx.line_of(raw, key), f"limits.{key}", f"must be a positive integer, got {value!r}")
        values[key] = value
    init = raw.get("init_depth", list(defaults.init_depth))
    if not (isinstance(init, list) and len(init) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in init) and 0 <= init[0] <= init[1]):
        raise ctx.error(ctx.line_of(raw, "init_depth"), "limits.init_depth", f"must be [min, max] with 0 <= min <= max, got {init!r}")
    if init[1] > values["max_depth"]:
        raise ctx.error(ctx.line_of(raw, "init_depth"), "limits.init_depth", "maximum exceeds limits.max_depth")
    return Limits(values["max_depth"], values["max_size"], (init[0], init[1]))


def _min_heights(types, terminals, primitives) -> dict[str, float]:
    """Smallest height of a tree of each type (terminal = 0); inf if none exists."""
    return _smallest(types, terminals, primitives, leaf=0, combine=lambda args: 1 + max(args))


def _min_sizes(types, terminals, primitives) -> dict[str, float]:
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


def _check_reachability(ctx, raw, root, primitives, min_height, min_size, limits):
    if math.isinf(min_height[root]):
        raise ctx.error(
            ctx.line_of(raw, "root"), "root",
            f"root type {root!r} is unreachable: no combination of terminals and operations produces it",
        )
    limits_raw = raw.get("limits") or _Map()
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
                ops.lines[p.entry] if hasattr(ops, "lines") else None, f"operations[{p.entry}]",
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


def _check_initial_programs_fit(ctx, raw, root, terminals, primitives, min_height, limits):
    """The initial population is grown to at least `init_depth`'s minimum; if even the smallest such
    program exceeds `max_size`, generation would retry forever, so the file is refused here."""
    lo, hi = limits.init_depth
    lo = max(lo, min_height[root])
    size = min(_smallest_initial(root, terminals, primitives, min_height, lo, deepest) for deepest in range(lo, hi + 1))
    if size > limits.max_size:
        limits_raw = raw.get("limits") or _Map()
        raise ctx.error(
            ctx.line_of(limits_raw, "init_depth") or ctx.line_of(raw, "limits"), "limits.init_depth",
            f"initial programs grow to depth {lo} at least, and the smallest such program has {size} nodes, "
            f"more than limits.max_size {limits.max_size}: lower init_depth's minimum or raise max_size",
        )


def _parse_programs(ctx, raw, line, grammar) -> dict[str, str]:
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
        except RunDirError as exc:
            message = str(exc).removeprefix(f"{where}: ")
            raise ctx.error(key_line, where, f"does not parse against grammar {grammar.name!r}: {message}") from None
        except DegenerateProgram as exc:
            raise ctx.error(key_line, where, f"degenerate program: {exc}") from None
        programs[name] = text
    return programs
