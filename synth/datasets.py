"""Datasets for training and probing: packaged ones, and the user's own images.

No dataset can be downloaded on the machines synth targets first, so the
embedded benchmark trains on scikit-learn's digits (1,797 8x8 grey images of
handwritten digits, 10 classes), which ships inside scikit-learn. A user's data
is a folder of images (class subfolders give labels) or a `.pt`/`.pth` tensor
file; every source is split into train and test parts the same seeded way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from synth.cache import digest
from synth.errors import InputError

__all__ = [
    "ImageData", "load_dataset", "dataset_name", "dataset_source", "data_digest", "probe_batch", "probe_from_path", "DATASETS",
    "photo_probe", "PHOTOS",
]


@dataclass(frozen=True)
class ImageData:
    """Tensors of one dataset split into train and test parts."""

    name: str
    x_train: "object"
    y_train: "object"
    x_test: "object"
    y_test: "object"
    num_classes: int


def _digits(size: int | None, channels: int | None):
    """(images, labels, number of classes) of scikit-learn's digits, scaled to [-1, 1]."""
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values 0..16
    images = (images - 0.5) / 0.5
    labels = torch.tensor(bunch.target, dtype=torch.long)
    return _fitted(images, size, channels, "digits"), labels, 10


DATASETS = {"digits": _digits}


def load_dataset(name_or_path, split_seed: int = 0, test_fraction: float = 0.3, size: int | None = None,
                 channels: int | None = None) -> ImageData:
    """Dataset `name_or_path`, split into train/test by a seeded permutation (the same way for every source).

    `name_or_path` is a packaged dataset (digits), a folder of images (class subfolders give
    labels) or a tensor file with labels. Images are resized to `size` x `size` and must have
    `channels` channels when these are given (a folder's images are converted to them).
    Loaded once per process for the same arguments and unchanged files, so a worker that
    trains many architectures reads an image folder once.
    """
    source = str(name_or_path)
    digest = None if source in DATASETS else data_digest(_existing_path(source))
    return _cached_dataset(source, split_seed, test_fraction, size, channels, digest)


@functools.lru_cache(maxsize=4)
def _cached_dataset(source: str, split_seed: int, test_fraction: float, size, channels, digest) -> ImageData:
    """`load_dataset`'s work; `digest` (of the files, unused here) is in the cache key so edited data is reloaded."""
    import torch

    if source in DATASETS:
        images, labels, num_classes = DATASETS[source](size, channels)
    else:
        images, labels, num_classes = _user_data(Path(source), size, channels)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed))
    n_test = int(round(test_fraction * len(labels)))
    if not 0 < n_test < len(labels):
        raise InputError(f"{source}: {len(labels)} images and test fraction {test_fraction} "
                         "leave no train or no test images")
    test, train = order[:n_test], order[n_test:]
    return ImageData(dataset_name(source), images[train], labels[train], images[test], labels[test], num_classes)


def _user_data(path: Path, size: int | None, channels: int | None):
    """(images, labels, number of classes) of a folder of images or a tensor file with labels."""
    import torch

    if path.is_dir():
        if size is None or channels is None:
            raise ValueError("a folder of images needs the size and channels to convert its images to")
        files, labels, classes = _images_of(path)
        images = _normalise(torch.stack([_load_image(f, size, channels) for f in files]))
        labels, num_classes = torch.tensor(labels), len(classes)
    elif path.suffix.lower() in TENSOR_SUFFIXES:
        images, labels = _tensor_file(path)
        if labels is None:
            raise InputError(f"{path}: training needs labels: save a dict with 'images' and 'labels', "
                             "or an (images, labels) pair")
        if labels.numel() and int(labels.min()) < 0:
            raise InputError(f"{path}: labels must be 0 or more; found {int(labels.min())}")
        images, num_classes = _fitted(images, size, channels, path), (int(labels.max()) + 1 if labels.numel() else 0)
    else:
        raise InputError(f"{path}: a dataset must be a folder of images or a tensor file ({', '.join(TENSOR_SUFFIXES)})")
    if len(labels.unique()) < 2:
        raise InputError(f"{path}: training needs images of at least two classes (class subfolders, or two labels)")
    return images, labels, num_classes


def _existing_path(source: str) -> Path:
    """`source` as a path, checked to exist, so a mistyped dataset name fails with a message saying what is accepted."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"dataset {source!r}: neither a packaged dataset ({', '.join(DATASETS)}) "
                         "nor an existing folder or tensor file")
    return path


def dataset_name(name_or_path) -> str:
    """The task name of a dataset: a packaged dataset's name, else the folder's name or the file's stem."""
    source = str(name_or_path)
    if source in DATASETS:
        return source
    path = Path(source)
    return path.name if path.is_dir() else path.stem


def dataset_source(name_or_path) -> dict:
    """Where a dataset came from, for the record: a packaged name, or a path with a digest of its files."""
    source = str(name_or_path)
    if source in DATASETS:
        return {"source": source}
    path = _existing_path(source)
    return {"source": str(path.resolve()), "digest": data_digest(path)}


def data_digest(path) -> str:
    """sha256 (16 hex digits) of a file's or folder's listing: relative names, sizes, modification times.

    Reads no file content, so it is cheap enough to compute before every use, and it changes
    when a file is added, removed, replaced or edited.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    listing = [[str(p.relative_to(path) if path.is_dir() else p.name), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return digest(listing)


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
        raise InputError(f"{path}: cannot be read as a tensor file ({type(exc).__name__}: {exc})") from None
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


def _fitted(images, size: int | None, channels: int | None, source):
    """`images` (N, C, H, W) resized (bilinear) to `size` x `size` if given and different; their
    channel count must equal `channels` if given (InputError naming `source` otherwise)."""
    import torch.nn.functional as F

    if channels is not None and images.shape[1] != channels:
        raise InputError(f"{source}: images have {images.shape[1]} channels; the space's networks take {channels}")
    if size is not None and images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images


def probe_from_path(path, batch_size: int, seed: int, size: int, channels: int, num_classes: int):
    """The probe from a user's data: a folder of images (class subfolders give labels) or a tensor file.

    `batch_size` items are picked by a seeded permutation. Images are resized to the
    space's `size` and normalised; a tensor file's values are used as they are (resized
    only if their size differs). Missing labels are drawn from `num_classes` with `seed`.
    """
    import torch

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
        inputs = _fitted(inputs[pick], size, channels, path)
        targets = targets[pick] if targets is not None else torch.randint(0, num_classes, (len(pick),), generator=generator)
    else:
        raise InputError(f"{path}: probe data must be a folder of images or a tensor file ({', '.join(TENSOR_SUFFIXES)})")
    if targets.numel() and not 0 <= int(targets.min()) <= int(targets.max()) < num_classes:
        raise InputError(f"{path}: labels span {int(targets.min())}..{int(targets.max())}; the networks have {num_classes} classes")
    return inputs.contiguous(), targets.long()


# The colour photographs of natural scenes that scikit-image's wheel carries (they load with no
# network; others of its sample images are downloaded on first use and are left out).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "hubble_deep_field")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=1)
def _photos():
    """The PHOTOS as float tensors (3, H, W) in [0, 1]."""
    import torch

    try:
        from skimage import data
    except ImportError:
        raise InputError("probe data 'photos' needs scikit-image (pip install scikit-image), whose wheel "
                         "carries the photographs") from None
    return [torch.from_numpy(getattr(data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 255.0 for name in PHOTOS]


def photo_probe(batch_size: int, seed: int, size: int, channels: int, num_classes: int):
    """A probe of natural images that needs no network: `batch_size` seeded random square crops
    (a quarter of the shorter side up to all of it, anywhere in the picture, mirrored half the
    time) of the photographs in scikit-image's wheel, resized to `size` with antialiasing and
    normalised as ImageNet images are (grey, their luminance, for 1-channel networks); labels are
    drawn from `num_classes` with the same seed, as for the Gaussian probe. Natural images have the
    spatial correlations and the heavy-tailed contrasts that Gaussian noise lacks, and
    activation-pattern proxies read exactly those."""
    import torch
    import torch.nn.functional as F

    if channels not in (1, 3):
        raise InputError(f"probe data 'photos': the space's networks take {channels} channels; photos give 3 or 1 (grey)")
    photos = _photos()
    generator = torch.Generator().manual_seed(seed)

    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=generator))

    crops = []
    for _ in range(batch_size):
        photo = photos[draw(len(photos))]
        height, width = photo.shape[-2:]
        shortest = min(height, width)
        side = shortest // 4 + draw(shortest - shortest // 4 + 1)
        top, left = draw(height - side + 1), draw(width - side + 1)
        crop = photo[:, top : top + side, left : left + side]
        if draw(2):
            crop = crop.flip(-1)
        crops.append(F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0])
    images = torch.stack(crops).clamp(0, 1)
    if channels == 1:
        luminance = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        images = ((images * luminance).sum(dim=1, keepdim=True) - 0.5) / 0.5
    else:
        images = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
    return images, labels
