"""`synth evolve`: evolve a proxy program on a benchmark and export the winner."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from synth.cli._probe import positive_int

__all__ = ["add_parser"]

EXAMPLES = """examples:
  synth evolve --grammar vit.yaml                       # embedded default benchmark
  synth evolve --grammar vit --seed 1 --out runs/s1
  synth evolve --grammar my.yaml --bench my_bench.json --iterations 500
  SYNTH_DATA=../shared/benchmarks synth evolve --bench vit-bench-101 --stats-dtype bfloat16
  synth evolve --resume runs/s1                          # continue an interrupted run
  synth evolve --grammar my_plugin_grammar.yaml --allow-plugins   # a grammar whose plugins add ops and statistics
"""


def add_parser(subparsers) -> None:
    from synth.config import FITNESS_METRICS, EvolveConfig

    d = EvolveConfig()
    p = subparsers.add_parser(
        "evolve",
        help="evolve a zero-cost proxy with typed genetic programming",
        description="Evolve a proxy program (Auto-Prox's elitism-preserving loop), simplify it with sympy, "
        "report held-out correlations beside #params and export it as a stand-alone proxy.py.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--grammar", default="vit", help="grammar file or shipped name (default: vit)")
    p.add_argument("--bench", default=None, help="benchmark: a named source (vit-bench-101, pit-digits) or a file (.json, .pth, .csv), or several joined "
                   "with '+' (vit-digits+pit-digits: the JCM averages every task of each); default: the embedded vit-digits benchmark")
    p.add_argument("--tasks", default=None, help="comma-separated accuracy columns to correlate with, of every benchmark joined with '+' "
                   "(default: the benchmark's)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: a new folder under runs/)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--extend", type=int, default=None, metavar="N", help="with --resume: run the run on to N iterations (a resumed run otherwise ends where it would have)")
    p.add_argument("--force", action="store_true", help="replace the run already in --out (default: refuse it)")
    p.add_argument("--allow-plugins", action="store_true",
                   help="import the Python modules the grammar names under `plugins:` (their code runs; default: refuse such a grammar)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"evolution seed (default: {d.seed})")
    p.add_argument("--split-seed", type=int, default=d.split_seed, help=f"seed of the search/test split (default: {d.split_seed})")
    p.add_argument("--population", type=int, default=d.population, help=f"population size P (default: {d.population})")
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"iterations T (default: {d.iterations})")
    p.add_argument("--mutation-prob", type=float, default=d.mutation_prob, help=f"per-node mutation probability (default: {d.mutation_prob})")
    p.add_argument("--margin", type=float, default=d.margin, help=f"acceptance margin m (default: {d.margin})")
    p.add_argument("--sample-size", type=int, default=d.sample_size, help=f"subset size for parent selection (default: {d.sample_size})")
    p.add_argument("--top-k", type=int, default=d.top_k, help=f"parent drawn among the subset's top k (default: {d.top_k})")
    p.add_argument("--max-retries", type=int, default=d.max_retries, help=f"mutations tried per iteration (default: {d.max_retries})")
    p.add_argument("--subtree-prob", type=float, default=d.subtree_prob, help=f"chance a mutation regrows a subtree (default: {d.subtree_prob})")
    p.add_argument("--crossover-prob", type=float, default=d.crossover_prob,
                   help="chance a child is a typed one-point crossover of its parent with a second parent instead of a "
                   f"mutant (default: {d.crossover_prob:g}, Algorithm 1)")
    p.add_argument("--insert-prob", type=float, default=d.insert_prob,
                   help="chance a child is its parent with one node inserted above a random subtree (PySR's insert) "
                   f"instead of a mutant (default: {d.insert_prob:g}, Algorithm 1)")
    p.add_argument("--mode", choices=["steady", "generational"], default=d.mode,
                   help="steady: Auto-Prox's Algorithm 1, one child per iteration; generational: --children children per "
                   "iteration scored together in one pass (default: steady)")
    p.add_argument("--children", type=int, default=d.children, help=f"children per iteration in generational mode (default: {d.children})")
    p.add_argument("--time-limit", type=float, default=d.time_limit,
                   help=f"CPU seconds (wall seconds on a GPU) one program may take over the search split before it gets fitness -1; 0 for none (default: {d.time_limit:g})")
    p.add_argument("--resamples", type=int, default=d.resamples, metavar="B",
                   help="fitness from B seeded subsets of the search split (each --resample-fraction of it): the "
                   "--resample-quantile of their JCMs; 0 scores the whole split at once (default: 0)")
    p.add_argument("--resample-fraction", type=float, default=d.resample_fraction, help=f"share of the search rows in each subset (default: {d.resample_fraction})")
    p.add_argument("--resample-quantile", type=float, default=d.resample_quantile, help=f"quantile of the subsets' JCMs used as fitness (default: {d.resample_quantile})")
    p.add_argument("--resample-seed", type=int, default=d.resample_seed, metavar="S",
                   help="seed of the subsets; give the same S to runs of several --seed values so that their fitness "
                   "values compare (default: -1, the evolution seed)")
    p.add_argument("--validation", type=float, default=d.validation, metavar="FRACTION",
                   help="hold out this share of the search split; the final formula is the Pareto front's best on it "
                   "(default: 0, the fittest of the final population)")
    p.add_argument("--seed-programs", action="store_true", help="start the population with the grammar's named programs")
    p.add_argument("--init-from", default=d.init_from, metavar="RUN[,RUN...]",
                   help="start the population from finished runs of the same grammar: each run's best programs under "
                   "this run's fitness, an equal share per run (a warm start; default: none)")
    p.add_argument("--restarts", type=int, default=d.restarts, help=f"independent evolutions in a row, the pick made over all (default: {d.restarts})")
    p.add_argument("--log-every", type=int, default=None, metavar="N",
                   help="print a progress line every N iterations (default: 10 when stderr is not a terminal, else none)")
    p.add_argument("--metric", choices=FITNESS_METRICS, default=d.metric,
                   help="correlation inside the JCM; weighted_kendall counts the top of the ranking most, kendall_top "
                   "averages Kendall with the accuracy of the proxy's top --top-share of the rows (default: kendall)")
    p.add_argument("--top-share", type=float, default=d.top_share, metavar="SHARE",
                   help="kendall_top: the share of the search rows whose accuracy quantile it averages, a tenth by "
                   "default; a search keeps only its best few, and a smaller share judges that best few "
                   f"(default: {d.top_share})")
    p.add_argument("--join", choices=["mean", "min"], default=d.join, help="JCM over tasks: mean or min (default: mean)")
    p.add_argument("--absolute", action="store_true", help="use |correlation| in the JCM")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="processes computing the statistics the cache lacks, one thread each (default: 1; CPU only)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where statistics are computed and programs evaluated (default: cpu)")
    p.add_argument("--probe-data", default=None, help="probe images: digits, gaussian, photos (crops of scikit-image's natural photographs) or a path (default: the benchmark's dataset if packaged, else gaussian)")
    p.add_argument("--probe-batch", type=positive_int, default=None, help="probe batch size (default: 64 for digits, 16 for gaussian)")
    p.add_argument("--probe-rows", type=positive_int, default=None, help="activation rows kept per layer (default: 2048 for digits, 256 for gaussian)")
    p.add_argument("--stats-dtype", choices=["float32", "bfloat16"], default=None, help="storage precision of cached statistics (default: float32)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, out) -> int:
    from synth.config import EvolveConfig
    from synth.rundir import new_run_dir
    from synth.run import run_evolve_locked

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            out.error("--device cuda: no CUDA device is available")
            return 2
    try:
        config = EvolveConfig(
            population=args.population, iterations=args.iterations, mutation_prob=args.mutation_prob,
            margin=args.margin, sample_size=args.sample_size, top_k=args.top_k, max_retries=args.max_retries,
            subtree_prob=args.subtree_prob, crossover_prob=args.crossover_prob, insert_prob=args.insert_prob,
            metric=args.metric, top_share=args.top_share, join=args.join, absolute=args.absolute,
            seed=args.seed, split_seed=args.split_seed, mode=args.mode, children=args.children, time_limit=args.time_limit,
            resamples=args.resamples, resample_fraction=args.resample_fraction, resample_quantile=args.resample_quantile,
            resample_seed=args.resample_seed,
            validation=args.validation, seed_programs=args.seed_programs, restarts=args.restarts, init_from=args.init_from,
        ).validate()
    except ValueError as exc:
        out.error(str(exc))
        return 2
    if args.resume is not None:
        given = _settings_given(args, config)
        if given:
            out.error(f"--resume keeps the settings the run started with; drop {', '.join(given)} "
                      "(to run a run on for more iterations: --extend N)")
            return 2
        config = None
    elif args.extend is not None:
        out.error("--extend runs a run on: use it with --resume DIR")
        return 2
    run_dir = args.resume or args.out or new_run_dir()
    probe = {"dataset": args.probe_data, "batch_size": args.probe_batch, "max_rows": args.probe_rows, "dtype": args.stats_dtype}
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    record = run_evolve_locked(
        args.grammar, args.bench, run_dir, config, tasks=tasks, probe_overrides=probe, device=args.device,
        resume=args.resume is not None, force=args.force, extend=args.extend, allow_plugins=args.allow_plugins,
        workers=args.workers, progress=out.progress, log=out.info,
        log_every=args.log_every if args.log_every is not None else (0 if out.err.is_terminal else 10),
    )
    if out.json_mode:
        out.json({k: record[k] for k in ("formula", "latex", "fitness", "test", "baselines", "complexity")} | {"run_dir": str(run_dir)})
        return 0
    render_summary(record, run_dir, out)
    return 0


def _settings_given(args: argparse.Namespace, config) -> list[str]:
    """The options set on the command line (other than their defaults) that a resumed run would ignore."""
    from synth.config import EvolveConfig

    default = EvolveConfig().to_dict()
    given = [f"--{key.replace('_', '-')}" for key, value in config.to_dict().items() if value != default[key]]
    others = {"--grammar": args.grammar != "vit", "--bench": args.bench is not None, "--tasks": args.tasks is not None,
              "--probe-data": args.probe_data is not None, "--probe-batch": args.probe_batch is not None,
              "--probe-rows": args.probe_rows is not None, "--stats-dtype": args.stats_dtype is not None}
    return given + [flag for flag, set_ in others.items() if set_]


def render_summary(record, run_dir, out) -> None:
    """PySR-style hall of fame, then the winner against #params on the held-out split, from a
    `synth.records.RunRecord`."""
    out.table(
        "hall of fame (search split)",
        ["complexity", f"JCM ({record.config.metric})", "formula"],
        [[r.complexity, r.fitness, r.formula] for r in record.hall_of_fame[:8]],
    )
    test, params, flops = record.test, record.baselines["params"], record.baselines["flops"]
    out.table(
        f"discovered proxy: {record.formula}\n"
        f"search JCM {record.fitness:.4f}; held-out split: {len(record.split['test'])} architectures",
        ["task", "Kendall proxy", "Kendall #params", "Kendall FLOPs", "Spearman proxy", "Spearman #params"],
        [[task, test["kendall"][task], params["kendall"][task], flops["kendall"][task], test["spearman"][task],
          params["spearman"][task]] for task in record.bench["tasks"]],
    )
    from synth.fitness import unscored

    missing = unscored([math.nan if s is None else s for s in record.scores], record.split["test"])
    if missing:
        out.info(f"{missing} of the held-out architectures got no finite score; the proxy's correlations leave them out")
    proxy, params = record.resolution["proxy"], record.resolution["params"]
    out.info(f"resolution: the proxy gives {proxy['distinct']} distinct scores to {proxy['architectures']} architectures "
             f"(largest tie {proxy['largest_tie']}); #params gives {params['distinct']} (largest tie {params['largest_tie']})")
    costs, rejected = record.timing["program_costs"], record.rejections
    if costs.get("programs"):
        out.info(f"program cost over the search split: median {costs['median_seconds']:.3f} s, 99th percentile "
                 f"{costs['p99_seconds']:.3f} s, max {costs['max_seconds']:.3f} s (limit {costs['time_limit']:g} s)")
    if rejected:
        out.info("fitness -1: " + ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in rejected.items()))
    out.info(
        f"wrote {run_dir}/run.json and {run_dir}/proxy.py ({record.timing['total_seconds']:.0f} s, "
        f"{record.timing['distinct_programs']} distinct programs)"
    )
