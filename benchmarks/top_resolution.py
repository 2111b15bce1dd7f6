"""Can a benchmark order its own top? Seed noise against architecture signal in a group of networks.

A check such as "the pick lands at or above the 90th percentile" only measures a proxy if the
benchmark's accuracies separate the architectures around that percentile. This script takes a group
of a benchmark's architectures (chosen by their choices, not by their accuracy, so the test is not
biased by selection), trains them with more seeds than the benchmark has, and prints:

- one-way ANOVA of per-seed accuracy across the group's architectures (F, p);
- the seed-to-seed std within an architecture, the std of the architectures' mean accuracies, the
  std those means would have from seed noise alone, and the architecture spread left over;
- Spearman between the group's order on the benchmark's seeds and its order on the new seeds: near 1
  when the benchmark's order within the group is real, near 0 when seeds decide it.

Two steps; the training is `synth bench build` (resumable):

    python benchmarks/top_resolution.py archs --where embed_dim=64 --where depth=2,3,4 --out group.json
    synth bench build --arch-file group.json --seeds 3,4,5,6,7,8,9 --out group-seeds.json
    python benchmarks/top_resolution.py report group-seeds.json [--also check.json]

`--also` adds networks trained elsewhere with the benchmark's seeds (e.g. `synth bench check`'s
picks) that the new-seed file also holds. Without `--bench` the embedded vit-digits benchmark is used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from synth.bench import load_benchmark
from synth.space import arch_key


def parse_where(clauses: list[str]) -> dict[str, set[str]]:
    """'embed_dim=64' and 'depth=2,3,4' -> {choice: allowed values as text}."""
    allowed = {}
    for clause in clauses:
        name, sep, values = clause.partition("=")
        if not sep or not values:
            raise SystemExit(f"--where {clause!r}: write CHOICE=VALUE[,VALUE...]")
        allowed[name.strip()] = {v.strip() for v in values.split(",")}
    return allowed


def group_archs(bench, allowed: dict[str, set[str]]) -> list[dict]:
    """The benchmark's architectures whose named choices take one of the allowed values."""
    def fits(arch):
        return all(name in arch and str(arch[name]) in values for name, values in allowed.items())

    return [a for a in bench.archs if fits(a)]


def seeds_by_arch(rows: list[dict], seeds: list[int], task: str, into: dict) -> None:
    """Add {seed: accuracy} per architecture key from benchmark rows trained with `seeds`."""
    for row in rows:
        into.setdefault(arch_key(row["arch"]), {}).update(zip(seeds, row["seed_acc"][task]))


def resolution(old: np.ndarray, new: np.ndarray) -> dict:
    """Statistics of a group: `old` and `new` are architectures x seeds (the benchmark's, the new ones)."""
    both = np.concatenate([old, new], axis=1)
    means = both.mean(axis=1)
    within = float(both.var(axis=1, ddof=1).mean())
    noise_only = within / both.shape[1]
    anova = stats.f_oneway(*both)
    agreement = stats.spearmanr(old.mean(axis=1), new.mean(axis=1))
    return {"architectures": len(both), "seeds": both.shape[1], "anova_F": float(anova.statistic),
            "anova_p": float(anova.pvalue), "seed_std": within ** 0.5, "std_of_means": float(means.std(ddof=1)),
            "std_from_seed_noise_alone": noise_only ** 0.5,
            "architecture_std": max(0.0, float(means.var(ddof=1)) - noise_only) ** 0.5,
            "spearman_old_vs_new_seeds": float(agreement.statistic), "spearman_p": float(agreement.pvalue)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default=None, help="synth benchmark JSON (default: the embedded vit-digits)")
    actions = parser.add_subparsers(dest="action", required=True)
    pick = actions.add_parser("archs", help="write the group's architectures for synth bench build --arch-file")
    pick.add_argument("--where", action="append", default=[], help="CHOICE=VALUE[,VALUE...], repeatable")
    pick.add_argument("--out", type=Path, required=True)
    report = actions.add_parser("report", help="the group's resolution, from its new-seed benchmark")
    report.add_argument("new", type=Path, help="synth bench build output with the new seeds")
    report.add_argument("--also", type=Path, action="append", default=[],
                        help="a benchmark JSON trained with the benchmark's seeds (e.g. synth bench check's --out)")
    report.add_argument("--json", action="store_true", help="print the statistics as JSON")
    args = parser.parse_args()

    bench = load_benchmark(args.bench)
    if args.action == "archs":
        group = group_archs(bench, parse_where(args.where))
        args.out.write_text(json.dumps(group, indent=1))
        print(f"wrote {len(group)} of {len(bench)} architectures to {args.out}")
        return
    task = bench.tasks[0]
    seeds = [int(s) for s in bench.meta.seeds]
    old: dict = {}
    seeds_by_arch(bench.meta.rows, seeds, task, old)
    for path in args.also:
        raw = json.loads(path.read_text())
        seeds_by_arch(raw["rows"], [int(s) for s in raw["seeds"]], task, old)
    raw = json.loads(args.new.read_text())
    new_seeds = [int(s) for s in raw["seeds"]]
    if set(new_seeds) & set(seeds):
        raise SystemExit(f"{args.new}: seeds {sorted(set(new_seeds) & set(seeds))} are the benchmark's own; train new ones")
    new: dict = {}
    seeds_by_arch(raw["rows"], new_seeds, task, new)
    keys = [k for k in new if set(seeds) <= set(old.get(k, {}))]
    if len(keys) < 3:
        raise SystemExit(f"{args.new}: only {len(keys)} architectures also have the benchmark's seeds; need 3")
    stats_ = resolution(np.array([[old[k][s] for s in seeds] for k in keys]),
                        np.array([[new[k][s] for s in new_seeds] for k in keys]))
    if args.json:
        print(json.dumps(stats_, indent=1))
        return
    print(f"{stats_['architectures']} architectures x {stats_['seeds']} seeds ({len(seeds)} of the benchmark's, "
          f"{len(new_seeds)} new) on {task}")
    print(f"one-way ANOVA across architectures: F = {stats_['anova_F']:.2f}, p = {stats_['anova_p']:.2f}")
    print(f"seed std within an architecture {stats_['seed_std']:.2f}; std of mean accuracies {stats_['std_of_means']:.2f}, "
          f"of which seed noise alone gives {stats_['std_from_seed_noise_alone']:.2f}; "
          f"architecture spread left over {stats_['architecture_std']:.2f}")
    print(f"order on the benchmark's seeds vs the new seeds: Spearman {stats_['spearman_old_vs_new_seeds']:.2f} "
          f"(p = {stats_['spearman_p']:.2f})")


if __name__ == "__main__":
    main()
