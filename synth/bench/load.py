"""Loading a benchmark: the embedded default, a named source, a synth benchmark file or a row file,
each checked for what ranking needs.

A synth benchmark file is JSON (format 'synth-benchmark/1'):

    {"format": ..., "space": name, "tasks": [task, ...], "recipe": {...}, "seeds": [...],
     "rows": [{"arch": {...}, "params": n, "acc": {task: mean %}, "seed_acc": {task: [% per seed]}}]}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from synth.bench.record import Benchmark, BenchMeta, accuracy, targets_and_missing
from synth.bench.sources import find_source, load_rows_file, rows_to_benchmark, source_for_rows, source_names
from synth.errors import BenchError
from synth.resources import read_json, resource_dir
from synth.space import SearchSpace, load_space

__all__ = ["load_benchmark", "require_rankable", "benchmark_space", "read_synth_benchmark", "DEFAULT_BENCHMARK", "FORMAT"]

FORMAT = "synth-benchmark/1"
DEFAULT_BENCHMARK = "vit-digits.json"
# benchmarks shipped inside synth, by name: the default, and a second ViT family for judging transfer
EMBEDDED = {"vit-digits": DEFAULT_BENCHMARK, "pit-digits": "pit-digits.json"}
EMBEDDED_PREFIX = "embedded:"  # how a run record names the embedded benchmark it ran on (synth.run)
MIN_RANKED = 3  # architectures with a value a task needs before a correlation ranks anything


def load_benchmark(source: str | None = None, tasks: list[str] | None = None, rankable: bool = True) -> Benchmark:
    """The benchmark `source`: None for the embedded default, an embedded one by name ('vit-digits',
    'pit-digits', or 'embedded:vit-digits' as run records name it), a named source ('vit-bench-101',
    'nasbench201-zc:cifar10', 'nasbench201:cifar10', 'nasbench201:cifar10@3000,seed=1'), or a path to a synth benchmark JSON or to a ViT-Bench-101-style row file (.pth, .json, .csv).

    `tasks` selects accuracy columns (default: the source's default tasks, or all of them).
    Missing values become NaN for their task and are counted in `meta.missing`. With `rankable`
    (the default: every command that ranks), a task that could not rank anything is refused (see
    `require_rankable`); pass False to read a benchmark too small to rank, e.g. to inspect a build.
    """
    bench = _load(source, tasks)
    return require_rankable(bench) if rankable else bench


def require_rankable(bench: Benchmark, rows: list[int] | None = None, part: str = "") -> Benchmark:
    """`bench` itself if every task can rank its `rows` (default: all): at least MIN_RANKED values,
    not all equal, each a percentage (0-100). BenchError naming the file (or source) and the task
    otherwise, so nonsense is refused before any work instead of giving every program fitness -1."""
    origin = bench.meta.path or bench.name
    where = f" in the {part}" if part else ""
    for task, values in bench.targets.items():
        picked = values if rows is None else values[np.asarray(rows, dtype=int)]
        usable = picked[np.isfinite(picked)]
        if len(usable) < MIN_RANKED:
            raise BenchError(f"{origin}: task {task!r}: {len(usable)} of {len(picked)} architectures{where} have an "
                             f"accuracy; ranking needs at least {MIN_RANKED}")
        if usable.min() == usable.max():
            raise BenchError(f"{origin}: task {task!r}: every architecture{where} has accuracy {usable[0]:g}; "
                             "a constant cannot rank anything")
        outside = usable[(usable < 0) | (usable > 100)]
        if outside.size:
            raise BenchError(f"{origin}: task {task!r}: accuracy {outside[0]:g} is not a percentage (0 to 100)")
    return bench


def _load(source: str | None, tasks: list[str] | None) -> Benchmark:
    """The benchmark `source` as its loader reads it (see load_benchmark)."""
    if source and source.startswith(EMBEDDED_PREFIX) and source[len(EMBEDDED_PREFIX):] in EMBEDDED:
        source = source[len(EMBEDDED_PREFIX):]
    named = find_source(source) if source else None
    if named is not None:
        return named.load(source, named, tasks)
    if source is None or source in EMBEDDED:
        path = resource_dir("data") / EMBEDDED[source or "vit-digits"]
    else:
        path = Path(source)
    if not path.is_file():
        raise BenchError(f"{path}: benchmark file not found (embedded: {', '.join(EMBEDDED)}; "
                         f"named sources: {', '.join(source_names())})")
    if path.suffix.lower() == ".json":
        raw = read_json(path, BenchError)
        if isinstance(raw, dict):
            return read_synth_benchmark(path, raw, tasks)
    rows = load_rows_file(path)
    like = source_for_rows(rows, path)
    return rows_to_benchmark([(path, rows)], path.stem, like.space, tasks, like.default_tasks, like.arch_keys, like.flags)


def benchmark_space(bench: Benchmark) -> SearchSpace:
    """The search space of `bench`, with the fixed options its dataset needs (`meta.space_fixed`,
    e.g. 120 classes at 16 px for nasbench201-zc:ImageNet16-120) applied."""
    return space_with_fixed(bench.space, bench.meta.space_fixed)


def space_with_fixed(name: str, overrides: dict | None) -> SearchSpace:
    """The search space `name` with `overrides` applied to its fixed options."""
    space = load_space(name)
    return dataclasses.replace(space, fixed={**space.fixed, **overrides}) if overrides else space


def read_synth_benchmark(path: Path, raw: dict, tasks) -> Benchmark:
    """A benchmark in synth's own JSON format (`raw`, read from `path`), checked key by key."""
    if raw.get("format") != FORMAT:
        raise BenchError(f"{path}: not a synth benchmark (expected 'format': {FORMAT!r})")
    for key in ("space", "tasks", "rows"):
        if key not in raw:
            raise BenchError(f"{path}: missing key {key!r}")
    if not isinstance(raw["space"], str):
        raise BenchError(f"{path}: space: must be a space name or file, got {raw['space']!r}")
    if not isinstance(raw["tasks"], list) or not raw["tasks"] or not all(isinstance(t, str) for t in raw["tasks"]):
        raise BenchError(f"{path}: tasks: must be a non-empty list of task names, got {raw['tasks']!r}")
    if not isinstance(raw["rows"], list) or not raw["rows"]:
        raise BenchError(f"{path}: rows: must be a non-empty list of {{'arch': ..., 'acc': ...}} rows, got {raw['rows']!r}")
    chosen = list(tasks or raw["tasks"])
    unknown = [t for t in chosen if t not in raw["tasks"]]
    if unknown:
        raise BenchError(f"{path}: unknown task(s) {unknown}; the file has {raw['tasks']}")
    archs, targets = [], {task: [] for task in chosen}
    for i, row in enumerate(raw["rows"]):
        if not isinstance(row, dict) or "arch" not in row or "acc" not in row:
            raise BenchError(f"{path}: rows[{i}] lacks 'arch' or 'acc'")
        for key in ("arch", "acc"):
            if not isinstance(row[key], dict):
                raise BenchError(f"{path}: rows[{i}].{key}: must be a mapping, got {type(row[key]).__name__}")
        archs.append(row["arch"])
        for task in chosen:
            targets[task].append(accuracy(row["acc"].get(task), f"{path}: rows[{i}].acc.{task}"))
    arrays, missing = targets_and_missing(targets, str(path))
    meta = BenchMeta.from_dict({k: v for k, v in raw.items() if k != "rows"} | {"path": str(path), "rows": raw["rows"], "missing": missing})
    return Benchmark(name=path.stem, space=raw["space"], archs=archs, targets=arrays, meta=meta)
