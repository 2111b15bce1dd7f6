"""Export a formula as one stand-alone `proxy.py` that needs torch only.

The file holds the source of the `synth.runtime` modules (statistics collection and the op
implementations) verbatim, in dependency order, a `formula(S)` function printed from the sympy
expression by `synth.execute.to_source`, and `score(model, inputs, targets)`.

Text from a grammar file (its name, the terminals' LaTeX) reaches the file only
as data: the docstring is one literal built by `docstring_literal`, and every
other value is written with `repr`, so no grammar can make the file run code.

A formula that uses a plugin's ops or statistics (synth.plugins) cannot be stand-alone: the file
names the plugin modules (validated module names, written with `repr`), imports them when it is
imported, with an error naming them if they are absent, and takes their code from synth's
registries into its own tables. Plugin code is never copied into the file.
"""

from __future__ import annotations

import ast
import importlib
import inspect

import sympy

from synth import runtime
from synth.execute import plugin_op, to_source
from synth.ops import OPS
from synth.plugins import PluginRead, is_module_name

__all__ = ["proxy_source", "runtime_source", "docstring_literal"]


def _module_parts(name: str, earlier: tuple[str, ...]) -> tuple[list[str], str]:
    """(import lines, body) of one runtime module: its source less its docstring and imports. Its
    imports from runtime modules are dropped (their code comes earlier in the file); any other
    import of synth is refused, so the exported file can never need synth."""
    source = inspect.getsource(importlib.import_module(name))
    lines, dropped, imports = source.split("\n"), set(), []
    for i, node in enumerate(ast.parse(source).body):
        is_doc = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if not (is_doc or isinstance(node, (ast.Import, ast.ImportFrom))):
            continue
        dropped.update(range(node.lineno - 1, node.end_lineno))
        if is_doc:
            continue
        target = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        if target.split(".")[0] == "synth" and target not in earlier:
            raise RuntimeError(f"{name} imports {target}, which an exported proxy.py does not hold before it")
        if target.split(".")[0] != "synth":
            imports.append(ast.get_source_segment(source, node))
    body = "\n".join(line for i, line in enumerate(lines) if i not in dropped)
    return imports, body.strip("\n")


def runtime_source(imports: tuple[str, ...] = ()) -> str:
    """The torch-only runtime as one module's source: `imports`, the imports of `runtime.MODULES`,
    each once, then their bodies in order (each module follows those it imports from)."""
    imports, bodies = list(imports), []
    for i, name in enumerate(runtime.MODULES):
        more, body = _module_parts(name, runtime.MODULES[:i])
        imports += [line for line in more if line not in imports]
        bodies.append(f"# ---------------------------------------------------------------- {name}\n\n\n{body}")
    return "\n".join(imports) + "\n\n\n" + "\n\n\n".join(bodies)


_PLUGIN_LOADER = '''

def load_plugins(plugins):
    """Import the synth plugin modules whose ops and statistics the formula uses, and take those
    into this file's tables (PLUGIN_OPS, STATISTICS)."""
    for module, (ops, statistics) in plugins.items():
        try:
            importlib.import_module(module)
            from synth.plugins import exported
        except ImportError as exc:
            raise ImportError(f"this proxy uses ops or statistics of the synth plugin module {module!r}: it needs "
                              f"synth and {module!r} importable (e.g. on PYTHONPATH); {exc}") from exc
        plugin_ops, plugin_statistics = exported(ops, statistics)
        PLUGIN_OPS.update(plugin_ops)
        STATISTICS.update(plugin_statistics)


load_plugins(PLUGINS)'''


def plugins_used(formula, terminals: dict[str, str]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """{plugin module: (ops, statistics)} of the plugin ops in `formula` and the plugin statistics
    its `terminals` ({name: statistic}) read; ValueError for a name no proxy file may hold."""
    found: dict[str, tuple[set, set]] = {}
    for node in sympy.preorder_traversal(formula.expr):
        if plugin_op(node):
            found.setdefault(OPS[plugin_op(node)].plugin, (set(), set()))[0].add(plugin_op(node))
    for stat in terminals.values():
        read = runtime.STATISTICS[stat].read
        if isinstance(read, PluginRead):
            found.setdefault(read.fn.__module__, (set(), set()))[1].add(stat)
    for module, (ops, statistics) in found.items():
        if not is_module_name(module) or module == "__main__" or not all(op.isidentifier() for op in ops):
            raise ValueError(f"plugin module {module!r} (ops {sorted(ops)}) cannot be named in a proxy file: "
                             "register plugin ops and statistics in an importable module")
    return {module: (tuple(sorted(ops)), tuple(sorted(stats))) for module, (ops, stats) in sorted(found.items())}


def docstring_literal(text: str) -> str:
    """A triple-quoted Python literal whose value is exactly `text`, whatever `text` holds.

    Text that cannot end or bend the literal (no double quote, no unprintable character, no
    trailing backslash) is written raw, so LaTeX stays readable in the file; any other text is
    written with backslashes, quotes and unprintable characters escaped, line by line.
    """
    if '"' not in text and not text.endswith("\\") and all(c == "\n" or c.isprintable() for c in text):
        return f'r"""{text}"""'
    lines = (line.encode("unicode_escape").decode("ascii").replace('"', '\\"') for line in text.split("\n"))
    return '"""' + "\n".join(lines) + '"""'


def proxy_source(formula, grammar, probe, fitness: float | None = None, synth_version: str = "") -> str:
    """Source of a stand-alone proxy module for `formula` (a synth.symbolic.Formula).

    The probe's activation-row subset (`max_rows`, seed) is written in as the
    defaults of `score`, so the file measures exactly what the engine measured.
    """
    terminals = {name: grammar.terminals[name].stat for name in sorted(s.name for s in formula.expr.free_symbols)}
    plugins = plugins_used(formula, terminals)
    needs = (f"This file needs torch, synth and the synth plugin modules {', '.join(plugins)}." if plugins
             else "This file needs torch only.")
    doc = [
        f"Zero-cost proxy discovered by synth {synth_version} (grammar {grammar.name!r}).",
        "",
        f"    score = {formula.canonical}",
        "",
        f"LaTeX: {formula.latex}",
        "",
        "Terminals (one value per layer of the statistic's kind: msa, mlp, act, attn, conv, bn, relu, fc):",
        *(f"    {name} = {stat}" for name, stat in terminals.items()),
        "",
        "Usage: score(model, inputs, targets) -> float, for any model whose layers of those kinds",
        "are found by structure (timm ViT-family models; CNNs built of Conv2d, BatchNorm, ReLU, Linear);",
        "one forward pass on (inputs, targets), plus a backward pass with cross-entropy",
        "where the formula reads gradients.",
        *([f"Search-split fitness (JCM) when found: {fitness:.4f}"] if fitness is not None else []),
        needs,
        "",
    ]
    lines = [
        docstring_literal("\n".join(doc)),
        "",
        runtime_source(("import importlib",) if plugins else ()),
        "",
        "",
        *([f"PLUGINS = {plugins!r}  # plugin module -> (ops, statistics) the formula uses", _PLUGIN_LOADER, "", ""]
          if plugins else []),
        f"TERMINALS = {terminals!r}",
        f"FORMULA = {formula.canonical!r}",
        "",
        "",
        "def formula(S):",
        '    """The proxy formula on statistics S = {terminal name: per-layer values}."""',
        f"    return {to_source(formula.expr)}",
        "",
        "",
        f"def score(model, inputs, targets, max_rows={probe.max_rows!r}, row_seed={probe.seed!r}):",
        '    """The proxy score of `model` on one probe batch (higher is predicted better).',
        "",
        "    Activation statistics keep a seeded subset of at most `max_rows` rows",
        '    (samples x tokens) per layer, as in the search; None keeps all rows."""',
        "    stats = collect_statistics(model, inputs, targets, set(TERMINALS.values()), max_rows, row_seed)",
        "    value = formula({name: stats[stat] for name, stat in TERMINALS.items()})",
        "    return float(value)",
        "",
    ]
    return "\n".join(lines)
