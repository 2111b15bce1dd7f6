"""Building a benchmark by training: every architecture with every seed, with a recipe.

`synth bench build` writes a synth benchmark file (synth/bench/load.py reads it) by really training
every architecture with every seed; results are appended to a `.partial.jsonl` file as they finish,
so a killed build resumes without retraining what it finished.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from synth.bench.load import FORMAT
from synth.cache import digest
from synth.datasets import dataset_name, dataset_source
from synth.errors import InputError
from synth.pool import imap_jobs, spawn_pool
from synth.rundir import append_record, open_for_appending, read_jsonl, write_json
from synth.space import SearchSpace, arch_key, count_params
from synth.train import checked_device, train_and_evaluate, training_data

__all__ = ["build_benchmark", "seed_noise_summary", "differing_fields"]


def _train_job(job):
    """Worker: train one (architecture, seed) pair. Module-level so it pickles for a process pool."""
    import torch

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
    return {"recipe_digest": digest(identity), "recipe": identity}


def _finished_records(partial: Path, provenance: dict) -> dict[tuple[str, int], dict]:
    """{(arch key, seed): record} of the complete records in `partial`, all made with `provenance`'s recipe.

    A line cut short by a kill is skipped (that job runs again); a record of another recipe is an InputError.
    """
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
        differ = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in differing_fields(theirs, ours))
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
            append_record(sink, record)
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
    write_json(out, bench)
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
    """Each job's record as it finishes: here, or in `workers` processes (in whatever order they end)."""
    if workers <= 1:
        yield from imap_jobs(_train_job, jobs)
        return
    with spawn_pool(workers) as pool:
        yield from imap_jobs(_train_job, jobs, pool, ordered=False)


def differing_fields(a: dict, b: dict) -> list[tuple]:
    """(key, value in a, value in b) for every key whose values differ (absent counts as None), sorted."""
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def seed_noise_summary(bench: dict) -> dict:
    """Per task: mean seed-to-seed std of accuracy, std of mean accuracy across architectures, their ratio."""
    out = {}
    for task in bench["tasks"]:
        per_seed = np.array([row["seed_acc"][task] for row in bench["rows"]], dtype=float)
        seed_std = float(np.mean(np.std(per_seed, axis=1, ddof=1))) if per_seed.shape[1] > 1 else math.nan
        arch_std = float(np.std(per_seed.mean(axis=1), ddof=1))
        out[task] = {"seed_std": seed_std, "arch_std": arch_std, "ratio": arch_std / seed_std if seed_std > 0 else math.nan}
    return out
