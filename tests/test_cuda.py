"""The GPU path against the CPU: statistics computed on CUDA, programs evaluated on statistics held
on CUDA, and a short `synth evolve --device cuda` (all skipped on a machine without CUDA; run them
on a GPU with `benchmarks/device_check.sh`)."""

import json

import pytest
import torch

from synth.cli import main
from synth.execute import evaluate
from synth.grammar import load_grammar
from synth.probe import Probe
from synth.programs import ProgramSpace
from synth.space import load_space
from synth.stats import statistics_for
from synth.symbolic import to_formula

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ARCHS = [{"embed_dim": 16, "depth": 2, "mlp_ratio": [2.0, 1.0], "num_heads": [2, 1]},
         {"embed_dim": 8, "depth": 3, "mlp_ratio": [1.0, 2.0, 2.0], "num_heads": [1, 2, 2]}]


def _data(value):
    return (value if isinstance(value, torch.Tensor) else value.data).float().cpu()


@pytest.fixture(scope="module")
def setting():
    grammar = load_grammar("vit")
    return grammar, load_space("vit-digits"), Probe(dataset="gaussian", batch_size=8, max_rows=32)


@pytest.fixture(scope="module")
def cpu_and_cuda(setting):
    grammar, space, probe = setting
    stats = tuple(sorted(grammar.statistics))
    return [(statistics_for(space, arch, probe, stats), statistics_for(space, arch, probe, stats, device="cuda"))
            for arch in ARCHS]


def test_statistics_on_cuda_match_the_cpu(cpu_and_cuda):
    for cpu, cuda in cpu_and_cuda:
        assert set(cpu) == set(cuda)
        for name in cpu:
            assert _data(cuda[name]).shape == _data(cpu[name]).shape, name
            torch.testing.assert_close(_data(cuda[name]), _data(cpu[name]), rtol=1e-3, atol=1e-5, msg=name)


def test_named_programs_score_alike_on_cuda_and_cpu(setting, cpu_and_cuda):
    """Every named program of the grammar (DSS's nuclear norms, ZiCo, NWOT's kernel, ...) on the
    same CPU statistics, evaluated once on the CPU and once moved to the GPU."""
    grammar, _, _ = setting
    programs = ProgramSpace(grammar)
    for cpu, _ in cpu_and_cuda:
        on_cpu = grammar.terminal_values(cpu)
        on_cuda = {name: value.to("cuda") for name, value in on_cpu.items()}
        for name, text in grammar.programs.items():
            formula = to_formula(programs.parse(text), grammar)
            assert evaluate(formula.expr, on_cuda) == pytest.approx(evaluate(formula.expr, on_cpu), rel=1e-4), name


def test_evolve_runs_on_cuda(tmp_path):
    out = tmp_path / "run"
    assert main(["-q", "evolve", "--device", "cuda", "--iterations", "5", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["device"] == "cuda" and record["fitness"] > 0
    assert (out / "proxy.py").is_file()
