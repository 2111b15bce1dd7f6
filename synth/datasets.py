"""Datasets that ship inside PyPI packages, and the probe batch drawn from them.

No dataset can be downloaded on the machines synth targets first, so the
embedded benchmark trains on scikit-learn's digits (1,797 8x8 grey images of
handwritten digits, 10 classes), which ships inside scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

from synth.errors import InputError

__all__ = ["ImageData", "load_dataset", "probe_batch", "probe_from_path", "DATASETS"]


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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TENSOR_SUFFIXES = (".pt", ".pth")


def _images_of(folder):
    """(image paths, labels, class names): class subfolders (sorted) give labels; a flat folder gives label 0."""
    from pathlib import Path

    folder = Path(folder)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    places = [(folder / c, i) for i, c in enumerate(classes)] if classes else [(folder, 0)]
    files = [(p, label) for place, label in places for p in sorted(place.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found, directly or in class subfolders")
    return [p for p, _ in files], [label for _, label in files], classes or [folder.name]


def _load_image(path, size: int, channels: int):
    """One image as a (channels, size, size) tensor in [0, 1], resized with bilinear interpolation."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255.0
    except OSError as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1)


def _normalise(images):
    """ImageNet mean/std for 3 channels (what timm models expect), (x - 0.5) / 0.5 otherwise."""
    import torch

    if images.shape[1] == 3:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return (images - mean) / std
    return (images - 0.5) / 0.5


def _tensor_file(path):
    """(inputs, targets or None) from a .pt/.pth file read with weights_only=True: a tensor of images,
    a dict with inputs/images and targets/labels, or an (inputs, targets) pair."""
    import torch

    try:
        raw = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
        raise InputError(f"{path}: cannot be read as a probe tensor file ({type(exc).__name__}: {exc})") from None
    if isinstance(raw, dict):
        inputs = raw.get("inputs", raw.get("images"))
        targets = raw.get("targets", raw.get("labels"))
    elif isinstance(raw, (tuple, list)) and len(raw) == 2:
        inputs, targets = raw
    else:
        inputs, targets = raw, None
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
        raise InputError(f"{path}: expected images as a 4-D tensor (N, C, H, W) alone, as 'inputs'/'images' in a dict, "
                         "or first in an (inputs, targets) pair")
    if targets is not None and (not isinstance(targets, torch.Tensor) or targets.shape != inputs.shape[:1]):
        raise InputError(f"{path}: targets must be a 1-D tensor with one label per image ({inputs.shape[0]})")
    return inputs.float(), (None if targets is None else targets.long())


def probe_from_path(path, batch_size: int, seed: int, size: int, channels: int, num_classes: int):
    """The probe from a user's data: a folder of images (class subfolders give labels) or a tensor file.

    `batch_size` items are picked by a seeded permutation. Images are resized to the
    space's `size` and normalised; a tensor file's values are used as they are (resized
    only if their size differs). Missing labels are drawn from `num_classes` with `seed`.
    """
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    path = Path(path)
    generator = torch.Generator().manual_seed(seed)
    if path.is_dir():
        files, labels, _ = _images_of(path)
        pick = torch.randperm(len(files), generator=generator)[:batch_size].tolist()
        inputs = _normalise(torch.stack([_load_image(files[i], size, channels) for i in pick]))
        targets = torch.tensor([labels[i] for i in pick])
    elif path.suffix.lower() in TENSOR_SUFFIXES:
        inputs, targets = _tensor_file(path)
        pick = torch.randperm(inputs.shape[0], generator=generator)[:batch_size]
        inputs = inputs[pick]
        if inputs.shape[1] != channels:
            raise InputError(f"{path}: images have {inputs.shape[1]} channels; the space's networks take {channels}")
        if inputs.shape[-2:] != (size, size):
            inputs = F.interpolate(inputs, size=(size, size), mode="bilinear", align_corners=False)
        targets = targets[pick] if targets is not None else torch.randint(0, num_classes, (len(pick),), generator=generator)
    else:
        raise InputError(f"{path}: probe data must be a folder of images or a tensor file ({', '.join(TENSOR_SUFFIXES)})")
    if targets.numel() and not 0 <= int(targets.min()) <= int(targets.max()) < num_classes:
        raise InputError(f"{path}: labels span {int(targets.min())}..{int(targets.max())}; the networks have {num_classes} classes")
    return inputs.contiguous(), targets.long()
