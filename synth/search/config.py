"""A search's settings and the records it writes: SearchConfig, SearchPick, SearchResult, and the
names of the files in a search directory."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, ClassVar

from synth.errors import ConfigError
from synth.records import Record

__all__ = ["SearchConfig", "SearchPick", "SearchResult", "parse_count", "SEARCH_FORMAT", "RESULT", "CHECKPOINT", "EVALUATED"]

SEARCH_FORMAT = "synth-search/1"
RESULT, CHECKPOINT, EVALUATED = "search.json", "checkpoint.json", "evaluated.jsonl"


@dataclass(frozen=True)
class SearchConfig:
    """The search's settings; defaults are AutoFormer's (population 50, 20 iterations, top 10 breed,
    25 mutations and 25 crossovers per iteration, each choice mutated with probability 0.2)."""

    population: int = 50
    iterations: int = 20
    parents: int = 10
    mutations: int = 25
    crossovers: int = 25
    mutation_prob: float = 0.2
    top_k: int = 5
    max_params: float | None = None
    max_flops: float | None = None
    seed: int = 0
    max_draws: int = 100  # consecutive unusable draws (over budget or seen) before settling for fewer children
    finalists: int = 0  # best scored architectures re-ranked after the search (0: none; see synth.search.finalists)
    init_seeds: tuple = ()  # initialisation seeds the finalists are scored under (none: the probe's own)
    probe_seeds: tuple = ()  # probe batch seeds the finalists are scored under (none: the probe's own)

    def __post_init__(self):
        # seed lists arrive as lists from JSON and from Python callers; kept as tuples, hashable and equal either way
        for name in ("init_seeds", "probe_seeds"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    def validate(self) -> "SearchConfig":
        for name in ("population", "parents", "top_k", "max_draws"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("iterations", "mutations", "crossovers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative (got {getattr(self, name)})")
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise ConfigError(f"mutation_prob must lie in [0, 1] (got {self.mutation_prob})")
        for name in ("max_params", "max_flops"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive (got {value})")
        self._validate_finalists()
        return self

    def _validate_finalists(self) -> None:
        if self.finalists < 0:
            raise ConfigError(f"finalists must not be negative (got {self.finalists})")
        for name in ("init_seeds", "probe_seeds"):
            seeds = list(getattr(self, name))
            if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
                raise ConfigError(f"{name} must be non-negative integers (got {seeds!r})")
            if len(set(seeds)) != len(seeds):
                raise ConfigError(f"{name} repeats a seed (got {seeds!r})")
        settings = max(len(self.init_seeds), 1) * max(len(self.probe_seeds), 1)
        if self.finalists and settings < 2:
            raise ConfigError(f"finalists {self.finalists} needs at least two init_seeds or probe_seeds to rank them over "
                              f"(got init_seeds {list(self.init_seeds)}, probe_seeds {list(self.probe_seeds)})")
        if (self.init_seeds or self.probe_seeds) and not self.finalists:
            raise ConfigError("init_seeds or probe_seeds is given but finalists is 0: say how many of the best to re-rank")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "SearchConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def parse_count(text: str) -> float:
    """'6M' -> 6e6, '1.5G' -> 1.5e9, '250k' -> 2.5e5, '1e6' -> 1e6: budgets as people write them."""
    scale = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
    text = str(text).strip()
    factor = scale.get(text[-1:].lower(), 1.0)
    number = text[:-1] if factor != 1.0 else text
    try:
        value = float(number) * factor
    except ValueError:
        raise ValueError(f"{text!r} is not a count (examples: 6M, 1.5G, 250k, 1e6)") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r}: a budget must be a positive number")
    return value


@dataclass(frozen=True, kw_only=True)
class SearchPick(Record):
    """One of a search's top architectures: its rank, the architecture and its key, its fixed-length
    encoding in the space, the proxy's score (None where it failed), parameters and multiply-adds."""

    rank: int
    arch: dict
    key: str
    encoding: list
    score: float | None
    params: float
    flops: float | None
    scores: list | None = None  # finalists only: [{"init_seed", "probe_seed", "score"}] per setting
    mean_rank: float | None = None  # finalists only: mean rank over those settings (1 is best)


@dataclass(frozen=True, kw_only=True)
class SearchResult(Record):
    """What `run_search` returns and writes as search.json (`to_dict()`, key for key)."""

    format: str
    proxy: str
    space: dict  # {"name", "source"}
    config: SearchConfig
    probe: dict  # synth.probe.Probe.to_dict()
    top: list[SearchPick]
    history: list  # one entry per iteration
    evaluated: int  # distinct architectures scored
    tied_at_top: int  # scored architectures sharing the top-1's score exactly
    failed: int  # architectures the proxy could not score
    errors: dict  # error message -> count
    seconds: dict
    versions: dict
    finalists: list = field(default_factory=list)  # re-ranked over init and probe seeds, best first (synth.search.finalists)

    _readers: ClassVar[dict[str, Callable]] = {
        "config": lambda raw: SearchConfig.from_dict(raw),
        "top": lambda rows: [SearchPick.from_dict(row) for row in rows],
    }
