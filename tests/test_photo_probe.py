"""The natural-image probe: seeded crops of the photographs inside scikit-image's wheel."""

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

from synth.datasets import photo_probe  # noqa: E402
from synth.space import load_space  # noqa: E402
from synth.probe import Probe  # noqa: E402


def neighbour_correlation(images: torch.Tensor) -> float:
    """Mean correlation of horizontally adjacent pixels, per image and channel."""
    values = []
    for image in images:
        for channel in image:
            left, right = channel[:, :-1].reshape(-1).numpy(), channel[:, 1:].reshape(-1).numpy()
            values.append(np.corrcoef(left, right)[0, 1])
    return float(np.nanmean(values))


def test_photo_probe_is_seeded_and_shaped_for_the_space():
    a, la = photo_probe(8, seed=3, size=32, channels=3, num_classes=10)
    b, lb = photo_probe(8, seed=3, size=32, channels=3, num_classes=10)
    c, _ = photo_probe(8, seed=4, size=32, channels=3, num_classes=10)
    assert a.shape == (8, 3, 32, 32) and la.shape == (8,) and int(la.max()) < 10
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    grey, _ = photo_probe(4, seed=0, size=8, channels=1, num_classes=10)
    assert grey.shape == (4, 1, 8, 8) and grey.min() >= -1 and grey.max() <= 1


def test_photos_have_the_spatial_correlation_noise_lacks():
    """Natural images: neighbouring pixels correlate strongly; the Gaussian probe's do not."""
    photos, _ = photo_probe(16, seed=0, size=64, channels=3, num_classes=10)
    noise = torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert neighbour_correlation(photos) > 0.8 and abs(neighbour_correlation(noise)) < 0.05
    # normalised as ImageNet images: per-channel means near 0 and spreads near 1, not exactly
    assert photos.mean().abs() < 1.0 and 0.3 < photos.std() < 2.0


def test_probe_photos_feeds_networks_of_a_space():
    space = load_space("vit-digits")
    inputs, targets = Probe(dataset="photos", batch_size=4).batch(space)
    assert inputs.shape == (4, 1, 8, 8) and not Probe(dataset="photos").is_path()
    model = space.build(space.sample_distinct(1, seed=0)[0], seed=0)
    assert torch.isfinite(model(inputs)).all()


def test_a_space_with_other_channel_counts_is_refused():
    from synth.errors import InputError

    with pytest.raises(InputError, match="channels"):
        photo_probe(2, seed=0, size=8, channels=4, num_classes=10)
