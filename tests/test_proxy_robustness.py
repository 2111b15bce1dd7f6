"""benchmarks/proxy_robustness.py: PyTorch's default initialisation really replaces the builder's,
every architecture is scored under the scheme asked for, and a search's best architectures are read
in the search's own order."""

import json
import math
import types

import numpy as np
import pytest
import torch

from synth.probe import Probe
from synth.rundir import append_record
from synth.space import arch_key, load_space


def _digits_archs(space, n=3):
    return space.sample_distinct(n, seed=0)


def test_torch_defaults_replace_timm_initialisation(benchmark_script):
    script, space = benchmark_script("proxy_robustness"), load_space("vit-digits")
    arch = _digits_archs(space, 1)[0]
    model = space.build(arch, seed=0)
    cls_token = model.cls_token.detach().clone()
    fc1 = model.blocks[0].mlp.fc1
    assert fc1.bias.abs().max() == 0  # timm's ViT scheme: zero biases, truncated normal std .02 weights
    torch.manual_seed(0)
    script.reset_to_torch_defaults(model)
    bound = 1 / math.sqrt(fc1.in_features)  # Kaiming-uniform with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert fc1.weight.abs().max() <= bound
    assert abs(fc1.weight.std().item() - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)
    assert fc1.bias.abs().max() > 0
    norm = model.blocks[0].norm1
    assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.equal(norm.bias, torch.zeros_like(norm.bias))
    assert torch.equal(model.cls_token, cls_token)  # no module resets it


def test_scores_under_each_scheme_reach_the_proxy(benchmark_script):
    script, space = benchmark_script("proxy_robustness"), load_space("vit-digits")
    archs = _digits_archs(space)
    seen = []

    def score(model, inputs, targets):
        seen.append(model.blocks[0].mlp.fc1.bias.abs().max().item())
        return sum(p.numel() for p in model.parameters())

    proxy = types.SimpleNamespace(score=score)
    probe = Probe()
    for init in ("timm", "torch"):
        values = script.scores_under(proxy, space, archs, probe, init)
        expected = [sum(p.numel() for p in space.build(a, seed=0).parameters()) for a in archs]
        assert values.tolist() == expected
    assert seen[:3] == [0.0] * 3 and all(b > 0 for b in seen[3:])



def test_pick_accuracy_is_the_first_best_finite_score(benchmark_script):
    script = benchmark_script("proxy_robustness")
    scores = np.array([np.nan, 2.0, 5.0, 5.0, -np.inf])
    targets = {"a": np.array([99.0, 1.0, 3.0, 4.0, 0.0]), "b": np.arange(5.0)}
    assert script.pick_accuracy(scores, targets) == {"a": 3.0, "b": 2.0}


def test_search_top_takes_the_searchs_own_order_as_table_rows(tmp_path, small_bench, benchmark_script):
    """The best architectures of a search, in its order (score, then the smaller network first), as
    rows of the table, with the search's probe and the search's space (here another space than the
    table's, which the script must not rebuild them with); an architecture the table lacks is refused."""
    script = benchmark_script("proxy_robustness")
    raw = json.loads(small_bench.read_text())
    a, b, c, d = 3, 7, 11, 19
    scored = [(c, 5.0, 30.0), (d, 1.0, 5.0), (a, 9.0, 10.0), (b, 5.0, 20.0)]  # (row, score, params), file order
    search = tmp_path / "search"
    search.mkdir()
    probe = {**Probe().to_dict(), "seed": 4, "init_seed": 2}
    (search / "search.json").write_text(json.dumps({"proxy": "params", "space": {"name": "pit-digits"},
                                                    "config": {"seed": 0}, "probe": probe, "top": []}))

    def write(rows):
        with open(search / "evaluated.jsonl", "w") as sink:
            for row, score, params in rows:
                arch = raw["rows"][row]["arch"] if isinstance(row, int) else row
                append_record(sink, {"key": arch_key(arch), "arch": arch, "score": score, "seconds": 0.1,
                                     "error": None, "params": params, "flops": 1.0, "generation": 0})

    write(scored)
    bench, rows, probe_settings, space = script.search_top(search, str(small_bench), 3)
    assert rows.tolist() == [a, b, c] and probe_settings == probe and len(bench) == len(raw["rows"])
    assert space.name == "pit-digits" != bench.space
    stranger = dict(raw["rows"][a]["arch"], depth=raw["rows"][a]["arch"]["depth"] + 7)
    write(scored + [(stranger, 50.0, 1.0)])
    with pytest.raises(SystemExit, match="holds no row for 1 of the search's top 3"):
        script.search_top(search, str(small_bench), 3)
