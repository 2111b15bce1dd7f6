"""Datasets that ship inside PyPI packages, and the probe batch drawn from them.

No dataset can be downloaded on the machines synth targets first, so the
embedded benchmark trains on scikit-learn's digits (1,797 8x8 grey images of
handwritten digits, 10 classes), which ships inside scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageData", "load_dataset", "probe_batch", "DATASETS"]


@dataclass(frozen=True)
class ImageData:
    """Tensors of one dataset split into train and test parts."""

    name: str
    x_train: "object"
    y_train: "object"
    x_test: "object"
    y_test: "object"
    num_classes: int


def _digits(split_seed: int, test_fraction: float) -> ImageData:
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values 0..16
    images = (images - 0.5) / 0.5
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return ImageData("digits", images[train], labels[train], images[test], labels[test], 10)


DATASETS = {"digits": _digits}


def load_dataset(name: str, split_seed: int = 0, test_fraction: float = 0.3) -> ImageData:
    """Dataset `name`, split into train/test by a seeded permutation."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](split_seed, test_fraction)


def probe_batch(name: str = "digits", batch_size: int = 64, seed: int = 0):
    """The probe: `batch_size` training images and labels, chosen by `seed`.

    Drawn from the training part only, so a proxy never sees test images.
    """
    import torch

    data = load_dataset(name)
    pick = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))[:batch_size]
    return data.x_train[pick].clone(), data.y_train[pick].clone()
