"""Benchmarks: architectures of one space with trained accuracies, and how to build one.

A benchmark file is JSON (format 'synth-benchmark/1'):

    {"format": ..., "space": name, "tasks": [task, ...], "recipe": {...}, "seeds": [...],
     "rows": [{"arch": {...}, "params": n, "acc": {task: mean %}, "seed_acc": {task: [% per seed]}}]}

`synth bench build` writes one by really training every architecture with every
seed; results are appended to a `.partial.jsonl` file as they finish, so a
killed build resumes without retraining what it finished.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.errors import BenchError
from synth.resources import resource_dir
from synth.space import SearchSpace, arch_key, count_params

__all__ = [
    "Benchmark", "load_benchmark", "benchmark_space", "split_indices", "build_benchmark", "seed_noise_summary", "DEFAULT_BENCHMARK", "FORMAT",
]

FORMAT = "synth-benchmark/1"
DEFAULT_BENCHMARK = "vit-digits.json"


@dataclass
class Benchmark:
    """Architectures of one space and their accuracy on one or more tasks (NaN where missing)."""

    name: str
    space: str
    archs: list[dict]
    targets: dict[str, np.ndarray]  # task -> accuracy per architecture
    meta: dict = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return list(self.targets)

    def __len__(self) -> int:
        return len(self.archs)

    def subset(self, rows: list[int]) -> "Benchmark":
        """The benchmark restricted to `rows`: architectures, targets and per-architecture reference scores."""
        pick = np.asarray(rows, dtype=int)
        references = {k: np.asarray(v, dtype=float)[pick] for k, v in (self.meta.get("reference_scores") or {}).items()}
        ids = self.meta.get("arch_ids")
        meta = {**self.meta, "reference_scores": references, **({"arch_ids": [ids[i] for i in rows]} if ids else {})}
        return dataclasses.replace(self, archs=[self.archs[i] for i in rows],
                                   targets={t: v[pick] for t, v in self.targets.items()}, meta=meta)


def split_indices(n: int, seed: int, search_fraction: float = 0.6) -> tuple[list[int], list[int]]:
    """Seeded split of row indices into a search part and a held-out test part."""
    order = np.random.default_rng(seed).permutation(n)
    n_search = int(round(search_fraction * n))
    return sorted(order[:n_search].tolist()), sorted(order[n_search:].tolist())


def load_benchmark(source: str | None = None, tasks: list[str] | None = None) -> Benchmark:
    """The benchmark `source`: None for the embedded default, a named source ('vit-bench-101',
    'nasbench201-zc:cifar10'), or a path to a synth benchmark JSON or to a ViT-Bench-101-style row file (.pth, .json, .csv).

    `tasks` selects accuracy columns (default: the source's default tasks, or all of them).
    Missing values become NaN for their task and are counted in `meta['missing']`.
    """
    from synth.sources import is_zc_source, load_nasbench201_zc, load_rows_file, named_source, resolve_files, rows_to_benchmark, source_for_rows

    if source and is_zc_source(source):
        return load_nasbench201_zc(source, tasks)
    named = named_source(source) if source else None
    if named is not None:
        files = [(p, load_rows_file(p)) for p in resolve_files(named)]
        return rows_to_benchmark(files, named.name, named.space, tasks, named.default_tasks, named.arch_keys, named.flags)
    path = resource_dir("data") / DEFAULT_BENCHMARK if source is None else Path(source)
    if not path.is_file():
        raise BenchError(f"{path}: benchmark file not found (named sources: {', '.join(_named_sources())})")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); is the file truncated?") from None
        if isinstance(raw, dict):
            return _synth_benchmark(path, raw, tasks)
    rows = load_rows_file(path)
    like = source_for_rows(rows, path)
    return rows_to_benchmark([(path, rows)], path.stem, like.space, tasks, like.default_tasks, like.arch_keys, like.flags)


def _named_sources() -> list[str]:
    from synth.sources import SOURCES, zc_source_names

    return sorted(SOURCES) + zc_source_names()


def benchmark_space(bench: Benchmark) -> SearchSpace:
    """The search space of `bench`, with the fixed options its dataset needs (`meta['space_fixed']`,
    e.g. 120 classes at 16 px for nasbench201-zc:ImageNet16-120) applied."""
    from synth.space import load_space

    space = load_space(bench.space)
    overrides = bench.meta.get("space_fixed") or {}
    return dataclasses.replace(space, fixed={**space.fixed, **overrides}) if overrides else space


def _synth_benchmark(path: Path, raw: dict, tasks) -> Benchmark:
    """A benchmark in synth's own JSON format."""
    if raw.get("format") != FORMAT:
        raise BenchError(f"{path}: not a synth benchmark (expected 'format': {FORMAT!r})")
    for key in ("space", "tasks", "rows"):
        if key not in raw:
            raise BenchError(f"{path}: missing key {key!r}")
    chosen = list(tasks or raw["tasks"])
    unknown = [t for t in chosen if t not in raw["tasks"]]
    if unknown:
        raise BenchError(f"{path}: unknown task(s) {unknown}; the file has {raw['tasks']}")
    archs, targets = [], {task: [] for task in chosen}
    for i, row in enumerate(raw["rows"]):
        if "arch" not in row or "acc" not in row:
            raise BenchError(f"{path}: rows[{i}] lacks 'arch' or 'acc'")
        archs.append(row["arch"])
        for task in chosen:
            value = row["acc"].get(task)
            try:
                value = math.nan if value is None else float(value)
            except (TypeError, ValueError):
                raise BenchError(f"{path}: rows[{i}].acc.{task}: not a number ({value!r})") from None
            if math.isinf(value):
                raise BenchError(f"{path}: rows[{i}].acc.{task}: infinite accuracy")
            targets[task].append(value)
    arrays = {task: np.asarray(values, dtype=float) for task, values in targets.items()}
    missing = {task: int(np.isnan(v).sum()) for task, v in arrays.items()}
    for task, count in missing.items():
        if archs and count == len(archs):
            raise BenchError(f"{path}: task {task!r} has no values in any of its {count} rows")
    return Benchmark(
        name=path.stem,
        space=raw["space"],
        archs=archs,
        targets=arrays,
        meta={k: v for k, v in raw.items() if k != "rows"} | {"path": str(path), "rows": raw["rows"], "missing": missing},
    )


# ---------------------------------------------------------------- building


def _train_job(job):
    """Worker: train one (architecture, seed) pair. Module-level so it pickles for a process pool."""
    import time

    import torch

    from synth.datasets import load_dataset
    from synth.space import load_space
    from synth.train import Recipe, train_and_evaluate

    space_file, arch, seed, recipe_dict = job
    torch.set_num_threads(1)
    recipe = Recipe(**recipe_dict)
    start = time.perf_counter()
    data = load_dataset(recipe.dataset, recipe.split_seed, recipe.test_fraction)
    acc = train_and_evaluate(load_space(space_file), arch, seed, recipe, data)
    return {"key": arch_key(arch), "seed": seed, "acc": acc, "seconds": time.perf_counter() - start}


def _read_partial(path: Path) -> dict[tuple[str, int], dict]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: that job simply runs again
            done[(record["key"], record["seed"])] = record
    return done


def build_benchmark(
    space: SearchSpace,
    archs: list[dict],
    seeds: list[int],
    recipe,
    out: Path,
    workers: int = 1,
    progress=None,
    meta: dict | None = None,
) -> dict:
    """Train every architecture with every seed, write the benchmark JSON to `out`, return it.

    Finished jobs are appended to `out` + '.partial.jsonl' and skipped on a rerun.
    `progress(done, total)` is called after each job when given; `meta` is
    recorded in the file (e.g. how the architectures were sampled).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.jsonl")
    done = _read_partial(partial)
    jobs = [
        (space.source, arch, seed, recipe.to_dict())
        for arch in archs
        for seed in seeds
        if (arch_key(arch), seed) not in done
    ]
    total = len(archs) * len(seeds)
    if progress:
        progress(total - len(jobs), total)
    with partial.open("a") as sink:
        for record in _run_jobs(jobs, workers):
            done[(record["key"], record["seed"])] = record
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            if progress:
                progress(len(done), total)
    task = recipe.dataset
    rows = []
    for arch in archs:
        records = [done[(arch_key(arch), seed)] for seed in seeds]
        accs = [r["acc"] for r in records]
        rows.append(
            {
                "arch": arch,
                "params": count_params(space.build(arch)),
                "acc": {task: float(np.mean(accs))},
                "seed_acc": {task: accs},
                "train_seconds": float(sum(r["seconds"] for r in records)),
            }
        )
    bench = {
        "format": FORMAT,
        "space": space.name,
        "tasks": [task],
        "recipe": recipe.to_dict(),
        "seeds": list(seeds),
        **(meta or {}),
        "rows": rows,
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(bench, indent=1))
    os.replace(tmp, out)
    return bench


def _run_jobs(jobs, workers):
    if workers <= 1:
        yield from map(_train_job, jobs)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_train_job, jobs)


def seed_noise_summary(bench: dict) -> dict:
    """Per task: mean seed-to-seed std of accuracy, std of mean accuracy across architectures, their ratio."""
    out = {}
    for task in bench["tasks"]:
        per_seed = np.array([row["seed_acc"][task] for row in bench["rows"]], dtype=float)
        seed_std = float(np.mean(np.std(per_seed, axis=1, ddof=1))) if per_seed.shape[1] > 1 else math.nan
        arch_std = float(np.std(per_seed.mean(axis=1), ddof=1))
        out[task] = {"seed_std": seed_std, "arch_std": arch_std, "ratio": arch_std / seed_std if seed_std > 0 else math.nan}
    return out
