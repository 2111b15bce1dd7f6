"""Run directories: atomic JSON/text writes, append-only logs, the checkpoint a run resumes from, and
what every run record holds (versions) or takes (a progress-bar factory)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from synth.errors import RunDirError

__all__ = [
    "new_run_dir", "write_json", "write_text", "read_record", "read_checkpoint", "read_jsonl", "open_for_appending",
    "versions", "no_progress", "CHECKPOINT", "RUN_RECORD",
]

CHECKPOINT = "checkpoint.json"
RUN_RECORD = "run.json"


def new_run_dir(base: Path = Path("runs")) -> Path:
    """A fresh folder runs/<timestamp>[-n]."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = base / (stamp if n == 0 else f"{stamp}-{n}")
        if not path.exists():
            return path
    raise RunDirError(f"{base}: cannot find a free run folder name")


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, payload) -> None:
    write_text(path, json.dumps(payload, indent=1, default=float) + "\n")


def read_record(path: Path, missing: str, required: tuple[str, ...] = ()) -> dict:
    """The JSON object in `path`, which a run wrote. RunDirError naming the file when it is absent
    (with the hint `missing`), cut short or not JSON, or lacks one of the `required` keys."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: {missing}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}:{exc.lineno}: unreadable ({exc.msg}); was the run killed while writing it?") from None
    if not isinstance(raw, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    for key in required:
        if key not in raw:
            raise RunDirError(f"{path}: lacks {key!r}")
    return raw


def read_jsonl(path: Path) -> list[dict]:
    """The complete records of an append-only JSON-lines log (one record per finished piece of work).
    A line cut short by a kill is skipped: its work is simply done again."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def open_for_appending(path: Path):
    """`path` open for appending records, after ending a last line cut short by a kill, so that line
    stays its own (skipped) line instead of swallowing the next record."""
    path = Path(path)
    cut = False
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            cut = f.read(1) != b"\n"
    sink = path.open("a")
    if cut:
        sink.write("\n")
    return sink


def read_checkpoint(run_dir: Path) -> dict:
    """The checkpoint of `run_dir`; RunDirError naming the file if absent or unreadable."""
    return read_record(Path(run_dir) / CHECKPOINT, f"no checkpoint to resume from (is {run_dir} a synth run directory?)",
                       ("config", "grammar", "state"))


def versions() -> dict:
    """Versions of synth, Python and the packages that determine a run's numbers, for its record."""
    import platform

    import deap
    import numpy as np
    import scipy
    import sympy
    import timm
    import torch

    from synth import __version__

    return {
        "synth": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "deap": deap.__version__,
        "sympy": sympy.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def no_progress(description: str, total: int):
    """The progress-bar factory long runs take (`progress(description, total)` -> context yielding
    `advance(done, total=None)`), for callers that show none."""
    from contextlib import nullcontext

    return nullcontext(lambda done, total=None: None)
