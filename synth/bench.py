"""Benchmarks: architectures of one space with trained accuracies, and how to build one.

A benchmark file is JSON (format 'synth-benchmark/1'):

    {"format": ..., "space": name, "tasks": [task, ...], "recipe": {...}, "seeds": [...],
     "rows": [{"arch": {...}, "params": n, "acc": {task: mean %}, "seed_acc": {task: [% per seed]}}]}

`synth bench build` writes one by really training every architecture with every
seed; results are appended to a `.partial.jsonl` file as they finish, so a
killed build resumes without retraining what it finished. `synth bench merge`
joins files built alike (more architectures, or more seeds of the same ones).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.errors import BenchError, InputError, SpaceError
from synth.resources import resource_dir
from synth.space import SearchSpace, arch_key, count_params

__all__ = [
    "Benchmark", "load_benchmark", "require_rankable", "benchmark_space", "split_indices", "build_benchmark", "merge_benchmarks", "load_arch_file",
    "seed_noise_summary", "DEFAULT_BENCHMARK", "FORMAT",
]

FORMAT = "synth-benchmark/1"
DEFAULT_BENCHMARK = "vit-digits.json"
MIN_RANKED = 3  # architectures with a value a task needs before a correlation ranks anything


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

    def to_dict(self) -> dict:
        """The benchmark as JSON-ready data (arrays as lists; synth.rundir.json_text writes NaN as
        null); `from_dict` reads it back."""
        return {"name": self.name, "space": self.space, "archs": self.archs,
                "targets": {task: values.tolist() for task, values in self.targets.items()}, "meta": _arrays_as_lists(self.meta)}

    @classmethod
    def from_dict(cls, raw: dict) -> "Benchmark":
        targets = {task: np.array([math.nan if v is None else v for v in values], dtype=float)
                   for task, values in raw["targets"].items()}
        return cls(raw["name"], raw["space"], raw["archs"], targets, raw.get("meta") or {})

    def subset(self, rows: list[int]) -> "Benchmark":
        """The benchmark restricted to `rows`: architectures, targets and per-architecture reference scores."""
        pick = np.asarray(rows, dtype=int)
        references = {k: np.asarray(v, dtype=float)[pick] for k, v in (self.meta.get("reference_scores") or {}).items()}
        ids = self.meta.get("arch_ids")
        meta = {**self.meta, "reference_scores": references, **({"arch_ids": [ids[i] for i in rows]} if ids else {})}
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


def load_benchmark(source: str | None = None, tasks: list[str] | None = None, rankable: bool = True) -> Benchmark:
    """The benchmark `source`: None for the embedded default, a named source ('vit-bench-101',
    'nasbench201-zc:cifar10', 'nasbench201:cifar10', 'nasbench201:cifar10@3000,seed=1'), or a path to a synth benchmark JSON or to a ViT-Bench-101-style row file (.pth, .json, .csv).

    `tasks` selects accuracy columns (default: the source's default tasks, or all of them).
    Missing values become NaN for their task and are counted in `meta['missing']`. With `rankable`
    (the default: every command that ranks), a task that could not rank anything is refused (see
    `require_rankable`); pass False to read a benchmark too small to rank, e.g. to inspect a build.
    """
    bench = _load(source, tasks)
    return require_rankable(bench) if rankable else bench


def require_rankable(bench: Benchmark, rows: list[int] | None = None, part: str = "") -> Benchmark:
    """`bench` itself if every task can rank its `rows` (default: all): at least MIN_RANKED values,
    not all equal, each a percentage (0-100). BenchError naming the file (or source) and the task
    otherwise, so nonsense is refused before any work instead of giving every program fitness -1."""
    origin = bench.meta.get("path") or bench.name
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
    from synth.sources import (is_table_source, is_zc_source, load_nasbench201_table, load_nasbench201_zc, load_rows_file,
                               named_source, resolve_files, rows_to_benchmark, source_for_rows)

    if source and is_zc_source(source):
        return load_nasbench201_zc(source, tasks)
    if source and is_table_source(source):
        return load_nasbench201_table(source, tasks)
    named = named_source(source) if source else None
    if named is not None:
        files = [(p, load_rows_file(p)) for p in resolve_files(named)]
        return rows_to_benchmark(files, named.name, named.space, tasks, named.default_tasks, named.arch_keys, named.flags)
    path = resource_dir("data") / DEFAULT_BENCHMARK if source is None else Path(source)
    if not path.is_file():
        raise BenchError(f"{path}: benchmark file not found (named sources: {', '.join(_named_sources())})")
    if path.suffix.lower() == ".json":
        raw = _read_json(path)
        if isinstance(raw, dict):
            return _synth_benchmark(path, raw, tasks)
    rows = load_rows_file(path)
    like = source_for_rows(rows, path)
    return rows_to_benchmark([(path, rows)], path.stem, like.space, tasks, like.default_tasks, like.arch_keys, like.flags)


def _read_json(path: Path):
    """The JSON in `path`; BenchError naming the line when it does not parse (usually a file cut short)."""
    from synth.resources import read_text

    try:
        return json.loads(read_text(path, BenchError))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); is the file truncated?") from None
    except RecursionError:
        raise BenchError(f"{path}: not a benchmark: JSON nested too deeply") from None


def _named_sources() -> list[str]:
    from synth.sources import SOURCES, table_source_names, zc_source_names

    return sorted(SOURCES) + zc_source_names() + table_source_names()


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

    Accepted: a JSON list of architectures, a JSON object with an 'archs' list, a synth benchmark
    (its rows' architectures, to train them with more seeds), a `synth search` result (an object
    whose 'top' items each hold an 'arch'), or JSONL with one architecture per line. A repeated architecture is kept once, so it is trained once. InputError names the file
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
    if isinstance(raw, dict) and "rows" in raw:  # a synth benchmark: train its architectures again (more seeds)
        rows = _listed(path, raw, "rows")
        return [(f"rows[{i}].arch", entry.get("arch") if isinstance(entry, dict) else entry) for i, entry in enumerate(rows)]
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
        differ = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in _differing_fields(theirs, ours))
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
    from synth.rundir import append_record, open_for_appending, write_json
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
    if workers <= 1:
        yield from map(_train_job, jobs)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_train_job, jobs)


# ---------------------------------------------------------------- merging


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
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: not a synth benchmark (expected 'format': {FORMAT!r})")
    _synth_benchmark(path, raw, None)
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


def _differing_fields(a: dict, b: dict) -> list[tuple]:
    """(key, value in a, value in b) for every key whose values differ (absent counts as None), sorted."""
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _check_agree(field: str, first_path: Path, first, path: Path, value) -> None:
    """InputError naming both files, the field that differs (for a mapping, each of its keys that does)
    and both values, unless `value` equals `first`."""
    if value == first:
        return
    if isinstance(first, dict) and isinstance(value, dict):
        differ = [(f"{field}.{k}", a, b) for k, a, b in _differing_fields(first, value)]
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


def seed_noise_summary(bench: dict) -> dict:
    """Per task: mean seed-to-seed std of accuracy, std of mean accuracy across architectures, their ratio."""
    out = {}
    for task in bench["tasks"]:
        per_seed = np.array([row["seed_acc"][task] for row in bench["rows"]], dtype=float)
        seed_std = float(np.mean(np.std(per_seed, axis=1, ddof=1))) if per_seed.shape[1] > 1 else math.nan
        arch_std = float(np.std(per_seed.mean(axis=1), ddof=1))
        out[task] = {"seed_std": seed_std, "arch_std": arch_std, "ratio": arch_std / seed_std if seed_std > 0 else math.nan}
    return out
