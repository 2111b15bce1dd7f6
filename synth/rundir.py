"""Run directories: atomic JSON/text writes, append-only logs, the checkpoint a run resumes from, the
lock a writing process holds, and what every run record holds (versions) or takes (a progress bar).

Checkpoints and log records carry the sha256 of their own content, so a damaged one (a disk error, a
stray edit, a copy cut short) is detected and its work done again with a warning, never used."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

from synth import __version__
from synth.errors import DamagedFileWarning, RunDirError
from synth.resources import read_json

__all__ = [
    "new_run_dir", "refuse_existing_run", "locked_run_dir", "write_json", "json_text", "write_text", "read_record",
    "read_checkpoint", "write_checkpoint", "read_checked_record", "read_jsonl", "append_record", "open_for_appending",
    "with_checksum", "checksum_problem", "rng_state", "seeded_rng", "warn_damaged", "versions", "no_progress", "CHECKPOINT", "RUN_RECORD", "LOCK",
]

CHECKPOINT = "checkpoint.json"
CHECKSUM = "sha256"  # the key under which a record stores the digest of the rest of it
RUN_RECORD = "run.json"
LOCK = ".synth.lock"


def new_run_dir(base: Path = Path("runs")) -> Path:
    """A fresh folder runs/<timestamp>[-n]."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = base / (stamp if n == 0 else f"{stamp}-{n}")
        if not path.exists():
            return path
    raise RunDirError(f"{base}: cannot find a free run folder name")


def refuse_existing_run(path: Path, markers: tuple[str, ...] = (CHECKPOINT, RUN_RECORD), force: bool = False) -> None:
    """RunDirError unless `path` can take a new run: a run there (one of the `markers` files) is never
    overwritten silently; with `force` its markers are deleted, so a killed new run cannot pass for it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; choose another --out")
    markers = tuple(markers) + tuple(previous_name(name) for name in markers if name.endswith("checkpoint.json"))
    found = [name for name in markers if (path / name).exists()]
    if found and not force:
        raise RunDirError(f"{path}: already holds a run ({found[0]}); resume it with --resume {path}, "
                          "choose another --out, or pass --force to replace it")
    for name in found:
        (path / name).unlink()


@contextmanager
def locked_run_dir(path: Path):
    """Hold `path` (made if absent) for this process while it writes there, so two runs into one
    directory cannot both succeed. RunDirError naming the folder when it cannot be made or written
    (a file, read-only, impossible) or another live process holds it. On exit the lock is released,
    and the folder removed again if this call made it and nothing was written into it."""
    path = Path(path)
    try:
        made = not path.exists()
        if not (made or path.is_dir()):
            raise RunDirError(f"{path}: exists and is not a directory; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot make the run directory ({exc.strerror or exc})") from None
    lock = path / LOCK
    _take_lock(lock)
    try:
        yield path
    finally:
        lock.unlink(missing_ok=True)
        if made and not any(path.iterdir()):
            path.rmdir()


def _take_lock(lock: Path) -> None:
    """Create `lock` holding this process id, atomically (O_EXCL); a lock whose process is gone is
    taken over. Acquisitions are serialised on the folder (flock), so two processes taking over one
    stale lock cannot both win."""
    folder_fd = os.open(lock.parent, os.O_RDONLY)
    try:
        _serialise(folder_fd)
        holder = _lock_holder(lock)
        if holder is not None and _alive(holder):
            raise RunDirError(f"{lock.parent}: in use by process {holder}, which is writing a run there; wait for it, "
                              f"or delete {lock} if no such synth process runs")
        lock.unlink(missing_ok=True)  # absent, or left by a process that died
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as exc:
            raise RunDirError(f"{lock.parent}: cannot write the run directory ({exc.strerror or exc})") from None
        with os.fdopen(fd, "w") as sink:
            sink.write(f"{os.getpid()}\n")
    finally:
        os.close(folder_fd)  # also releases the flock


def _serialise(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: O_EXCL alone
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _lock_holder(lock: Path) -> int | None:
    """The process id in `lock`; None when there is no lock; 0 when its content is not a pid (stale)."""
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return 0
    return int(text.strip()) if text.strip().isdigit() else 0


def _alive(pid: int) -> bool:
    """Whether process `pid` runs; a zombie (killed, not yet reaped by its parent) does not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (not Linux): trust kill
        return True
    return state != "Z"


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (e.g. `path` is a folder) leaves nothing behind
        raise


def write_json(path: Path, payload) -> None:
    write_text(path, json_text(payload, indent=1) + "\n")


def json_text(payload, indent: int | None = None) -> str:
    """`payload` as strict JSON: NaN and infinities become null (bare NaN is not JSON, and other tools
    reject it), numpy and torch scalars become numbers."""
    return json.dumps(_plain(payload), indent=indent, allow_nan=False)


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy or torch scalar
        return _plain(value.item())
    return _plain(float(value))


def read_record(path: Path, missing: str, required: tuple[str, ...] = ()) -> dict:
    """The JSON object in `path`, which a run wrote. RunDirError naming the file when it is absent
    (with the hint `missing`), cut short or not JSON, or lacks one of the `required` keys."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: {missing}")
    raw = read_json(path, RunDirError, "unreadable", "was the run killed while writing it?")
    if not isinstance(raw, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    for key in required:
        if key not in raw:
            raise RunDirError(f"{path}: lacks {key!r}")
    return raw


def read_jsonl(path: Path) -> list[dict]:
    """The complete, intact records of an append-only JSON-lines log (one record per finished piece
    of work). A line cut short by a kill is skipped silently: its work is simply done again. A record
    whose checksum does not match is skipped with a warning (DamagedFileWarning), and done again too."""
    path = Path(path)
    if not path.is_file():
        return []
    records, damaged = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or checksum_problem(record):
            damaged += 1
            continue
        record.pop(CHECKSUM, None)
        records.append(record)
    if damaged:
        warn_damaged(f"{path}: {damaged} record(s) failed their checksum and were not used; their work is done again")
    return records


def append_record(sink, record: dict) -> None:
    """Append `record` to an open JSON-lines log as one line carrying its checksum, and flush it."""
    sink.write(json_text(with_checksum(record)) + "\n")
    sink.flush()


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
    """The checkpoint of `run_dir` (or the one before it, if it is damaged); RunDirError naming the
    file if there is none or neither can be used."""
    return read_checked_record(Path(run_dir) / CHECKPOINT, f"no checkpoint to resume from (is {run_dir} a synth run directory?)",
                               ("config", "grammar", "state"))


def previous_name(name: str) -> str:
    """checkpoint.json -> checkpoint.prev.json: where the checkpoint before the latest is kept."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.prev.{ext}" if dot else f"{name}.prev"


def write_checkpoint(path: Path, payload: dict) -> None:
    """Write a checkpoint atomically with its checksum, keeping the one it replaces as the previous
    checkpoint (a hard link, so at every moment `path` holds a complete checkpoint). A resumed run
    whose latest checkpoint is damaged goes back to the previous one and redoes the work since."""
    path = Path(path)
    if path.is_file():
        previous = path.with_name(previous_name(path.name))
        link = path.with_name(f".{previous.name}.tmp{os.getpid()}")
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, previous)
    write_text(path, json_text(with_checksum(payload), indent=1) + "\n")


def read_checked_record(path: Path, missing: str, required: tuple[str, ...] = ()) -> dict:
    """The checkpoint in `path` after its checksum is verified (a checkpoint without one, written by
    an older synth, is read as it is). When it is absent, unreadable, damaged or lacks a `required`
    key, the previous checkpoint is used instead with a warning; RunDirError when neither can be."""
    path = Path(path)
    previous = path.with_name(previous_name(path.name))
    try:
        return _verified(read_record(path, missing, required), path)
    except RunDirError as exc:
        if not previous.is_file():
            raise
        damage = str(exc)
    raw = _verified(read_record(previous, missing, required), previous)
    warn_damaged(f"{damage}; resuming from the checkpoint before it ({previous.name}), so the last step is done again")
    return raw


def _verified(raw: dict, path: Path) -> dict:
    problem = checksum_problem(raw)
    if problem:
        raise RunDirError(f"{path}: damaged ({problem})")
    raw.pop(CHECKSUM, None)
    return raw


def checksum(payload: dict) -> str:
    """sha256 of `payload` as strict JSON with sorted keys (what a JSON round trip gives back)."""
    return hashlib.sha256(json.dumps(_plain(payload), sort_keys=True, allow_nan=False).encode()).hexdigest()


def with_checksum(payload: dict) -> dict:
    """`payload` with the checksum of its content added under CHECKSUM."""
    return {**payload, CHECKSUM: checksum({k: v for k, v in payload.items() if k != CHECKSUM})}


def checksum_problem(raw: dict) -> str | None:
    """Why `raw` (a record read back) fails its checksum, or None if it passes or carries none."""
    if CHECKSUM not in raw:
        return None
    stored = raw[CHECKSUM]
    if stored != checksum({k: v for k, v in raw.items() if k != CHECKSUM}):
        return "its content does not match its checksum"
    return None


def rng_state(rng: random.Random) -> list:
    """The state of `rng` as JSON (a checkpoint holds no pickles): [version, internal state, gauss]."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def seeded_rng(seed: int, state: list | None = None) -> random.Random:
    """A Random seeded with `seed`, then put in the checkpointed `state` (rng_state's) when there is one."""
    rng = random.Random(seed)
    if state is not None:
        version, internal, gauss = state
        rng.setstate((version, tuple(internal), gauss))
    return rng


def warn_damaged(message: str) -> None:
    """Report a damaged file whose work is done again (the CLI prints it as a warning line)."""
    warnings.warn(message, DamagedFileWarning, stacklevel=3)


def versions() -> dict:
    """Versions of synth, Python and the packages that determine a run's numbers, for its record."""
    import platform

    import deap
    import numpy as np
    import scipy
    import sympy
    import timm
    import torch

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
    return nullcontext(lambda done, total=None: None)
