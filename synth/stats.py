"""Statistics of architectures under one probe, computed once and cached on disk.

The expensive step of proxy search is a forward and backward pass per
architecture; it happens here, once per (space, architecture, probe,
statistic set), never once per candidate program.

Cache entries are a JSON header plus one raw binary buffer per architecture,
read back memory-mapped (`torch.from_file`), so the statistics of a large
benchmark need not fit in RAM at once and nothing is ever unpickled. The header
holds the buffer's CRC-32: a damaged entry is recomputed with a warning, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from synth.rundir import warn_damaged
from synth.space import SearchSpace, arch_key

__all__ = ["Probe", "default_probe", "noise_probe", "cache_root", "statistics_for", "load_statistics", "DTYPES"]

CACHE_FORMAT = 2  # bump when the statistics' meaning or the file layout changes
DTYPES = ("float32", "bfloat16")


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
        from synth.datasets import DATASETS

        return self.dataset not in ("gaussian", "photos") and self.dataset not in DATASETS

    def fingerprint(self) -> dict:
        """What identifies the probe's numbers in a cache key: its settings, plus a digest of the
        user's data file or folder (names, sizes and modification times) when it is a path."""
        from synth.datasets import data_digest

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
            from synth.datasets import photo_probe

            return photo_probe(self.batch_size, self.seed, size, channels, classes)
        if self.is_path():
            from synth.datasets import probe_from_path

            if not Path(self.dataset).exists():
                from synth.errors import InputError

                raise InputError(f"probe data {self.dataset!r}: neither a packaged dataset (digits), 'gaussian', 'photos', nor an existing path")
            return probe_from_path(self.dataset, self.batch_size, self.seed, size, channels, classes)
        from synth.datasets import probe_batch

        return probe_batch(self.dataset, self.batch_size, self.seed)


def default_probe(bench, space: SearchSpace) -> Probe:
    """The benchmark's own training images when synth can load them (its recipe's dataset: a packaged
    one, or the user's folder or tensor file a `synth bench build` trained on), else seeded Gaussian
    noise. 64 images for small (<= 64 px) networks, 16 at 224 px."""
    from synth.datasets import DATASETS

    dataset = (bench.meta.get("recipe") or {}).get("dataset")
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


def cache_root() -> Path:
    """`$SYNTH_CACHE`, else ~/.cache/synth."""
    return Path(os.environ.get("SYNTH_CACHE") or Path.home() / ".cache" / "synth")


def _cache_stem(root: Path, space: SearchSpace, arch: dict, probe: Probe, stats: tuple[str, ...]) -> Path:
    identity = json.dumps(
        {
            "format": CACHE_FORMAT,
            "space": [space.name, space.builder, space.fixed],
            "arch": arch_key(arch),
            "probe": probe.fingerprint(),
            "stats": list(stats),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return root / "stats" / space.name / digest


def statistics_for(space: SearchSpace, arch: dict, probe: Probe, stats: tuple[str, ...], batch=None, device="cpu") -> dict:
    """{statistic: value} of `arch` under `probe`, computed now (no cache); see collect_statistics."""
    from synth.runtime import collect_statistics

    inputs, targets = batch if batch is not None else probe.batch(space)
    model = space.build(arch, seed=probe.init_seed).to(device)
    return collect_statistics(model, inputs.to(device), targets.to(device), stats, probe.max_rows, probe.seed)


def _write_entry(stem: Path, record: dict, dtype: str) -> None:
    import torch

    header, chunks, offset = {"format": CACHE_FORMAT, "dtype": dtype, "stats": {}}, [], 0
    for name, value in sorted(record.items()):
        per_layer = isinstance(value, torch.Tensor)  # one number per layer, not a Layers
        data = (value if per_layer else value.data).detach().to("cpu", getattr(torch, dtype)).contiguous()
        shapes = None if per_layer else [list(s) for s in value.layout.shapes]
        header["stats"][name] = {"offset": offset, "numel": data.numel(), "shapes": shapes}
        chunks.append(data)
        offset += data.numel()
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp_bin, tmp_json = (stem.with_name(f".{stem.name}.{ext}.tmp{os.getpid()}") for ext in ("bin", "json"))
    crc = 0
    with open(tmp_bin, "wb") as sink:
        for chunk in chunks:
            data = chunk.view(torch.uint8).numpy().tobytes()
            crc = zlib.crc32(data, crc)
            sink.write(data)
    header["crc32"] = crc
    tmp_json.write_text(json.dumps(header))
    os.replace(tmp_bin, stem.with_suffix(".bin"))
    os.replace(tmp_json, stem.with_suffix(".json"))  # the header last: its presence marks a complete entry


def _stored(value, dtype: str):
    """A statistic as the cache would give it back: on the CPU, in the storage dtype."""
    import torch

    from synth.runtime import Layers, Layout

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", getattr(torch, dtype))
    return Layers(value.data.detach().to("cpu", getattr(torch, dtype)), Layout.of(value.layout.shapes, "cpu"))


def _read_entry(stem: Path) -> dict | None:
    """{statistic: Layers, or a 1-D tensor for per-layer numbers} memory-mapped from a cache entry;
    None if there is none or it cannot be used. An entry whose data fails its header's CRC-32 (or
    whose header is unreadable, or whose data is cut short) is damaged: it is reported with a warning
    and recomputed, never used. An entry of an older synth (no CRC) is recomputed silently."""
    import torch

    from synth.runtime import Layers, Layout

    header_file, data_file = stem.with_suffix(".json"), stem.with_suffix(".bin")
    if not header_file.is_file():
        return None
    try:
        header = json.loads(header_file.read_text())
        if header.get("format") != CACHE_FORMAT or "crc32" not in header:
            return None
        dtype = getattr(torch, header["dtype"])
        total = sum(entry["numel"] for entry in header["stats"].values())
        if data_file.stat().st_size != total * dtype.itemsize:
            raise ValueError(f"its data holds {data_file.stat().st_size} bytes, not {total * dtype.itemsize}")
        if _file_crc32(data_file) != header["crc32"]:
            raise ValueError("its data does not match its CRC-32")
        flat = torch.from_file(str(data_file), shared=False, size=total, dtype=dtype)
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        warn_damaged(f"{data_file}: damaged statistics cache entry ({exc}); recomputing it")
        return None
    out = {}
    for name, e in header["stats"].items():
        data = flat[e["offset"] : e["offset"] + e["numel"]]
        out[name] = data if e["shapes"] is None else Layers(data, Layout.of(e["shapes"], "cpu"))
    return out


def _file_crc32(path: Path, chunk: int = 1 << 24) -> int:
    crc = 0
    with open(path, "rb") as source:
        while block := source.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def load_statistics(space, archs, probe: Probe, stats, cache: Path | None = None, progress=None, device="cpu") -> list[dict]:
    """Statistics of every architecture, from the cache where present; computes and stores the rest.

    `cache=None` uses `cache_root()`; pass `False` to disable caching. Values
    come back on the CPU, memory-mapped from the cache when there is one.
    `progress(done, total)` is called after each architecture.
    """
    if probe.dtype not in DTYPES:
        raise ValueError(f"probe dtype {probe.dtype!r}: choose from {', '.join(DTYPES)}")
    stats = tuple(sorted(stats))
    root = cache_root() if cache is None else cache
    batch = probe.batch(space)
    out = []
    for i, arch in enumerate(archs):
        stem = _cache_stem(root, space, arch, probe, stats) if root else None
        record = _read_entry(stem) if stem is not None else None
        if record is None:
            record = statistics_for(space, arch, probe, stats, batch, device)
            if stem is not None:
                _write_entry(stem, record, probe.dtype)
                record = _read_entry(stem)
            else:
                record = {name: _stored(value, probe.dtype) for name, value in record.items()}
        out.append(record)
        if progress:
            progress(i + 1, len(archs))
    return out
