"""Statistics stay bounded in size on 224 px networks: sign codes keep a seeded subset of tokens."""

import torch

from synth import runtime


def test_sign_codes_keep_one_token_subset_for_every_sample():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 10, 6, generator=g)  # samples, tokens, units
    full = runtime._sign_codes(hidden, {"max_rows": None, "row_seed": 0})
    assert torch.equal(full, (hidden > 0).reshape(4, -1).float())  # no budget: NWOT's codes exactly
    kept = runtime._sign_codes(hidden, {"max_rows": 12, "row_seed": 0})  # 12 rows / 4 samples: 3 tokens each
    assert kept.shape == (4, 3 * 6)
    tokens = [t for t in range(10) if torch.equal(kept[:, :6], full[:, t * 6 : (t + 1) * 6])]
    assert tokens, "the first kept token is one of the sample's tokens, the same one for every sample"
    by_hand = torch.randperm(10, generator=torch.Generator().manual_seed(0))[:3].sort().values
    expected = torch.cat([(hidden[:, t] > 0).float() for t in by_hand.tolist()], dim=1)
    assert torch.equal(kept, expected)


def test_a_vit_block_s_codes_fit_the_activation_row_budget():
    import timm

    model = timm.create_model("vit_tiny_patch16_224", num_classes=10, img_size=64)
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    codes = runtime.collect_statistics(model, x, y, ["act.code"], max_rows=32)["act.code"]
    assert all(shape == (4, 8 * 768) for shape in codes.layout.shapes)  # 32 rows: 8 of 17 tokens per sample
