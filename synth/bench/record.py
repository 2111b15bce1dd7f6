"""The benchmark record: architectures of one space, their accuracies, and what their source says
about them (`BenchMeta`); and the seeded splits of its rows.

Every loader (synth/bench/load.py, sources.py, nasbench201.py) builds a `Benchmark`, and every layer
that ranks, scores or trains reads it, so the record lives apart from all of them: none imports
another to reach it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from synth.errors import BenchError

__all__ = ["Benchmark", "BenchMeta", "split_indices", "inner_split", "sample_rows", "accuracy", "targets_and_missing"]


@dataclass
class BenchMeta:
    """What a benchmark's source records beyond architectures and accuracies. Several layers read it
    (the run's notes, the zoo's reference scores, `bench check`'s recipe and seeds, the probe's data),
    so each such item is a typed field; the rest of a synth benchmark file's keys stay in `extra`."""

    path: str | None = None  # the file the benchmark was read from
    missing: dict = field(default_factory=dict)  # task -> architectures without an accuracy
    flags: dict = field(default_factory=dict)  # task -> caveat shown to the user
    available_tasks: list | None = None  # every task the source holds (the chosen ones are the targets)
    arch_ids: list | None = None  # the source's own name of each architecture, row order
    reference_scores: dict = field(default_factory=dict)  # proxy -> the source's score per architecture
    space_fixed: dict = field(default_factory=dict)  # the dataset's overrides of the space's fixed options
    dataset: str | dict | None = None  # a table's dataset name, or a build's data source {"source", "digest"}
    recipe: dict | None = None  # the training recipe a synth bench build used (synth.train.Recipe.to_dict())
    seeds: list | None = None  # the training seeds of that build
    rows: list | None = None  # a synth benchmark file's rows as written (per-seed accuracies, params, ...)
    provenance: list | None = None  # {"file", "row"} per architecture of a row-file source
    table: dict | None = None  # NAS-Bench-201 table: {"rows": its size, "sample": {"n", "seed"} or None}
    extra: dict = field(default_factory=dict)  # a synth benchmark file's other keys (format, sampling, device, ...)

    def to_dict(self) -> dict:
        """One flat JSON object (arrays as lists), without unset fields; `from_dict` reads it back."""
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **{key: _arrays_as_lists(value) for key, value in named.items() if value not in (None, {}, [])}}

    @classmethod
    def from_dict(cls, raw: dict) -> "BenchMeta":
        """The meta of a flat object: known keys become fields, any other key goes to `extra`."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in raw.items() if k in known}, extra={k: v for k, v in raw.items() if k not in known})


@dataclass
class Benchmark:
    """Architectures of one space and their accuracy on one or more tasks (NaN where missing)."""

    name: str
    space: str
    archs: list[dict]
    targets: dict[str, np.ndarray]  # task -> accuracy per architecture
    meta: BenchMeta = field(default_factory=BenchMeta)

    @property
    def tasks(self) -> list[str]:
        return list(self.targets)

    def __len__(self) -> int:
        return len(self.archs)

    def to_dict(self) -> dict:
        """The benchmark as JSON-ready data (arrays as lists; synth.rundir.json_text writes NaN as
        null); `from_dict` reads it back."""
        return {"name": self.name, "space": self.space, "archs": self.archs,
                "targets": {task: values.tolist() for task, values in self.targets.items()}, "meta": self.meta.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict) -> "Benchmark":
        targets = {task: np.array([math.nan if v is None else v for v in values], dtype=float)
                   for task, values in raw["targets"].items()}
        return cls(raw["name"], raw["space"], raw["archs"], targets, BenchMeta.from_dict(raw.get("meta") or {}))

    def subset(self, rows: list[int]) -> "Benchmark":
        """The benchmark restricted to `rows`: architectures, targets and per-architecture reference scores."""
        pick = np.asarray(rows, dtype=int)
        references = {k: np.asarray(v, dtype=float)[pick] for k, v in self.meta.reference_scores.items()}
        ids = self.meta.arch_ids
        meta = dataclasses.replace(self.meta, reference_scores=references, arch_ids=[ids[i] for i in rows] if ids else ids)
        return dataclasses.replace(self, archs=[self.archs[i] for i in rows],
                                   targets={t: v[pick] for t, v in self.targets.items()}, meta=meta)


def _arrays_as_lists(value):
    """`value` with every numpy array in it (meta's reference scores) as a list."""
    if isinstance(value, dict):
        return {key: _arrays_as_lists(item) for key, item in value.items()}
    return value.tolist() if isinstance(value, np.ndarray) else value


def split_indices(n: int, seed: int, search_fraction: float = 0.6) -> tuple[list[int], list[int]]:
    """Seeded split of row indices into a search part and a held-out test part."""
    order = np.random.default_rng(seed).permutation(n)
    n_search = int(round(search_fraction * n))
    return sorted(order[:n_search].tolist()), sorted(order[n_search:].tolist())


def inner_split(rows: list[int], validation: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of the search rows into the rows fitness is computed on and an inner validation
    fold (`validation` of them) that only the final pick sees; ([rows], []) when `validation` is 0.
    The test split is never part of either."""
    if not validation:
        return list(rows), []
    fit, held = split_indices(len(rows), seed + 1, 1.0 - validation)
    return [rows[i] for i in fit], [rows[i] for i in held]


def sample_rows(total: int, n: int, seed: int) -> list[int]:
    """A seeded sample of `n` distinct row indices below `total`, sorted: the same rows for the same seed."""
    return sorted(np.random.default_rng(seed).choice(total, n, replace=False).tolist())


def accuracy(raw, where: str, numbers_only: bool = False, allow_inf: bool = False) -> float:
    """A source's value as a float (None: NaN, missing); BenchError "`where`: not a number" or
    "infinite accuracy" otherwise. `numbers_only` refuses text such as "93.1" (JSON sources store
    numbers); `allow_inf` keeps infinities (a published proxy score may be -inf)."""
    if raw is None:
        return math.nan
    if numbers_only and (isinstance(raw, bool) or not isinstance(raw, (int, float))):
        raise BenchError(f"{where}: not a number ({raw!r})")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BenchError(f"{where}: not a number ({raw!r})") from None
    if math.isinf(value) and not allow_inf:
        raise BenchError(f"{where}: infinite accuracy")
    return value


def targets_and_missing(values: dict[str, list], what: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(accuracy array per task, count of missing values per task); BenchError for a task with no value
    at all (`what` names the benchmark)."""
    targets = {task: np.asarray(v, dtype=float) for task, v in values.items()}
    missing = {task: int(np.isnan(v).sum()) for task, v in targets.items()}
    for task, count in missing.items():
        if count == len(targets[task]):
            raise BenchError(f"{what}: task {task!r} has no values in any of its {count} rows")
    return targets, missing
