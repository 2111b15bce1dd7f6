"""An exported proxy.py, run in a process that never imports synth, matches the engine's score."""

import json
import subprocess
import sys
import textwrap

import torch

from synth.evolve import EvolveConfig
from synth.run import run_evolve
from synth.space import load_space
from synth.probe import Probe

CHILD = textwrap.dedent(
    """
    import importlib.util, json, sys
    from functools import partial
    import torch, torch.nn as nn
    from timm.models.vision_transformer import Block, VisionTransformer

    proxy_path, data_path = sys.argv[1], sys.argv[2]
    data = torch.load(data_path, weights_only=True)
    arch = json.loads(data["arch"])
    norm = partial(nn.LayerNorm, eps=1e-6)
    model = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=10, global_pool="avg",
                              embed_dim=arch["embed_dim"], depth=arch["depth"], num_heads=1, qkv_bias=True,
                              norm_layer=norm)
    model.blocks = nn.Sequential(*[Block(arch["embed_dim"], h, mlp_ratio=r, qkv_bias=True, norm_layer=norm)
                                   for h, r in zip(arch["num_heads"], arch["mlp_ratio"])])
    model.load_state_dict(data["state"])
    spec = importlib.util.spec_from_file_location("proxy", proxy_path)
    proxy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(proxy)
    value = proxy.score(model, data["inputs"], data["targets"])
    print(json.dumps({"score": value, "synth_imported": "synth" in sys.modules}))
    """
)


def test_exported_proxy_matches_engine_without_synth(small_bench, tmp_path):
    config = EvolveConfig(population=8, iterations=10, sample_size=4, top_k=2, seed=0)
    record = run_evolve("vit", str(small_bench), tmp_path / "run", config)
    bench = json.loads(small_bench.read_text())
    probe = Probe(**record["probe"])
    space = load_space(bench["space"])
    for row in (0, 7):
        arch = bench["rows"][row]["arch"]
        inputs, targets = probe.batch(space)
        model = space.build(arch, seed=probe.init_seed)
        data = tmp_path / f"arch{row}.pt"
        torch.save({"arch": json.dumps(arch), "state": model.state_dict(), "inputs": inputs, "targets": targets}, data)
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "run" / "proxy.py"), str(data)],
                              capture_output=True, text=True, cwd=tmp_path, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["synth_imported"] is False
        engine = record["scores"][row]
        assert engine is not None
        assert abs(result["score"] - engine) <= 1e-5 * max(1.0, abs(engine)), (result["score"], engine)
