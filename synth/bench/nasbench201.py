"""NAS-Bench-201 as named benchmark sources: NASLib's zero-cost benchmark and the whole table.

`nasbench201-zc:<dataset>` is NASLib's zero-cost benchmark of NAS-Bench-201
(NAS-Bench-Suite-Zero): one JSON file, read with `json` only, holding per
dataset the validation accuracy and NASLib's scores of 12 proxies per
architecture.

`nasbench201:<dataset>` is the whole NAS-Bench-201 table: all 15,625 cells with their
200-epoch test accuracy on the dataset (one CSV, read with `csv` only). It holds every
architecture of its space, so a search's picks are looked up in it rather than trained.
`nasbench201:<dataset>@N` (or `@N,seed=S`) is a seeded sample of N of its cells, the same
cells for the same seed, for evolving and testing on a manageable subset. `@N,seed=S,largest=F`
keeps the N cells with the most parameters among a seeded pool of N/F: a search driven by a
size-correlated proxy ends among the largest cells, and a uniform sample holds few of them, so
joined with a uniform sample (`--bench a+b`) it lets fitness judge the order where the pick is made.

Both register in synth.bench.sources.SOURCES when this module is imported (on the registry's first
lookup).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from synth.bench.record import Benchmark, BenchMeta, accuracy, sample_rows, targets_and_missing
from synth.bench.sources import SOURCES, NamedSource, resolve_files
from synth.errors import BenchError, SpaceError, did_you_mean
from synth.models import nasbench201_arch, nasbench201_from_string
from synth.resources import read_json

__all__ = ["NB201_ZC_DATASETS", "NB201_ZC_PROXIES", "NB201_TABLE_COLUMNS", "load_nasbench201_zc", "load_nasbench201_table"]

# dataset -> the space's fixed options it needs
NB201_ZC_DATASETS = {
    "cifar10": {"num_classes": 10, "img_size": 32},
    "cifar100": {"num_classes": 100, "img_size": 32},
    "ImageNet16-120": {"num_classes": 120, "img_size": 16},
}
NB201_TABLE_COLUMNS = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet16_120"}  # dataset -> CSV column
NB201_ZC_PROXIES = ("epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params", "plain", "snip", "synflow")


def _unknown_dataset(source: str, named: NamedSource, dataset: str, more: str = "") -> BenchError:
    """The error for a source name whose dataset part is missing or unknown, with the close names."""
    return BenchError(f"benchmark {source!r}: " + (f"unknown dataset {dataset!r}" if dataset else "no dataset given")
                      + (did_you_mean(source, named.names()) if dataset else "")
                      + f" (valid: {', '.join(named.names())}{more})")


def _check_tasks(source: str, chosen: list, available, note: str = "") -> None:
    """BenchError for the first of `chosen` that is not one of the source's `available` tasks."""
    for task in chosen:
        if task not in available:
            raise BenchError(f"benchmark {source!r}: unknown task {task!r}{did_you_mean(task, available)} "
                             f"(available: {', '.join(available)}){note}")


def load_nasbench201_zc(source: str, named: NamedSource, tasks=None) -> Benchmark:
    """The benchmark `nasbench201-zc:<dataset>`: NAS-Bench-201 architectures of NASLib's
    zc_nasbench201.json with their validation accuracy (task `val_accuracy`).

    meta: `arch_ids` (NASLib keys, row order), `reference_scores` ({proxy: NASLib's score per
    architecture, NaN where absent; kept as stored otherwise, -inf included}), `space_fixed`
    (the dataset's overrides of the space's fixed options), `dataset`, `path`, `missing`.
    """
    base, _, dataset = source.partition(":")
    if dataset not in NB201_ZC_DATASETS:
        raise _unknown_dataset(source, named, dataset)
    chosen = list(tasks or named.default_tasks)
    _check_tasks(source, chosen, named.default_tasks, "; NASLib's proxy scores are in meta.reference_scores")
    [path] = resolve_files(named)
    raw = read_json(path, BenchError)
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
            values[task].append(accuracy(row.get(task), f"{path}: {where} -> {task!r}", numbers_only=True))
        for proxy in NB201_ZC_PROXIES:
            entry = row.get(proxy)
            if entry is not None and not isinstance(entry, dict):
                raise BenchError(f"{path}: {where} -> {proxy!r}: expected {{'score': ..., 'time': ...}}, got {entry!r}")
            scores[proxy].append(accuracy((entry or {}).get("score"), f"{path}: {where} -> {proxy!r} -> 'score'",
                                          numbers_only=True, allow_inf=True))
    targets, missing = targets_and_missing(values, f"benchmark {source!r} ({path})")
    return Benchmark(
        name=f"{base}:{dataset}", space=named.space, archs=archs, targets=targets,
        meta=BenchMeta(missing=missing, arch_ids=ids, dataset=dataset, path=str(path),
                       reference_scores={proxy: np.asarray(v, dtype=float) for proxy, v in scores.items()},
                       space_fixed=dict(NB201_ZC_DATASETS[dataset]), available_tasks=list(named.default_tasks)),
    )


def _table_request(source: str, named: NamedSource) -> tuple[str, str, int | None, int, float | None]:
    """(base, dataset, sample size or None, sample seed, largest share or None) of
    'nasbench201:<dataset>[@N[,seed=S][,largest=F]]'."""
    base, _, rest = source.partition(":")
    dataset, at, spec = rest.partition("@")
    if dataset not in NB201_TABLE_COLUMNS:
        raise _unknown_dataset(source.partition("@")[0], named, dataset,
                               ", each optionally with @N, @N,seed=S or @N,seed=S,largest=F for a seeded sample")
    if not at:
        return base, dataset, None, 0, None
    count, *options = spec.split(",")
    usage = (f"benchmark {source!r}: a sample is written @N, @N,seed=S or @N,seed=S,largest=F "
             f"(e.g. {base}:{dataset}@300,seed=1,largest=0.1), not @{spec}")
    try:
        n = int(count)
        given = dict(option.split("=", 1) for option in options)
        if len(given) != len(options) or set(given) - {"seed", "largest"}:
            raise ValueError
        seed = int(given.get("seed", 0))
        largest = float(given["largest"]) if "largest" in given else None
    except ValueError:
        raise BenchError(usage) from None
    if n < 1:
        raise BenchError(f"benchmark {source!r}: a sample needs at least one architecture (got @{n})")
    if largest is not None and not 0 < largest <= 1:
        raise BenchError(f"benchmark {source!r}: largest=F is the share of a seeded pool kept, in (0, 1] (got {largest})")
    return base, dataset, n, seed, largest


def _sample_name(base: str, dataset: str, n: int | None, seed: int, largest: float | None) -> str:
    """The benchmark's name: its source written out in full, so that equal names mean equal cells."""
    if n is None:
        return f"{base}:{dataset}"
    return f"{base}:{dataset}@{n},seed={seed}" + (f",largest={largest:g}" if largest is not None else "")


def _largest_rows(named: NamedSource, archs: list[dict], dataset: str, n: int, seed: int, largest: float) -> list[int]:
    """The `n` rows with the most parameters among a seeded pool of ceil(n / largest) rows (sorted by
    row). Parameter counts have few distinct values in this space, so ties at the cut are broken by
    a permutation of the pool seeded by `seed`, favouring no row."""
    from synth.baselines import size_baselines
    from synth.bench.load import space_with_fixed

    pool = sample_rows(len(archs), min(len(archs), math.ceil(n / largest)), seed)
    space = space_with_fixed(named.space, NB201_ZC_DATASETS[dataset])
    params = size_baselines(space, [archs[i] for i in pool], flops=False)["params"]
    tiebreak = np.random.default_rng(seed).permutation(len(pool))
    order = np.lexsort((tiebreak, -params))  # most parameters first, then the seeded permutation
    return sorted(pool[i] for i in order[:n])


def _read_table(path: Path) -> tuple[list[dict], list[str], dict[str, list[float]]]:
    """(architectures, cell strings, accuracy per dataset) of every row of the NAS-Bench-201 CSV, in file order."""
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
                values[dataset].append(accuracy(record[column] or None, f"{path}: row {row}, column {column!r}"))
    if not archs:
        raise BenchError(f"{path}: no rows")
    return archs, cells, values


def load_nasbench201_table(source: str, named: NamedSource, tasks=None) -> Benchmark:
    """The benchmark `nasbench201:<dataset>`: all NAS-Bench-201 cells with their 200-epoch test accuracy
    (task = the dataset; `tasks` may add the other two datasets, for a joint fitness), or with `@N[,seed=S]`
    a seeded sample of N of them (sorted by row, the same for the same seed); `,largest=F` keeps
    the N largest of a seeded pool of N/F instead (see `_largest_rows`).

    The dataset fixes the network's classes and the probe's resolution (`meta.space_fixed`).
    meta: `arch_ids` (cell strings), `table` ({'rows': the table's size, 'sample': {'n', 'seed'[, 'largest']}
    or None}),
    `dataset`, `path`, `missing`.
    """
    base, dataset, n, seed, largest = _table_request(source, named)
    chosen = list(tasks or [dataset])
    _check_tasks(source, chosen, list(NB201_TABLE_COLUMNS))
    [path] = resolve_files(named)
    archs, cells, values = _read_table(path)
    if n is not None and n > len(archs):
        raise BenchError(f"benchmark {source!r}: a sample of {n} from a table of {len(archs)} cells")
    if n is None:
        rows = range(len(archs))
    elif largest is None:
        rows = sample_rows(len(archs), n, seed)
    else:
        rows = _largest_rows(named, archs, dataset, n, seed, largest)
    targets, missing = targets_and_missing({task: [values[task][i] for i in rows] for task in chosen}, f"benchmark {source!r} ({path})")
    name = _sample_name(base, dataset, n, seed, largest)
    sample = {"n": n, "seed": seed, **({"largest": largest} if largest is not None else {})} if n is not None else None
    return Benchmark(
        name=name, space=named.space, archs=[archs[i] for i in rows], targets=targets,
        meta=BenchMeta(missing=missing, arch_ids=[cells[i] for i in rows], dataset=dataset, path=str(path),
                       table={"rows": len(archs), "sample": sample},
                       space_fixed=dict(NB201_ZC_DATASETS[dataset]), available_tasks=list(NB201_TABLE_COLUMNS)),
    )


SOURCES.register("nasbench201-zc", NamedSource(
    name="nasbench201-zc",
    folder="nasbench201-zc",
    files={"zc_nasbench201.json": "5dcbbcd56812a9f62164a376bc7df4082ab3af612082b6d26a845930e6eb8641"},
    space="nasbench201",
    default_tasks=("val_accuracy",),
    # pinned to a commit holding exactly this file (its history has other versions)
    url="https://raw.githubusercontent.com/automl/NASLib/a06ba0e9931fcfd4605ddbddb6ed068eb58e58f1/naslib/data/",
    datasets=tuple(NB201_ZC_DATASETS),
    load=load_nasbench201_zc,
))
SOURCES.register("nasbench201", NamedSource(
    name="nasbench201",
    folder="nasbench201-full",
    files={"nb201_test_acc_200ep.csv": "b9c6c5c3fc3c8c830aa217d6d791faf40476d1341715d2dd5c43aba9ef2f6a76"},
    space="nasbench201",
    default_tasks=(),
    url=None,  # a re-formatting of the NATS-Bench API's numbers; no public copy with this digest
    datasets=tuple(NB201_TABLE_COLUMNS),
    load=load_nasbench201_table,
))
