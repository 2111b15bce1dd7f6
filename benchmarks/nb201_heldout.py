"""Held-out correlations of proxies evolved on NAS-Bench-201, on cells no run has seen.

Each RUN_DIR is a `synth evolve` run on a `nasbench201:<dataset>@N` sample, or on several joined
with '+'. Every cell of every run's benchmarks (their search and test splits) is left out; from the rest of the 15,625 cells a
seeded sample of `--cells` is drawn, and each run's exported proxy and each zoo proxy of `--zoo` are
scored on it under the runs' own probe (the runs must share one), through the zoo's per-architecture
cache, so an interrupted call resumes. The evolved formulas are scored by the engine (`Proxy.score`,
which the tests hold equal to the exported proxy.py) from one forward and backward pass per cell that
collects the union of the statistics they read, so N runs cost about one, not N; the first run's
seconds per cell include that pass. It prints Kendall tau-b and Spearman with the 200-epoch test
accuracy on cifar10, cifar100 and ImageNet16-120: per run, the evolved proxies' mean and spread over
the runs, then the zoo proxies on the same cells. Nothing here feeds back into a run.

    python benchmarks/nb201_heldout.py runs/nb-s0 runs/nb-s1 runs/nb-s2 --cells 3000 --json heldout.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from synth.bench import benchmark_space, load_benchmark
from synth.bench.joined import benchmark_sources
from synth.estimator import Evolution
from synth.fitness import correlations, unscored
from synth.rundir import json_text, write_text
from synth.probe import Probe
from synth.runtime import collect_statistics
from synth.zoo import FAMILIES, ProxySpec
from synth.zoo.scoring import ZooEntry, exported_proxy_digest, resolve_proxies, score_architectures

DATASETS = ["cifar10", "cifar100", "ImageNet16-120"]
METRICS = ("kendall", "spearman")


def run_records(run_dirs: list[Path]) -> list[dict]:
    records = []
    for run_dir in run_dirs:
        record = json.loads((run_dir / "run.json").read_text())
        if not all(str(part).startswith("nasbench201:") for part in benchmark_sources(record["bench"]["source"])):
            raise SystemExit(f"{run_dir}: evolved on {record['bench']['source']}, not on nasbench201:<dataset>@N samples")
        records.append(record)
    return records


def shared_probe(records: list[dict], run_dirs: list[Path]) -> Probe:
    probes = {json.dumps(r["probe"], sort_keys=True) for r in records}
    if len(probes) != 1:
        raise SystemExit(f"the runs used {len(probes)} different probes; compare runs made with one probe: "
                         + ", ".join(str(d) for d in run_dirs))
    return Probe(**records[0]["probe"])


def held_out_cells(records: list[dict], n: int, seed: int):
    """The full table (all three datasets as tasks) restricted to a seeded sample of `n` cells that
    are in no run's benchmark."""
    table = load_benchmark("nasbench201:cifar10", DATASETS)
    seen = set()
    for record in records:
        for part in benchmark_sources(record["bench"]["source"]):
            seen |= set(load_benchmark(part).meta.arch_ids)
    unseen = [i for i, cell in enumerate(table.meta.arch_ids) if cell not in seen]
    rows = sorted(np.random.default_rng(seed).choice(unseen, min(n, len(unseen)), replace=False).tolist())
    return table.subset(rows), len(seen)


class SharedStatistics:
    """The statistics every evolved formula reads, collected once per network: the first formula to
    score a network collects them, the others read them (the network is held so that a new one is
    never mistaken for it)."""

    def __init__(self, needed: set[str], probe: Probe):
        self.needed = needed  # statistics of all formulas' terminals
        self.probe = probe
        self.model, self.stats = None, None

    def of(self, model, inputs, targets) -> dict:
        if model is not self.model:
            self.model, self.stats = None, None
            self.stats = collect_statistics(model, inputs, targets, self.needed, self.probe.max_rows, self.probe.seed)
            self.model = model
        return self.stats


def evolved_entries(run_dirs: list[Path], probe: Probe) -> list[ZooEntry]:
    """One zoo entry per run: its winning formula, evaluated by the engine on shared statistics; the
    cache key is the digest of the run's exported proxy.py, as when that file itself is scored."""
    proxies = [Evolution.load(d).best for d in run_dirs]
    shared = SharedStatistics({stat for p in proxies for stat in p.statistics.values()}, probe)
    entries = []
    for run_dir, proxy in zip(run_dirs, proxies):
        def score(model, inputs, targets, loss_fn, proxy=proxy):
            return proxy.score_statistics(shared.of(model, inputs, targets))

        spec = ProxySpec(name=str(run_dir), fn=score, paper=f"synth evolved proxy: {proxy.formula}", families=FAMILIES)
        entries.append(ZooEntry(str(run_dir), spec, exported_proxy_digest(run_dir)))
    return entries


def held_out_correlations(scores: np.ndarray, targets: dict[str, np.ndarray]) -> dict:
    """{metric: {dataset: value}} over the cells with a finite score, and how many failed."""
    return {**correlations(scores, targets), "failed": unscored(scores)}


def row(name: str, result: dict) -> str:
    cells = [f"{result[m][d]:.3f}" for d in DATASETS for m in METRICS]
    return f"{name:34.34s} " + "  ".join(cells) + (f"  ({result['failed']} failed)" if result["failed"] else "")


def spread_row(name: str, results: list[dict]) -> str:
    cells = []
    for d in DATASETS:
        for m in METRICS:
            values = [r[m][d] for r in results]
            cells.append(f"{statistics.mean(values):.3f}±{statistics.pstdev(values):.3f}")
    return f"{name:34.34s} " + "  ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="synth evolve run directories on nasbench201 samples")
    parser.add_argument("--cells", type=int, default=3000, help="held-out cells to score (default: 3000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the held-out sample (default: 1)")
    parser.add_argument("--zoo", default="params,nwot,synflow,snip,zico", help="zoo proxies scored beside them")
    parser.add_argument("--json", type=Path, default=None, help="write every figure as JSON")
    parser.add_argument("--part", default=None, metavar="K/N",
                        help="only fill the cache for every N-th cell from the K-th (run N processes with K = 0..N-1, "
                             "then once without --part for the figures)")
    args = parser.parse_args()

    records = run_records(args.runs)
    probe = shared_probe(records, args.runs)
    bench, excluded = held_out_cells(records, args.cells, args.seed)
    space = benchmark_space(bench)
    names = [str(d) for d in args.runs] + [z for z in args.zoo.split(",") if z]
    entries = evolved_entries(args.runs, probe) + resolve_proxies(names[len(args.runs):], space)
    print(f"{len(bench)} held-out cells (seed {args.seed}; {excluded} cells of the runs' benchmarks left out), "
          f"probe {probe.dataset} x {probe.batch_size}", flush=True)
    start, last = time.perf_counter(), [0.0]

    def progress(done, total):
        if time.perf_counter() - last[0] > 60 or done == total:
            last[0] = time.perf_counter()
            print(f"  scored {done}/{total} cells, {last[0] - start:.0f} s", flush=True)

    if args.part:
        k, n = (int(x) for x in args.part.split("/"))
        archs = bench.archs[k::n]
        print(f"part {k}/{n}: {len(archs)} cells", flush=True)
        score_architectures(entries, space, archs, probe, progress=progress)
        return
    scored = score_architectures(entries, space, bench.archs, probe, progress=progress)
    results = {entry.name: held_out_correlations(scored[entry.name]["scores"], bench.targets) for entry in entries}
    header = f"{'proxy':34s} " + "  ".join(f"{d[:8]} {m[:3]}" for d in DATASETS for m in METRICS)
    print(header)
    for record, run_dir in zip(records, args.runs):
        print(row(f"{run_dir.name}: {record['formula']}", results[str(run_dir)]))
    if len(args.runs) > 1:
        print(spread_row(f"evolved, mean±sd over {len(args.runs)} runs", [results[str(d)] for d in args.runs]))
    for name in names[len(args.runs):]:
        print(row(name, results[name]))
    if args.json:
        write_text(args.json, json_text({"cells": len(bench), "seed": args.seed, "excluded": excluded,
                                         "probe": probe.to_dict(), "results": results,
                                         "formulas": {str(d): r["formula"] for d, r in zip(args.runs, records)},
                                         "seconds_per_cell": {e.name: float(np.median(scored[e.name]["seconds"]))
                                                              for e in entries}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
