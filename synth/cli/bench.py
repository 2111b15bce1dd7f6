"""`synth bench`: build ground truth by training architectures for real."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="build and inspect benchmarks (ground truth)")
    actions = bench.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="train architectures of a space with several seeds and write a benchmark JSON",
        description="Train N architectures sampled from a space, each with every seed, on a dataset that "
        "ships in a package, and write architectures, mean and per-seed accuracies and the recipe. "
        "A killed build resumes from OUT.partial.jsonl.",
    )
    build.add_argument("--space", default="vit-digits", help="space name or YAML path (default: vit-digits)")
    build.add_argument("--archs", type=int, default=120, help="number of distinct architectures (default: 120)")
    build.add_argument("--arch-seed", type=int, default=0, help="seed for sampling architectures (default: 0)")
    build.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated (default: 0,1,2)")
    build.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    build.add_argument("--workers", type=int, default=2, help="parallel training processes (default: 2)")
    build.add_argument("--out", type=Path, required=True, help="output benchmark JSON")
    build.set_defaults(handler=run_build)


def run_build(args: argparse.Namespace, out) -> int:
    from synth.bench import build_benchmark, seed_noise_summary
    from synth.space import load_space
    from synth.train import Recipe

    space = load_space(args.space)
    archs = space.sample_distinct(args.archs, args.arch_seed)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    recipe = Recipe(**({"epochs": args.epochs} if args.epochs else {}))
    with out.progress(f"training {len(archs)} archs x {len(seeds)} seeds", len(archs) * len(seeds)) as advance:
        meta = {"sampling": {"method": "uniform per choice, distinct architectures", "arch_seed": args.arch_seed}}
        bench = build_benchmark(space, archs, seeds, recipe, args.out, workers=args.workers, progress=advance, meta=meta)
    summary = seed_noise_summary(bench)
    if out.json_mode:
        out.json({"out": str(args.out), "rows": len(bench["rows"]), "noise": summary})
    out.table(
        f"benchmark {args.out}",
        ["task", "archs", "mean seed std", "std across archs", "ratio"],
        [[task, len(bench["rows"]), s["seed_std"], s["arch_std"], s["ratio"]] for task, s in summary.items()],
    )
    return 0
