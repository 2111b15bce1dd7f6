"""How an exported proxy.py's held-out Kendall moves with the probe batch and the initialisation.

An evolved formula is measured under one probe (images, labels) and one initialisation; a proxy
that only works under those is not a proxy. This script loads a run's exported `proxy.py` in
isolation (the file needs torch only; synth builds the networks and the probe), scores the run's
held-out architectures once per (initialisation scheme, probe seed), and prints the mean Kendall
tau-b over the benchmark's tasks beside #params, which neither changes.

Initialisation schemes:
  timm   the space's own builder (timm's ViT initialisation for synth's ViT spaces), seeded by the
         run's init seed; what the proxy was evolved under.
  torch  the same networks with every module's parameters reset by PyTorch's own
         `reset_parameters()` (Kaiming-uniform Linear, unit LayerNorm), seeded alike.

Each row also gives the accuracy of the architecture the proxy ranks first ("pick", per task) and
the Kendall tau-b between the row's scores and the first row's ("vs first"): whether the proxy's
order, and its pick, survive another probe batch or initialisation seed (`--init-seeds`).

With `--search DIR --table NAME` it scores, instead of the held-out split, the `--top` best
architectures of a `synth search` (in the search's own order) under the search's probe, against
their accuracies in a published table: is the order near the top of a search the proxy's, or its
initialisation's and probe's?

It also runs the proxy once on timm's own ViT, DeiT and PiT models (random weights, 224 px) to
show that it reads them.

    python benchmarks/proxy_robustness.py runs/vb-s0 --probe-seeds 0,1,2 --inits timm,torch
    python benchmarks/proxy_robustness.py runs/nb-s0 --search runs/search-s0 --table nasbench201:cifar10 \
        --top 30 --inits timm --init-seeds 0,1,2 --probe-seeds 0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from synth.baselines import size_baselines
from synth.bench import benchmark_space, load_benchmark
from synth.fitness import correlations
from synth.probe import Probe
from synth.rundir import read_record
from synth.search.config import RESULT, SearchConfig
from synth.search.memo import SearchMemo
from synth.space import arch_key, load_space

TIMM_MODELS = ("vit_tiny_patch16_224", "deit_tiny_patch16_224", "pit_ti_224")


def load_proxy(path: Path):
    """The exported proxy module at `path` (a proxy.py, or a run directory holding one)."""
    path = path / "proxy.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location(f"proxy_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reset_to_torch_defaults(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with every submodule's own `reset_parameters()` applied: PyTorch's default
    initialisation in place of the builder's (timm's) scheme. Parameters no module resets
    (ViT's class token and position embedding) keep the builder's values."""
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def scores_under(proxy, space, archs, probe: Probe, init: str) -> np.ndarray:
    """The proxy's score of every architecture, built with `probe.init_seed` under `init`."""
    inputs, targets = probe.batch(space)
    out = []
    for arch in archs:
        model = space.build(arch, seed=probe.init_seed)
        if init == "torch":
            torch.manual_seed(probe.init_seed)
            reset_to_torch_defaults(model)
        value = float(proxy.score(model, inputs, targets))
        out.append(value if math.isfinite(value) else np.nan)
    return np.array(out)


def mean_kendall(scores: np.ndarray, targets: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
    per_task = correlations(scores, targets, np.arange(len(scores)))["kendall"]
    return float(np.mean(list(per_task.values()))), per_task


def pick_accuracy(scores: np.ndarray, targets: dict[str, np.ndarray]) -> dict[str, float]:
    """Per task, the accuracy of the architecture with the highest finite score (the first on ties)."""
    best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))
    return {task: float(t[best]) for task, t in targets.items()}


def search_top(search_dir: Path, table: str, top: int):
    """(benchmark, rows, probe settings, space): the `top` best architectures a `synth search` scored,
    in its own order (score, then size, then its seeded tie-break), as rows of the published `table`,
    and the space the search built them from. That space, not the table's, is the one to rebuild them
    with: a table's space may fix another head (NAS-Bench-201's cifar100 table: 100 classes, where a
    search of `nasbench201` builds 10), and a proxy reading the classifier then scores other numbers."""
    bench = load_benchmark(table)
    result = read_record(search_dir / RESULT, "no search result here", ("config", "probe", "space"))
    space = load_space(result["space"].get("source") or result["space"]["name"])
    memo = SearchMemo(space, SearchConfig.from_dict(result["config"]), search_dir)
    memo.load_evaluated()
    row_of = {arch_key(a): i for i, a in enumerate(bench.archs)}
    best = memo.ranked(memo.records)[:top]
    missing = [key for key in best if key not in row_of]
    if missing:
        raise SystemExit(f"{table} holds no row for {len(missing)} of the search's top {top}, e.g. {missing[0]}")
    return bench, np.array([row_of[key] for key in best]), result["probe"], space


def timm_family_scores(proxy, probe: Probe) -> dict[str, float]:
    """The proxy's score on timm's own ViT, DeiT and PiT (random weights, ImageNet-size probe)."""
    import timm

    generator = torch.Generator().manual_seed(probe.seed)
    inputs = torch.randn(probe.batch_size, 3, 224, 224, generator=generator)
    targets = torch.randint(0, 1000, (probe.batch_size,), generator=generator)
    out = {}
    for name in TIMM_MODELS:
        torch.manual_seed(probe.init_seed)
        out[name] = float(proxy.score(timm.create_model(name, pretrained=False), inputs, targets))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a synth evolve run directory (run.json and proxy.py)")
    parser.add_argument("--probe-seeds", default="0,1,2")
    parser.add_argument("--init-seeds", default=None, help="initialisation seeds (default: the probe's)")
    parser.add_argument("--inits", default="timm,torch", help="initialisation schemes: timm, torch")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N held-out architectures (a quick look)")
    parser.add_argument("--search", type=Path, help="score this synth search's best architectures instead")
    parser.add_argument("--table", help="with --search: the published table holding their accuracies (nasbench201:cifar10, ...)")
    parser.add_argument("--top", type=int, default=30, help="with --search: how many of its best architectures (default: 30)")
    args = parser.parse_args()
    if (args.search is None) != (args.table is None):
        raise SystemExit("--search and --table go together")

    record = json.loads((args.run / "run.json").read_text())
    proxy = load_proxy(args.run)
    if args.search:
        bench, rows, probe_settings, space = search_top(args.search, args.table, args.top)
        what = f"the best {len(rows)} of search {args.search}"
    else:
        bench = load_benchmark(record["bench"]["source"], tasks=record["bench"]["tasks"])
        rows, probe_settings = np.array(record["split"]["test"][: args.limit or None]), record["probe"]
        space = benchmark_space(bench)
        what = f"{len(rows)} held-out architectures"
    archs = [bench.archs[i] for i in rows]
    targets = {task: bench.targets[task][rows] for task in bench.tasks}
    base = Probe(**probe_settings)
    init_seeds = [int(s) for s in args.init_seeds.split(",")] if args.init_seeds else [base.init_seed]
    print(f"{record['formula']}  (run {args.run}, {bench.name}, {what})")
    params = size_baselines(space, archs)["params"]
    print(f"#params: mean Kendall {mean_kendall(np.asarray(params, dtype=float), targets)[0]:.3f}")
    width = {t: max(14, len(t) + 2) for t in bench.tasks}
    print(f"{'init':<8}{'init seed':>10}{'probe seed':>11}{'mean':>8}" + "".join(f"{t:>{width[t]}}" for t in bench.tasks)
          + f"{'vs first':>9}  {'pick':<14}{'s/arch':>8}")
    means, first = {}, None
    for init in [i.strip() for i in args.inits.split(",")]:
        if init not in ("timm", "torch"):
            raise SystemExit(f"unknown initialisation {init!r}: choose timm or torch")
        for init_seed in init_seeds:
            for seed in [int(s) for s in args.probe_seeds.split(",")]:
                probe = Probe(**{**probe_settings, "seed": seed, "init_seed": init_seed})
                t0 = time.perf_counter()
                scores = scores_under(proxy, space, archs, probe, init)
                seconds = (time.perf_counter() - t0) / len(archs)
                first = scores if first is None else first
                mean, per_task = mean_kendall(scores, targets)
                same = correlations(scores, {"first": first})["kendall"]["first"]
                pick = "/".join(f"{v:.2f}" for v in pick_accuracy(scores, targets).values())
                means.setdefault(init, []).append(mean)
                print(f"{init:<8}{init_seed:>10}{seed:>11}{mean:>8.3f}" + "".join(f"{per_task[t]:>{width[t]}.3f}" for t in bench.tasks)
                      + f"{same:>9.3f}  {pick:<14}{seconds:>8.2f}", flush=True)
    for init, values in means.items():
        print(f"{init}: mean {np.mean(values):.3f}, spread (max - min) {np.ptp(values):.3f} over seeds")
    if args.search is None:  # a search's table is NAS-Bench-201's: its proxies read convolutions, not timm's ViTs
        print("timm models (random weights):", ", ".join(f"{k} {v:.4g}" for k, v in timm_family_scores(proxy, base).items()))


if __name__ == "__main__":
    main()
