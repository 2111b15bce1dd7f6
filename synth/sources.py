"""Published benchmarks as synth benchmarks: named sources and ViT-Bench-101-style row files.

A named source (e.g. `vit-bench-101`) is looked up, file by file, in
`$SYNTH_DATA/<folder>/`, then in the user cache (`$SYNTH_CACHE/benchmarks/<folder>/`
or ~/.cache/synth/benchmarks/<folder>/), then downloaded from where it was
published when a network is reachable. Every file's sha256 is checked.
`.pth` files are read with `torch.load(..., weights_only=True)` only.

`nasbench201-zc:<dataset>` is NASLib's zero-cost benchmark of NAS-Bench-201
(NAS-Bench-Suite-Zero): one JSON file, read with `json` only, holding per
dataset the validation accuracy and NASLib's scores of 12 proxies per
architecture.

`nasbench201:<dataset>` is the whole NAS-Bench-201 table: all 15,625 cells with their
200-epoch test accuracy on the dataset (one CSV, read with `csv` only). It holds every
architecture of its space, so a search's picks are looked up in it rather than trained.
`nasbench201:<dataset>@N` (or `@N,seed=S`) is a seeded sample of N of its cells, the same
cells for the same seed, for evolving and testing on a manageable subset.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import math
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.errors import BenchError, SpaceError

__all__ = [
    "NamedSource", "SOURCES", "named_source", "load_rows_file", "rows_to_benchmark", "resolve_files", "source_for_rows",
    "ZC_SOURCES", "NB201_ZC_DATASETS", "NB201_ZC_PROXIES", "zc_source_names", "is_zc_source", "load_nasbench201_zc",
    "TABLE_SOURCES", "table_source_names", "is_table_source", "load_nasbench201_table", "sample_rows",
]


@dataclass(frozen=True)
class NamedSource:
    name: str
    folder: str
    files: dict  # file name -> sha256
    space: str
    default_tasks: tuple
    url: str | None  # base address the files were published under (None: not downloadable as such)
    arch_keys: dict = field(default_factory=dict)  # renames from the source's arch dict to the space's
    flags: dict = field(default_factory=dict)  # task -> caveat shown to the user


SOURCES = {
    "vit-bench-101": NamedSource(
        name="vit-bench-101",
        folder="vit-bench-101",
        files={
            "gt_autoformer.pth": "712ad277546d9f7f565ce07885be7e0b98dcd8d0724fdd1120f595b517436eca",
            "gt_autoformer_2.pth": "05f5df6a41f338fb5f47eafebfc8758c75e451606856b278ccda1c60b26e7bca",
        },
        space="autoformer-tiny",
        default_tasks=("c100_kd", "flower_kd", "chaoyang_kd"),
        url="https://raw.githubusercontent.com/lilujunai/Auto-Prox-AAAI24/main/gt_results/",
        arch_keys={"hidden_dim": "embed_dim"},
        flags={
            "imagenet_super": "inherited from an AutoFormer supernet, not trained alone; bimodal, treat with care",
        },
    ),
}
ALIASES = {"vit-bench-101:autoformer": "vit-bench-101"}

# NASLib's zero-cost benchmarks: not row files, so kept out of SOURCES (whose row-file lookup they would confuse)
ZC_SOURCES = {
    "nasbench201-zc": NamedSource(
        name="nasbench201-zc",
        folder="nasbench201-zc",
        files={"zc_nasbench201.json": "5dcbbcd56812a9f62164a376bc7df4082ab3af612082b6d26a845930e6eb8641"},
        space="nasbench201",
        default_tasks=("val_accuracy",),
        # pinned to a commit holding exactly this file (its history has other versions)
        url="https://raw.githubusercontent.com/automl/NASLib/a06ba0e9931fcfd4605ddbddb6ed068eb58e58f1/naslib/data/",
    ),
}
# dataset -> the space's fixed options it needs
NB201_ZC_DATASETS = {
    "cifar10": {"num_classes": 10, "img_size": 32},
    "cifar100": {"num_classes": 100, "img_size": 32},
    "ImageNet16-120": {"num_classes": 120, "img_size": 16},
}
# The full NAS-Bench-201 table: like the zc source, not a row file, so kept out of SOURCES
TABLE_SOURCES = {
    "nasbench201": NamedSource(
        name="nasbench201",
        folder="nasbench201-full",
        files={"nb201_test_acc_200ep.csv": "b9c6c5c3fc3c8c830aa217d6d791faf40476d1341715d2dd5c43aba9ef2f6a76"},
        space="nasbench201",
        default_tasks=(),
        url=None,  # a re-formatting of the NATS-Bench API's numbers; no public copy with this digest
    ),
}
NB201_TABLE_COLUMNS = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet16_120"}  # dataset -> CSV column
NB201_ZC_PROXIES = ("epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params", "plain", "snip", "synflow")


def named_source(name: str) -> NamedSource | None:
    return SOURCES.get(ALIASES.get(name, name))


def source_for_rows(rows: list[dict], path: Path) -> NamedSource:
    """The named source whose architecture format a row file follows (its space and renames)."""
    keys = set(rows[0]["arch"]) if rows else set()
    for source in SOURCES.values():
        if set(source.arch_keys) <= keys:
            return source
    raise BenchError(f"{path}: architectures with keys {sorted(keys)} match no known space; convert the file to synth's benchmark JSON")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_dir(source: NamedSource) -> Path:
    from synth.stats import cache_root

    return cache_root() / "benchmarks" / source.folder


def download(url: str, target: Path, timeout: float = 10.0) -> None:
    """Fetch `url` into `target` (atomically). Module-level so tests can replace it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as sink:
        sink.write(response.read())
    os.replace(tmp, target)


def resolve_files(source: NamedSource) -> list[Path]:
    """Verified local paths of every file of `source`, downloading into the cache as a last resort."""
    paths = []
    for name, expected in source.files.items():
        places = []
        if os.environ.get("SYNTH_DATA"):
            places.append(Path(os.environ["SYNTH_DATA"]) / source.folder / name)
        places.append(_cache_dir(source) / name)
        found = next((p for p in places if p.is_file()), None)
        if found is None and source.url is None:
            raise BenchError(f"benchmark {source.name!r}: file {name} not found; looked in {', '.join(map(str, places))}. "
                             f"Set SYNTH_DATA to a folder holding {source.folder}/{name} (sha256 {expected}).")
        if found is None:
            target = _cache_dir(source) / name
            try:
                download(source.url + name, target)
                found = target
            except Exception as exc:  # noqa: BLE001 - any network failure means "not available here"
                looked = ", ".join(str(p) for p in places) + f", and {source.url + name} ({type(exc).__name__}: {exc})"
                raise BenchError(
                    f"benchmark {source.name!r}: file {name} not found; looked in {looked}. "
                    f"Set SYNTH_DATA to a folder holding {source.folder}/{name}."
                ) from None
        actual = _sha256(found)
        if actual != expected:
            raise BenchError(f"{found}: sha256 {actual} does not match the published {expected}; the file is damaged or another version")
        paths.append(found)
    return paths


def load_rows_file(path: Path) -> list[dict]:
    """Rows of a ViT-Bench-101-style file: a .pth list of dicts, a JSON list of dicts, or a CSV with an `arch` column."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pth":
        import torch

        try:
            rows = torch.load(path, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
            raise BenchError(f"{path}: cannot be read as a benchmark (truncated or not a torch.save'd list of rows): {type(exc).__name__}") from None
    elif suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); is the file truncated?") from None
    elif suffix == ".csv":
        with open(path, newline="") as stream:
            rows = []
            for i, record in enumerate(csv.DictReader(stream)):
                try:
                    arch = json.loads(record.pop("arch"))
                except (KeyError, TypeError, json.JSONDecodeError):
                    raise BenchError(f"{path}: row {i + 1}: column 'arch' must hold the architecture as JSON") from None
                rows.append({"arch": arch, **{k: (v if v not in ("", None) else None) for k, v in record.items()}})
    else:
        raise BenchError(f"{path}: unknown benchmark file type {suffix!r} (use .json, .pth or .csv)")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "arch" in r for r in rows):
        raise BenchError(f"{path}: expected a list of rows, each with an 'arch'")
    return rows


def _value(raw, path, index, column) -> float:
    if raw is None:
        return math.nan
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BenchError(f"{path}: row {index}, column {column!r}: not a number ({raw!r})") from None
    if math.isinf(value):
        raise BenchError(f"{path}: row {index}, column {column!r}: infinite accuracy")
    return value


def _targets(values: dict[str, list], what: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(accuracy array per task, count of missing values per task); a task with no value at all is an error."""
    targets = {task: np.asarray(v, dtype=float) for task, v in values.items()}
    missing = {task: int(np.isnan(v).sum()) for task, v in targets.items()}
    for task, count in missing.items():
        if count == len(targets[task]):
            raise BenchError(f"{what}: task {task!r} has no values in any of its {count} rows")
    return targets, missing


def rows_to_benchmark(files_rows: list[tuple[Path, list[dict]]], name: str, space: str, tasks=None,
                      default_tasks=None, arch_keys=None, flags=None):
    """A Benchmark from row files whose accuracy columns end in `_acc` (task = column without `_acc`)."""
    from synth.bench import Benchmark

    arch_keys, flags = arch_keys or {}, flags or {}
    available = sorted({k[: -len("_acc")] for _, rows in files_rows for r in rows for k in r if k.endswith("_acc")})
    chosen = list(tasks or default_tasks or available)
    for task in chosen:
        if task not in available:
            hint = difflib.get_close_matches(task, available, n=3)
            raise BenchError(f"benchmark {name!r}: unknown task {task!r}" + (f"; did you mean {', '.join(map(repr, hint))}?" if hint else "")
                             + f" (available: {', '.join(available)})")
    archs, values, provenance = [], {t: [] for t in chosen}, []
    for path, rows in files_rows:
        for i, row in enumerate(rows):
            archs.append({arch_keys.get(k, k): v for k, v in row["arch"].items()})
            provenance.append({"file": str(path), "row": i})
            for task in chosen:
                values[task].append(_value(row.get(task + "_acc"), path, i, task + "_acc"))
    targets, missing = _targets(values, f"benchmark {name!r}")
    return Benchmark(
        name=name, space=space, archs=archs, targets=targets,
        meta={"missing": missing, "provenance": provenance, "available_tasks": available,
              "flags": {t: flags[t] for t in chosen if t in flags}},
    )


# ---------------------------------------------------------------- NASLib zero-cost benchmarks


def zc_source_names() -> list[str]:
    return [f"nasbench201-zc:{dataset}" for dataset in NB201_ZC_DATASETS]


def is_zc_source(source: str) -> bool:
    return source.partition(":")[0] in ZC_SOURCES


def _zc_number(raw, path, where: str, allow_inf: bool) -> float:
    if raw is None:
        return math.nan
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise BenchError(f"{path}: {where}: not a number ({raw!r})")
    value = float(raw)
    if math.isinf(value) and not allow_inf:
        raise BenchError(f"{path}: {where}: infinite accuracy")
    return value


def load_nasbench201_zc(source: str, tasks=None):
    """The benchmark `nasbench201-zc:<dataset>`: NAS-Bench-201 architectures of NASLib's
    zc_nasbench201.json with their validation accuracy (task `val_accuracy`).

    meta: `arch_ids` (NASLib keys, row order), `reference_scores` ({proxy: NASLib's score per
    architecture, NaN where absent; kept as stored otherwise, -inf included}), `space_fixed`
    (the dataset's overrides of the space's fixed options), `dataset`, `path`, `missing`.
    """
    from synth.bench import Benchmark
    from synth.models import nasbench201_arch

    base, _, dataset = source.partition(":")
    named = ZC_SOURCES[base]
    if dataset not in NB201_ZC_DATASETS:
        hint = difflib.get_close_matches(dataset, list(NB201_ZC_DATASETS), n=1) if dataset else []
        raise BenchError(f"benchmark {source!r}: " + (f"unknown dataset {dataset!r}" if dataset else "no dataset given")
                         + (f"; did you mean {base}:{hint[0]}?" if hint else "")
                         + f" (valid: {', '.join(zc_source_names())})")
    chosen = list(tasks or named.default_tasks)
    for task in chosen:
        if task not in named.default_tasks:
            raise BenchError(f"benchmark {source!r}: unknown task {task!r} (available: {', '.join(named.default_tasks)}); "
                             f"NASLib's proxy scores are in meta['reference_scores']")
    [path] = resolve_files(named)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); is the file truncated?") from None
    if not isinstance(raw, dict) or not isinstance(raw.get(dataset), dict):
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise BenchError(f"{path}: key {dataset!r}: missing or not a mapping of architectures (found {found})")
    rows = raw[dataset]
    if not rows:
        raise BenchError(f"{path}: key {dataset!r}: no architectures")
    archs, ids, values = [], [], {task: [] for task in chosen}
    scores = {proxy: [] for proxy in NB201_ZC_PROXIES}
    for key, row in rows.items():
        where = f"key {dataset!r} -> {key!r}"
        if not isinstance(row, dict):
            raise BenchError(f"{path}: {where}: a row must be a mapping, not {type(row).__name__}")
        try:
            archs.append(nasbench201_arch(key))
        except SpaceError as exc:
            raise BenchError(f"{path}: {where}: {exc}") from None
        ids.append(key)
        for task in chosen:
            values[task].append(_zc_number(row.get(task), path, f"{where} -> {task!r}", allow_inf=False))
        for proxy in NB201_ZC_PROXIES:
            entry = row.get(proxy)
            if entry is not None and not isinstance(entry, dict):
                raise BenchError(f"{path}: {where} -> {proxy!r}: expected {{'score': ..., 'time': ...}}, got {entry!r}")
            scores[proxy].append(_zc_number((entry or {}).get("score"), path, f"{where} -> {proxy!r} -> 'score'", allow_inf=True))
    targets, missing = _targets(values, f"benchmark {source!r} ({path})")
    return Benchmark(
        name=f"{base}:{dataset}", space=named.space, archs=archs, targets=targets,
        meta={"missing": missing, "arch_ids": ids, "dataset": dataset, "path": str(path),
              "reference_scores": {proxy: np.asarray(v, dtype=float) for proxy, v in scores.items()},
              "space_fixed": dict(NB201_ZC_DATASETS[dataset]), "available_tasks": list(named.default_tasks), "flags": {}},
    )


# ---------------------------------------------------------------- the full NAS-Bench-201 table


def table_source_names() -> list[str]:
    return [f"nasbench201:{dataset}" for dataset in NB201_TABLE_COLUMNS]


def is_table_source(source: str) -> bool:
    return source.partition(":")[0] in TABLE_SOURCES


def sample_rows(total: int, n: int, seed: int) -> list[int]:
    """A seeded sample of `n` distinct row indices below `total`, sorted: the same rows for the same seed."""
    return sorted(np.random.default_rng(seed).choice(total, n, replace=False).tolist())


def _table_request(source: str) -> tuple[str, str, int | None, int]:
    """(base, dataset, sample size or None, sample seed) of 'nasbench201:<dataset>[@N[,seed=S]]'."""
    base, _, rest = source.partition(":")
    dataset, at, spec = rest.partition("@")
    if dataset not in NB201_TABLE_COLUMNS:
        hint = difflib.get_close_matches(dataset, list(NB201_TABLE_COLUMNS), n=1) if dataset else []
        raise BenchError(f"benchmark {source!r}: " + (f"unknown dataset {dataset!r}" if dataset else "no dataset given")
                         + (f"; did you mean {base}:{hint[0]}?" if hint else "")
                         + f" (valid: {', '.join(table_source_names())}, each optionally with @N or @N,seed=S for a seeded sample)")
    if not at:
        return base, dataset, None, 0
    count, comma, seed_part = spec.partition(",")
    try:
        n = int(count)
        if comma and not seed_part.startswith("seed="):
            raise ValueError
        seed = int(seed_part[len("seed="):]) if comma else 0
    except ValueError:
        raise BenchError(f"benchmark {source!r}: a sample is written @N or @N,seed=S (e.g. {base}:{dataset}@3000,seed=1), "
                         f"not @{spec}") from None
    if n < 1:
        raise BenchError(f"benchmark {source!r}: a sample needs at least one architecture (got @{n})")
    return base, dataset, n, seed


def _read_table(path: Path) -> tuple[list[dict], list[str], dict[str, list[float]]]:
    """(architectures, cell strings, accuracy per dataset) of every row of the NAS-Bench-201 CSV, in file order."""
    from synth.models import nasbench201_from_string

    needed = ["arch", *NB201_TABLE_COLUMNS.values()]
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        absent = [c for c in needed if c not in (reader.fieldnames or [])]
        if absent:
            raise BenchError(f"{path}:1: missing column(s) {absent}; a NAS-Bench-201 table has columns {['index', *needed]}")
        archs, cells, values, line_of = [], [], {d: [] for d in NB201_TABLE_COLUMNS}, {}
        for row, record in enumerate(reader, start=1):
            line = row + 1
            cell = (record["arch"] or "").strip()
            try:
                archs.append(nasbench201_from_string(cell))
            except SpaceError as exc:
                raise BenchError(f"{path}:{line}: column 'arch': {exc}") from None
            if cell in line_of:
                raise BenchError(f"{path}:{line}: cell {cell} is already on line {line_of[cell]}")
            line_of[cell] = line
            cells.append(cell)
            for dataset, column in NB201_TABLE_COLUMNS.items():
                values[dataset].append(_value(record[column] or None, path, row, column))
    if not archs:
        raise BenchError(f"{path}: no rows")
    return archs, cells, values


def load_nasbench201_table(source: str, tasks=None):
    """The benchmark `nasbench201:<dataset>`: all NAS-Bench-201 cells with their 200-epoch test accuracy
    (task = the dataset; `tasks` may add the other two datasets, for a joint fitness), or with `@N[,seed=S]`
    a seeded sample of N of them (sorted by row, the same for the same seed).

    The dataset fixes the network's classes and the probe's resolution (`meta['space_fixed']`).
    meta: `arch_ids` (cell strings), `table` ({'rows': the table's size, 'sample': {'n', 'seed'} or None}),
    `dataset`, `path`, `missing`.
    """
    from synth.bench import Benchmark

    base, dataset, n, seed = _table_request(source)
    named = TABLE_SOURCES[base]
    chosen = list(tasks or [dataset])
    for task in chosen:
        if task not in NB201_TABLE_COLUMNS:
            hint = difflib.get_close_matches(task, list(NB201_TABLE_COLUMNS), n=1)
            raise BenchError(f"benchmark {source!r}: unknown task {task!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                             + f" (available: {', '.join(NB201_TABLE_COLUMNS)})")
    [path] = resolve_files(named)
    archs, cells, values = _read_table(path)
    if n is not None and n > len(archs):
        raise BenchError(f"benchmark {source!r}: a sample of {n} from a table of {len(archs)} cells")
    rows = sample_rows(len(archs), n, seed) if n is not None else range(len(archs))
    targets, missing = _targets({task: [values[task][i] for i in rows] for task in chosen}, f"benchmark {source!r} ({path})")
    name = f"{base}:{dataset}" + (f"@{n},seed={seed}" if n is not None else "")
    return Benchmark(
        name=name, space=named.space, archs=[archs[i] for i in rows], targets=targets,
        meta={"missing": missing, "arch_ids": [cells[i] for i in rows], "dataset": dataset, "path": str(path),
              "table": {"rows": len(archs), "sample": {"n": n, "seed": seed} if n is not None else None},
              "space_fixed": dict(NB201_ZC_DATASETS[dataset]), "available_tasks": list(NB201_TABLE_COLUMNS), "flags": {}},
    )
