"""Re-pick a finished run's final formula on a second benchmark's search split.

A run's fitness ranks its own sample; near its best, many programs are tied within noise, and which
of them a search favours depends on how they order cells the sample barely holds (on NAS-Bench-201:
the largest cells, where searches end). This script takes every program the run scored within
`--within` of its best fitness and scores each on the search rows of `--bench`, a benchmark that
joins the run's own with another sample (for example `nasbench201:cifar10@300,seed=1,largest=0.02`),
under the run's own fitness settings (metric, top share, resamples, seeds, split). The pick is the
highest (ties: fewer nodes). Only search rows choose anything: the test rows of `--bench` are only
reported.

OUT is a run directory: the run's record with the pick as its formula, scores and correlations
over `--bench` (whose benchmark it names, so that `benchmarks/nb201_heldout.py` leaves out the
cells of both samples and `synth search --proxy OUT` scores it on the run's own probe), its exported
proxy.py, and selection.json listing every candidate with both scores.

    python benchmarks/reselect.py runs/nb-s0 --bench "nasbench201:cifar10@1000+nasbench201:cifar10@300,seed=1,largest=0.02" \\
        --within 0.01 --out runs/nb-s0-large
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from synth import __version__
from synth.bench.joined import JoinedBenchmark, benchmark_sources
from synth.evaluator import Evaluator
from synth.export import proxy_source
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


def reselect(run_dir: Path, source: str, within: float, out: Path, workers: int = 1) -> dict:
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
    table = []
    for program in candidates(record, within):
        selection, _ = evaluator.fitness(space.parse(program["program"]))
        table.append({"formula": program["formula"], "complexity": program["complexity"],
                      "run_fitness": program["fitness"], "selection": selection, "program": program["program"]})
    table.sort(key=lambda c: (-c["selection"], c["complexity"], c["formula"]))
    pick = table[0]
    formula = evaluator.formula(space.parse(pick["program"]))  # sympy once, for the pick only
    chosen = replace(record, **formula_fields(formula, evaluator, bench, source, search_rows, test_rows),
                     program=pick["program"], fitness=pick["run_fitness"], validation=None)
    out.mkdir(parents=True, exist_ok=True)
    write_run_files(out, chosen, proxy_source(formula, gram, probe, chosen.fitness, __version__))
    summary = {"run": str(run_dir), "bench": source, "within": within, "pick": pick["formula"], "candidates": table}
    write_json(out / SELECTION, summary)
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished synth evolve run directory")
    parser.add_argument("--bench", required=True, help="benchmark source joining the run's own with the selection sample")
    parser.add_argument("--within", type=float, default=0.01, help="candidates: fitness within this of the run's best")
    parser.add_argument("--out", type=Path, required=True, help="run directory to write the pick to")
    parser.add_argument("--workers", type=int, default=1, help="processes computing missing statistics")
    args = parser.parse_args(argv)
    if args.within < 0:
        parser.error("--within must be >= 0")
    summary = reselect(args.run, args.bench, args.within, args.out, args.workers)
    for c in summary["candidates"]:
        print(f"{c['selection']:.4f}  {c['run_fitness']:.4f}  {c['complexity']:>3}  {c['formula']}")
    print(f"pick: {summary['pick']} ({len(summary['candidates'])} candidates) -> {args.out}")


if __name__ == "__main__":
    main()
