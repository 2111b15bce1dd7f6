"""`synth bench`: build ground truth by training architectures for real."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="build and inspect benchmarks (ground truth)")
    actions = bench.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    _add_build(actions)
    _add_merge(actions)
    _add_check(actions)


def _add_build(actions) -> None:
    build = actions.add_parser(
        "build",
        help="train architectures of a space with several seeds and write a benchmark JSON",
        description="Train architectures of a space (sampled, or listed in a file), each with every seed, on "
        "digits or your own images, on the CPU or a GPU, and write architectures, mean and per-seed accuracies, "
        "the recipe and the data's source. Results are appended to OUT.partial.jsonl as they finish, and the "
        "build's settings kept in OUT.build.json: a killed build resumes with --resume OUT (or the same command "
        "again) without retraining them.",
        epilog="examples:\n"
        "  synth bench build --space vit-digits --archs 120 --seeds 0,1,2 --out my_bench.json\n"
        "  synth bench build --resume my_bench.json      # continue a killed build with its own settings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--space", default="vit-digits", help="space name or YAML path (default: vit-digits)")
    which = build.add_mutually_exclusive_group()
    which.add_argument("--archs", type=int, default=120, help="sample this many distinct architectures (default: 120)")
    which.add_argument("--arch-file", type=Path, metavar="FILE",
                       help="train these architectures instead: a JSON list, {\"archs\": [...]}, a benchmark JSON "
                       "(its rows, e.g. to add seeds), a search.json (its \"top\" entries) or JSONL with one per line")
    build.add_argument("--arch-seed", type=int, default=0, help="seed for sampling architectures (default: 0)")
    build.add_argument("--dataset", metavar="NAME|PATH",
                       help="digits, a folder of images (class subfolders give labels) or a .pt/.pth file with images "
                       "and labels; overrides the recipe's (default: digits)")
    build.add_argument("--recipe", type=Path, metavar="FILE", help="YAML or JSON file of training recipe fields "
                       "(epochs, batch_size, optimizer, lr, ...); fields left out keep their defaults")
    build.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    build.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated (default: 0,1,2)")
    build.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="train on the CPU or a CUDA GPU (default: cpu)")
    build.add_argument("--workers", type=int, default=None, help="parallel training processes (default: 2 on cpu, 1 on cuda)")
    target = build.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="output benchmark JSON")
    target.add_argument("--resume", type=Path, metavar="OUT", help="continue the build of OUT with the settings it "
                        "started with (kept in OUT.build.json); finished trainings are not repeated")
    build.set_defaults(handler=run_build)


BUILD_DEFAULTS = {"space": "vit-digits", "archs": 120, "arch_file": None, "arch_seed": 0, "dataset": None, "recipe": None,
                  "epochs": None, "seeds": "0,1,2", "device": "cpu"}


def run_build(args: argparse.Namespace, out) -> int:
    from synth.bench import build_benchmark, seed_noise_summary
    from synth.rundir import write_checkpoint

    if args.resume is not None:
        target, (space, archs, seeds, recipe, device, chosen) = args.resume, _resumed_build(args)
    else:
        from synth.space import load_space

        target, space, device = args.out, load_space(args.space), args.device
        recipe, (archs, chosen), seeds = _recipe(args), _archs(args, space), _seeds(args.seeds)
        write_checkpoint(_settings_file(target), {"space": str(Path(space.source).resolve()) if space.source else space.name, "archs": archs, "seeds": seeds,
                                                  "recipe": recipe.to_dict(), "device": device, "sampling": chosen})
    workers = args.workers or (1 if device == "cuda" else 2)
    with out.progress(f"training {len(archs)} archs x {len(seeds)} seeds", len(archs) * len(seeds)) as advance:
        bench = build_benchmark(space, archs, seeds, recipe, target, workers=workers, device=device,
                                progress=advance, meta={"sampling": chosen})
    summary = seed_noise_summary(bench)
    if out.json_mode:
        out.json({"out": str(target), "rows": len(bench["rows"]), "noise": summary})
    out.table(
        f"benchmark {target}",
        ["task", "archs", "mean seed std", "std across archs", "ratio"],
        [[task, len(bench["rows"]), s["seed_std"], s["arch_std"], s["ratio"]] for task, s in summary.items()],
    )
    return 0


def _settings_file(target: Path) -> Path:
    """Where a build keeps the settings it started with: OUT.build.json beside OUT."""
    return target.with_name(target.name + ".build.json")


def _resumed_build(args: argparse.Namespace) -> tuple:
    """(space, archs, seeds, recipe, device, how the archs were chosen) of the build `--resume` names,
    from its settings file; InputError when other settings are given with it (only --workers may be)."""
    from synth.errors import InputError
    from synth.rundir import read_checked_record
    from synth.space import load_space
    from synth.train import Recipe

    given = [f"--{name.replace('_', '-')}" for name, default in BUILD_DEFAULTS.items() if getattr(args, name) != default]
    if given:
        raise InputError(f"--resume keeps the settings the build started with; drop {', '.join(given)}")
    path = _settings_file(args.resume)
    saved = read_checked_record(path, f"no build settings to resume from (was {args.resume} built by synth bench build "
                                "--out? Builds of older versions resume by running the same command again)",
                                ("space", "archs", "seeds", "recipe", "device", "sampling"))
    space = load_space(saved["space"])
    try:
        recipe = Recipe(**saved["recipe"])
        archs = [space.validate(arch) for arch in saved["archs"]]
    except (TypeError, InputError) as exc:
        raise InputError(f"{path}: not build settings this synth can use ({exc})") from None
    return space, archs, saved["seeds"], recipe, saved["device"], saved["sampling"]


def _recipe(args: argparse.Namespace):
    """The recipe file's (or the default) recipe, with --epochs and --dataset applied over it."""
    import dataclasses

    from synth.train import Recipe

    recipe = Recipe.from_file(args.recipe) if args.recipe else Recipe()
    overrides = {"epochs": args.epochs, "dataset": args.dataset}
    return dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})


def _archs(args: argparse.Namespace, space) -> tuple[list[dict], dict]:
    """(architectures to train, how they were chosen, for the benchmark file)."""
    from synth.bench import load_arch_file
    from synth.errors import InputError

    if args.arch_file:
        return load_arch_file(args.arch_file, space), {"method": "architecture file", "arch_file": str(args.arch_file)}
    if args.archs < 1:
        raise InputError(f"--archs {args.archs}: train at least one architecture")
    archs = space.sample_distinct(args.archs, args.arch_seed)
    return archs, {"method": "uniform per choice, distinct architectures", "arch_seed": args.arch_seed}


def _seeds(text: str) -> list[int]:
    from synth.errors import InputError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds {text!r}: expected whole numbers separated by commas, e.g. 0,1,2") from None
    if not seeds:
        raise InputError("--seeds: give at least one training seed")
    return seeds


def _add_merge(actions) -> None:
    merge = actions.add_parser(
        "merge",
        help="join benchmark files built alike (more architectures or more seeds) into one",
        description="Grow a benchmark without retraining: join benchmark JSONs written by synth bench build with "
        "the same space, tasks, recipe and dataset. Rows are joined by architecture, each getting the union of its "
        "seeds, and mean accuracies are recomputed over them. Every architecture must end up with every seed (train "
        "missing ones with synth bench build --arch-file ... --seeds ...); the same architecture and seed with "
        "different accuracies in two files is an error.",
        epilog="example (my_bench.json was trained with seeds 0,1,2):\n"
        "  synth bench build --arch-file my_bench.json --seeds 3,4 --out more_seeds.json\n"
        "  synth bench merge my_bench.json more_seeds.json --out merged.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument("benchmarks", nargs="+", type=Path, metavar="BENCH_JSON",
                       help="benchmark files; the merged file keeps the first one's row order and metadata")
    merge.add_argument("--out", type=Path, required=True, help="merged benchmark JSON (written atomically)")
    merge.set_defaults(handler=run_merge)


def run_merge(args: argparse.Namespace, out) -> int:
    from synth.bench import merge_benchmarks
    from synth.rundir import write_json

    parts = []
    bench = merge_benchmarks(args.benchmarks, report=parts.append)
    write_json(args.out, bench)
    if out.json_mode:
        out.json({"out": str(args.out), "archs": len(bench["rows"]), "seeds": bench["seeds"], "files": parts})
        return 0
    brought = "; ".join(f"{p['path']}: {p['rows']} rows, {p['new_archs']} new architectures, {p['gained_seeds']} with new seeds"
                        for p in parts)
    out.info(f"wrote {args.out}: {len(bench['rows'])} architectures x {len(bench['seeds'])} seeds {bench['seeds']}; {brought}")
    return 0


def _add_check(actions) -> None:
    check = actions.add_parser(
        "check",
        help="place the picks of synth search runs in a benchmark's accuracy distribution (trained, or looked up in a table)",
        description="Train the top architecture(s) of each search directory with the benchmark's own recipe and "
        "seeds (as its architectures were trained; results kept in --out and resumable), then report each pick's "
        "accuracy, its percentile and rank in the benchmark, and its gap to the benchmark's best architecture. "
        "A published table without a recipe (nasbench201:cifar10, ...: all 15,625 NAS-Bench-201 cells) is not "
        "trained: each pick's accuracy is looked up in it and placed among all of its cells.",
        epilog="examples:\n  synth bench check runs/search-evolved-0 runs/search-params-0 --out check.json\n"
        "  synth bench check runs/nb201-params-0 runs/nb201-nwot-0 --bench nasbench201:cifar100   # table lookup",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("searches", nargs="+", type=Path, metavar="SEARCH_DIR", help="directories written by synth search")
    check.add_argument("--bench", default=None, help="benchmark built by synth bench build, or a published table to look "
                       "picks up in (nasbench201:cifar10, nasbench201:cifar100, nasbench201:ImageNet16-120); "
                       "default: the embedded vit-digits")
    check.add_argument("--top", type=int, default=1, help="picks per search to train (default: 1)")
    check.add_argument("--out", type=Path, default=Path("check.json"), help="trained picks, as a benchmark JSON; not "
                       "written for a table lookup (default: check.json)")
    check.add_argument("--threshold", type=float, default=90.0,
                       help="percentile whose chance under seed noise is reported for each pick (default: 90)")
    check.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="train on the CPU or a CUDA GPU (default: cpu)")
    check.add_argument("--workers", type=int, default=None, help="parallel training processes (default: 2 on cpu, 1 on cuda)")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace, out) -> int:
    import numpy as np

    from synth.bench import load_benchmark
    from synth.bench.check import benchmark_recipe, check_picks, lookup_picks, records_recipe, search_picks
    from synth.errors import InputError

    if args.top < 1:
        raise InputError(f"--top {args.top}: check at least one pick per search")
    if not 0 <= args.threshold <= 100:
        raise InputError(f"--threshold {args.threshold}: a percentile is between 0 and 100")
    bench = load_benchmark(args.bench)
    picks = [pick for search in args.searches for pick in search_picks(search, args.top)]
    if not records_recipe(bench):
        return _render_lookup(bench, lookup_picks(bench, picks), out)
    workers = args.workers or (1 if args.device == "cuda" else 2)
    seeds = benchmark_recipe(bench)[1]
    with out.progress(f"training {len(picks)} picks x {len(seeds)} seeds", len(picks) * len(seeds)) as advance:
        report = check_picks(bench, picks, args.out, workers=workers, device=args.device, progress=advance,
                             threshold=args.threshold)
    by_proxy = {}
    for r in report:
        by_proxy.setdefault(r["proxy"], []).append(r)
    summary = {proxy: {"picks": len(rs), "mean_acc": float(np.mean([r["acc"] for r in rs])),
                       "mean_percentile": float(np.mean([r["percentile"] for r in rs])),
                       "min_percentile": float(np.min([r["percentile"] for r in rs])),
                       "mean_chance_at_or_above": _mean_chance(rs)} for proxy, rs in by_proxy.items()}
    if out.json_mode:
        out.json({"benchmark": bench.name, "picks": report, "by_proxy": summary})
        return 0
    best = report[0]["best"]
    out.table(
        f"picks trained with {bench.name}'s recipe ({len(bench.meta.seeds or [])} seeds); "
        f"benchmark best {best:.2f}, {report[0]['of']} architectures",
        ["search", "proxy", "seed", "params", "accuracy", "percentile (seed noise)", f"P(>= {args.threshold:g}th)", "rank", "gap"],
        [[Path(r["search"]).name, Path(r["proxy"]).name, r["search_seed"], int(r["params"]),
          f"{r['acc']:.2f} ± {np.std(r['seed_acc'], ddof=1) if len(r['seed_acc']) > 1 else 0:.2f}",
          *_percentile_cells(r), f"{r['rank']}/{r['of']}", f"{r['gap']:.2f}"]
         for r in report],
    )
    out.table("by proxy", ["proxy", "picks", "mean accuracy", "mean percentile", "lowest percentile",
                           f"mean P(>= {args.threshold:g}th)"],
              [[Path(p).name, s["picks"], f"{s['mean_acc']:.2f}", f"{s['mean_percentile']:.1f}", f"{s['min_percentile']:.1f}",
                "-" if s["mean_chance_at_or_above"] is None else f"{s['mean_chance_at_or_above']:.2f}"]
               for p, s in summary.items()])
    out.info("in brackets, the 5th-95th percentile range when every architecture's seeds (the pick's and the "
             "benchmark's) are resampled; P is the chance of the threshold under that resampling")
    out.info(f"trained picks are in {args.out}")
    return 0


def _render_lookup(bench, report: list[dict], out) -> int:
    """The picks' accuracies as the table holds them, per task, and the mean over searches of each proxy."""
    import numpy as np

    groups: dict[tuple, list] = {}
    for r in report:
        groups.setdefault((r["proxy"], r["task"]), []).append(r)
    summary: dict[str, dict] = {}
    for (proxy, task), rs in groups.items():
        summary.setdefault(proxy, {})[task] = {
            "picks": len(rs), "mean_acc": float(np.mean([r["acc"] for r in rs])),
            "mean_percentile": float(np.mean([r["percentile"] for r in rs])),
            "min_percentile": float(np.min([r["percentile"] for r in rs]))}
    if out.json_mode:
        out.json({"benchmark": bench.name, "lookup": True, "picks": report, "by_proxy": summary})
        return 0
    best = {r["task"]: (r["best"], r["of"]) for r in report}
    out.table(
        f"picks looked up in {bench.name} (no training); best "
        + ", ".join(f"{t} {b:.2f} of {n} architectures" for t, (b, n) in best.items()),
        ["search", "proxy", "seed", "params", "task", "accuracy", "percentile", "rank", "gap", "best scored (place)"],
        [[Path(r["search"]).name, Path(r["proxy"]).name, r["search_seed"], int(r["params"]), r["task"], f"{r['acc']:.2f}",
          f"{r['percentile']:.2f}", f"{r['rank']}/{r['of']}", f"{r['gap']:.2f}", _reach_cell(r["best_scored"])] for r in report],
    )
    out.info("best scored: the most accurate architecture the search scored, its percentile, and where the search's "
             "own ranking placed it (1 = the pick): a good one placed low is the proxy's miss, none is the search's")
    out.table("by proxy", ["proxy", "task", "picks", "mean accuracy", "mean percentile", "lowest percentile"],
              [[Path(proxy).name, task, s["picks"], f"{s['mean_acc']:.2f}", f"{s['mean_percentile']:.2f}",
                f"{s['min_percentile']:.2f}"] for proxy, tasks in summary.items() for task, s in tasks.items()])
    return 0


def _reach_cell(best: dict | None) -> str:
    if best is None:
        return "-"
    return f"{best['acc']:.2f}, {best['percentile']:.1f} ({best['place']} of {best['scored']})"


def _mean_chance(report: list[dict]) -> float | None:
    chances = [r["seed_noise"]["chance_at_or_above"] for r in report if r["seed_noise"]]
    return float(sum(chances) / len(chances)) if chances else None


def _percentile_cells(pick: dict) -> list[str]:
    """'92.5 (83.3-98.3)' and the chance of the threshold; the percentile alone without per-seed accuracies."""
    noise = pick["seed_noise"]
    if noise is None:
        return [f"{pick['percentile']:.1f}", "-"]
    low, high = noise["percentile_interval"]
    return [f"{pick['percentile']:.1f} ({low:.1f}-{high:.1f})", f"{noise['chance_at_or_above']:.2f}"]
