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
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.errors import BenchError, InputError, SpaceError
from synth.resources import resource_dir
from synth.space import SearchSpace, arch_key, count_params

__all__ = [
    "Benchmark", "load_benchmark", "benchmark_space", "split_indices", "build_benchmark", "load_arch_file", "seed_noise_summary",
    "DEFAULT_BENCHMARK", "FORMAT",
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


def load_arch_file(path, space: SearchSpace) -> list[dict]:
    """The distinct architectures listed in `path`, in file order, each checked against `space`.

    Accepted: a JSON list of architectures, a JSON object with an 'archs' list, a `synth search`
    result (an object whose 'top' items each hold an 'arch'), or JSONL with one architecture per
    line. A repeated architecture is kept once, so it is trained once. InputError names the file
    and the item or line of the first bad entry.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the architecture file ({exc.strerror})") from None
    archs: dict[str, dict] = {}
    for where, item in _arch_items(path, text):
        if not isinstance(item, dict):
            raise InputError(f"{path}: {where}: expected an architecture (a mapping), got {type(item).__name__}")
        try:
            space.validate(item)
        except SpaceError as exc:
            raise InputError(f"{path}: {where}: {exc}") from None
        archs.setdefault(arch_key(item), item)
    if not archs:
        raise InputError(f"{path}: no architectures in the file")
    return list(archs.values())


def _arch_items(path: Path, text: str) -> list[tuple[str, object]]:
    """(where, item) for every entry of an architecture file, `where` naming it for error messages."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        return _jsonl_items(path, text)
    if isinstance(raw, list):
        return [(f"item {i}", item) for i, item in enumerate(raw)]
    if isinstance(raw, dict) and "archs" in raw:
        return [(f"archs[{i}]", item) for i, item in enumerate(_listed(path, raw, "archs"))]
    if isinstance(raw, dict) and "top" in raw:
        top = _listed(path, raw, "top")
        return [(f"top[{i}].arch", entry.get("arch") if isinstance(entry, dict) else entry) for i, entry in enumerate(top)]
    return [("line 1", raw)]  # JSONL holding a single architecture


def _listed(path: Path, raw: dict, key: str) -> list:
    if not isinstance(raw[key], list):
        raise InputError(f"{path}: {key!r} must be a list")
    return raw[key]


def _jsonl_items(path: Path, text: str) -> list[tuple[str, object]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}); an architecture file is JSON (a list, "
                             "{'archs': [...]} or a search.json) or JSONL (one architecture per line)") from None
    return items


def _train_job(job):
    """Worker: train one (architecture, seed) pair. Module-level so it pickles for a process pool."""
    import time

    import torch

    from synth.train import train_and_evaluate, training_data

    space, arch, seed, recipe, device = job
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = training_data(recipe, space)  # cached per process: read once per worker
    acc = train_and_evaluate(space, arch, seed, recipe, data, device=device)
    return {"key": arch_key(arch), "seed": seed, "acc": acc, "seconds": time.perf_counter() - start, "device": device}


def _provenance(recipe, source: dict) -> dict:
    """What every record of one build shares, stored in each partial record: the recipe plus the digest
    of the dataset's files from `source` (when it is a path), and a digest of both for a quick comparison.

    A resumed build compares digests so results of another recipe or other data are never mixed in,
    and compares the recipes field by field to say what differs.
    """
    identity = {**recipe.to_dict(), **({"data_digest": source["digest"]} if "digest" in source else {})}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return {"recipe_digest": digest, "recipe": identity}


def _finished_records(partial: Path, provenance: dict) -> dict[tuple[str, int], dict]:
    """{(arch key, seed): record} of the complete records in `partial`, all made with `provenance`'s recipe.

    A line cut short by a kill is skipped (that job runs again); a record of another recipe is an InputError.
    """
    from synth.rundir import read_jsonl

    done = {}
    for record in read_jsonl(partial):
        if record.get("recipe_digest") != provenance["recipe_digest"]:
            raise InputError(_recipe_mismatch(partial, record.get("recipe"), provenance["recipe"]))
        done[(record["key"], record["seed"])] = record
    return done


def _recipe_mismatch(partial: Path, theirs: dict | None, ours: dict) -> str:
    """The message for a partial file made with another recipe: which fields differ, and what to do."""
    if theirs is None:
        what = "holds records without a recipe (written by an older synth)"
    else:
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        differ = "; ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} now" for k in changed)
        what = f"was made with a different recipe ({differ})"
    return (f"{partial} {what}; its results cannot be mixed with this build's. "
            f"Use another --out, or delete {partial} to start over")


def build_benchmark(
    space: SearchSpace,
    archs: list[dict],
    seeds: list[int],
    recipe,
    out: Path,
    workers: int = 1,
    progress=None,
    meta: dict | None = None,
    device: str = "cpu",
) -> dict:
    """Train every architecture with every seed, write the benchmark JSON to `out`, return it.

    Each finished job is appended to `out` + '.partial.jsonl' with the recipe it was made with and
    skipped on a rerun with the same recipe; a rerun with another recipe or other data is an
    InputError. A repeated architecture is trained once (its rows share the results).
    `device` is 'cpu' or 'cuda' (then `workers` must be 1). `progress(done, total)` is called
    after each job when given; `meta` is recorded in the file (e.g. how the architectures were chosen).
    """
    from synth.datasets import dataset_name, dataset_source
    from synth.rundir import open_for_appending
    from synth.train import checked_device, training_data

    if device != "cpu" and workers > 1:
        raise InputError(f"--workers {workers} with device {device!r}: training on a GPU uses one process (--workers 1)")
    device = checked_device(device)
    training_data(recipe, space)  # bad data fails here, once, rather than in every job
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.jsonl")
    source = dataset_source(recipe.dataset)
    provenance = _provenance(recipe, source)
    done = _finished_records(partial, provenance)
    todo = {(arch_key(arch), seed): (space, arch, seed, recipe, device) for arch in archs for seed in seeds}
    jobs = [job for key, job in todo.items() if key not in done]
    finished, total = len(todo) - len(jobs), len(todo)
    if progress:
        progress(finished, total)
    with open_for_appending(partial) as sink:
        for record in _run_jobs(jobs, workers):
            record = {**record, **provenance}
            done[(record["key"], record["seed"])] = record
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            finished += 1
            if progress:
                progress(finished, total)
    task = dataset_name(recipe.dataset)
    rows = [_row(space, arch, [done[(arch_key(arch), seed)] for seed in seeds], task) for arch in archs]
    bench = {
        "format": FORMAT,
        "space": space.name,
        "tasks": [task],
        "recipe": recipe.to_dict(),
        "dataset": source,
        "device": ", ".join(sorted({done[key]["device"] for key in todo})),
        "seeds": list(seeds),
        **(meta or {}),
        "rows": rows,
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(bench, indent=1))
    os.replace(tmp, out)
    return bench


def _row(space: SearchSpace, arch: dict, records: list[dict], task: str) -> dict:
    """One benchmark row: the architecture, its size, and its accuracy per seed (in seed order) and mean."""
    accs = [r["acc"] for r in records]
    return {
        "arch": arch,
        "params": count_params(space.build(arch)),
        "acc": {task: float(np.mean(accs))},
        "seed_acc": {task: accs},
        "train_seconds": float(sum(r["seconds"] for r in records)),
    }


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
