"""grammar/cnn.yaml: found by name, shape-safe for every program, its named programs equal to the
synth.zoo proxies on NAS-Bench-201 networks, and its formulas exported as torch-only proxies."""

import copy
import importlib.util
import random
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from synth import runtime
from synth.execute import evaluate
from synth.export import proxy_source
from synth.grammar import load_grammar
from synth.models import _nasbench201_network, nasbench201_arch
from synth.probe import Probe
from synth.programs import ProgramSpace
from synth.resources import resource_dir
from synth.space import load_space
from synth.symbolic import to_formula
from synth.zoo import get_proxy
from synth.zoo.gradient_stats import zico
from tests.reference import per_layer_lists, random_formulas, straightforward
from tests.test_stats_cnn import probe, small_nb201
from tests.test_stats_table import program_value

# NASLib op tuples: a mixed cell, a cell with every op, the all-3x3 cell (the largest network)
NB201_KEYS = [(2, 3, 0, 4, 1, 2), (0, 1, 2, 3, 4, 0), (2, 2, 2, 2, 2, 2)]
# named program -> (zoo proxy, relative tolerance): float32 statistics against the zoo's float64 sums
SAME_AS_ZOO = {"params": 0, "snip": 1e-5, "plain": 1e-4, "grad_norm": 1e-5, "l2_norm": 1e-5, "nwot": 1e-9}


@pytest.fixture(scope="module")
def grammar():
    return load_grammar("cnn")


def test_cnn_is_found_by_name_like_vit():
    shipped = resource_dir("grammar") / "cnn.yaml"
    assert load_grammar("cnn").path == load_grammar("cnn.yaml").path == str(shipped)
    assert load_grammar("cnn").name == "cnn"


def _nb201_batch(n=6):
    x, y = Probe(dataset="gaussian", batch_size=n).batch(load_space("nasbench201"))
    return x, y


@pytest.mark.parametrize("key", NB201_KEYS)
def test_named_programs_equal_the_zoo_on_nasbench201(grammar, key):
    """params exactly; snip, plain, grad_norm, l2_norm to float32 rounding (the statistics pass is
    the zoo's pass: training mode, cross-entropy, every Conv2d and Linear weight); nwot to 1e-9
    with every position kept (max_rows None): the Hamming kernel is exact counts either way."""
    space = load_space("nasbench201")
    model = space.build(nasbench201_arch(key), seed=0)
    x, y = _nb201_batch()
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, grammar.statistics, max_rows=None)
    for name, rel in SAME_AS_ZOO.items():
        assert program_value(grammar, name, stats) == pytest.approx(get_proxy(name)(model, x, y), rel=rel, abs=1e-9), name


@pytest.mark.parametrize("key", NB201_KEYS)
def test_zico_program_equals_the_zoo_on_nasbench201_cells_without_batch_norm(grammar, key):
    """ZiCo with one mini-batch per sample (zoo chunks = batch size). The program's g_n is sample n's
    share of the batch gradient; that is the gradient of sample n's own loss only when no layer
    couples the samples, so the networks here are NAS-Bench-201's with batch norm left out (with it,
    the two differ by 1-3% on these cells: the zoo normalises each single-sample chunk by its own
    statistics). Tolerance 2e-4 relative: the gradients of this BN-free 17-layer network are tiny
    (1e-7 and below), and float32 per-sample gradients summed in two orders differ by that much."""
    torch.manual_seed(0)
    model = _nasbench201_network()(nasbench201_arch(key), 16, 5, 10, 3, lambda channels: nn.Identity())
    x, y = _nb201_batch()
    stats = runtime.collect_statistics(copy.deepcopy(model), x, y, grammar.statistics, max_rows=None)
    assert program_value(grammar, "zico", stats) == pytest.approx(zico(model, x, y, F.cross_entropy, chunks=6), rel=2e-4)


def test_every_random_program_runs_on_a_cnn(grammar):
    """Shape safety: random programs of cnn.yaml evaluate on a NAS-Bench-201 network's statistics
    without a shape error, and equal a plain per-layer loop over the same values."""
    model = small_nb201()
    x, y = probe(n=4)
    stats = runtime.collect_statistics(model, x, y, grammar.statistics, max_rows=64)
    values = grammar.terminal_values(stats)
    lists = per_layer_lists(values)
    lists64 = {name: [m.double() for m in ms] if isinstance(ms, list) else ms.double() for name, ms in lists.items()}
    programs, rng, compared = ProgramSpace(grammar), random.Random(3), 0
    for count, (tree, formula) in enumerate(random_formulas(programs, grammar, rng)):
        if count == 150:
            break
        fast = evaluate(formula.expr, values)  # raises on a shape mismatch
        slow, exact = straightforward(tree, grammar, lists), straightforward(tree, grammar, lists64)
        if np.isfinite(slow) and np.isclose(slow, exact, rtol=1e-4, atol=1e-6):
            assert fast == pytest.approx(slow, rel=1e-3, abs=1e-6), str(formula.canonical)
            compared += 1
    assert compared >= 50


def test_exported_cnn_proxy_is_torch_only_and_scores_a_nasbench201_network(grammar, tmp_path):
    programs = ProgramSpace(grammar)
    text = (f"add__net__net(add__net__net({grammar.programs['nwot']}, "
            "sub__net__net(layer_mean__conv_layer(std__conv_out(channel_std__conv_gy(conv_output_grad))), "
            "layer_max__bn_layer(fro__bn_c(bn_weight_grad)))), "
            "layer_mean__block_layer(mul__block_layer__block_layer(block_grad_gain, block_gain)))")  # block sites too
    formula = to_formula(programs.parse(text), grammar)
    probe_settings = Probe(dataset="gaussian", batch_size=8, max_rows=256)
    path = tmp_path / "proxy.py"
    path.write_text(proxy_source(formula, grammar, probe_settings))
    source = path.read_text()
    imported = set(re.findall(r"^(?:import|from) (\w+)", source, re.M))
    assert "torch" in imported and imported - {"torch"} <= set(sys.stdlib_module_names)  # torch and the standard library
    spec = importlib.util.spec_from_file_location("cnn_proxy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    model = small_nb201(seed=2)
    x, y = probe(n=8, seed=2)
    engine = evaluate(formula.expr, grammar.terminal_values(
        runtime.collect_statistics(copy.deepcopy(model), x, y, grammar.statistics, 256, 0)))
    assert module.score(copy.deepcopy(model), x, y) == pytest.approx(engine, rel=1e-6)
    assert np.isfinite(engine)


def test_layer_max_and_min_are_the_extremes_of_the_per_layer_values(grammar):
    """layer_max and layer_min against the largest and smallest weight-gradient norm of the network's
    convolutions, computed from torch's own gradients in a training-mode pass."""
    model = small_nb201(seed=1)
    x, y = probe(n=4, seed=1)
    values = grammar.terminal_values(runtime.collect_statistics(copy.deepcopy(model), x, y, grammar.statistics, 64, 0))
    programs = ProgramSpace(grammar)
    norms = "fro__conv_w(conv_weight_grad)"
    largest = evaluate(to_formula(programs.parse(f"layer_max__conv_layer({norms})"), grammar).expr, values)
    smallest = evaluate(to_formula(programs.parse(f"layer_min__conv_layer({norms})"), grammar).expr, values)
    model.train()
    F.cross_entropy(model(x), y).backward()
    by_hand = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert largest == pytest.approx(max(by_hand), rel=1e-5)
    assert smallest == pytest.approx(min(by_hand), rel=1e-5)
    assert smallest < largest
