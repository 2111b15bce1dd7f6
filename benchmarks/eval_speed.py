"""Candidate-evaluation speed: synth's cached statistics against re-running each network per candidate.

Prints, measured side by side in one run on the same architectures (medians over repeats):
- statistics extraction seconds per architecture (build, forward + backward with hooks, pack),
  paid once per architecture;
- the naive cost Auto-Prox pays per candidate per architecture: a forward and backward pass of
  the already built network, then the formula as a per-layer Python loop over the live tensors
  (nuclear norms by SVD, as `torch.norm(..., "nuc")` does);
- candidate-program evaluation seconds per architecture on the cached statistics, per program;
- their ratio;
- the memory-bandwidth floor: bytes the program reads / measured read bandwidth.

    python benchmarks/eval_speed.py --space autoformer-tiny --archs 4 --batch 16 --device cpu
    python benchmarks/eval_speed.py --space autoformer-tiny --archs 8 --batch 128 --device cuda
    python benchmarks/eval_speed.py --space nasbench201 --grammar cnn --archs 8 --batch 32 --probe-data photos

The programs timed are PROGRAMS below for the ViT grammar, and any other grammar's named programs
(cnn.yaml: params, snip, grad_norm, nwot, zico, ...), so NAS-Bench-201 cells get the same row.

With `--run RUN_DIR` it prints the run-level figure instead: every distinct program a real
`synth evolve` run scored (run.json's `programs`, or the checkpoint's memo), re-scored over the
run's search split from the statistics cache, once as the engine scored them before the
throughput work (every program on every row) and once as it scores them now (a program stops at
its first non-finite score or failure), side by side: distinct programs per second, the median
and 99th-percentile cost per program, and the memory-bandwidth floor of the same reads (the two
engines are timed program by program, in alternating order). A third pass, as the engine scores
now, times each runtime op inside it, and the script lists the ops that take the most time.

    python benchmarks/eval_speed.py --run runs/vit-bench-101-s0 [--programs 200]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F

from synth import runtime
from synth.evaluator import Evaluator
from synth.execute import evaluate, runtime_name
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.runtime import Layers, Layout
from synth.space import load_space
from synth.probe import Probe
from synth.stats import statistics_for
from synth.symbolic import to_formula

PROGRAMS = {
    "auto-prox-like": "layer_mean__msa_layer(fro__msa_w(minmax__msa_w(msa_weight)))",
    "snip-like (mlp)": "layer_sum__mlp_layer(l1__mlp_w(mul__mlp_w__mlp_w(mlp_weight_grad, mlp_weight)))",
    "dss-like (nuclear)": "add__net__net(layer_sum__msa_layer(nuclear__msa_w(mul__msa_w__msa_w(msa_weight_grad, msa_weight))), "
    "layer_sum__mlp_layer(l1__mlp_w(mul__mlp_w__mlp_w(mlp_weight_grad, mlp_weight))))",
    "matmul + softmax": "layer_mean__msa_layer(std__msa_w(softmax__msa_w(matmul_tn__msa_gy__msa_x(msa_output_grad, msa_input))))",
    "zscore chain": "layer_mean__mlp_layer(mean__mlp_w(abs__mlp_w(zscore__mlp_w(log__mlp_w(mlp_weight_grad)))))",
}


AGGREGATIONS = {"layer_mean", "layer_sum"}  # sympy nodes taking one scalar per layer to a network scalar
POOLED = {"hamming_kernel"}  # per-sample kernels summed over layers
MATRIX_PRODUCTS = {"matmul": lambda a, b: a @ b, "matmul_tn": lambda a, b: a.T @ b, "matmul_nt": lambda a, b: a @ b.T}


def naive_evaluate(expr, per_layer: dict[str, list]) -> float:
    """The formula as a straightforward loop: tensor values are lists of per-layer tensors (a
    per-layer scalar statistic, a list of 0-d tensors), every op runs once per layer, aggregations
    stack one scalar per layer, kernels are summed over layers."""

    def walk(node):
        if node.is_Symbol:
            return per_layer[node.name]
        if node.is_Number:
            return float(node)
        args = [walk(a) for a in (node.args if not node.is_Pow else (node.base,))]
        name = type(node).__name__
        fn = MATRIX_PRODUCTS.get(name) or getattr(runtime, runtime_name(node))
        if node.is_Pow:
            fn = lambda x, e=float(node.exp): runtime.op_pow(x, e)  # noqa: E731
        lists = [a for a in args if isinstance(a, list)]
        if not lists:
            return fn(*args)
        if name in AGGREGATIONS:
            return fn(torch.stack(lists[0]))
        if name in POOLED:
            return sum(fn(Layers.from_list([m])) for m in lists[0])
        return [fn(*(a[i] if isinstance(a, list) else a for a in args)) for i in range(len(lists[0]))]

    return float(walk(expr))


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    """Median seconds of `repeats` calls (after one warm-up call)."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_bandwidth(device) -> float:
    """Bytes per second of a full read (a sum) over a 512 MiB float32 tensor."""
    x = torch.ones(128 * 1024 * 1024, device=device)
    seconds = timed(lambda: x.sum(), device, 5)
    return x.numel() * 4 / seconds


def run_programs(run_dir: Path) -> tuple[dict, list[str]]:
    """(the run's record or checkpoint, the program text of every distinct program it scored, in order)."""
    from synth.rundir import CHECKPOINT, RUN_RECORD, read_record

    if (run_dir / RUN_RECORD).is_file():
        record = read_record(run_dir / RUN_RECORD, "not a run directory")
        if "programs" in record:
            return record, [p["program"] for p in record["programs"] if p.get("program")]
    checkpoint = read_record(run_dir / CHECKPOINT, "neither run.json nor checkpoint.json: not a run directory")
    return checkpoint, [entry[4] for key, entry in checkpoint.get("memo", {}).items() if key and len(entry) > 4 and entry[4]]


def score_all(formulas, values, rows) -> tuple[list[float], list[float]]:
    """Seconds each formula takes over `rows` as the engine scored before the throughput work (every
    row) and as it scores now (stopping at the first non-finite score or failure), each engine with
    its own run-long scalar memo per architecture, as the Evaluator keeps.

    The two are timed program by program, in alternating order, rather than as two passes, whose
    times depend on their order and on the machine's state: on 40 ViT-Bench-101 networks a
    process's first pass took 51 s and its later passes 36-40 s, whichever engine ran.
    """
    memos = {engine: {i: {} for i in rows} for engine in ("before", "now")}
    costs = {"before": [], "now": []}
    for n, formula in enumerate(formulas):
        order = ("before", "now") if n % 2 == 0 else ("now", "before")
        for engine in order:
            start = time.perf_counter()
            score_rows(formula, values, rows, memos[engine], stop_early=engine == "now")
            costs[engine].append(time.perf_counter() - start)
    return costs["before"], costs["now"]


def score_rows(formula, values, rows, memos, stop_early: bool) -> None:
    """Score `formula` on each row with that row's run-long memo; with `stop_early`, stop at its
    first non-finite score or failure, as the Evaluator does."""
    for i in rows:
        value, error = Evaluator._score(formula, values[i], memos[i])
        if stop_early and (error or not math.isfinite(value)):
            return


class OpClock:
    """Seconds spent inside each runtime op while active: where a run's evaluation time goes.

    It wraps the `op_*` functions that synth.execute looks up on the runtime module by name, so
    nested helpers count towards the op that called them, and restores them on exit.
    """

    def __init__(self):
        self.seconds, self.calls = {}, {}

    def __enter__(self):
        self.saved = {name: getattr(runtime, name) for name in dir(runtime) if name.startswith("op_")}
        for name, fn in self.saved.items():
            setattr(runtime, name, self._timed(name, fn))
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(runtime, name, fn)

    def _timed(self, name, fn):
        def timed_op(*args):
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1
        return timed_op


def op_breakdown(formulas, values, rows) -> OpClock:
    """Seconds per runtime op when `formulas` are scored over `rows` as the engine scores now."""
    memos = {i: {} for i in rows}
    with OpClock() as clock:
        for formula in formulas:
            score_rows(formula, values, rows, memos, stop_early=True)
    return clock


def run_level(args) -> None:
    """The run-level figure: before and after, on the same programs and statistics, in one run."""
    from synth.bench import benchmark_space, load_benchmark, split_indices
    from synth.stats import load_statistics
    from synth.symbolic import DegenerateProgram

    run_dir = Path(args.run)
    record, keys = run_programs(run_dir)
    grammar = load_grammar(record["grammar"])
    bench_source = record["bench"]["source"] if isinstance(record.get("bench"), dict) else record.get("bench")
    bench = load_benchmark(bench_source, record.get("tasks"))
    space = benchmark_space(bench)
    probe = Probe(**record["probe"])
    config = record["config"]
    rows, _ = split_indices(len(bench), config["split_seed"], config["search_fraction"])
    rows = rows[: args.archs] if args.archs else rows
    if args.programs:
        keys = keys[: args.programs]
    programs = ProgramSpace(grammar)
    formulas = []
    for text in keys:
        try:
            formulas.append(to_formula(programs.parse(text), grammar))
        except DegenerateProgram:
            continue
    stats = load_statistics(space, [bench.archs[i] for i in rows], probe, grammar.statistics)
    values = dict(zip(rows, (grammar.terminal_values(r) for r in stats)))
    bandwidth = read_bandwidth("cpu")
    floors = []
    for f in formulas:
        used = {s.name for s in f.expr.free_symbols}
        nbytes = sum(_nbytes(values[i][u]) for i in rows for u in used)
        floors.append(nbytes / bandwidth)

    read_once(values, rows, {s.name for f in formulas for s in f.expr.free_symbols})
    before, after = score_all(formulas, values, rows)

    med = statistics.median
    print(f"run {run_dir}: {len(formulas)} distinct programs of {len(keys)} scored by the run, re-scored over "
          f"{len(rows)} search architectures of {bench.name}; CPU ({torch.get_num_threads()} threads), "
          f"read bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'engine':<34}{'programs/s':>11}{'median s':>10}{'p99 s':>9}{'max s':>9}{'total s':>9}")
    for name, costs in (("before (every row scored)", before), ("now", after),
                        ("memory-bandwidth floor", floors)):
        print(f"{name:<34}{len(costs) / sum(costs):>11.2f}{med(costs):>10.4f}{np.percentile(costs, 99):>9.4f}"
              f"{max(costs):>9.4f}{sum(costs):>9.1f}")
    print(f"now / before: {sum(before) / sum(after):.2f}x the programs per second; now / floor: "
          f"{sum(after) / sum(floors):.0f}x the floor's time")
    clock = op_breakdown(formulas, values, rows)
    total = sum(clock.seconds.values())
    print(f"where the time goes (a third pass, as now; seconds inside each op, {total:.1f} s in all):")
    print(f"{'op':<20}{'calls':>8}{'seconds':>9}{'share':>7}")
    for name in sorted(clock.seconds, key=clock.seconds.get, reverse=True)[: args.top_ops]:
        print(f"{name:<20}{clock.calls[name]:>8}{clock.seconds[name]:>9.2f}{clock.seconds[name] / total:>7.0%}")


def read_once(values, rows, names) -> None:
    """Read every statistic the programs use once before timing. They are memory-mapped from the
    cache, and whichever engine first touched a statistic paid for reading it in: on 200
    NAS-Bench-201 cells one program took 7.6 s as the engine that ran first and 4.1 s as the other,
    and 5.0 against 3.3 s after this read (the first run of a program's large temporaries still
    costs more; alternating the order spreads that over both engines)."""
    for i in rows:
        for name in names:
            value = values[i][name]
            (value.data if isinstance(value, Layers) else torch.as_tensor(value)).sum()


def _nbytes(value) -> int:
    data = value.data if isinstance(value, Layers) else value
    return data.numel() * data.element_size()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="autoformer-tiny")
    parser.add_argument("--archs", type=int, default=None, help="architectures (default: 4; with --run, the whole search split)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rows", type=int, default=256, help="activation rows kept per layer in the cache")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grammar", default="vit", help="vit times PROGRAMS; another grammar its named programs")
    parser.add_argument("--probe-data", default="gaussian", help="gaussian, digits or photos (default: gaussian)")
    parser.add_argument("--run", default=None, metavar="RUN_DIR", help="print the run-level figure for this run's programs")
    parser.add_argument("--programs", type=int, default=0, help="with --run: only the first N programs (default: all)")
    parser.add_argument("--top-ops", type=int, default=12, help="with --run: ops listed in the time breakdown (default: 12)")
    args = parser.parse_args()
    if args.run:
        run_level(args)
        return

    torch.manual_seed(0)
    space = load_space(args.space)
    grammar = load_grammar(args.grammar)
    programs = ProgramSpace(grammar)
    texts = PROGRAMS if Path(grammar.path).stem == "vit" else grammar.programs
    formulas = {name: to_formula(programs.parse(text), grammar) for name, text in texts.items()}
    probe = Probe(dataset=args.probe_data, batch_size=args.batch, max_rows=args.rows)
    inputs, targets = probe.batch(space)
    archs = space.sample_distinct(args.archs or 4, seed=0)
    bandwidth = read_bandwidth(args.device)

    inputs, targets = inputs.to(args.device), targets.to(args.device)
    extract, passes = [], []
    evals, loops, reads = ({n: [] for n in formulas} for _ in range(3))
    for arch in archs:
        record = {}

        def extract_once():
            record.update(statistics_for(space, arch, probe, grammar.statistics, (inputs, targets), args.device))

        extract.append(timed(extract_once, args.device, max(1, args.repeats // 2)))
        model = space.build(arch, seed=probe.init_seed).to(args.device).train()

        def forward_backward():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(inputs), targets).backward()

        passes.append(timed(forward_backward, args.device, max(1, args.repeats // 2)))
        values = grammar.terminal_values(record)
        values = {k: v.to(args.device) for k, v in values.items()}
        per_layer = {k: (v.matrices() if isinstance(v, Layers) else list(v)) for k, v in values.items()}
        for name, formula in formulas.items():
            fast, loop = evaluate(formula.expr, values), naive_evaluate(formula.expr, per_layer)
            if not math.isclose(fast, loop, rel_tol=1e-3, abs_tol=1e-6):
                raise SystemExit(f"{name}: engine {fast} and per-layer loop {loop} disagree")
            evals[name].append(timed(lambda: evaluate(formula.expr, values), args.device, args.repeats))
            loops[name].append(timed(lambda: naive_evaluate(formula.expr, per_layer), args.device, args.repeats))
            used = {s.name for s in formula.expr.free_symbols}
            reads[name].append(sum(values[u].data.numel() * values[u].data.element_size() for u in used))
        del model

    med = statistics.median
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"space {args.space}, {len(archs)} architectures, probe {args.probe_data} x {args.batch} at "
          f"{space.fixed.get('img_size')} px, activation rows {args.rows}, device {device_name}")
    print(f"statistics extraction, once per architecture: {med(extract):.4f} s/arch; forward + backward alone: "
          f"{med(passes):.4f} s/arch; read bandwidth {bandwidth / 1e9:.1f} GB/s")
    print("naive = forward + backward + per-layer loop, per candidate; synth = one program on the cached statistics")
    print(f"{'program':<22}{'loop s/arch':>13}{'naive s/arch':>14}{'synth s/arch':>14}{'ratio':>8}"
          f"{'MB read':>9}{'floor s':>11}{'x floor':>9}")
    for name in formulas:
        e, loop = med(evals[name]), med(loops[name])
        naive = med(passes) + loop
        floor = med(reads[name]) / bandwidth
        print(f"{name:<22}{loop:>13.5f}{naive:>14.4f}{e:>14.6f}{naive / e:>8.0f}"
              f"{med(reads[name]) / 1e6:>9.1f}{floor:>11.6f}{e / floor:>9.1f}")


if __name__ == "__main__":
    main()
