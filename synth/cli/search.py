"""`synth search`: training-free architecture search with any proxy."""

from __future__ import annotations

import argparse
from pathlib import Path

from synth.cli._probe import add_probe_arguments, probe_overrides

__all__ = ["add_parser"]

EXAMPLES = """examples:
  synth search --proxy runs/s1 --space autoformer-tiny --max-params 6M     # an evolved proxy (run directory)
  synth search --proxy dss --space pit --max-params 10M --out runs/pit-dss  # a zoo proxy
  synth search --proxy runs/s1/proxy.py --space vit-digits --seed 2
  synth search --proxy runs/nb --space nasbench201 --finalists 30 --init-seeds 0,1,2  # re-rank the best 30 over 3 inits
  synth search --resume runs/pit-dss                                        # continue an interrupted search
"""


def add_parser(subparsers) -> None:
    from synth.search import SearchConfig

    d = SearchConfig()
    p = subparsers.add_parser(
        "search",
        help="search a space for the architecture a proxy scores highest (training-free NAS)",
        description="Evolutionary search (AutoFormer's: mutation and crossover over the space's choices, the best "
        "architectures kept) scored by a zero-cost proxy instead of training. Budgets are enforced by redrawing "
        "children that break them; every architecture is scored once. Writes OUT/search.json with the top-k "
        "architectures (encoding, score, params, FLOPs) and the history; an interrupted search resumes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--proxy", default=None, help="a zoo proxy name (synth zoo --list), an exported proxy.py, or a "
                   "synth evolve run directory")
    p.add_argument("--space", default=None, help="search space name or YAML file")
    p.add_argument("--max-params", default=None, metavar="N", help="parameter budget, e.g. 6M (default: none)")
    p.add_argument("--max-flops", default=None, metavar="N", help="budget of multiply-adds for one image, e.g. 1.5G (default: none)")
    p.add_argument("--population", type=int, default=d.population, help=f"population size (default: {d.population})")
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"iterations (default: {d.iterations})")
    p.add_argument("--parents", type=int, default=d.parents, help=f"best architectures that breed (default: {d.parents})")
    p.add_argument("--mutations", type=int, default=d.mutations, help=f"children by mutation per iteration (default: {d.mutations})")
    p.add_argument("--crossovers", type=int, default=d.crossovers, help=f"children by crossover per iteration (default: {d.crossovers})")
    p.add_argument("--mutation-prob", type=float, default=d.mutation_prob, help=f"chance each choice is redrawn (default: {d.mutation_prob})")
    p.add_argument("--top-k", type=int, default=d.top_k, help=f"architectures reported (default: {d.top_k})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"search seed (default: {d.seed})")
    p.add_argument("--finalists", type=int, default=d.finalists, metavar="N",
                   help="after the search, score its best N architectures under every pair of --init-seeds and "
                   "--probe-seeds and order them by mean rank, so the pick does not hang on one draw of initial "
                   "weights or images (default: off)")
    p.add_argument("--init-seeds", type=_seed_list, default=d.init_seeds, metavar="S,S,...",
                   help="initialisation seeds for --finalists, e.g. 0,1,2 (default: the probe's own)")
    p.add_argument("--probe-seeds", type=_seed_list, default=d.probe_seeds, metavar="S,S,...",
                   help="probe batch seeds for --finalists, e.g. 0,1 (default: the probe's own)")
    p.add_argument("--out", type=Path, default=None, help="search directory (default: a new folder under runs/)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the search in DIR from its checkpoint")
    p.add_argument("--workers", type=int, default=1, help="processes scoring architectures, one thread each (default: 1)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where networks run (default: cpu)")
    add_probe_arguments(p, "an evolve run's own probe when its space is this one, else gaussian")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, out) -> int:
    from synth.errors import InputError
    from synth.rundir import new_run_dir
    from synth.search import search

    if args.resume is None and (args.proxy is None or args.space is None):
        raise InputError("--proxy and --space are required (or --resume DIR)")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")
    settings = {} if args.resume else dict(
        population=args.population, iterations=args.iterations, parents=args.parents, mutations=args.mutations,
        crossovers=args.crossovers, mutation_prob=args.mutation_prob, top_k=args.top_k, seed=args.seed,
        max_params=args.max_params, max_flops=args.max_flops, finalists=args.finalists, init_seeds=args.init_seeds,
        probe_seeds=args.probe_seeds)
    search_dir = args.resume or args.out or new_run_dir()
    result = search(args.proxy, args.space, out=search_dir, resume=args.resume is not None, probe=probe_overrides(args),
                    device=args.device, workers=args.workers, progress=out.progress, log=out.info, **settings)
    if out.json_mode:
        out.json({k: result[k] for k in ("proxy", "space", "config", "top", "finalists", "evaluated", "tied_at_top", "failed",
                                         "seconds")}
                 | {"out": str(search_dir)})
        return 0
    render_top(result, out)
    out.info(f"wrote {search_dir}/search.json ({result.evaluated} architectures scored, "
             f"{result.failed} failed; {result.seconds['this_session']:.0f} s)")
    return 0


def _seed_list(text: str) -> tuple:
    """'0,1,2' -> (0, 1, 2), for argparse."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integer seeds (e.g. 0,1,2)") from None


def _budget(config) -> str:
    parts = [f"params <= {config.max_params:.4g}" if config.max_params else "",
             f"FLOPs <= {config.max_flops:.4g}" if config.max_flops else ""]
    return ", ".join(p for p in parts if p) or "no budget"


def render_top(result, out) -> None:
    """The top architectures of a `synth.search.SearchResult`, and notes on ties and failures."""
    config = result.config
    reranked = bool(result.finalists)
    rows = [[t.rank, t.score] + ([t.mean_rank] if reranked else []) + [t.params / 1e6, t.flops / 1e9, _compact(t.arch)]
            for t in result.top]
    by = f"mean rank over {len(result.finalists[0]['scores'])} init and probe seeds among its best {config.finalists}" if reranked else ""
    out.table(f"top {len(rows)} of {result.space['name']} by {result.proxy}{' (' + by + ')' if by else ''} "
              f"({_budget(config)}; seed {config.seed}, {result.evaluated} architectures scored)",
              ["rank", "score"] + (["mean rank"] if reranked else []) + ["params (M)", "GMACs", "architecture"], rows)
    tied = result.tied_at_top
    if tied > 1:
        out.info(f"note: {tied} scored architectures share the top score exactly; the proxy cannot tell them apart, "
                 "so the pick among them is the tie rule's (smaller network first, then a seeded hash)")
    for message, count in result.errors.items():
        out.info(f"note: {count} architectures scored NaN: {message}")


def _compact(arch: dict) -> str:
    """'embed_dim=192 depth=13 mlp_ratio=[3.5,4,...]': an architecture on one line."""
    def value(v):
        return "[" + ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "]" if isinstance(v, list) else str(v)

    return " ".join(f"{k}={value(v)}" for k, v in arch.items())
