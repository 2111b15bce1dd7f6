"""Size baselines against hand counts."""

import pytest

from synth.baselines import size_baselines
from synth.bench import load_benchmark
from synth.space import load_space


def test_params_match_the_benchmarks_own_counts():
    bench = load_benchmark(None)
    rows = bench.meta["rows"][:10]
    sizes = size_baselines(load_space(bench.space), [r["arch"] for r in rows])
    assert sizes["params"].tolist() == [float(r["params"]) for r in rows]


def test_flops_by_hand_for_a_tiny_vit():
    arch = {"embed_dim": 16, "depth": 1, "mlp_ratio": [2.0], "num_heads": [2]}
    t, d = 17, 16  # 16 patches + class token, width
    macs = (
        16 * (1 * 2 * 2) * d  # patch embedding conv
        + t * d * 3 * d  # qkv
        + 2 * t * t * d  # q k^T and attention x v, over both heads
        + t * d * d  # proj
        + 2 * t * d * 2 * d  # fc1, fc2
        + d * 10  # head
    )
    assert size_baselines(load_space("vit-digits"), [arch])["flops"][0] == pytest.approx(macs)
