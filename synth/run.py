"""One `synth evolve` run end to end: benchmark, statistics, evolution, final scores, run directory.

The run directory holds run.json (the record, a `synth.records.RunRecord`), proxy.py (the exported
winner), hall_of_fame.csv, and checkpoint.json, from which an interrupted run resumes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from synth import __version__
from synth.bench import inner_split
from synth.bench.joined import JoinedBenchmark
from synth.bench.load import EMBEDDED_PREFIX
from synth.evaluator import Evaluator
from synth.evolve import EvolutionState, EvolveConfig, evolve
from synth.export import proxy_source
from synth.fitness import INVALID, correlations, resolution
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.records import HallOfFameEntry, RunRecord, read_run_record
from synth.errors import RunDirError
from synth.rundir import (CHECKPOINT, RUN_RECORD, locked_run_dir, no_progress, read_checkpoint, refuse_existing_run, versions,
                          write_checkpoint, write_json, write_text)
from synth.probe import Probe

__all__ = ["run_evolve", "run_evolve_locked", "write_run_files", "formula_fields", "hall_of_fame", "HALL_OF_FAME", "PROXY"]

HALL_OF_FAME, PROXY = "hall_of_fame.csv", "proxy.py"


def hall_of_fame(evaluator: Evaluator, size: int = 10) -> list[HallOfFameEntry]:
    """The best distinct formulas seen, best first (ties: simpler first)."""
    ranked = sorted(
        ((fit, evaluator.complexity_of[key], key) for key, fit in evaluator.fitness_of.items() if fit > INVALID),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    return [HallOfFameEntry(fitness=fit, complexity=cx, formula=key) for fit, cx, key in ranked[:size]]


def _hof_csv(rows: list[HallOfFameEntry]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["complexity", "fitness", "formula"])
    writer.writeheader()
    writer.writerows(row.to_dict() for row in rows)
    return buf.getvalue()


def write_run_files(out_dir: Path, record: RunRecord, proxy_text: str) -> None:
    """Write a run's results into `out_dir`: proxy.py, hall_of_fame.csv and, last, run.json (whose
    presence marks a finished run). One writer for a run and for `synth.Evolution.save`."""
    write_text(Path(out_dir) / PROXY, proxy_text)
    write_text(Path(out_dir) / HALL_OF_FAME, _hof_csv(record.hall_of_fame))
    write_json(Path(out_dir) / RUN_RECORD, record.to_dict())


def formula_fields(formula, evaluator: Evaluator, bench: JoinedBenchmark, source: str, search_rows, test_rows) -> dict:
    """The run record's fields that describe a final formula on its benchmark: the formula's forms, its
    score per architecture, its correlations on both splits beside the size baselines', and the
    benchmark (named by `source`). One writer for a run and for benchmarks/reselect.py's re-pick."""
    scores = evaluator.scores(formula)
    sizes = bench.sizes()
    return dict(
        formula=formula.canonical,
        latex=formula.latex,
        canonical=formula.canonical,
        complexity=formula.complexity,
        test=correlations(scores, bench.targets, test_rows),
        search=correlations(scores, bench.targets, search_rows),
        baselines={name: correlations(values, bench.targets, test_rows) for name, values in sizes.items()},
        split={"search": search_rows, "test": test_rows},
        scores=[None if not np.isfinite(s) else float(s) for s in scores],
        resolution={"proxy": resolution(scores), "params": resolution(sizes["params"])},
        bench={"source": source, "name": bench.name, "space": bench.space_name, "tasks": bench.tasks,
               "architectures": len(bench)},
    )


def _final_choice(state: EvolutionState, evaluator: Evaluator):
    """The fittest member of the final population(s); among equals the simplest, then the first by formula text."""
    return min(
        state.members(),
        key=lambda m: (-m.fitness, evaluator.complexity_of.get(m.canonical, 0), m.canonical or ""),
    )


def pareto_front(evaluator: Evaluator) -> list[str]:
    """Canonical forms of the programs no other program beats in both fitness and complexity
    (higher fitness, fewer nodes), simplest first, as PySR keeps its equations."""
    ranked = sorted(((evaluator.complexity_of[k], -fit, k) for k, fit in evaluator.fitness_of.items()
                     if fit > INVALID and k in evaluator.program_of))
    front, best = [], INVALID
    for complexity, neg_fit, key in ranked:
        if -neg_fit > best:
            front.append(key)
            best = -neg_fit
    return front


def _validated_choice(evaluator: Evaluator, programs: ProgramSpace, rows: list[int]) -> tuple[str, list[dict]]:
    """The Pareto front's formula with the best JCM on the inner validation `rows` (ties: the simpler),
    and the front with each formula's search fitness and validation JCM, for the run record."""
    table = []
    for key in pareto_front(evaluator):
        formula = evaluator.formula(programs.parse(evaluator.program_of[key]))
        table.append({"formula": key, "complexity": evaluator.complexity_of[key], "fitness": evaluator.fitness_of[key],
                      "validation": evaluator.validation_jcm(formula, rows)})
    chosen = max(table, key=lambda r: (r["validation"], -r["complexity"]))
    return evaluator.program_of[chosen["formula"]], table


def _progress_line(state: EvolutionState, evaluator: Evaluator, config: EvolveConfig, elapsed: float) -> str:
    fitness = [m.fitness for m in state.population]
    return (f"iteration {state.iteration}/{config.iterations}: best {max(fitness):.4f}, median {np.median(fitness):.4f}, "
            f"{len(evaluator.fitness_of)} programs scored, {elapsed:.0f} s")


def _grammar_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _resumed(out_dir: Path, config: EvolveConfig | None, extend: int | None):
    """(grammar, bench, tasks, config, probe, state, memo, plugins) of the checkpoint in `out_dir`, refusing a
    `config` other than the checkpoint's, a grammar file edited since, or a checkpoint of another shape."""
    path = out_dir / CHECKPOINT
    checkpoint = read_checkpoint(out_dir)
    try:
        stored = EvolveConfig(**checkpoint["config"])
        probe = Probe(**checkpoint["probe"])
        state = EvolutionState.from_dict(checkpoint["state"])
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise RunDirError(f"{path}: not a checkpoint this synth can read ({type(exc).__name__}: {exc})") from None
    if config is not None and config != stored:
        kept = stored.to_dict()
        changed = [f"{k} {v!r} (checkpoint: {kept[k]!r})" for k, v in config.to_dict().items() if kept[k] != v]
        raise RunDirError(f"{path}: a resumed run keeps the settings it started with; asked for {', '.join(changed)}"
                          " (to run a run on for more iterations, extend it explicitly: --extend N)")
    if extend is not None:
        if extend < stored.iterations:
            raise RunDirError(f"{path}: --extend {extend} is fewer than the run's {stored.iterations} iterations")
        stored = replace(stored, iterations=extend)
    grammar = checkpoint["grammar"]
    if not Path(grammar).is_file():
        raise RunDirError(f"{path}: its grammar {grammar} is gone")
    if checkpoint.get("grammar_sha256") not in (None, _grammar_digest(grammar)):
        raise RunDirError(f"{path}: the grammar {grammar} changed since the checkpoint; resuming would mix two grammars")
    return (grammar, checkpoint.get("bench"), checkpoint.get("tasks"), stored, probe, state, checkpoint.get("memo", {}),
            checkpoint.get("plugins", {}))


def ranked_programs(record: RunRecord) -> list[dict]:
    """Every valid program a run scored (its record's `programs`), best fitness first; ties go to
    fewer nodes, then to the formula's text, so the order is the same on every read."""
    valid = [p for p in record.programs if p["fitness"] is not None and p["fitness"] > INVALID]
    return sorted(valid, key=lambda p: (-p["fitness"], p["complexity"], p["formula"]))


def warm_start_programs(init_from: str, population: int) -> dict[str, list[str]]:
    """For each run directory named in `init_from` (comma-separated), the program texts of its 3P best
    valid programs by its own fitness, best first: the candidates `initial_population` rescores.
    RunDirError naming the file of a directory that holds no finished run."""
    return {run_dir: [p["program"] for p in ranked_programs(read_run_record(run_dir))[: 3 * population]]
            for run_dir in [part.strip() for part in init_from.split(",") if part.strip()]}


def _move(stats_per_arch, device):
    """Every statistic (Layers or a per-layer tensor) on `device`."""
    if device == "cpu":
        return stats_per_arch
    return [{k: v.to(device) for k, v in record.items()} for record in stats_per_arch]


def run_evolve(
    grammar: str | None,
    bench_source: str | None,
    out_dir: Path,
    config: EvolveConfig | None = None,
    tasks: list[str] | None = None,
    probe_overrides: dict | None = None,
    device: str = "cpu",
    resume: bool = False,
    progress=no_progress,
    log=lambda message: None,
    log_every: int = 0,
    extend: int | None = None,
    allow_plugins: bool = False,
    workers: int = 1,
) -> RunRecord:
    """Run (or resume) an evolution and write its run directory; returns the run record.

    The probe is the benchmark's default (`default_probe`) with `probe_overrides` applied.
    `bench_source` may join several benchmarks (`a+b`, see synth.bench.joined): the JCM then
    averages every task of each.
    With `log_every` > 0, a line of progress (iteration, best and median fitness, programs scored,
    elapsed seconds) goes to `log` every `log_every` iterations and at the last one: what a
    piped or logged run shows where a terminal shows a progress bar.

    A resumed run keeps every setting of its checkpoint and ends where the uninterrupted run would
    have: a `config` that differs from the checkpoint's is refused. `extend=N` runs a resumed run
    on to N iterations (per restart), explicitly. A grammar naming plugins loads only with
    `allow_plugins`, and a resumed run needs the plugin sources it started with. `workers` > 1
    computes missing statistics in that many processes (see `load_statistics`).
    """
    out_dir = Path(out_dir)
    if resume:
        grammar, bench_source, tasks, config, probe, state, memo, plugins = _resumed(out_dir, config, extend)
        log(f"resuming {out_dir} at iteration {state.iteration}/{config.iterations}")
    else:
        config, probe, state, memo, plugins = (config or EvolveConfig()), None, None, {}, None
    config.validate()
    started = time.perf_counter()
    gram = load_grammar(grammar, allow_plugins=allow_plugins)
    if plugins is not None and plugins != gram.plugins:
        raise RunDirError(f"{out_dir / CHECKPOINT}: the grammar's plugins {sorted(gram.plugins)} differ from the checkpoint's "
                          f"{sorted(plugins)} (or their source changed); resuming would mix two sets of ops and statistics")
    bench = JoinedBenchmark(bench_source, tasks)
    for note in bench.notes():
        log(f"note: {note}")
    if probe is None:
        probe = bench.probe(probe_overrides or {})
    search_rows, test_rows = bench.split(config.split_seed, config.search_fraction)
    fit_rows, validation_rows = inner_split(search_rows, config.validation, config.split_seed)
    for rows, part in ((fit_rows, "search split"), (validation_rows, "inner validation fold"), (test_rows, "test split")):
        if rows:
            bench.require_rankable(rows, part)
    log(f"benchmark {bench.name}: {len(bench)} architectures of {bench.space_name}, tasks {', '.join(bench.tasks)}; "
        f"{len(search_rows)} search / {len(test_rows)} test")

    t0 = time.perf_counter()
    with progress("statistics", len(bench)) as advance:

        def statistics_done(done, total):
            advance(done, total)
            if log_every and (done % (10 * log_every) == 0 or done == total):
                log(f"statistics {done}/{total} architectures, {time.perf_counter() - t0:.0f} s")

        plugin_imports = tuple((module, str(Path(gram.path).parent)) for module in (gram.plugins or {}))
        stats = bench.statistics(probe, gram.statistics, progress=statistics_done, device=device, workers=workers,
                                 plugins=plugin_imports)
    stats_seconds = time.perf_counter() - t0
    evaluator = Evaluator(gram, _move(stats, device), bench.targets, fit_rows, config)
    evaluator.restore(memo)
    programs = ProgramSpace(gram)

    grammar_digest = _grammar_digest(gram.path)

    def checkpoint_now(st: EvolutionState):
        write_checkpoint(
            out_dir / CHECKPOINT,
            {
                "grammar": str(Path(gram.path).resolve()),
                "grammar_sha256": grammar_digest,
                "plugins": gram.plugins,
                "bench": bench_source,
                "tasks": tasks,
                "config": config.to_dict(),
                "probe": probe.to_dict(),
                "state": st.to_dict(),
                "memo": evaluator.memo(),
            },
        )

    t0 = time.perf_counter()
    with progress("evolution", config.iterations * config.restarts) as advance:
        advance(state.restart * config.iterations + state.iteration if state else 0)

        def on_iteration(st):
            checkpoint_now(st)
            advance(st.restart * config.iterations + st.iteration)
            if log_every and st.iteration and (st.iteration % log_every == 0 or st.iteration == config.iterations):
                log(_progress_line(st, evaluator, config, time.perf_counter() - started))

        starts_ahead = state is None or not state.population or state.restart + 1 < config.restarts
        sources = warm_start_programs(config.init_from, config.population) if starts_ahead else {}
        state = evolve(programs, evaluator, config, state, on_iteration, sources)
        checkpoint_now(state)
    evolve_seconds = time.perf_counter() - t0

    best = _final_choice(state, evaluator)
    program, front = best.program, []
    if validation_rows:
        program, front = _validated_choice(evaluator, programs, validation_rows)
        log(f"final pick on the inner validation fold ({len(validation_rows)} of the search architectures) "
            f"among {len(front)} formulas of the Pareto front")
    formula = evaluator.formula(programs.parse(program))
    record = RunRecord(
        **formula_fields(formula, evaluator, bench, bench_source or EMBEDDED_PREFIX + bench.name, search_rows, test_rows),
        program=program,
        fitness=evaluator.fitness_of[formula.canonical],
        validation={"rows": validation_rows, "front": front} if validation_rows else None,
        hall_of_fame=hall_of_fame(evaluator),
        grammar=gram.path,
        config=config,
        probe=probe.to_dict(),
        device=device,
        seed=config.seed,
        versions=versions(),
        timing={"statistics_seconds": stats_seconds, "evolution_seconds": evolve_seconds,
                "total_seconds": time.perf_counter() - started, "evaluations": state.evaluations,
                "distinct_programs": len(evaluator.fitness_of), "program_costs": evaluator.costs()},
        rejections=evaluator.rejections(),
        programs=evaluator.programs(),
        history=state.history,
    )
    write_run_files(out_dir, record, proxy_source(formula, gram, probe, record.fitness, __version__))
    return record


def run_evolve_locked(grammar: str | None, bench_source: str | None, out_dir: Path, config: EvolveConfig | None = None, *,
                      resume: bool = False, force: bool = False, log=lambda message: None, **options) -> RunRecord:
    """`run_evolve` holding `out_dir`'s lock, refusing a folder that already holds a run unless the
    run is resumed or `force` replaces it: how `synth evolve` and `synth.Evolution.fit` start a run,
    so that neither can overwrite a run or share a folder with another process."""
    with locked_run_dir(out_dir):
        if not resume:
            refuse_existing_run(out_dir, force=force)
        log(f"run directory: {out_dir}")
        return run_evolve(grammar, bench_source, out_dir, config, resume=resume, log=log, **options)
