"""Published benchmarks as synth benchmarks: the registry of named sources, their files, and
ViT-Bench-101-style row files.

A named source (e.g. `vit-bench-101`, or `nasbench201:cifar10` of synth/bench/nasbench201.py) is
looked up, file by file, in `$SYNTH_DATA/<folder>/`, then in the user cache
(`$SYNTH_CACHE/benchmarks/<folder>/` or ~/.cache/synth/benchmarks/<folder>/), then downloaded from
where it was published when a network is reachable. Every file's sha256 is checked. `.pth` files
are read with `torch.load(..., weights_only=True)` only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from synth.bench.record import Benchmark, BenchMeta, accuracy, targets_and_missing
from synth.cache import cache_root
from synth.errors import BenchError, did_you_mean
from synth.registry import Registry
from synth.resources import read_json

__all__ = ["NamedSource", "SOURCES", "find_source", "source_names", "load_rows_file", "rows_to_benchmark", "resolve_files",
           "source_for_rows", "download"]


@dataclass(frozen=True)
class NamedSource:
    """A published benchmark: its files (with their sha256), its space and tasks, and how it loads.

    A source with `datasets` is named `<name>:<dataset>` and loaded by its own `load`; one without is
    a set of ViT-Bench-101-style row files (the format `source_for_rows` recognises in a user's file).
    """

    name: str
    folder: str
    files: dict  # file name -> sha256
    space: str
    default_tasks: tuple
    url: str | None  # base address the files were published under (None: not downloadable as such)
    arch_keys: dict = field(default_factory=dict)  # renames from the source's arch dict to the space's
    flags: dict = field(default_factory=dict)  # task -> caveat shown to the user
    datasets: tuple = ()  # the `<dataset>` parts a name may carry
    load: Callable[[str, "NamedSource", list | None], Benchmark] | None = None  # (name as given, self, tasks)

    def names(self) -> list[str]:
        """What a user may write for this source: `name`, or `name:<dataset>` for each dataset."""
        return [f"{self.name}:{d}" for d in self.datasets] if self.datasets else [self.name]


SOURCES: Registry[NamedSource] = Registry("benchmark source", BenchError, modules=("synth.bench.nasbench201",))
ALIASES = {"vit-bench-101:autoformer": "vit-bench-101"}


def find_source(text: str) -> NamedSource | None:
    """The registered source `text` names ('vit-bench-101', 'nasbench201:cifar10@300', ...), None when
    it names none (then it is a path). A source with datasets is named with or without one (without is
    its loader's error); one without is named exactly."""
    base, colon, _ = ALIASES.get(text, text).partition(":")
    if base not in SOURCES:
        return None
    named = SOURCES.get(base)
    return named if named.datasets or not colon else None


def source_names() -> list[str]:
    """Every name a user may give as a benchmark source, for error messages."""
    return [name for _, source in SOURCES.items() for name in source.names()]


def load_row_source(text: str, named: NamedSource, tasks=None) -> Benchmark:
    """A row-file source (ViT-Bench-101): its verified files joined into one benchmark."""
    files = [(p, load_rows_file(p)) for p in resolve_files(named)]
    return rows_to_benchmark(files, named.name, named.space, tasks, named.default_tasks, named.arch_keys, named.flags)


def source_for_rows(rows: list[dict], path: Path) -> NamedSource:
    """The named source whose architecture format a row file follows (its space and renames)."""
    keys = set(rows[0]["arch"]) if rows else set()
    for _, source in SOURCES.items():
        if not source.datasets and set(source.arch_keys) <= keys:
            return source
    raise BenchError(f"{path}: architectures with keys {sorted(keys)} match no known space; convert the file to synth's benchmark JSON")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_dir(source: NamedSource) -> Path:
    return cache_root() / "benchmarks" / source.folder


def download(url: str, target: Path, timeout: float = 10.0) -> None:
    """Fetch `url` into `target` (atomically). Module-level so tests can replace it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as sink:
        sink.write(response.read())
    os.replace(tmp, target)


def resolve_files(source: NamedSource) -> list[Path]:
    """Verified local paths of every file of `source`, downloading into the cache as a last resort."""
    paths = []
    for name, expected in source.files.items():
        places = []
        if os.environ.get("SYNTH_DATA"):
            places.append(Path(os.environ["SYNTH_DATA"]) / source.folder / name)
        places.append(_cache_dir(source) / name)
        found = next((p for p in places if p.is_file()), None)
        if found is None and source.url is None:
            raise BenchError(f"benchmark {source.name!r}: file {name} not found; looked in {', '.join(map(str, places))}. "
                             f"Set SYNTH_DATA to a folder holding {source.folder}/{name} (sha256 {expected}).")
        if found is None:
            target = _cache_dir(source) / name
            try:
                download(source.url + name, target)
                found = target
            except Exception as exc:  # noqa: BLE001 - any network failure means "not available here"
                looked = ", ".join(str(p) for p in places) + f", and {source.url + name} ({type(exc).__name__}: {exc})"
                raise BenchError(
                    f"benchmark {source.name!r}: file {name} not found; looked in {looked}. "
                    f"Set SYNTH_DATA to a folder holding {source.folder}/{name}."
                ) from None
        actual = _sha256(found)
        if actual != expected:
            raise BenchError(f"{found}: sha256 {actual} does not match the published {expected}; the file is damaged or another version")
        paths.append(found)
    return paths


def load_rows_file(path: Path) -> list[dict]:
    """Rows of a ViT-Bench-101-style file: a .pth list of dicts, a JSON list of dicts, or a CSV with an `arch` column."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pth":
        import torch

        try:
            rows = torch.load(path, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
            raise BenchError(f"{path}: cannot be read as a benchmark (truncated or not a torch.save'd list of rows): {type(exc).__name__}") from None
    elif suffix == ".json":
        rows = read_json(path, BenchError)
    elif suffix == ".csv":
        with open(path, newline="") as stream:
            rows = []
            for i, record in enumerate(csv.DictReader(stream)):
                try:
                    arch = json.loads(record.pop("arch"))
                except (KeyError, TypeError, json.JSONDecodeError):
                    raise BenchError(f"{path}: row {i + 1}: column 'arch' must hold the architecture as JSON") from None
                rows.append({"arch": arch, **{k: (v if v not in ("", None) else None) for k, v in record.items()}})
    else:
        raise BenchError(f"{path}: unknown benchmark file type {suffix!r} (use .json, .pth or .csv)")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "arch" in r for r in rows):
        raise BenchError(f"{path}: expected a list of rows, each with an 'arch'")
    return rows


def rows_to_benchmark(files_rows: list[tuple[Path, list[dict]]], name: str, space: str, tasks=None,
                      default_tasks=None, arch_keys=None, flags=None):
    """A Benchmark from row files whose accuracy columns end in `_acc` (task = column without `_acc`)."""
    arch_keys, flags = arch_keys or {}, flags or {}
    available = sorted({k[: -len("_acc")] for _, rows in files_rows for r in rows for k in r if k.endswith("_acc")})
    chosen = list(tasks or default_tasks or available)
    for task in chosen:
        if task not in available:
            raise BenchError(f"benchmark {name!r}: unknown task {task!r}{did_you_mean(task, available)} "
                             f"(available: {', '.join(available)})")
    archs, values, provenance = [], {t: [] for t in chosen}, []
    for path, rows in files_rows:
        for i, row in enumerate(rows):
            archs.append({arch_keys.get(k, k): v for k, v in row["arch"].items()})
            provenance.append({"file": str(path), "row": i})
            for task in chosen:
                values[task].append(accuracy(row.get(task + "_acc"), f"{path}: row {i}, column {task + '_acc'!r}"))
    targets, missing = targets_and_missing(values, f"benchmark {name!r}")
    return Benchmark(
        name=name, space=space, archs=archs, targets=targets,
        meta=BenchMeta(missing=missing, provenance=provenance, available_tasks=available,
                       flags={t: flags[t] for t in chosen if t in flags}),
    )


# Registered last, once every name the registry's lazily imported modules need from here exists.
SOURCES.register("vit-bench-101", NamedSource(
    name="vit-bench-101",
    folder="vit-bench-101",
    files={
        "gt_autoformer.pth": "712ad277546d9f7f565ce07885be7e0b98dcd8d0724fdd1120f595b517436eca",
        "gt_autoformer_2.pth": "05f5df6a41f338fb5f47eafebfc8758c75e451606856b278ccda1c60b26e7bca",
    },
    space="autoformer-tiny",
    default_tasks=("c100_kd", "flower_kd", "chaoyang_kd"),
    url="https://raw.githubusercontent.com/lilujunai/Auto-Prox-AAAI24/main/gt_results/",
    arch_keys={"hidden_dim": "embed_dim"},
    flags={
        "imagenet_super": "inherited from an AutoFormer supernet, not trained alone; bimodal, treat with care",
    },
    load=load_row_source,
))
