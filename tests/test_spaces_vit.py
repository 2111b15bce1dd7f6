"""ViT search spaces: published parameter counts, the qkv option, pooling, enumeration and encoding."""

import random

import pytest
import torch

from synth.resources import resource_dir
from synth.space import count_params, load_space

ROW0 = {"embed_dim": 192, "depth": 12, "mlp_ratio": [3.5, 4.0, 3.5, 4.0, 3.5, 3.5, 4.0, 3.5, 4.0, 4.0, 4.0, 3.5],
        "num_heads": [4, 4, 3, 4, 3, 3, 4, 4, 3, 3, 3, 4]}


def params_on_meta(space, arch):
    with torch.device("meta"):
        return count_params(space.build(arch))


def test_autoformer_tiny_matches_vit_bench_101_row0():
    assert params_on_meta(load_space("autoformer-tiny"), ROW0) == 5_321_956


def test_autoformer_tiny_row1_from_the_shared_file():
    from tests.conftest import SHARED_BENCHMARKS

    path = SHARED_BENCHMARKS / "vit-bench-101" / "gt_autoformer.pth"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    raw = torch.load(path, weights_only=True)[1]["arch"]
    arch = {"embed_dim": raw["hidden_dim"], "depth": raw["depth"], "mlp_ratio": raw["mlp_ratio"], "num_heads": raw["num_heads"]}
    assert (arch["embed_dim"], arch["depth"]) == (240, 14)
    assert params_on_meta(load_space("autoformer-tiny"), arch) == 9_573_100


@pytest.mark.parametrize(
    "arch, params",
    [
        ({"base_dim": 16, "mlp_ratio": 6, "depth": [2, 8, 4], "heads": [2, 4, 4]}, 893_828),
        ({"base_dim": 32, "mlp_ratio": 4, "depth": [1, 6, 6], "heads": [2, 8, 8]}, 9_736_804),
    ],
)
def test_pit_parameter_counts(arch, params):
    assert params_on_meta(load_space("pit"), arch) == params


def test_qkv_width_option():
    from dataclasses import replace

    space = load_space("autoformer-tiny")
    supernet_style = replace(space, fixed={**space.fixed, "qkv": "64-per-head"})
    with torch.device("meta"):
        a, b = space.build(ROW0), supernet_style.build(ROW0)
    assert a.blocks[0].attn.qkv.out_features == 3 * 192
    assert b.blocks[0].attn.qkv.out_features == 3 * 4 * 64  # 4 heads x 64
    assert b.blocks[2].attn.qkv.out_features == 3 * 3 * 64
    assert b.blocks[0].attn.proj.in_features == 4 * 64


def test_autoformer_pools_patch_tokens_after_the_final_norm():
    space = load_space("autoformer-tiny")
    arch = {"embed_dim": 192, "depth": 12, "mlp_ratio": [3.5] * 12, "num_heads": [3] * 12}
    model = space.build(arch).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        tokens = model.forward_features(x)  # (2, 197, 192), after the final norm
        by_hand = model.head(tokens[:, 1:].mean(dim=1))  # class token excluded
        out = model(x)
    assert out.shape == (2, 100)
    torch.testing.assert_close(out, by_hand)


def test_enumerate_size_and_encoding():
    pit = load_space("pit")
    archs = list(pit.enumerate())
    assert pit.size() == len(archs) == 4 * 4 * 10 * 10
    assert len({str(a) for a in archs}) == len(archs)
    digits = load_space("vit-digits")
    assert digits.size() == len(list(digits.enumerate())) == 4 * sum(9**d for d in (1, 2, 3, 4))
    tiny = load_space("autoformer-tiny")
    assert tiny.size() == 3 * sum(4**d for d in (12, 13, 14))
    rng = random.Random(0)
    for space in (pit, digits, tiny):
        for _ in range(20):
            arch = space.sample(rng)
            code = space.encode(arch)
            assert len(code) == space.encoding_length()
            assert space.decode(code) == arch


@pytest.mark.parametrize("name", sorted(p.stem for p in resource_dir("spaces").glob("*.yaml")))
def test_every_shipped_space_samples_and_builds(name):
    space = load_space(name)
    arch = space.validate(space.sample(random.Random(1)))
    with torch.device("meta"):
        model = space.build(arch)
    assert count_params(model) > 0


def test_pit_digits_pools_its_token_grid_between_stages():
    """4x4 patch tokens at 8 px (patch 2, stride 2), pooled to 2x2 and then 1x1: three real stages."""
    space = load_space("pit-digits")
    arch = {"base_dim": 8, "mlp_ratio": 2, "depth": [1, 2, 1], "heads": [1, 2, 4]}
    model = space.build(space.validate(arch))
    grids = []
    for stage in model.transformers:
        stage.register_forward_hook(lambda m, i, o: grids.append(tuple(o[0].shape[-2:])))
    out = model(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10)
    assert grids == [(4, 4), (2, 2), (1, 1)]
    assert [len(stage.blocks) for stage in model.transformers] == [1, 2, 1]
