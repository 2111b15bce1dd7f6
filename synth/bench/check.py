"""Checking a search's picks against ground truth.

A proxy is only as good as the architectures it picks. The picks of one or more
`synth search` runs are trained with a benchmark's own recipe and seeds, exactly
as the benchmark's architectures were, and each lands somewhere in the
benchmark's accuracy distribution: its percentile, its rank, and its gap to the
benchmark's best architecture.

Mean accuracies over a few seeds are noisy, and near the top of a benchmark many
architectures are often within that noise of each other, so a percentile alone
can flatter or condemn a proxy by chance. Each placement therefore comes with
its spread under seed noise: every architecture's seeds (the pick's and each
benchmark architecture's) are resampled with replacement and the percentile is
recomputed, giving an interval and the chance that the pick clears a threshold.

A published table that records no recipe (NAS-Bench-201's 15,625 cells, trained
by its authors) already holds every pick's accuracy: picks are looked up in it,
not trained, and placed among all of its architectures. It also holds the accuracy
of everything the search scored, so a lookup says whether a poor pick is the
search's fault (it never scored a good architecture) or the proxy's (it scored one
and ranked it below the pick): the most accurate architecture the search scored,
and the place the search's own ranking gave it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from synth.bench.build import build_benchmark
from synth.bench.load import benchmark_space
from synth.errors import InputError, RunDirError
from synth.rundir import CHECKPOINT, RUN_RECORD, read_record
from synth.search.config import RESULT, SearchConfig
from synth.search.memo import SearchMemo
from synth.space import arch_key
from synth.train import Recipe

__all__ = ["records_recipe", "benchmark_recipe", "placement", "seed_noise_placement", "search_picks", "check_picks",
           "lookup_picks"]


def records_recipe(bench) -> bool:
    """Whether the benchmark records the recipe and seeds it was trained with (so picks can be trained alike)."""
    return isinstance(bench.meta.recipe, dict) and bool(bench.meta.seeds)


def benchmark_recipe(bench):
    """(Recipe, seeds) the benchmark was trained with; InputError when it does not record them
    (published benchmarks such as ViT-Bench-101 were trained elsewhere, with recipes synth cannot rerun)."""
    if not records_recipe(bench):
        raise InputError(f"benchmark {bench.name!r} records no training recipe and seeds, so picks cannot be trained "
                         "the way its architectures were (use a benchmark built by synth bench build)")
    return Recipe(**bench.meta.recipe), [int(s) for s in bench.meta.seeds]


def placement(accuracies, acc: float) -> dict:
    """Where accuracy `acc` lands among the benchmark's `accuracies` (NaNs ignored).

    percentile: the share (%) of benchmark architectures at or below `acc`;
    rank: 1 + the number strictly above it; gap: the best benchmark accuracy minus `acc`.
    """
    values = np.asarray(accuracies, dtype=float)
    values = values[np.isfinite(values)]
    best = float(values.max())
    return {"percentile": float(100.0 * np.mean(values <= acc)), "rank": int(1 + np.sum(values > acc)),
            "of": int(len(values)), "best": best, "gap": best - acc}


def seed_noise_placement(bench_seed_accs: list, pick_seed_accs, same_as: int | None = None, threshold: float = 90.0,
                         draws: int = 2000, seed: int = 0) -> dict | None:
    """The pick's percentile when every architecture's seeds are resampled with replacement.

    `bench_seed_accs[i]` holds benchmark architecture i's per-seed accuracies (NaNs dropped; an
    architecture without any is left out), `pick_seed_accs` the pick's; `same_as` is the pick's row when
    it is a benchmark architecture, which then shares that row's resampled mean (the same training).
    Returns the 5th-95th percentile interval of the pick's percentile over `draws` resamples and the
    share of them at or above `threshold`; None when there is only one seed to resample.
    """
    rows = [np.asarray(a, dtype=float) for a in bench_seed_accs]
    rows = [(i, a[np.isfinite(a)]) for i, a in enumerate(rows)]
    rows = [(i, a) for i, a in rows if len(a)]
    pick = np.asarray(pick_seed_accs, dtype=float)
    pick = pick[np.isfinite(pick)]
    if len(pick) < 2 and not any(len(a) > 1 for _, a in rows):
        return None
    rng = np.random.default_rng(seed)

    def resampled_means(values: np.ndarray) -> np.ndarray:
        return values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)

    means = {i: resampled_means(a) for i, a in rows}
    own = means[same_as] if same_as in means else resampled_means(pick)
    table = np.stack(list(means.values()), axis=1)  # draws x architectures
    percentiles = 100.0 * np.mean(table <= own[:, None], axis=1)
    low, high = np.percentile(percentiles, [5, 95])
    return {"percentile_interval": [float(low), float(high)], "threshold": threshold,
            "chance_at_or_above": float(np.mean(percentiles >= threshold)), "draws": draws}


def _is_evolve_checkpoint(path: Path) -> bool:
    """Whether `path` is a synth evolve checkpoint (it names a grammar; a search's does not)."""
    try:
        return path.is_file() and "grammar" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def search_picks(search_dir: Path, top: int = 1) -> list[dict]:
    """The best `top` architectures of a finished search, with its proxy and seed."""
    search_dir = Path(search_dir)
    if not (search_dir / RESULT).is_file() and ((search_dir / RUN_RECORD).is_file() or _is_evolve_checkpoint(search_dir / CHECKPOINT)):
        raise RunDirError(f"{search_dir}: a synth evolve run, not a search: pick architectures with its proxy first "
                          f"(synth search --proxy {search_dir} --space SPACE), then check that search")
    result = read_record(search_dir / RESULT, f"no search result here (run synth search, or finish it with "
                         f"synth search --resume {search_dir})", ("proxy", "space", "config", "top"))
    return [{"search": str(search_dir), "proxy": result["proxy"], "space": result["space"]["name"],
             "search_seed": result["config"]["seed"], "pick": entry["rank"], "arch": entry["arch"],
             "score": entry["score"], "params": entry["params"]} for entry in result["top"][:top]]


def check_picks(bench, picks: list[dict], out: Path, workers: int = 1, device: str = "cpu", progress=None,
                threshold: float = 90.0) -> list[dict]:
    """Train every distinct picked architecture with the benchmark's recipe and seeds (results kept in
    `out`, resumable like `synth bench build`) and place each pick in the benchmark's distribution,
    with the placement's spread under seed noise (`seed_noise`, None without per-seed accuracies)."""
    space = _same_space(bench, picks)
    recipe, seeds = benchmark_recipe(bench)
    distinct = list({arch_key(p["arch"]): p["arch"] for p in picks}.values())
    trained = build_benchmark(space, distinct, seeds, recipe, out, workers=workers, device=device, progress=progress,
                              meta={"sampling": {"method": "search picks", "searches": sorted({p["search"] for p in picks})}})
    task = trained["tasks"][0]
    if task not in bench.targets:
        raise InputError(f"benchmark {bench.name!r} has no task {task!r} (its recipe's dataset); tasks: {bench.tasks}")
    rows = {arch_key(row["arch"]): row for row in trained["rows"]}
    stored = {arch_key(a): float(v) for a, v in zip(bench.archs, bench.targets[task])}
    bench_seeds = _benchmark_seed_accs(bench, task)
    row_of = {arch_key(a): i for i, a in enumerate(bench.archs)}
    report = []
    for pick in picks:
        key = arch_key(pick["arch"])
        row = rows[key]
        acc = row["acc"][task]
        noise = (seed_noise_placement(bench_seeds, row["seed_acc"][task], row_of.get(key), threshold)
                 if bench_seeds is not None else None)
        report.append({**pick, "task": task, "acc": acc, "seed_acc": row["seed_acc"][task],
                       "in_benchmark": stored.get(key), **placement(bench.targets[task], acc), "seed_noise": noise})
    return report


def _same_space(bench, picks: list[dict]):
    """The benchmark's space; InputError when a pick was searched in another space."""
    space = benchmark_space(bench)
    for pick in picks:
        if pick["space"] != space.name:
            raise InputError(f"{pick['search']}: searched space {pick['space']!r}, but benchmark {bench.name!r} "
                             f"holds architectures of {space.name!r}")
    return space


def lookup_picks(bench, picks: list[dict]) -> list[dict]:
    """Each pick's accuracy on every task of the benchmark, read from the benchmark itself, and its
    placement among all of the benchmark's architectures; one entry per pick and task.

    For published tables (NAS-Bench-201 holds every cell of its space) whose training synth does not
    rerun: no training, no seeds (`seed_acc` and `seed_noise` are None); `arch_id` is the benchmark's own
    name of the architecture where it has one (NAS-Bench-201's cell string). InputError for a pick the
    benchmark does not hold, or holds without an accuracy for a task.
    """
    space = _same_space(bench, picks)
    row_of = {arch_key(a): i for i, a in enumerate(bench.archs)}
    ids = bench.meta.arch_ids
    report = []
    reach = {search: _best_scored(bench, space, Path(search), row_of) for search in {p["search"] for p in picks}}
    for pick in picks:
        row = row_of.get(arch_key(pick["arch"]))
        if row is None:
            sampled = (bench.meta.table or {}).get("sample")
            raise InputError(f"{pick['search']}: pick {pick['pick']} {arch_key(pick['arch'])} is not among the {len(bench)} "
                             f"architectures of benchmark {bench.name!r}, which records no recipe to train it with"
                             + (" (a sample: check against the whole table instead)" if sampled else ""))
        for task in bench.tasks:
            acc = float(bench.targets[task][row])
            if not math.isfinite(acc):
                raise InputError(f"benchmark {bench.name!r} holds no {task!r} accuracy for {pick['search']}'s "
                                 f"pick {pick['pick']}")
            report.append({**pick, "arch_id": ids[row] if ids else None, "task": task, "acc": acc, "seed_acc": None,
                           "in_benchmark": acc, **placement(bench.targets[task], acc), "seed_noise": None,
                           "best_scored": reach[pick["search"]][task]})
    return report


def _best_scored(bench, space, search_dir: Path, row_of: dict) -> dict:
    """Per task, the most accurate architecture among those the search scored (its evaluated.jsonl) that
    the table holds: {"acc", "percentile", "place" (1 = the search's pick, in the search's own order:
    its re-ranked finalists first where it has them, then score, size and its seeded tie-break),
    "scored"}; None for a task where the table holds none of them."""
    result = read_record(search_dir / RESULT, "no search result here", ("config",))
    memo = SearchMemo(space, SearchConfig.from_dict(result["config"]), search_dir)
    memo.load_evaluated()
    finalists = [f["key"] for f in result.get("finalists") or [] if f.get("key") in memo.records]
    chosen = set(finalists)
    order = finalists + [key for key in memo.ranked(memo.records) if key not in chosen]
    out = {}
    for task in bench.tasks:
        accuracy = bench.targets[task]
        known = [(float(accuracy[row_of[key]]), place) for place, key in enumerate(order, 1)
                 if key in row_of and math.isfinite(accuracy[row_of[key]])]
        if not known:
            out[task] = None
            continue
        acc, place = max(known, key=lambda k: (k[0], -k[1]))
        out[task] = {"acc": acc, "percentile": placement(accuracy, acc)["percentile"], "place": place, "scored": len(order)}
    return out


def _benchmark_seed_accs(bench, task: str) -> list | None:
    """Per-seed accuracies of every benchmark architecture, in benchmark order; None unless all rows have them."""
    per_arch = {arch_key(row["arch"]): (row.get("seed_acc") or {}).get(task) for row in bench.meta.rows or []}
    values = [per_arch.get(arch_key(a)) for a in bench.archs]
    if any(v is None for v in values):
        return None
    return [[math.nan if x is None else float(x) for x in v] for v in values]
