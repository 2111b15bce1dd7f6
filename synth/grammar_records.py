"""A checked grammar as frozen dataclasses: what `synth.grammar.load_grammar` returns and a run
directory stores (`to_dict`/`from_dict`), apart from the code that checks a file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["Grammar", "TypeDef", "Terminal", "Primitive", "Limits", "KINDS"]

KINDS = ("tensor", "layer", "scalar", "kernel")


@dataclass(frozen=True)
class TypeDef:
    name: str
    kind: str  # tensor | layer | scalar | kernel
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
    plugins: dict[str, str] = field(default_factory=dict)  # plugin module -> sha256 of its source, as loaded

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
