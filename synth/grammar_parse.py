"""The sections of a grammar file, each checked into records: types, groups, terminals (against the
statistics registry), operations (against the op registry, with the typing rules) and limits.
Every mistake is a GrammarError naming the file, the line and the key (synth.grammar_yaml.Context).
"""

from __future__ import annotations

from synth.errors import did_you_mean
from synth.grammar_records import KINDS, Limits, Primitive, Terminal, TypeDef
from synth.ops import OP_REGISTRY
from synth.plugins import STATISTIC_REGISTRY

__all__ = ["parse_types", "parse_groups", "parse_terminals", "parse_operations", "parse_limits", "is_name", "suggest"]

_TYPE_KEYS = ("kind", "layer", "network", "doc")
_TERMINAL_KEYS = ("type", "stat", "latex", "doc")
_OPERATION_KEYS = ("op", "for", "signatures")
_LIMIT_KEYS = ("max_depth", "max_size", "init_depth")


def is_name(value, known) -> bool:
    """Whether `value` is one of the `known` names; a list or mapping where a name belongs is not."""
    return isinstance(value, str) and value in known


def suggest(name, known) -> str:
    """The close matches among `known`, or all of them when none is close."""
    return did_you_mean(name, known) or f" (known: {', '.join(sorted(known))})"


def _entries(ctx, raw, section: str, allowed_keys):
    """(name, spec, 'section.name') of a section that must be a non-empty mapping of named entries,
    each entry's keys checked against `allowed_keys`."""
    if not isinstance(raw, dict) or not raw:
        raise ctx.error(raw, section, f"must be a non-empty mapping of {section[:-1]} names")
    for name, spec in raw.items():
        where = f"{section}.{name}"
        ctx.check_keys(spec, allowed_keys, where)
        yield name, spec, where


def parse_types(ctx, raw) -> dict[str, TypeDef]:
    types = {}
    for name, spec, where in _entries(ctx, raw, "types", _TYPE_KEYS):
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
            if not is_name(target, types):
                raise ctx.error(ctx.line_of(spec, key), f"types.{name}.{key}", f"unknown type {target!r}{suggest(target, types)}")
            if types[target].kind != want_kind:
                raise ctx.error(ctx.line_of(spec, key), f"types.{name}.{key}", f"{target!r} is a {types[target].kind} type, expected a {want_kind} type")
    return types


def parse_groups(ctx, raw, types) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise ctx.error(raw, "groups", "must be a mapping of group name -> list of type names")
    groups = {}
    for name, members in raw.items():
        if name in types:
            raise ctx.error(ctx.line_of(raw, name), f"groups.{name}", "a group may not share a name with a type")
        if not isinstance(members, list) or not members:
            raise ctx.error(ctx.line_of(raw, name), f"groups.{name}", "must be a non-empty list of type names")
        for i, member in enumerate(members):
            if not is_name(member, types):
                raise ctx.error(ctx.item_line(members, i), f"groups.{name}", f"unknown type {member!r}{suggest(member, types)}")
        groups[name] = list(members)
    return groups


def parse_terminals(ctx, raw, types) -> dict[str, Terminal]:
    terminals = {}
    for name, spec, where in _entries(ctx, raw, "terminals", _TERMINAL_KEYS):
        if not str(name).isidentifier():
            raise ctx.error(ctx.line_of(raw, name), where, "a terminal name must be an identifier")
        type_name = spec.get("type")
        if not isinstance(type_name, str) or type_name not in types:
            raise ctx.error(ctx.line_of(spec, "type"), f"{where}.type", f"unknown type {type_name!r}{suggest(type_name, types)}")
        stat = spec.get("stat")
        if not isinstance(stat, str) or stat not in STATISTIC_REGISTRY:
            raise ctx.error(ctx.line_of(spec, "stat"), f"{where}.stat",
                            f"unknown statistic {stat!r}{suggest(stat, STATISTIC_REGISTRY.names())}")
        want = STATISTIC_REGISTRY.get(stat).role
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
            raise ctx.error(line, where, f"unknown type {name!r}{suggest(name, types)}")
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
            out.append(_parse_signature(ctx, text, ctx.item_line(sigs, i, line), f"{where}.signatures", types))
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
        if is_name(item, groups):
            names += groups[item]
        elif is_name(item, types):
            names.append(item)
        else:
            raise ctx.error(ctx.item_line(on, i), f"{where}.for", f"unknown type or group {item!r}{suggest(item, [*types, *groups])}")
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


def parse_operations(ctx, raw, types, groups) -> dict[str, Primitive]:
    if not isinstance(raw, list) or not raw:
        raise ctx.error(raw, "operations", "must be a non-empty list")
    primitives: dict[str, Primitive] = {}
    for i, entry in enumerate(raw):
        where = f"operations[{i}]"
        ctx.check_keys(entry, _OPERATION_KEYS, where)
        op = entry.get("op")
        if not isinstance(op, str) or op not in OP_REGISTRY:
            raise ctx.error(ctx.line_of(entry, "op") or ctx.item_line(raw, i), f"{where}.op",
                            f"unknown op {op!r}{suggest(op, OP_REGISTRY.names())}")
        spec = OP_REGISTRY.get(op)
        for args, ret in _signatures_for(ctx, spec, entry, where, types, groups):
            _check_signature(ctx, spec, args, ret, ctx.line_of(entry, "op"), where, types)
            name = "__".join((op, *args)) if spec.role in ("binary", "matmul") else f"{op}__{args[0]}"
            if name in primitives:
                raise ctx.error(ctx.line_of(entry, "op"), where, f"op {op!r} is declared twice for {', '.join(args)}")
            primitives[name] = Primitive(name, op, args, ret, i)
    return primitives


def parse_limits(ctx, raw) -> Limits:
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
