"""The vit-digits space: sampling, validation, and parameter counts worked out by hand."""

import random

import pytest

from synth.errors import SpaceError
from synth.space import arch_key, count_params, load_space


def vit_params_by_hand(embed, mlp_ratios, num_classes=10, patch=2, chans=1, tokens=16):
    """Parameters of the ViT the space describes, counted layer by layer."""
    d = embed
    total = d * chans * patch * patch + d  # conv patch embedding
    total += d  # class token
    total += (tokens + 1) * d  # position embedding
    for r in mlp_ratios:
        hidden = int(d * r)
        total += 2 * d  # norm1
        total += d * 3 * d + 3 * d  # qkv
        total += d * d + d  # proj
        total += 2 * d  # norm2
        total += d * hidden + hidden + hidden * d + d  # fc1, fc2
    total += 2 * d  # final norm before the head
    total += d * num_classes + num_classes  # head
    return total


@pytest.mark.parametrize("seed", range(5))
def test_param_counts_match_hand_count(seed):
    space = load_space("vit-digits")
    arch = space.sample(random.Random(seed))
    assert count_params(space.build(arch)) == vit_params_by_hand(arch["embed_dim"], arch["mlp_ratio"])


def test_per_layer_choices_reach_the_blocks():
    space = load_space("vit-digits")
    arch = {"embed_dim": 16, "depth": 2, "mlp_ratio": [1.0, 4.0], "num_heads": [1, 4]}
    model = space.build(arch)
    assert [b.attn.num_heads for b in model.blocks] == [1, 4]
    assert [b.mlp.fc1.out_features for b in model.blocks] == [16, 64]


def test_build_is_seeded():
    space = load_space("vit-digits")
    arch = space.sample(random.Random(0))
    a, b = space.build(arch, seed=3), space.build(arch, seed=3)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters()))


def test_sample_distinct_and_keys():
    space = load_space("vit-digits")
    archs = space.sample_distinct(30, seed=1)
    assert len({arch_key(a) for a in archs}) == 30
    assert archs == space.sample_distinct(30, seed=1)


@pytest.mark.parametrize(
    "arch, field",
    [
        ({"embed_dim": 17, "depth": 1, "mlp_ratio": [1.0], "num_heads": [1]}, "embed_dim"),
        ({"embed_dim": 16, "depth": 2, "mlp_ratio": [1.0], "num_heads": [1, 1]}, "mlp_ratio"),
        ({"embed_dim": 16, "depth": 1, "mlp_ratio": [3.0], "num_heads": [1]}, "mlp_ratio"),
        ({"embed_dim": 16, "depth": 1, "mlp_ratio": [1.0]}, "num_heads"),
    ],
)
def test_invalid_architectures_name_the_field(arch, field):
    with pytest.raises(SpaceError, match=field):
        load_space("vit-digits").validate(arch)


def test_malformed_space_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbuilder: vit\nchoices:\n  depth: [1, 2\n")
    with pytest.raises(SpaceError, match=r"bad.yaml:\d+"):
        load_space(str(bad))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("name: x\nbuilder: resnet\n")
    with pytest.raises(SpaceError, match="builder"):
        load_space(str(unknown))
