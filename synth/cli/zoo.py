"""`synth zoo`: tabulate hand-designed (and exported evolved) proxies on a benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from synth.cli._probe import add_probe_arguments, positive_int, probe_overrides

__all__ = ["add_parser"]

EXAMPLES = """examples:
  synth zoo --bench nasbench201-zc:cifar10 --proxies params,synflow,snip --json zoo.json
  synth zoo --space autoformer-tiny --bench vit-bench-101 --sample 50
  synth zoo --bench vit-bench-101 --proxies dss,runs/s1/proxy.py      # an evolved proxy beside DSS
  synth zoo --bench vit-bench-101 --proxies dss,runs/s1 --split test   # ... on the architectures it never saw
  synth zoo --bench my_bench.json --probe-data ~/images/train          # a real probe batch
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "zoo",
        help="score a benchmark's architectures with zero-cost proxies and correlate with accuracy",
        description="Score every architecture of a benchmark with every chosen proxy (one shared, seeded probe "
        "batch; cached, so an interrupted run resumes) and print Kendall tau-b, Spearman and Pearson with each "
        "task and seconds per architecture. Where the benchmark carries a reference implementation's scores "
        "(NASLib's, for nasbench201-zc), their agreement with synth's is shown too.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", default=None, help="search space (default: the benchmark's; must match it if given)")
    p.add_argument("--bench", default=None, help="benchmark: a named source (vit-bench-101, nasbench201-zc:cifar10, ...) "
                   "or a file; default: the embedded vit-digits benchmark")
    p.add_argument("--tasks", default=None, help="comma-separated accuracy columns (default: the benchmark's)")
    p.add_argument("--proxies", default=None, help="comma-separated zoo names, exported proxy.py files or run "
                   "directories (default: every zoo proxy defined for the space's family)")
    p.add_argument("--list", action="store_true", help="list the zoo's proxies with their papers and exit")
    p.add_argument("--sample", type=positive_int, default=None, metavar="N", help="score a seeded random subset of N architectures "
                   "(kept in benchmark order; default: all)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the --sample subset (default: 0)")
    p.add_argument("--split", choices=["all", "search", "test"], default="all", help="score only one part of synth evolve's "
                   "seeded search/test split, e.g. test to compare with an evolved proxy on architectures it never saw (default: all)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of that split, as synth evolve --split-seed (default: 0)")
    p.add_argument("--json", dest="json_file", type=Path, default=None, metavar="FILE", help="write the full result as JSON")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where networks run (default: cpu)")
    add_probe_arguments(p, "the benchmark's dataset if packaged, else gaussian")
    p.set_defaults(handler=run)


def _list(out) -> int:
    from synth.zoo import get_proxy, proxy_names

    rows = [[n, ", ".join(get_proxy(n).families), "no" if not get_proxy(n).uses_data else "yes", get_proxy(n).paper]
            for n in proxy_names()]
    if out.json_mode:
        out.json({r[0]: {"families": r[1].split(", "), "uses_data": r[2] == "yes", "paper": r[3]} for r in rows})
    out.table("zoo proxies", ["proxy", "families", "reads data", "paper"], rows)
    return 0


def run(args: argparse.Namespace, out) -> int:
    from dataclasses import replace

    from synth.bench import benchmark_space, load_benchmark, require_rankable, split_indices
    from synth.bench.record import sample_rows
    from synth.errors import InputError
    from synth.probe import default_probe
    from synth.rundir import write_json
    from synth.space import arch_key
    from synth.zoo.scoring import resolve_proxies, score_architectures, zoo_report

    if args.list:
        return _list(out)
    if args.json_file and args.json_file.is_dir():
        raise InputError(f"--json {args.json_file}: is a folder; give a file name, e.g. {args.json_file / 'zoo.json'}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    bench = load_benchmark(args.bench, tasks)
    space = benchmark_space(bench)
    if args.space and args.space not in (space.name, space.source):
        raise InputError(f"--space {args.space}: benchmark {bench.name!r} holds architectures of space {space.name!r}")
    if args.split != "all":
        search_rows, test_rows = split_indices(len(bench), args.split_seed)
        bench = bench.subset(test_rows if args.split == "test" else search_rows)
    if args.sample and args.sample < len(bench):
        bench = bench.subset(sample_rows(len(bench), args.sample, args.sample_seed))
    require_rankable(bench, part="rows chosen by --split and --sample")
    archs = bench.archs
    ids = bench.meta.arch_ids or [arch_key(a) for a in archs]
    entries = resolve_proxies([p.strip() for p in args.proxies.split(",") if p.strip()] if args.proxies else None, space)
    probe = replace(default_probe(bench, space), **probe_overrides(args))
    out.info(f"benchmark {bench.name}: {len(archs)} architectures of {space.name}; tasks {', '.join(bench.tasks)}; "
             f"probe {probe.dataset} x {probe.batch_size} (seed {probe.seed}), init seed {probe.init_seed}")
    with out.progress(f"{len(entries)} proxies", len(archs)) as advance:
        scored = score_architectures(entries, space, archs, probe, args.device, progress=advance)
    report = zoo_report(bench, scored, ids)
    report["benchmark"] = {"name": bench.name, "space": space.name, "tasks": bench.tasks, "architectures": len(archs),
                           "sample": {"n": args.sample, "seed": args.sample_seed} if args.sample else None,
                           "split": None if args.split == "all" else {"part": args.split, "seed": args.split_seed}}
    report["probe"] = probe.to_dict()
    if args.json_file:
        write_json(args.json_file, report)
    for name, entry in report["proxies"].items():
        for message, count in entry["errors"].items():
            out.info(f"note: {name}: {count} of {len(archs)} architectures scored NaN: {message}")
        finite = {v for v in entry["scores"].values() if v is not None}
        if len(finite) == 1 and len(archs) > 1:
            out.info(f"note: {name}: every architecture scored {finite.pop()}, so it ranks nothing with this probe "
                     "(swap saturates at 2^batch patterns; epe_nas needs classes seen twice): try a larger --probe-batch")
    if out.json_mode:
        out.json(report)
        return 0
    render_table(report, bench.tasks, out)
    if args.json_file:
        out.info(f"wrote {args.json_file}")
    return 0


def render_table(report: dict, tasks: list[str], out) -> None:
    proxies = report["proxies"]
    with_ref = any("reference" in e for e in proxies.values())
    columns = ["proxy"] + [f"{m} {t}" for m in ("Kendall", "Spearman", "Pearson") for t in tasks] + ["s/arch"]
    if with_ref:
        columns += ["ρ vs reference", "reference Kendall"]
    rows = []
    for name, e in proxies.items():
        row = [name] + [e[m][t] for m in ("kendall", "spearman", "pearson") for t in tasks] + [e["seconds_per_arch"]]
        if with_ref:
            ref = e.get("reference")
            row += [ref["spearman_with_ours"], " ".join(f"{v:.4f}" for v in ref["kendall"].values())] if ref else [None, None]
        rows.append(row)
    b = report["benchmark"]
    out.table(f"zoo on {b['name']} ({b['architectures']} architectures of {b['space']})", columns, rows)
