"""Architecture files: the architectures `synth bench build --arch-file` trains, read from any file
that lists them (a JSON list, {'archs': [...]}, a synth benchmark, a search result, or JSONL)."""

from __future__ import annotations

import json
from pathlib import Path

from synth.errors import InputError, SpaceError
from synth.space import SearchSpace, arch_key

__all__ = ["load_arch_file"]


def load_arch_file(path, space: SearchSpace) -> list[dict]:
    """The distinct architectures listed in `path`, in file order, each checked against `space`.

    Accepted: a JSON list of architectures, a JSON object with an 'archs' list, a synth benchmark
    (its rows' architectures, to train them with more seeds), a `synth search` result (an object
    whose 'top' items each hold an 'arch'), or JSONL with one architecture per line. A repeated architecture is kept once, so it is trained once. InputError names the file
    and the item or line of the first bad entry.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the architecture file ({exc.strerror})") from None
    archs: dict[str, dict] = {}
    for where, item in _arch_items(path, text):
        if not isinstance(item, dict):
            raise InputError(f"{path}: {where}: expected an architecture (a mapping), got {type(item).__name__}")
        try:
            space.validate(item)
        except SpaceError as exc:
            raise InputError(f"{path}: {where}: {exc}") from None
        archs.setdefault(arch_key(item), item)
    if not archs:
        raise InputError(f"{path}: no architectures in the file")
    return list(archs.values())


def _arch_items(path: Path, text: str) -> list[tuple[str, object]]:
    """(where, item) for every entry of an architecture file, `where` naming it for error messages."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        return _jsonl_items(path, text)
    if isinstance(raw, list):
        return [(f"item {i}", item) for i, item in enumerate(raw)]
    if isinstance(raw, dict) and "archs" in raw:
        return [(f"archs[{i}]", item) for i, item in enumerate(_listed(path, raw, "archs"))]
    if isinstance(raw, dict) and "rows" in raw:  # a synth benchmark: train its architectures again (more seeds)
        rows = _listed(path, raw, "rows")
        return [(f"rows[{i}].arch", entry.get("arch") if isinstance(entry, dict) else entry) for i, entry in enumerate(rows)]
    if isinstance(raw, dict) and "top" in raw:
        top = _listed(path, raw, "top")
        return [(f"top[{i}].arch", entry.get("arch") if isinstance(entry, dict) else entry) for i, entry in enumerate(top)]
    return [("line 1", raw)]  # JSONL holding a single architecture


def _listed(path: Path, raw: dict, key: str) -> list:
    if not isinstance(raw[key], list):
        raise InputError(f"{path}: {key!r} must be a list")
    return raw[key]


def _jsonl_items(path: Path, text: str) -> list[tuple[str, object]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}); an architecture file is JSON (a list, "
                             "{'archs': [...]} or a search.json) or JSONL (one architecture per line)") from None
    return items
