"""The torch side of every proxy: statistics collection and the operator implementations.

This package imports torch only. `synth.export` copies its modules' source verbatim into each
exported `proxy.py` (in dependency order, see `MODULES`), so the engine and a stand-alone proxy run
the same code: what the engine measured is what a user's exported file computes.

    sites       where statistics are measured (modules found by structure, by kind)
    readers     what a statistic reads at a site (row subsets, per-sample moments, patches)
    values      Layers (every layer's matrix in one buffer) and helpers applying torch to values
    table       the statistics table STATISTICS and collect_statistics (hooks, one pass)
    torch_ops   the op_* functions formulas call, and op_plugin for plugin ops
"""

from synth.runtime.readers import (_conv_sample_grad_moments, _patch_rows, _row_subset, _sample_grad_moments,
                                   _sign_codes)
from synth.runtime.sites import SITE_KINDS, Site, block_sites, linear_layers_by_kind, sites_by_kind
from synth.runtime.table import QUANTITIES, STATISTICS, Statistic, collect_statistics
from synth.runtime.torch_ops import (PLUGIN_OPS, op_abs, op_add, op_channel_mean, op_channel_norm, op_channel_std, op_exp,
                                     op_fro, op_hamming_kernel, op_inverse, op_l1, op_log, op_log_softmax, op_logdet,
                                     op_matmul, op_matmul_nt, op_matmul_tn, op_max, op_mean, op_min, op_minmax, op_mul,
                                     op_nuclear,
                                     op_plugin, op_pow, op_relu, op_sigmoid, op_softmax, op_sqrt, op_std, op_sum,
                                     op_zscore)
from synth.runtime.values import EPS, Layers, Layout

# the modules an exported proxy.py holds, each after those it imports from
MODULES = ("synth.runtime.sites", "synth.runtime.readers", "synth.runtime.values", "synth.runtime.table",
           "synth.runtime.torch_ops")

__all__ = [
    "EPS", "Layers", "Layout", "MODULES", "PLUGIN_OPS", "QUANTITIES", "SITE_KINDS", "STATISTICS", "Site", "Statistic",
    "block_sites", "collect_statistics", "linear_layers_by_kind", "sites_by_kind",
    "op_abs", "op_add", "op_channel_mean", "op_channel_norm", "op_channel_std", "op_exp", "op_fro", "op_hamming_kernel",
    "op_inverse", "op_l1", "op_log", "op_log_softmax", "op_logdet", "op_matmul", "op_matmul_nt", "op_matmul_tn",
    "op_max", "op_mean", "op_min", "op_minmax", "op_mul", "op_nuclear", "op_plugin", "op_pow", "op_relu", "op_sigmoid", "op_softmax",
    "op_sqrt", "op_std", "op_sum", "op_zscore",
]
