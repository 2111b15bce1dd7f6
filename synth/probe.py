"""The probe: the one batch, initialisation and storage every architecture is measured with.

Statistics (synth/stats.py), the zoo, the search and the Python API all measure networks under a
probe, and a run records it, so it has a home of its own rather than inside the statistics cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from synth.datasets import DATASETS, data_digest, photo_probe, probe_batch, probe_from_path
from synth.errors import InputError
from synth.space import SearchSpace

__all__ = ["Probe", "default_probe", "noise_probe"]


@dataclass(frozen=True)
class Probe:
    """The probe batch, initialisation and storage every architecture is measured with."""

    dataset: str = "digits"  # a packaged dataset (digits), 'gaussian' (seeded N(0, 1) images, random labels), 'photos' (crops of natural photographs, random labels), or a path: a folder of images or a tensor file
    batch_size: int = 64
    seed: int = 0  # which images (or which noise) form the batch
    init_seed: int = 0  # torch seed the network's weights are initialised from
    max_rows: int | None = 2048  # activation rows (samples x tokens) kept per layer; None keeps all
    dtype: str = "float32"  # storage precision of cached statistics: float32 | bfloat16

    def to_dict(self) -> dict:
        return asdict(self)

    def is_path(self) -> bool:
        return self.dataset not in ("gaussian", "photos") and self.dataset not in DATASETS

    def fingerprint(self) -> dict:
        """What identifies the probe's numbers in a cache key: its settings, plus a digest of the
        user's data file or folder (names, sizes and modification times) when it is a path."""
        if not self.is_path():
            return self.to_dict()
        path = Path(self.dataset)
        return {**self.to_dict(), "dataset": str(path.resolve()), "data_digest": data_digest(path)}

    def batch(self, space: SearchSpace):
        """(inputs, targets) for networks of `space`."""
        import torch

        fixed = space.fixed
        size, channels, classes = fixed.get("img_size", 224), fixed.get("in_chans", 3), fixed.get("num_classes", 1000)
        if self.dataset == "gaussian":
            generator = torch.Generator().manual_seed(self.seed)
            inputs = torch.randn(self.batch_size, channels, size, size, generator=generator)
            targets = torch.randint(0, classes, (self.batch_size,), generator=generator)
            return inputs, targets
        if self.dataset == "photos":
            return photo_probe(self.batch_size, self.seed, size, channels, classes)
        if self.is_path():
            if not Path(self.dataset).exists():
                raise InputError(f"probe data {self.dataset!r}: neither a packaged dataset (digits), 'gaussian', 'photos', nor an existing path")
            return probe_from_path(self.dataset, self.batch_size, self.seed, size, channels, classes)

        return probe_batch(self.dataset, self.batch_size, self.seed)


def default_probe(bench, space: SearchSpace) -> Probe:
    """The benchmark's own training images when synth can load them (its recipe's dataset: a packaged
    one, or the user's folder or tensor file a `synth bench build` trained on), else seeded Gaussian
    noise. 64 images for small (<= 64 px) networks, 16 at 224 px."""
    dataset = (bench.meta.recipe or {}).get("dataset")
    if dataset in DATASETS:
        return Probe()
    if dataset and Path(dataset).exists():
        small = space.fixed.get("img_size", 224) <= 64
        return Probe(dataset=str(dataset), batch_size=64 if small else 16, max_rows=2048 if small else 256)
    return noise_probe(space)


def noise_probe(space: SearchSpace) -> Probe:
    """Seeded Gaussian images with random labels, for networks whose data synth cannot load:
    64 images for small (<= 64 px) networks, 16 at 224 px; 256 activation rows kept per layer."""
    small = space.fixed.get("img_size", 224) <= 64
    return Probe(dataset="gaussian", batch_size=64 if small else 16, max_rows=256)
