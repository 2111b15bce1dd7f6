"""Score every architecture of a benchmark with every chosen proxy, cached, and correlate with accuracy.

Each architecture is built once (weights seeded by the probe) and every proxy
scores it on the same probe batch. Results are cached per architecture under
`$SYNTH_CACHE/zoo/<space>/`, keyed by the space, the architecture, the probe
and each proxy's own source code, so an interrupted `synth zoo` resumes where
it stopped and a changed proxy is re-scored while the others are not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.cache import cache_root
from synth.errors import InputError
from synth.fitness import correlation, correlations, unscored
from synth.probe import Probe
from synth.rundir import CHECKSUM, checksum_problem, warn_damaged, with_checksum, write_json
from synth.space import SearchSpace, arch_key
from synth.zoo import FAMILIES, ProxySpec, get_proxy, proxy_names

__all__ = ["ZooEntry", "exported_proxy_digest", "resolve_proxies", "load_exported_proxy", "score_architectures", "score_network", "zoo_report"]

ZOO_FORMAT = 1  # bump when what a cached score means changes


@dataclass(frozen=True)
class ZooEntry:
    """A proxy to tabulate: its display name, the callable, and the digest of its code (the cache key)."""

    name: str
    proxy: ProxySpec
    digest: str


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_exported_proxy(path: Path) -> ProxySpec:
    """An exported `proxy.py` (or the one in a run directory) as a zoo proxy.

    The file is the user's own, produced by `synth evolve`; it is imported like
    any Python module, as the user would import it. It applies to every family: its statistics
    are found by structure, so a network without the layers its formula reads fails (and scores
    NaN, counted) rather than being refused by name.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "proxy.py"
    if not path.is_file():
        raise InputError(f"{path}: no exported proxy here (expected a proxy.py or a run directory holding one)")
    spec = importlib.util.spec_from_file_location(f"synth_exported_{_digest(str(path.resolve()))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "score", None)):
        raise InputError(f"{path}: defines no score(model, inputs, targets) function")
    formula = getattr(module, "FORMULA", path.stem)
    return ProxySpec(name=str(path), fn=lambda model, inputs, targets, loss_fn: module.score(model, inputs, targets),
                     paper=f"synth evolved proxy: {formula}", families=FAMILIES)


def exported_proxy_digest(path: Path) -> str:
    """The cache key of an exported proxy (a proxy.py, or the one in a run directory): its text's digest,
    so an edited file is scored again and anything scoring the same formula shares its cache."""
    path = Path(path)
    return _digest((path / "proxy.py" if path.is_dir() else path).read_text())


def resolve_proxies(requested: list[str] | None, space: SearchSpace) -> list[ZooEntry]:
    """The proxies to run: the requested names or exported proxy paths, else every zoo proxy for the space's family."""
    if not requested:
        requested = proxy_names(space.family or None)
        if not requested:
            raise InputError(f"space {space.name!r}: no zoo proxy is defined for family {space.family!r}")
    entries = []
    for item in requested:
        if item.endswith(".py") or Path(item).is_dir():
            proxy = load_exported_proxy(Path(item))
            digest = exported_proxy_digest(Path(item))
        else:
            try:
                proxy = get_proxy(item)
            except KeyError as exc:
                raise InputError(exc.args[0]) from None
            if space.family and space.family not in proxy.families:
                raise InputError(f"proxy {item!r} is defined for {', '.join(proxy.families)} networks; "
                                 f"space {space.name!r} is {space.family!r}")
            digest = _digest(inspect.getsource(inspect.getmodule(proxy.fn)))
        entries.append(ZooEntry(item, proxy, digest))
    return entries


def _cache_file(root: Path, space: SearchSpace, arch: dict, probe: Probe) -> Path:
    identity = json.dumps({"format": ZOO_FORMAT, "space": [space.name, space.builder, space.fixed],
                           "arch": arch_key(arch), "probe": probe.fingerprint()}, sort_keys=True)
    return root / "zoo" / space.name / f"{_digest(identity)}.json"


def _read_cached(path: Path) -> dict:
    """{proxy@digest: [score, seconds, error]} of one cached architecture; {} when there is none, and
    {} with a warning when the entry is damaged (unreadable or failing its checksum): it is rescored."""
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        problem = "not a JSON object" if not isinstance(raw, dict) else checksum_problem(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = f"unreadable: {exc}"
    if problem:
        warn_damaged(f"{path}: damaged zoo cache entry ({problem}); scoring that architecture again")
        return {}
    raw.pop(CHECKSUM, None)
    return raw


def score_architectures(entries: list[ZooEntry], space: SearchSpace, archs: list[dict], probe: Probe,
                        device: str = "cpu", cache: Path | None | bool = None, progress=None) -> dict:
    """{proxy name: {"scores": array, "seconds": array, "errors": {message: count}}} over `archs`.

    A proxy that raises or returns a non-finite value scores NaN for that
    architecture; the error messages are counted, not hidden. `cache=False`
    disables the cache, None uses `cache_root()`.
    """

    root = cache_root() if cache is None else cache
    inputs, targets = probe.batch(space)
    inputs, targets = inputs.to(device), targets.to(device)
    out = {e.name: {"scores": np.full(len(archs), math.nan), "seconds": np.full(len(archs), math.nan), "errors": {}}
           for e in entries}
    for i, arch in enumerate(archs):
        path = _cache_file(root, space, arch, probe) if root else None
        known = _read_cached(path) if path else {}
        todo = [e for e in entries if f"{e.name}@{e.digest}" not in known]
        if todo:
            model = space.build(arch, seed=probe.init_seed).to(device)
            for entry in todo:
                known[f"{entry.name}@{entry.digest}"] = score_network(entry, model, inputs, targets)
            del model
            if path:
                write_json(path, with_checksum(known))
        for entry in entries:
            value, seconds, error = known[f"{entry.name}@{entry.digest}"]
            out[entry.name]["scores"][i] = math.nan if value is None else value
            out[entry.name]["seconds"][i] = seconds
            if error:
                out[entry.name]["errors"][error] = out[entry.name]["errors"].get(error, 0) + 1
        if progress:
            progress(i + 1, len(archs))
    return out


def score_network(entry: ZooEntry, model, inputs, targets) -> list:
    """[score or None, seconds, error message or None] of one proxy on one network."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    try:
        value, error = float(entry.proxy(model, inputs, targets)), None
        if not math.isfinite(value):
            value, error = None, f"non-finite score ({value})"
    except Exception as exc:  # noqa: BLE001 - one failing architecture must not lose the table
        value, error = None, f"{type(exc).__name__}: {exc}"
    return [value, time.perf_counter() - start, error]


def zoo_report(bench, scored: dict, arch_ids: list[str]) -> dict:
    """The JSON of `synth zoo`: per proxy its scores by architecture key, its Kendall, Spearman and
    Pearson with each task, seconds per architecture (median), and, where the benchmark carries
    a reference implementation's scores of the same proxy, the agreement with them."""
    references = bench.meta.reference_scores
    report = {}
    for name, result in scored.items():
        scores = result["scores"]
        entry = {"scores": {k: (None if not np.isfinite(s) else float(s)) for k, s in zip(arch_ids, scores)},
                 **correlations(scores, bench.targets),
                 "seconds_per_arch": float(statistics.median(result["seconds"])) if len(scores) else math.nan,
                 "failed": unscored(scores), "errors": result["errors"]}
        if name in references:
            ref = np.asarray(references[name], dtype=float)
            both = np.isfinite(scores) & np.isfinite(ref)
            entry["reference"] = {
                "spearman_with_ours": correlation(scores[both], ref[both], "spearman"),
                "kendall": {task: correlation(ref[np.isfinite(ref)], t[np.isfinite(ref)], "kendall")
                            for task, t in bench.targets.items()},
            }
        report[name] = entry
    return {"proxies": report}
