"""Checking a search's picks against ground truth.

A proxy is only as good as the architectures it picks. The picks of one or more
`synth search` runs are trained with a benchmark's own recipe and seeds, exactly
as the benchmark's architectures were, and each lands somewhere in the
benchmark's accuracy distribution: its percentile, its rank, and its gap to the
benchmark's best architecture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.errors import InputError

__all__ = ["benchmark_recipe", "placement", "search_picks", "check_picks"]


def benchmark_recipe(bench):
    """(Recipe, seeds) the benchmark was trained with; InputError when it does not record them
    (published benchmarks such as ViT-Bench-101 were trained elsewhere, with recipes synth cannot rerun)."""
    from synth.train import Recipe

    recipe, seeds = bench.meta.get("recipe"), bench.meta.get("seeds")
    if not isinstance(recipe, dict) or not seeds:
        raise InputError(f"benchmark {bench.name!r} records no training recipe and seeds, so picks cannot be trained "
                         "the way its architectures were (use a benchmark built by synth bench build)")
    return Recipe(**recipe), [int(s) for s in seeds]


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


def search_picks(search_dir: Path, top: int = 1) -> list[dict]:
    """The best `top` architectures of a finished search, with its proxy and seed."""
    from synth.rundir import read_record
    from synth.search import RESULT

    result = read_record(Path(search_dir) / RESULT, f"no search result here (run synth search, or finish it with "
                         f"synth search --resume {search_dir})", ("proxy", "space", "config", "top"))
    return [{"search": str(search_dir), "proxy": result["proxy"], "space": result["space"]["name"],
             "search_seed": result["config"]["seed"], "pick": entry["rank"], "arch": entry["arch"],
             "score": entry["score"], "params": entry["params"]} for entry in result["top"][:top]]


def check_picks(bench, picks: list[dict], out: Path, workers: int = 1, device: str = "cpu", progress=None) -> list[dict]:
    """Train every distinct picked architecture with the benchmark's recipe and seeds (results kept in
    `out`, resumable like `synth bench build`) and place each pick in the benchmark's distribution."""
    from synth.bench import benchmark_space, build_benchmark
    from synth.space import arch_key

    space = benchmark_space(bench)
    for pick in picks:
        if pick["space"] != space.name:
            raise InputError(f"{pick['search']}: searched space {pick['space']!r}, but benchmark {bench.name!r} "
                             f"holds architectures of {space.name!r}")
    recipe, seeds = benchmark_recipe(bench)
    distinct = list({arch_key(p["arch"]): p["arch"] for p in picks}.values())
    trained = build_benchmark(space, distinct, seeds, recipe, out, workers=workers, device=device, progress=progress,
                              meta={"sampling": {"method": "search picks", "searches": sorted({p["search"] for p in picks})}})
    task = trained["tasks"][0]
    if task not in bench.targets:
        raise InputError(f"benchmark {bench.name!r} has no task {task!r} (its recipe's dataset); tasks: {bench.tasks}")
    rows = {arch_key(row["arch"]): row for row in trained["rows"]}
    stored = {arch_key(a): float(v) for a, v in zip(bench.archs, bench.targets[task])}
    report = []
    for pick in picks:
        row = rows[arch_key(pick["arch"])]
        acc = row["acc"][task]
        report.append({**pick, "task": task, "acc": acc, "seed_acc": row["seed_acc"][task],
                       "in_benchmark": stored.get(arch_key(pick["arch"])),
                       **placement(bench.targets[task], acc)})
    return report
