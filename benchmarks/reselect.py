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
task, at least REF's formula's there minus `--floor-tolerance`. On NAS-Bench-201 the candidates that
rank the large sample's top best can rank a uniform sample's search rows well below their source run,
and the held-out cells follow those rows; the floor asks for the top without giving up the space.

OUT is a run directory: the run's record with the pick as its formula, scores and correlations
over `--bench` (whose benchmark it names, so that `benchmarks/nb201_heldout.py` leaves out the
cells of both samples and `synth search --proxy OUT` scores it on the run's own probe), its exported
proxy.py, and selection.json listing every candidate with both scores.

    python benchmarks/reselect.py runs/nb-s0 --bench "nasbench201:cifar10@1000+nasbench201:cifar10@300,seed=1,largest=0.02" \\
        --within 0.01 --out runs/nb-s0-large
    python benchmarks/reselect.py runs/nb-merged-s0 --bench "nasbench201:cifar10@1000+nasbench201:cifar10@300,seed=1,largest=0.02" \\
        --within 0.02 --floor-part nasbench201:cifar10@1000 --floor-run runs/nb1000-s0 --out runs/nb-merged-s0-floor
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from synth import __version__
from synth.bench.joined import JoinedBenchmark, benchmark_sources
from synth.errors import SynthError
from synth.evaluator import Evaluator
from synth.export import proxy_source
from synth.fitness import correlations
from synth.grammar import load_grammar
from synth.probe import Probe
from synth.programs import ProgramSpace
from synth.records import RunRecord, read_run_record
from synth.rundir import write_json
from synth.run import formula_fields, ranked_programs, write_run_files

SELECTION = "selection.json"


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
    benchmark's sources) is, task by task, at least `run`'s formula's minus `tolerance`."""

    part: str
    run: Path
    tolerance: float = FLOOR_TOLERANCE


def part_tasks(bench: JoinedBenchmark, source: str, part: str) -> list[str]:
    """The accuracy columns of `part`, one of the joined `source`'s benchmarks."""
    sources = benchmark_sources(source)
    if part not in sources:
        raise SystemExit(f"--floor-part {part!r} is not one of --bench's benchmarks ({', '.join(sources)})")
    if len(sources) == 1:
        return list(bench.targets)
    prefix = f"{bench.parts[sources.index(part)].name}:"
    return [task for task in bench.targets if task.startswith(prefix)]


def kendall_on(evaluator: Evaluator, program: str, space: ProgramSpace, rows: list[int], tasks: list[str]) -> dict[str, float]:
    """Kendall tau-b of `program` with each of `tasks` on `rows` (rows it cannot score left out)."""
    formula = evaluator.formula(space.parse(program))
    if formula is None:
        return dict.fromkeys(tasks, float("nan"))
    scores = evaluator.scores(formula, rows)
    return correlations(scores, {t: evaluator.targets[t] for t in tasks}, rows)["kendall"]


def floor_values(floor: Floor, evaluator: Evaluator, space: ProgramSpace, rows: list[int], tasks: list[str]) -> dict[str, float]:
    """Task by task, the reference run's Kendall on `rows` less the tolerance."""
    reference = read_run_record(floor.run)
    try:
        values = kendall_on(evaluator, reference.program, space, rows, tasks)
    except SynthError as exc:
        raise SystemExit(f"{floor.run}: its formula does not read in this run's grammar ({exc})") from None
    return {task: value - floor.tolerance for task, value in values.items()}


def reselect(run_dir: Path, source: str, within: float, out: Path, workers: int = 1,
             floor: Floor | None = None) -> dict:
    record = read_run_record(run_dir)  # errors name the run directory's file
    check_bench_holds_run(record, source)
    gram = load_grammar(record.grammar)
    probe = Probe(**record.probe)
    config = record.config
    bench = JoinedBenchmark(source, plain_tasks(record))
    search_rows, test_rows = bench.split(config.split_seed, config.search_fraction)
    stats = bench.statistics(probe, gram.statistics, workers=workers)
    evaluator = Evaluator(gram, stats, bench.targets, search_rows, replace(config, validation=0.0))
    space = ProgramSpace(gram)
    if floor is not None:
        tasks = part_tasks(bench, source, floor.part)
        minimum = floor_values(floor, evaluator, space, search_rows, tasks)
    table = []
    for program in candidates(record, within):
        selection, _ = evaluator.fitness(space.parse(program["program"]))
        row = {"formula": program["formula"], "complexity": program["complexity"],
               "run_fitness": program["fitness"], "selection": selection, "program": program["program"]}
        if floor is not None:
            row["floor_kendall"] = kendall_on(evaluator, program["program"], space, search_rows, tasks)
            row["kept"] = all(row["floor_kendall"][t] >= minimum[t] for t in tasks)  # NaN fails
        table.append(row)
    table.sort(key=lambda c: (not c.get("kept", True), -c["selection"], c["complexity"], c["formula"]))
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
        summary["floor"] = {"part": floor.part, "run": str(floor.run), "tolerance": floor.tolerance, "kendall": minimum}
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
                        help="one of --bench's benchmarks whose search rows the pick must keep ranking (with --floor-run)")
    parser.add_argument("--floor-run", type=Path, default=None, metavar="RUN",
                        help="the run whose formula's Kendall on --floor-part's search rows sets the floor")
    parser.add_argument("--floor-tolerance", type=float, default=FLOOR_TOLERANCE,
                        help=f"how far below the floor run's Kendall a candidate may fall (default: {FLOOR_TOLERANCE})")
    args = parser.parse_args(argv)
    if args.within < 0:
        parser.error("--within must be >= 0")
    if (args.floor_part is None) != (args.floor_run is None):
        parser.error("--floor-part and --floor-run go together")
    floor = Floor(args.floor_part, args.floor_run, args.floor_tolerance) if args.floor_part else None
    summary = reselect(args.run, args.bench, args.within, args.out, args.workers, floor)
    for c in summary["candidates"]:
        kept = "" if floor is None else ("  kept" if c["kept"] else "  below the floor")
        print(f"{c['selection']:.4f}  {c['run_fitness']:.4f}  {c['complexity']:>3}  {c['formula']}{kept}")
    print(f"pick: {summary['pick']} ({len(summary['candidates'])} candidates) -> {args.out}")


if __name__ == "__main__":
    main()
