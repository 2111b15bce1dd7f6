"""Merging benchmark files built alike: more architectures, or more seeds of the same ones.

`synth bench merge` grows a benchmark without retraining: files built by `synth bench build` with
the same space, tasks, recipe and data are joined by architecture and seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.bench.build import differing_fields
from synth.bench.load import FORMAT, read_synth_benchmark
from synth.errors import BenchError, InputError
from synth.resources import read_json
from synth.space import arch_key

__all__ = ["merge_benchmarks"]


def merge_benchmarks(paths: list[Path], report=None) -> dict:
    """One benchmark joining the architectures and seeds of several synth benchmark files, so a benchmark
    grows by building more architectures (--arch-file) or more seeds (--seeds) into a new file and merging
    it in, without retraining anything.

    Only files trained alike are comparable, so all must agree on space, tasks, recipe and (where recorded)
    dataset source. Rows are joined by architecture, each getting the union of its files' seeds; the same
    (architecture, seed) in two files must have the same accuracies. Every row must end up with every seed
    of the union, because means over different seeds are not comparable and `synth bench check` trains
    picks with the benchmark's seeds. `acc` is recomputed as the mean over the seeds, `train_seconds` is
    summed; rows keep the first file's order, new architectures follow in the order they appear.
    InputError names the files, field, architecture or seed at fault.

    `report(part)`, when given, is called with what each file brought: {"path", "rows", "new_archs",
    "gained_seeds"}, the last counting architectures of earlier files that it gave new seeds.
    """
    inputs = [(Path(path), _mergeable(Path(path))) for path in paths]
    first_path, first = inputs[0]
    for path, raw in inputs[1:]:
        for key in ("space", "tasks", "recipe"):
            _check_agree(key, first_path, first[key], path, raw[key])
    datasets = [(path, raw["dataset"]) for path, raw in inputs if "dataset" in raw]
    for path, dataset in datasets[1:]:
        _check_agree("dataset", *datasets[0], path, dataset)
    tasks = first["tasks"]
    merged: dict[str, dict] = {}  # arch key -> arch, params, the file it came from, {seed: (accs, file)}, seconds
    for path, raw in inputs:
        new, gained = set(), set()
        for row in raw["rows"]:
            key = arch_key(row["arch"])
            if key not in merged:
                new.add(key)
                merged[key] = {"arch": row["arch"], "params": row["params"], "path": path, "seed_acc": {}, "train_seconds": 0.0}
            entry = merged[key]
            if row["params"] != entry["params"]:
                raise InputError(f"architecture {key} has {entry['params']!r} parameters in {entry['path']} but "
                                 f"{row['params']!r} in {path}; were they built from different space definitions?")
            entry["train_seconds"] += float(row["train_seconds"])
            for i, seed in enumerate(raw["seeds"]):
                accs = [row["seed_acc"][task][i] for task in tasks]
                if seed not in entry["seed_acc"]:
                    entry["seed_acc"][seed] = (accs, path)
                    if key not in new:
                        gained.add(key)
                    continue
                seen, seen_path = entry["seed_acc"][seed]
                if not np.array_equal(seen, accs, equal_nan=True):
                    raise InputError(
                        f"{seen_path} and {path} disagree on architecture {key}, seed {seed}: accuracy "
                        f"{dict(zip(tasks, seen))} vs {dict(zip(tasks, accs))}. The same training should give the same "
                        "result; were they trained on different hardware or software? Merge only one of them")
        if report:
            report({"path": str(path), "rows": len(raw["rows"]), "new_archs": len(new), "gained_seeds": len(gained)})
    seeds = sorted({seed for _, raw in inputs for seed in raw["seeds"]})
    _check_complete(merged, seeds)
    devices = sorted({d.strip() for _, raw in inputs if "device" in raw for d in str(raw["device"]).split(",")})
    return {
        **{k: v for k, v in first.items() if k != "rows"},
        **({"dataset": datasets[0][1]} if datasets else {}),
        **({"device": ", ".join(devices)} if devices else {}),
        "seeds": seeds,
        "sampling": {"method": "merged", "parts": [raw.get("sampling") for _, raw in inputs]},
        "merged_from": [str(path) for path in paths],
        "rows": [_merged_row(entry, seeds, tasks) for entry in merged.values()],
    }


def _mergeable(path: Path) -> dict:
    """The contents of the synth benchmark `path`, checked by the loader and for what merging needs: a
    recipe, distinct whole-number seeds, and in every row its size, training time and one accuracy per
    seed for every task (as `synth bench build` writes them)."""
    if not path.is_file():
        raise BenchError(f"{path}: benchmark file not found")
    raw = read_json(path, BenchError)
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: not a synth benchmark (expected 'format': {FORMAT!r})")
    read_synth_benchmark(path, raw, None)
    if "recipe" not in raw:
        raise BenchError(f"{path}: missing key 'recipe'; only benchmarks built by synth bench build can be merged")
    seeds = raw.get("seeds")
    if not (isinstance(seeds, list) and seeds and all(_is_whole(s) for s in seeds) and len(set(seeds)) == len(seeds)):
        raise BenchError(f"{path}: 'seeds' must be a list of distinct whole numbers, not {seeds!r}")
    for i, row in enumerate(raw["rows"]):
        for key in ("params", "seed_acc", "train_seconds"):
            if key not in row:
                raise BenchError(f"{path}: rows[{i}] lacks {key!r}; only benchmarks built by synth bench build can be merged")
        for task in raw["tasks"]:
            accs = row["seed_acc"].get(task) if isinstance(row["seed_acc"], dict) else None
            if not (isinstance(accs, list) and len(accs) == len(seeds) and all(_is_number(a) for a in accs)):
                raise BenchError(f"{path}: rows[{i}].seed_acc.{task}: expected {len(seeds)} accuracies, one per seed "
                                 f"of {seeds}, not {accs!r}")
    return raw


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_agree(field: str, first_path: Path, first, path: Path, value) -> None:
    """InputError naming both files, the field that differs (for a mapping, each of its keys that does)
    and both values, unless `value` equals `first`."""
    if value == first:
        return
    if isinstance(first, dict) and isinstance(value, dict):
        differ = [(f"{field}.{k}", a, b) for k, a, b in differing_fields(first, value)]
    else:
        differ = [(field, first, value)]
    what = "; ".join(f"{name}: {a!r} in {first_path}, {b!r} in {path}" for name, a, b in differ)
    raise InputError(f"{path} cannot be merged with {first_path} ({what}); only benchmarks of the same space, "
                     "tasks, recipe and data are comparable")


def _check_complete(merged: dict[str, dict], seeds: list[int]) -> None:
    """InputError unless every merged architecture has every seed, with one example and how to fill the gaps."""
    incomplete = [entry for entry in merged.values() if len(entry["seed_acc"]) < len(seeds)]
    if not incomplete:
        return
    example = incomplete[0]
    missing = [seed for seed in seeds if seed not in example["seed_acc"]]
    raise InputError(
        f"{len(incomplete)} of {len(merged)} architectures lack some of the merged seeds {seeds}, e.g. "
        f"{arch_key(example['arch'])} (from {example['path']}) lacks seed(s) {missing}; a benchmark's means must be "
        f"over the same seeds. Train the missing ones with `synth bench build --arch-file {example['path']} --seeds "
        f"{','.join(map(str, missing))} --out MORE.json` (same space, recipe and dataset) and merge that file in too")


def _merged_row(entry: dict, seeds: list[int], tasks: list[str]) -> dict:
    """A row of the merged benchmark: per-seed accuracies in `seeds` order and their mean, per task."""
    per_seed = np.array([entry["seed_acc"][seed][0] for seed in seeds], dtype=float)  # seeds x tasks
    return {
        "arch": entry["arch"],
        "params": entry["params"],
        "acc": {task: float(per_seed[:, j].mean()) for j, task in enumerate(tasks)},
        "seed_acc": {task: per_seed[:, j].tolist() for j, task in enumerate(tasks)},
        "train_seconds": entry["train_seconds"],
    }
