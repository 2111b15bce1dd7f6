"""Re-pick a finished run's final formula on a second benchmark's search split.

A run's fitness ranks its own sample; near its best, many programs are tied within noise, and which
of them a search favours depends on how they order cells the sample barely holds (on NAS-Bench-201:
the largest cells, where searches end). This script takes every program the run scored within
`--within` of its best fitness and scores each on the search rows of `--bench`, a benchmark that
joins the run's own with another sample (for example `nasbench201:cifar10@300,seed=1,largest=0.02`),
under the run's own fitness settings (metric, top share, resamples, seeds, split). The pick is the
highest (ties: fewer nodes). Only search rows choose anything: the test rows of `--bench` are only
reported.

A floor keeps what the run's own sample ranked: with `--floor-part P --floor-run REF`, a candidate
stays only if its Kendall tau-b on the search rows of P (one of `--bench`'s benchmarks) is, on every
task, at least REF's formula's there minus `--floor-tolerance`; with `--floor-value V` instead, at
least V on every task. On NAS-Bench-201 the candidates that rank the large sample's top best can rank
a uniform sample's search rows well below their source run, and the held-out cells follow those rows;
the floor asks for the top without giving up the space. If no candidate keeps it, the script stops,
or with `--floor-fallback` picks the candidate that comes closest (the largest smallest margin).

`--pick-part Q --pick-cells K` picks by what a search keeps instead of by the run's fitness: the
accuracy of the candidate's own top K cells among the search rows of Q (`synth.fitness.top_quality`,
mean over Q's tasks; ties broken by the fitness). A search ends among a space's largest cells and
keeps only its proxy's best few; the fitness's Kendall weighs every pair of a sample alike.

OUT is a run directory: the run's record with the pick as its formula, scores and correlations
over `--bench` (whose benchmark it names, so that `benchmarks/nb201_heldout.py` leaves out the
cells of both samples and `synth search --proxy OUT` scores it on the run's own probe), its exported
proxy.py, and selection.json listing every candidate with both scores.

    python benchmarks/reselect.py runs/nb-s0 --bench "nasbench201:cifar10@1000+nasbench201:cifar10@300,seed=1,largest=0.02" \\
        --within 0.01 --out runs/nb-s0-large
    python benchmarks/reselect.py runs/nb-merged-s0 --bench "nasbench201:cifar10@1000+nasbench201:cifar10@300,seed=1,largest=0.02" \\
        --within 0.02 --floor-part nasbench201:cifar10@1000 --floor-run runs/nb1000-s0 --out runs/nb-merged-s0-floor
    python benchmarks/reselect.py runs/nb-s0 --bench "nasbench201:cifar10@1000+nasbench201:cifar10@300,seed=1,largest=0.02" \\
        --within 2 --floor-part nasbench201:cifar10@1000 --floor-value 0.65 --floor-fallback \\
        --pick-part "nasbench201:cifar10@300,seed=1,largest=0.02" --pick-cells 3 --out runs/nb-s0-top
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from synth import __version__
from synth.bench.joined import JoinedBenchmark, benchmark_sources
from synth.errors import SynthError
from synth.evaluator import Evaluator
from synth.export import proxy_source
from synth.fitness import correlations, top_quality
from synth.grammar import load_grammar
from synth.probe import Probe
from synth.programs import ProgramSpace
from synth.records import RunRecord, read_run_record
from synth.rundir import write_json
from synth.run import formula_fields, ranked_programs, write_run_files

SELECTION = "selection.json"
BATCH = 25  # candidates scored per pass over the architectures; their scalars stay in the evaluator's memo


def candidates(record: RunRecord, within: float) -> list[dict]:
    """The programs the run scored with fitness at least its best minus `within`, best first."""
    return [p for p in ranked_programs(record) if p["fitness"] >= record.fitness - within]


def plain_tasks(record: RunRecord) -> list[str]:
    """The run's accuracy columns without a joined run's `source:` prefixes, in order."""
    return list(dict.fromkeys(task.rsplit(":", 1)[-1] for task in record.bench["tasks"]))


def check_bench_holds_run(record: RunRecord, source: str) -> None:
    """The selection benchmark must join the run's own, so that its search and test rows keep the
    run's split and its record leaves out every cell the run saw."""
    missing = [part for part in benchmark_sources(record.bench["source"]) if part not in benchmark_sources(source)]
    if missing:
        raise SystemExit(f"--bench {source!r} does not hold the run's own benchmark {', '.join(missing)}; "
                         f"join them: --bench '{record.bench['source']}+...'")


FLOOR_TOLERANCE = 0.02  # about one standard error of Kendall's tau on a few hundred rows


class Floor(NamedTuple):
    """Keep candidates whose Kendall tau-b on the search rows of `part` (one of the selection
    benchmark's sources) is, task by task, at least `run`'s formula's minus `tolerance`, or at
    least `value` when it is given. With `fallback`, a floor no candidate keeps picks the closest."""

    part: str
    run: Path | None = None
    tolerance: float = FLOOR_TOLERANCE
    value: float | None = None
    fallback: bool = False


class Top(NamedTuple):
    """Pick by the accuracy of the candidate's own top `cells` among the search rows of `part`."""

    part: str
    cells: int = 3


def part_index(source: str, part: str, option: str) -> int:
    """Where `part` stands among the joined `source`'s benchmarks; an error naming `option` if absent."""
    sources = benchmark_sources(source)
    if part not in sources:
        raise SystemExit(f"{option} {part!r} is not one of --bench's benchmarks ({', '.join(sources)})")
    return sources.index(part)


def part_tasks(bench: JoinedBenchmark, source: str, part: str, option: str = "--floor-part") -> list[str]:
    """The accuracy columns of `part`, one of the joined `source`'s benchmarks."""
    index = part_index(source, part, option)
    if len(bench.parts) == 1:
        return list(bench.targets)
    prefix = f"{bench.parts[index].name}:"
    return [task for task in bench.targets if task.startswith(prefix)]


def part_rows(bench: JoinedBenchmark, source: str, part: str, rows: list[int], option: str) -> list[int]:
    """The `rows` that belong to `part`, one of the joined `source`'s benchmarks."""
    index = part_index(source, part, option)
    low = bench.offsets[index]
    return [r for r in rows if low <= r < low + len(bench.parts[index])]


def program_scores(evaluator: Evaluator, program: str, space: ProgramSpace, rows: list[int]) -> np.ndarray:
    """`program`'s score per architecture on `rows` (NaN elsewhere and where it cannot score)."""
    formula = evaluator.formula(space.parse(program))
    return np.full(len(evaluator.values), np.nan) if formula is None else evaluator.scores(formula, rows)


def kendall_on(scores: np.ndarray, targets: dict, rows: list[int], tasks: list[str]) -> dict[str, float]:
    """Kendall tau-b of `scores` with each of `tasks` on `rows` (rows without a finite score left out)."""
    return correlations(scores, {t: targets[t] for t in tasks}, rows)["kendall"]


def top_on(scores: np.ndarray, targets: dict, rows: list[int], tasks: list[str], cells: int) -> float:
    """Mean over `tasks` of `top_quality` of the `cells` best-scored of `rows` (NaN if fewer than
    `cells` + 1 rows have a finite score)."""
    rows = [r for r in rows if np.isfinite(scores[r])]
    if len(rows) <= cells:
        return float("nan")
    return float(np.mean([top_quality(scores[rows], targets[t][rows], cells / len(rows)) for t in tasks]))


def floor_values(floor: Floor, evaluator: Evaluator, space: ProgramSpace, rows: list[int], tasks: list[str]) -> dict[str, float]:
    """Task by task, the floor: `floor.value`, or the reference run's Kendall on `rows` less the tolerance."""
    if floor.value is not None:
        return dict.fromkeys(tasks, floor.value)
    reference = read_run_record(floor.run)
    try:
        scores = program_scores(evaluator, reference.program, space, rows)
    except SynthError as exc:
        raise SystemExit(f"{floor.run}: its formula does not read in this run's grammar ({exc})") from None
    return {task: value - floor.tolerance for task, value in kendall_on(scores, evaluator.targets, rows, tasks).items()}


def floor_margin(kendall: dict[str, float], minimum: dict[str, float]) -> float:
    """The smallest amount by which a candidate's Kendall exceeds the floor (negative: below it; NaN counts as -inf)."""
    margins = [kendall[t] - minimum[t] for t in minimum]
    return -math.inf if any(math.isnan(m) for m in margins) else min(margins)


def pick_order(row: dict):
    """Sort key: kept first, then the top quality (with --pick-part), the fitness, fewer nodes."""
    top = row.get("top", 0.0)
    return (not row.get("kept", True), -(top if math.isfinite(top) else -math.inf), -row["selection"], row["complexity"], row["formula"])


def reselect(run_dir: Path, source: str, within: float, out: Path, workers: int = 1,
             floor: Floor | None = None, top: Top | None = None) -> dict:
    record = read_run_record(run_dir)  # errors name the run directory's file
    check_bench_holds_run(record, source)
    gram = load_grammar(record.grammar)
    probe = Probe(**record.probe)
    config = record.config
    bench = JoinedBenchmark(source, plain_tasks(record))
    search_rows, test_rows = bench.split(config.split_seed, config.search_fraction)
    if floor is not None:
        floor_tasks = part_tasks(bench, source, floor.part)
    if top is not None:
        top_tasks = part_tasks(bench, source, top.part, "--pick-part")
        top_rows = part_rows(bench, source, top.part, search_rows, "--pick-part")
    stats = bench.statistics(probe, gram.statistics, workers=workers)
    evaluator = Evaluator(gram, stats, bench.targets, search_rows, replace(config, validation=0.0))
    space = ProgramSpace(gram)
    if floor is not None:
        minimum = floor_values(floor, evaluator, space, search_rows, floor_tasks)
    table = []
    pool = candidates(record, within)
    for start in range(0, len(pool), BATCH):
        batch = pool[start: start + BATCH]
        # one pass over the architectures per batch: each one's statistics are read once for all of it
        selections = evaluator.fitness_many([space.parse(p["program"]) for p in batch])
        for program, (selection, _) in zip(batch, selections):
            row = {"formula": program["formula"], "complexity": program["complexity"],
                   "run_fitness": program["fitness"], "selection": selection, "program": program["program"]}
            if floor is not None or top is not None:
                scores = program_scores(evaluator, program["program"], space, search_rows)  # the batch's memo answers
            if floor is not None:
                row["floor_kendall"] = kendall_on(scores, evaluator.targets, search_rows, floor_tasks)
                row["floor_margin"] = floor_margin(row["floor_kendall"], minimum)
                row["kept"] = row["floor_margin"] >= 0
            if top is not None:
                row["top"] = top_on(scores, evaluator.targets, top_rows, top_tasks, top.cells)
            table.append(row)
    if floor is not None and floor.fallback and not any(row["kept"] for row in table):
        closest = max(table, key=lambda row: row["floor_margin"])
        closest["kept"] = True  # the candidate that comes closest stands in for the kept ones
    table.sort(key=pick_order)
    pick = table[0]
    if not pick.get("kept", True):
        raise SystemExit(f"{run_dir}: no candidate within {within} of the run's best keeps the floor on {floor.part} "
                         f"({', '.join(f'{t} {v:.3f}' for t, v in minimum.items())}); widen --within or lower the floor")
    formula = evaluator.formula(space.parse(pick["program"]))  # sympy once, for the pick only
    chosen = replace(record, **formula_fields(formula, evaluator, bench, source, search_rows, test_rows),
                     program=pick["program"], fitness=pick["run_fitness"], validation=None)
    out.mkdir(parents=True, exist_ok=True)
    write_run_files(out, chosen, proxy_source(formula, gram, probe, chosen.fitness, __version__))
    summary = {"run": str(run_dir), "bench": source, "within": within, "pick": pick["formula"], "candidates": table}
    if floor is not None:
        summary["floor"] = {"part": floor.part, "run": None if floor.run is None else str(floor.run),
                            "tolerance": floor.tolerance, "value": floor.value, "fallback": floor.fallback,
                            "kendall": minimum, "fell_back": not any(r["floor_margin"] >= 0 for r in table)}
    if top is not None:
        summary["top"] = {"part": top.part, "cells": top.cells, "rows": len(top_rows)}
    write_json(out / SELECTION, summary)
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished synth evolve run directory")
    parser.add_argument("--bench", required=True, help="benchmark source joining the run's own with the selection sample")
    parser.add_argument("--within", type=float, default=0.01, help="candidates: fitness within this of the run's best")
    parser.add_argument("--out", type=Path, required=True, help="run directory to write the pick to")
    parser.add_argument("--workers", type=int, default=1, help="processes computing missing statistics")
    parser.add_argument("--floor-part", default=None, metavar="SOURCE",
                        help="one of --bench's benchmarks whose search rows the pick must keep ranking (with --floor-run or --floor-value)")
    parser.add_argument("--floor-run", type=Path, default=None, metavar="RUN",
                        help="the run whose formula's Kendall on --floor-part's search rows sets the floor")
    parser.add_argument("--floor-tolerance", type=float, default=FLOOR_TOLERANCE,
                        help=f"how far below the floor run's Kendall a candidate may fall (default: {FLOOR_TOLERANCE})")
    parser.add_argument("--floor-value", type=float, default=None, metavar="V",
                        help="a fixed floor: Kendall at least V on every task of --floor-part")
    parser.add_argument("--floor-fallback", action="store_true",
                        help="if no candidate keeps the floor, pick the one that comes closest instead of stopping")
    parser.add_argument("--pick-part", default=None, metavar="SOURCE",
                        help="pick by the accuracy of each candidate's top cells among this benchmark's search rows")
    parser.add_argument("--pick-cells", type=int, default=3, metavar="K", help="how many top cells --pick-part judges (default: 3)")
    args = parser.parse_args(argv)
    if args.within < 0:
        parser.error("--within must be >= 0")
    if args.floor_part is not None and (args.floor_run is None) == (args.floor_value is None):
        parser.error("--floor-part takes one of --floor-run and --floor-value")
    if args.floor_part is None and (args.floor_run is not None or args.floor_value is not None or args.floor_fallback):
        parser.error("--floor-run, --floor-value and --floor-fallback need --floor-part")
    if args.pick_cells < 1:
        parser.error("--pick-cells must be >= 1")
    floor = (Floor(args.floor_part, args.floor_run, args.floor_tolerance, args.floor_value, args.floor_fallback)
             if args.floor_part else None)
    top = Top(args.pick_part, args.pick_cells) if args.pick_part else None
    summary = reselect(args.run, args.bench, args.within, args.out, args.workers, floor, top)
    for c in summary["candidates"]:
        kept = "" if floor is None else ("  kept" if c["kept"] else "  below the floor")
        quality = "" if top is None else f"{c['top']:.4f}  "
        print(f"{quality}{c['selection']:.4f}  {c['run_fitness']:.4f}  {c['complexity']:>3}  {c['formula']}{kept}")
    if floor is not None and summary["floor"]["fell_back"]:
        print(f"no candidate keeps the floor; the closest stands in")
    print(f"pick: {summary['pick']} ({len(summary['candidates'])} candidates) -> {args.out}")


if __name__ == "__main__":
    main()
