"""Statistics of architectures under one probe, computed once and cached on disk.

The expensive step of proxy search is a forward and backward pass per
architecture; it happens here, once per (space, architecture, probe,
statistic set), never once per candidate program. Cache files hold plain
tensors and are read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from synth.space import SearchSpace, arch_key

__all__ = ["Probe", "cache_root", "statistics_for", "load_statistics"]

CACHE_FORMAT = 1  # bump when the statistics' meaning changes


@dataclass(frozen=True)
class Probe:
    """The probe batch and initialisation every architecture is measured with."""

    dataset: str = "digits"
    batch_size: int = 64
    seed: int = 0  # which training images form the batch
    init_seed: int = 0  # torch seed the network's weights are initialised from

    def to_dict(self) -> dict:
        return asdict(self)

    def batch(self):
        from synth.datasets import probe_batch

        return probe_batch(self.dataset, self.batch_size, self.seed)


def cache_root() -> Path:
    """`$SYNTH_CACHE`, else ~/.cache/synth."""
    return Path(os.environ.get("SYNTH_CACHE") or Path.home() / ".cache" / "synth")


def _cache_file(root: Path, space: SearchSpace, arch: dict, probe: Probe, stats: tuple[str, ...]) -> Path:
    identity = json.dumps(
        {
            "format": CACHE_FORMAT,
            "space": [space.name, space.builder, space.fixed],
            "arch": arch_key(arch),
            "probe": probe.to_dict(),
            "stats": list(stats),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return root / "stats" / space.name / f"{digest}.pt"


def statistics_for(space: SearchSpace, arch: dict, probe: Probe, stats: tuple[str, ...], batch=None) -> dict:
    """{statistic: [tensor per layer]} of `arch` under `probe`, computed now (no cache)."""
    from synth.runtime import collect_statistics

    inputs, targets = batch if batch is not None else probe.batch()
    model = space.build(arch, seed=probe.init_seed)
    return collect_statistics(model, inputs, targets, stats)


def load_statistics(space, archs, probe: Probe, stats, cache: Path | None = None, progress=None) -> list[dict]:
    """Statistics of every architecture, from the cache where present; computes and stores the rest.

    `cache=None` uses `cache_root()`; pass `False` to disable caching.
    `progress(done, total)` is called after each architecture.
    """
    import torch

    stats = tuple(sorted(stats))
    root = cache_root() if cache is None else cache
    batch = probe.batch()
    out = []
    for i, arch in enumerate(archs):
        path = _cache_file(root, space, arch, probe, stats) if root else None
        record = None
        if path is not None and path.is_file():
            try:
                record = torch.load(path, weights_only=True)
            except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed, not fatal
                record = None
        if record is None:
            record = statistics_for(space, arch, probe, stats, batch)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                torch.save(record, tmp)
                os.replace(tmp, path)
        out.append(record)
        if progress:
            progress(i + 1, len(archs))
    return out
