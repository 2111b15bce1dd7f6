"""Ablation of synth evolve's search options: each on and off, over seeds, on the held-out split.

Runs `synth evolve` once per (variant, seed) into OUT/<variant>/seed<N>/ (a finished run is read
back, an interrupted one resumed, so the script can be stopped and started again), then prints one
table: per variant the held-out mean Kendall tau-b (mean over tasks), its mean and spread over the
seeds, a bootstrap 90% interval over the held-out architectures (the same resampled rows for every
row of the table, so rows compare paired), the search-split fitness, and programs scored and
minutes per run. #params and, with `--zoo FILE` (a `synth zoo --json` file of the same benchmark),
every zoo proxy follow on the same held-out rows and the same draws. Every choice is made on the
search split; the test split is only reported here.

    python benchmarks/ablation.py --bench vit-bench-101 --seeds 0,1,2 --out runs/ablation --zoo zoo.json
    python benchmarks/ablation.py --only baseline,validation --iterations 50      # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from synth.bench import load_benchmark
from synth.evolve import EvolveConfig
from synth.fitness import correlation
from synth.run import run_evolve
from synth.space import arch_key

# variant -> EvolveConfig overrides ("iterations" scales the --iterations given)
VARIANTS = {
    "baseline": {},
    "resamples": {"resamples": 20},
    "validation": {"validation": 0.25},
    "seed-programs": {"seed_programs": True},
    "restarts": {"restarts": 2},
    "generational": {"mode": "generational", "children": 20, "iterations": 0.1},
    "crossover-insert": {"crossover_prob": 0.25, "insert_prob": 0.25},
    "all": {"resamples": 20, "validation": 0.25, "seed_programs": True, "restarts": 2},
}


def config_for(variant: str, seed: int, iterations: int) -> EvolveConfig:
    overrides = dict(VARIANTS[variant])
    scale = overrides.pop("iterations", 1.0)
    return EvolveConfig(seed=seed, iterations=max(1, int(round(iterations * scale))), **overrides).validate()


def run_once(grammar: str, bench: str | None, out: Path, config: EvolveConfig) -> dict:
    """The run's record: read back if finished, resumed if interrupted, run otherwise."""
    if (out / "run.json").is_file():
        return json.loads((out / "run.json").read_text())
    resume = (out / "checkpoint.json").is_file()
    return run_evolve(grammar, bench, out, config, resume=resume, log=lambda m: print(f"  {m}", flush=True))


def held_out_kendall(scores: np.ndarray, targets: dict[str, np.ndarray], rows: np.ndarray) -> float:
    """Mean over tasks of Kendall tau-b on `rows` (synth.fitness.correlation; rows without a finite
    score, or without a target, left out)."""
    s = scores[rows]
    keep = np.isfinite(s)
    return float(np.mean([correlation(s[keep], target[rows][keep], "kendall") for target in targets.values()]))


def summarise(per_seed_scores: list[np.ndarray], targets, test_rows: np.ndarray, draws: list[np.ndarray]) -> dict:
    """Mean and spread over seeds of the held-out mean Kendall, and its bootstrap 90% interval."""
    values = [held_out_kendall(s, targets, test_rows) for s in per_seed_scores]
    boot = [np.mean([held_out_kendall(s, targets, test_rows[d]) for s in per_seed_scores]) for d in draws]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": values,
            "ci90": [float(np.percentile(boot, 5)), float(np.percentile(boot, 95))]}


def zoo_scores(path: Path, archs: list[dict]) -> dict[str, np.ndarray]:
    """{proxy: score per benchmark row} from a `synth zoo --json` file (NaN where a row is missing)."""
    proxies = json.loads(path.read_text())["proxies"]
    keys = [arch_key(a) for a in archs]
    out = {}
    for name, entry in proxies.items():
        by_key = entry["scores"]
        out[name] = np.array([np.nan if by_key.get(k) is None else by_key[k] for k in keys], dtype=float)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default=None, help="benchmark source (default: the embedded vit-digits)")
    parser.add_argument("--grammar", default="vit")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=EvolveConfig().iterations)
    parser.add_argument("--only", default=",".join(VARIANTS), help=f"variants to run (default: all of {', '.join(VARIANTS)})")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--zoo", type=Path, default=None, help="a synth zoo --json file of the same benchmark")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws of the held-out rows")
    args = parser.parse_args()

    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v.strip() for v in args.only.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    bench = load_benchmark(args.bench)
    records = {}
    for variant in variants:
        for seed in seeds:
            print(f"{variant}, seed {seed}", flush=True)
            records[variant, seed] = run_once(args.grammar, args.bench, args.out / variant / f"seed{seed}",
                                              config_for(variant, seed, args.iterations))
    first = next(iter(records.values()))
    test_rows = np.array(first["split"]["test"])
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(test_rows), len(test_rows)) for _ in range(args.draws)]
    rows = []
    for variant in variants:
        runs = [records[variant, s] for s in seeds]
        if any(r["split"]["test"] != first["split"]["test"] for r in runs):
            raise SystemExit("runs with different test splits cannot share one table")
        scores = [np.array([np.nan if v is None else v for v in r["scores"]], dtype=float) for r in runs]
        summary = summarise(scores, bench.targets, test_rows, draws)
        rows.append((variant, summary, statistics.mean(r["fitness"] for r in runs),
                     statistics.mean(r["timing"]["distinct_programs"] for r in runs),
                     statistics.mean(r["timing"]["total_seconds"] for r in runs) / 60,
                     [r["formula"] for r in runs]))
    from synth.baselines import size_baselines
    from synth.bench import benchmark_space

    references = {"#params": size_baselines(benchmark_space(bench), bench.archs)["params"]}
    if args.zoo:
        references.update(zoo_scores(args.zoo, bench.archs))

    print(f"\n{bench.name}: held-out {len(test_rows)} architectures, Kendall tau-b mean over tasks "
          f"({', '.join(bench.tasks)}); seeds {args.seeds}; bootstrap 90% interval over {args.draws} draws of the held-out rows")
    print(f"{'variant / proxy':<18}{'held-out mean':>14}{'seed std':>10}{'90% interval':>18}{'search JCM':>12}"
          f"{'programs':>10}{'min/run':>9}")
    for variant, summary, fitness, programs, minutes, _ in rows:
        lo, hi = summary["ci90"]
        print(f"{variant:<18}{summary['mean']:>14.3f}{summary['std']:>10.3f}{f'[{lo:.3f}, {hi:.3f}]':>18}"
              f"{fitness:>12.3f}{programs:>10.0f}{minutes:>9.1f}")
    for name, values in references.items():
        summary = summarise([values], bench.targets, test_rows, draws)
        lo, hi = summary["ci90"]
        print(f"{name:<18}{summary['mean']:>14.3f}{'-':>10}{f'[{lo:.3f}, {hi:.3f}]':>18}")
    print("\nwinners:")
    for variant, *_, formulas in rows:
        for seed, formula in zip(seeds, formulas):
            print(f"  {variant}, seed {seed}: {formula}")


if __name__ == "__main__":
    main()
