"""benchmarks/eval_speed.py's run-level parts: the op clock counts each runtime op a formula calls and
puts the runtime back; the early stop skips the rows after a failure and nothing else."""

import math

import sympy
import torch

from synth import runtime
from synth.symbolic import Formula, symbol


def _formula(expr) -> Formula:
    return Formula(expr=expr, canonical=str(expr), complexity=1, latex="")


def _values(scale):
    return {"x": runtime.Layers.from_list([torch.full((2, 3), float(scale)), torch.full((4, 2), float(scale))])}


def test_op_clock_counts_the_ops_each_evaluation_calls_and_restores_the_runtime(benchmark_script):
    script = benchmark_script("eval_speed")
    originals = {name: getattr(runtime, name) for name in ("op_l1", "op_sum", "op_log")}
    x = symbol("x")
    layer_sum, l1 = sympy.Function("layer_sum"), sympy.Function("l1")
    formula = _formula(sympy.Function("logabs")(layer_sum(l1(x))))
    rows = [0, 1, 2]
    clock = script.op_breakdown([formula], {i: _values(i + 1) for i in rows}, rows)
    assert clock.calls == {"op_l1": 3, "op_sum": 3, "op_log": 3}  # one each per architecture
    assert all(seconds >= 0 for seconds in clock.seconds.values())
    assert {name: getattr(runtime, name) for name in originals} == originals


def test_early_stop_leaves_the_rows_after_a_non_finite_score_unscored(benchmark_script):
    script = benchmark_script("eval_speed")
    x = symbol("x")
    formula = _formula(sympy.Function("logabs")(sympy.Function("layer_sum")(sympy.Function("l1")(x))))
    values = {0: _values(1), 1: _values(math.nan), 2: _values(3)}  # row 1 scores NaN
    for stop_early, scored in ((True, [0, 1]), (False, [0, 1, 2])):
        memos = {i: {} for i in values}
        script.score_rows(formula, values, list(values), memos, stop_early)
        assert [i for i in values if memos[i]] == scored
