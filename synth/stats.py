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

import json
import os
import zlib
from pathlib import Path

from synth.cache import cache_root, digest
from synth.probe import Probe
from synth.rundir import warn_damaged
from synth.space import SearchSpace, arch_key

__all__ = ["statistics_for", "load_statistics", "DTYPES"]

CACHE_FORMAT = 2  # bump when the statistics' meaning or the file layout changes
DTYPES = ("float32", "bfloat16")


def _cache_stem(root: Path, space: SearchSpace, arch: dict, probe: Probe, stats: tuple[str, ...]) -> Path:
    identity = {"format": CACHE_FORMAT, "space": [space.name, space.builder, space.fixed], "arch": arch_key(arch),
                "probe": probe.fingerprint(), "stats": list(stats)}
    return root / "stats" / space.name / digest(identity, 24)


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
        if isinstance(header, dict) and not _current_header(header):  # any other header is damaged: warned below
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


def load_statistics(space, archs, probe: Probe, stats, cache: Path | None = None, progress=None, device="cpu",
                    workers: int = 1, plugins: tuple = ()) -> list[dict]:
    """Statistics of every architecture, from the cache where present; computes and stores the rest.

    `cache=None` uses `cache_root()`; pass `False` to disable caching. Values
    come back on the CPU, memory-mapped from the cache when there is one.
    `progress(done, total)` is called after each architecture.

    With `workers` > 1 (CPU and a cache only) the missing entries are computed by that many spawned
    single-threaded processes, which import `plugins` ((module, folder) pairs, as the grammar
    names them) first: networks are independent, and on a few cores one process per core
    outruns torch's own threads on these small passes. A statistic may then differ from a
    one-process run in its last bits (floating-point sums in another order).
    """
    if probe.dtype not in DTYPES:
        raise ValueError(f"probe dtype {probe.dtype!r}: choose from {', '.join(DTYPES)}")
    stats = tuple(sorted(stats))
    root = cache_root() if cache is None else cache
    batch = probe.batch(space)
    if workers > 1 and root and device == "cpu":
        _fill_cache(space, archs, probe, stats, root, workers, plugins, progress, batch)
        progress = None  # every architecture has been reported
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


def _fill_cache(space, archs, probe: Probe, stats: tuple[str, ...], root: Path, workers: int, plugins, progress,
                batch) -> None:
    """Compute the cache entries `archs` lack in a pool of `workers` processes, each given the probe
    `batch` once, reporting progress (cached entries count as done) as each finishes."""
    from synth.pool import imap_jobs, spawn_pool

    stems = [_cache_stem(root, space, arch, probe, stats) for arch in archs]
    jobs = [(space, arch, probe, stats, stem) for arch, stem in zip(archs, stems) if not _has_header(stem)]
    done = len(archs) - len(jobs)
    if progress and done:
        progress(done, len(archs))
    if not jobs:
        return
    pool = spawn_pool(min(workers, len(jobs)), _init_worker, (tuple(plugins), batch))
    try:
        for _ in imap_jobs(_store_entry, jobs, pool, ordered=False):
            done += 1
            if progress:
                progress(done, len(archs))
    finally:
        pool.terminate()


def _has_header(stem: Path) -> bool:
    """Whether a complete entry of this cache format is there, judged by its header alone (written
    last); its data is checked when it is read, and a damaged one recomputed then."""
    try:
        header = json.loads(stem.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    return _current_header(header)


def _current_header(header) -> bool:
    """Whether a cache header belongs to an entry of this cache format that carries its CRC-32
    (an older synth's entry is recomputed, not used)."""
    return isinstance(header, dict) and header.get("format") == CACHE_FORMAT and "crc32" in header


_WORKER: dict = {}  # per worker process: the probe batch


def _init_worker(plugins: tuple, batch) -> None:
    import torch

    from synth.plugins import import_plugin

    torch.set_num_threads(1)
    for module, folder in plugins:
        import_plugin(module, Path(folder))
    _WORKER["batch"] = batch


def _store_entry(job: tuple) -> None:
    """Worker: compute one architecture's statistics and write its cache entry."""
    space, arch, probe, stats, stem = job
    _write_entry(stem, statistics_for(space, arch, probe, stats, _WORKER["batch"]), probe.dtype)
