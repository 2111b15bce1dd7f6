"""Grammar files: YAML declaring types, terminals, operations, root type and limits.

`load_grammar` parses and checks a file completely before any program is
generated, so a mistake is reported once, naming the file and the line of the
offending key, instead of surfacing as an IndexError deep inside DEAP. The
language is documented in grammar/README.md. The work is split by job:
synth.grammar_yaml (YAML with line numbers), synth.grammar_parse (each section),
synth.grammar_check (whole-grammar checks and named programs), synth.grammar_records
(the dataclasses returned).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from synth.errors import GrammarError
from synth.grammar_check import (check_initial_programs_fit, check_reachability, min_heights, min_sizes,
                                 parse_programs)
from synth.grammar_parse import (is_name, parse_groups, parse_limits, parse_operations, parse_terminals, parse_types,
                                 suggest)
from synth.grammar_records import Grammar, Limits, Primitive, Terminal, TypeDef
from synth.grammar_yaml import Context, LineLoader, Map
from synth.plugins import import_plugin, is_module_name
from synth.resources import read_yaml

__all__ = ["Grammar", "TypeDef", "Terminal", "Primitive", "Limits", "load_grammar"]

_TOP_KEYS = ("name", "description", "root", "limits", "types", "groups", "terminals", "operations", "programs", "plugins")


def load_grammar(name_or_path: str, allow_plugins: bool = False) -> Grammar:
    """Load and fully check a grammar given by path or by shipped name ('vit').

    A grammar that names `plugins` (Python modules registering ops and statistics) is refused
    unless `allow_plugins` is true, since importing them runs their code; with it they are
    imported (looked up first in the grammar's folder) before its operations and terminals are
    checked, so those may name what the plugins register."""
    path, raw = read_yaml(name_or_path, "grammar", GrammarError, LineLoader)
    ctx = Context(path)
    if not isinstance(raw, dict):
        raise ctx.error(None, "(top level)", "a grammar file must be a mapping")
    ctx.check_keys(raw, _TOP_KEYS, "")
    for key in ("name", "root", "types", "terminals", "operations"):
        if key not in raw:
            raise ctx.error(None, key, "missing required key")
    plugins = _load_plugins(ctx, raw, allow_plugins)
    types = parse_types(ctx, raw["types"])
    groups = parse_groups(ctx, raw.get("groups") or Map(), types)
    terminals = parse_terminals(ctx, raw["terminals"], types)
    primitives = parse_operations(ctx, raw["operations"], types, groups)
    limits = parse_limits(ctx, raw.get("limits") or Map())
    root = raw["root"]
    if not is_name(root, types):
        raise ctx.error(ctx.line_of(raw, "root"), "root", f"unknown type {root!r}{suggest(root, types)}")
    min_height = min_heights(types, terminals, primitives)
    check_reachability(ctx, raw, root, primitives, min_height, min_sizes(types, terminals, primitives), limits)
    check_initial_programs_fit(ctx, raw, root, terminals, primitives, min_height, limits)
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
        plugins=plugins,
    )
    if raw.get("programs") is None:
        return grammar
    return dataclasses.replace(grammar, programs=parse_programs(ctx, raw["programs"], ctx.line_of(raw, "programs"), grammar))


def _load_plugins(ctx: Context, raw, allow: bool) -> dict[str, str]:
    """{module: sha256 of its source} of the grammar's `plugins`, imported; none unless the user
    opted in, since a grammar file must never run code silently."""
    modules = raw.get("plugins")
    if modules is None:
        return {}
    line = ctx.line_of(raw, "plugins")
    if not isinstance(modules, list) or not all(is_module_name(m) for m in modules):
        raise ctx.error(line, "plugins", "must be a list of Python module names, e.g. [mypkg.proxy_ops]")
    if modules and not allow:
        raise ctx.error(line, "plugins", f"this grammar imports Python code ({', '.join(modules)}); importing it runs "
                        "that code, so it is done only when asked: synth evolve --allow-plugins, or allow_plugins=True "
                        "in Python (synth.load_grammar, synth.Evolution)")
    digests = {}
    for i, module in enumerate(modules):
        try:
            digests[module] = import_plugin(module, Path(ctx.path).parent)
        except Exception as exc:  # anything importing user code raises is reported against the plugin
            raise ctx.error(ctx.item_line(modules, i, line), f"plugins[{i}]",
                            f"plugin {module!r} failed to load: {type(exc).__name__}: {exc}") from exc
    return digests
