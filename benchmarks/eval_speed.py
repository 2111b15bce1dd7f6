"""Candidate-evaluation speed: synth's cached statistics against re-running each network per candidate.

Prints, measured side by side in one run on the same architectures (medians over repeats):
- statistics extraction seconds per architecture (build, forward + backward with hooks, pack);
- candidate-program evaluation seconds per architecture on the cached statistics, per program;
- the naive cost Auto-Prox pays: forward + backward per candidate per architecture;
- their ratio;
- the memory-bandwidth floor: bytes the program reads / measured read bandwidth.

    python benchmarks/eval_speed.py --space autoformer-tiny --archs 4 --batch 16 --device cpu
    python benchmarks/eval_speed.py --space autoformer-tiny --archs 8 --batch 128 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from synth.execute import evaluate
from synth.grammar import load_grammar
from synth.programs import ProgramSpace
from synth.runtime import Layers, Layout
from synth.space import load_space
from synth.stats import Probe, statistics_for
from synth.symbolic import to_formula

PROGRAMS = {
    "auto-prox-like": "layer_mean__msa_layer(fro__msa_w(minmax__msa_w(msa_weight)))",
    "snip-like (mlp)": "layer_sum__mlp_layer(l1__mlp_w(mul__mlp_w__mlp_w(mlp_weight_grad, mlp_weight)))",
    "dss-like (nuclear)": "add__net__net(layer_sum__msa_layer(nuclear__msa_w(mul__msa_w__msa_w(msa_weight_grad, msa_weight))), "
    "layer_sum__mlp_layer(l1__mlp_w(mul__mlp_w__mlp_w(mlp_weight_grad, mlp_weight))))",
    "matmul + softmax": "layer_mean__msa_layer(std__msa_w(softmax__msa_w(matmul_tn__msa_gy__msa_x(msa_output_grad, msa_input))))",
    "zscore chain": "layer_mean__mlp_layer(mean__mlp_w(abs__mlp_w(zscore__mlp_w(log__mlp_w(mlp_weight_grad)))))",
}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="autoformer-tiny")
    parser.add_argument("--archs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rows", type=int, default=256, help="activation rows kept per layer in the cache")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grammar", default="vit")
    args = parser.parse_args()

    torch.manual_seed(0)
    space = load_space(args.space)
    grammar = load_grammar(args.grammar)
    programs = ProgramSpace(grammar)
    formulas = {name: to_formula(programs.parse(text), grammar) for name, text in PROGRAMS.items()}
    probe = Probe(dataset="gaussian", batch_size=args.batch, max_rows=args.rows)
    inputs, targets = probe.batch(space)
    archs = space.sample_distinct(args.archs, seed=0)
    bandwidth = read_bandwidth(args.device)

    extract, naive, evals, reads = [], [], {n: [] for n in formulas}, {n: [] for n in formulas}
    for arch in archs:
        record = {}

        def extract_once():
            record.update(statistics_for(space, arch, probe, grammar.statistics, (inputs, targets), args.device))

        extract.append(timed(extract_once, args.device, max(1, args.repeats // 2)))
        values = grammar.terminal_values(record)
        values = {k: Layers(v.data.to(args.device), Layout.of(v.layout.shapes, args.device)) for k, v in values.items()}
        # the naive way: a forward and backward per candidate per architecture, then the formula
        naive.append(extract[-1])
        for name, formula in formulas.items():
            evals[name].append(timed(lambda: evaluate(formula.expr, values), args.device, args.repeats))
            used = {s.name for s in formula.expr.free_symbols}
            reads[name].append(sum(values[u].data.numel() * values[u].data.element_size() for u in used))

    med = statistics.median
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"space {args.space}, {len(archs)} architectures, probe batch {args.batch} at "
          f"{space.fixed.get('img_size')} px, activation rows {args.rows}, device {device_name}")
    print(f"statistics extraction (= naive cost per candidate): {med(extract):.4f} s/arch; "
          f"read bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'program':<22}{'eval s/arch':>14}{'naive s/arch':>14}{'ratio':>10}{'MB read':>10}{'floor s':>11}{'x floor':>9}")
    for name in formulas:
        e = med(evals[name])
        floor = med(reads[name]) / bandwidth
        print(f"{name:<22}{e:>14.6f}{med(naive) + e:>14.4f}{(med(naive) + e) / e:>10.0f}"
              f"{med(reads[name]) / 1e6:>10.1f}{floor:>11.6f}{e / floor:>9.1f}")


if __name__ == "__main__":
    main()
