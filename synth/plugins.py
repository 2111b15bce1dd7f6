"""Extension without editing synth: the decorators a plugin module uses to add grammar ops and
statistics, the statistics registry, and the import of the plugin modules a grammar names.

A plugin is a Python module, named in a grammar's `plugins:` list, that registers ops with
`synth.register_op` and statistics with `synth.register_statistic` when imported. Importing it runs
its code, so synth imports a grammar's plugins only when the user opts in (`allow_plugins=True`,
`synth evolve --allow-plugins`); grammar/README.md has a tutorial.

The statistics table stays a plain dict in the torch-only runtime (`synth.runtime.STATISTICS`),
which exported proxies hold without synth; `STATISTIC_REGISTRY` is the Registry over it, so a
statistic's name is taken once and lookups name close matches, as for every other registry.
"""

from __future__ import annotations

import hashlib
import importlib
import keyword
import sys
from pathlib import Path

import sympy as _sympy
import torch

from synth import runtime
from synth.errors import GrammarError
from synth.execute import RUNTIME_OF
from synth.ops import OP_REGISTRY, ROLES, SYMPY_FUNCTIONS, OpSpec, opaque
from synth.registry import DuplicateName, Registry

__all__ = ["register_op", "register_statistic", "STATISTIC_REGISTRY", "import_plugin", "exported", "is_module_name"]

STATISTIC_REGISTRY: Registry = Registry("statistic", GrammarError, items=runtime.STATISTICS)

_PASS_AT = {"after": "none", "forward": "forward", "output": "forward", "backward": "backward"}  # the pass each `at` runs in
_AT = tuple(_PASS_AT)
_PASSES = ("none", "forward", "backward")  # in the order each pass includes the ones before


def is_module_name(name) -> bool:
    """Whether `name` is a dotted Python module name (what a grammar's `plugins:` may list)."""
    return isinstance(name, str) and all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split("."))


def _check_op_name(name) -> None:
    """An op's name becomes a sympy function's name, part of primitive names (op__type) and, in an
    exported proxy, a string literal: so an identifier with no '__', and no name sympy or synth's
    own formulas already use."""
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and "__" not in name):
        raise ValueError(f"an op name must be a Python identifier without '__', not {name!r}")
    if name in OP_REGISTRY:
        raise DuplicateName(f"op {name!r} is registered twice: synth or a plugin already has an op of that name")
    if name in SYMPY_FUNCTIONS or name in RUNTIME_OF or hasattr(_sympy, name):
        raise DuplicateName(f"op {name!r}: the name is taken by a sympy function or a formula node; choose another")


def register_op(name: str, *, role: str, sympy=None, latex: str | None = None, whole_tensor: bool = False, doc: str = ""):
    """Decorator registering the torch function it decorates as grammar op `name`.

    Args:
        name: the op's name in grammars and formulas: an identifier without '__'.
        role: its typing role, one of synth.ops.ROLES, which also says what the function receives:
            'unary' and 'binary' get tensors element-wise (all layers' values at once, or a
            per-layer vector), or with `whole_tensor` each layer's matrix; 'reduce' a layer's matrix,
            returning one number; 'aggregate' the per-layer vector, returning one number;
            'matmul' two matrices of one layer; 'channel' a layer's matrix, returning its 1 x columns
            row; 'kernel' the list of per-layer matrices (rows are samples); 'kernel_reduce' the kernel.
        sympy: the op's exact sympy form, a function of sympy expressions (e.g. `lambda x: x**3`),
            when sympy may simplify through it; the engine then computes the simplified form with
            synth's own ops. Default is `None`: an opaque sympy function named `name`, computed by
            the decorated function.
        latex: LaTeX of the opaque form, with {0} (and {1}) for the arguments' LaTeX; other braces
            are LaTeX's own. Default is `None`: \\operatorname{name}(...).
        whole_tensor: a unary op whose value at one element depends on the whole layer's tensor.
            Default is `False`.
        doc: one line on what the op computes. Default is the function's docstring's first line.

    Raises:
        DuplicateName: `name` is taken (by another op, or a sympy function).
        ValueError: a bad name or role.
    """
    _check_op_name(name)
    if role not in ROLES:
        raise ValueError(f"op {name!r}: unknown role {role!r} (roles: {', '.join(ROLES)})")
    arity = 2 if role in ("binary", "matmul") else 1
    args = ", ".join(f"{{{i}}}" for i in range(arity))  # {0}, {1}
    shown = name.replace("_", r"\_")
    latex = latex or rf"\operatorname{{{shown}}}\left({args}\right)"
    form = sympy or opaque(name, _format_string(latex, arity), nargs=arity)

    def wrap(fn):
        summary = doc or (fn.__doc__ or name).strip().split("\n")[0]
        OP_REGISTRY.register(name, OpSpec(name, role, form, summary, whole_tensor, plugin=fn.__module__))
        if sympy is None:
            SYMPY_FUNCTIONS[name] = form
        runtime.PLUGIN_OPS[name] = (role, whole_tensor, fn)
        return fn

    return wrap


def _format_string(latex: str, arity: int) -> str:
    """`latex` (LaTeX with {0}, {1} for the arguments) as a str.format string: LaTeX's own braces
    doubled, so a user writes \\operatorname{softsign}\\left({0}\\right) as LaTeX reads it."""
    escaped = latex.replace("{", "{{").replace("}", "}}")
    for i in range(arity):
        escaped = escaped.replace(f"{{{{{i}}}}}", f"{{{i}}}")
    return escaped


class PluginRead:
    """A plugin statistic's `read`: the user's `fn(site, captured)`, its value as a float32 matrix
    (a 'tensor' statistic) or a 0-d tensor (a 'layer' statistic), as the statistics table expects."""

    def __init__(self, fn, role: str):
        self.fn, self.role = fn, role

    def __call__(self, site, captured, options):
        value = self.fn(site, captured)
        if self.role == "layer":
            return torch.tensor(float(value))
        return torch.as_tensor(value).detach().float()


def register_statistic(name: str, *, at: str, role: str = "tensor", needs: str | None = None, shape: str = ""):
    """Decorator registering `fn(site, captured)` as statistic `name`, 'kind.quantity'.

    `site.module` is one module of the kind (msa, mlp, act, attn, conv, bn, relu, fc: see
    synth.runtime.sites_by_kind; block: see synth.runtime.block_sites), `site.depth` its 1-based
    index; `fn` returns the statistic at that module: a matrix (role 'tensor'; a tensor of more
    axes is flattened to first axis x rest) or a number (role 'layer').

    Args:
        at: when `fn` runs: 'after' the pass (`captured` is empty), 'forward' in a forward pre-hook
            (`captured['input']` is the module's input), 'output' in a forward hook once the module
            has run (`captured['output']` is its output too) or 'backward' in a backward hook
            (`captured['output_grad']` and `captured['input_grad']` are the loss gradients at its
            output and input too; the latter None where the input takes no gradient).
        role: 'tensor' or 'layer'. Default is `'tensor'`.
        needs: the pass the statistic needs: 'none', 'forward' or 'backward' (e.g. 'backward' for
            a weight gradient read 'after'). Default is `None`: the pass `at` runs in.
        shape: its shape per layer, in words. Default is `""`.

    Raises:
        DuplicateName: `name` is taken.
        ValueError: a bad name, `at`, `role` or `needs`.
    """
    kind, _, quantity = name.partition(".") if isinstance(name, str) else ("", "", "")
    if kind not in runtime.SITE_KINDS or not quantity.isidentifier():
        raise ValueError(f"a statistic is named 'kind.quantity', kind one of {', '.join(runtime.SITE_KINDS)}: not {name!r}")
    needs = needs or _PASS_AT.get(at, at)
    if at not in _AT or role not in ("tensor", "layer") or needs not in _PASSES:
        raise ValueError(f"statistic {name!r}: `at` is one of {_AT}, `role` tensor or layer, `needs` one of {_PASSES}")
    if _PASSES.index(needs) < _PASSES.index(_PASS_AT[at]):
        raise ValueError(f"statistic {name!r}: read at {at!r}, it needs the {_PASS_AT[at]} pass (needs={needs!r})")

    def wrap(fn):
        STATISTIC_REGISTRY.register(name, runtime.Statistic(kind, PluginRead(fn, role), at, needs, role, shape or role))
        return fn

    return wrap


def import_plugin(module: str, folder: Path) -> str:
    """Import plugin `module`, looked up first in `folder` (the grammar's) and then on sys.path;
    returns the sha256 of its source, which a resumed run compares. Raises what the import raises."""
    sys.path.insert(0, str(folder))
    try:
        loaded = importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))
    source = getattr(loaded, "__file__", None)
    return hashlib.sha256(Path(source).read_bytes() if source else b"").hexdigest()


def exported(ops, statistics) -> tuple[dict, dict]:
    """({op: runtime entry}, {statistic: row}) of plugin ops and statistics already registered: what
    an exported proxy.py that uses them copies into its own runtime after importing their modules."""
    return {name: runtime.PLUGIN_OPS[name] for name in ops}, {name: runtime.STATISTICS[name] for name in statistics}
