"""Where the shipped grammar, space and benchmark files live.

`grammar/` and `spaces/` sit at the top of the source tree and are installed as
`synth/grammar` and `synth/spaces`; this module finds them in both layouts.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

__all__ = ["resource_dir", "resolve_named_file", "read_yaml", "read_text", "read_json"]

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Directory of shipped `name` files ('grammar', 'spaces' or 'data')."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"synth resource folder {name!r} not found next to {_PACKAGE}")


def resolve_named_file(name_or_path: str, folder: str, suffix: str = ".yaml") -> Path:
    """A path as given if it exists, else the shipped file `folder/name[.yaml]`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = resource_dir(folder)
    for candidate in (shipped / name_or_path, shipped / f"{name_or_path}{suffix}"):
        if candidate.is_file():
            return candidate
    available = sorted(p.stem for p in shipped.glob(f"*{suffix}"))
    raise FileNotFoundError(
        f"{name_or_path!r} is neither a file nor a shipped {folder} name (available: {', '.join(available)})"
    )


def read_yaml(name_or_path: str, folder: str, error, loader=yaml.SafeLoader):
    """(path, parsed YAML) of a shipped or user file; `error` (an exception class) names the file and line."""
    try:
        path = resolve_named_file(name_or_path, folder)
    except FileNotFoundError as exc:
        raise error(str(exc)) from None
    try:
        return path, yaml.load(read_text(path, error), Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise error(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise error(f"{path}: invalid YAML: nested too deeply") from None


def read_text(path: Path, error) -> str:
    """The UTF-8 text of a user's file; `error` (an exception class) naming the file and the line of
    a byte that is not UTF-8, or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the file as UTF-8") from None


def read_json(path: Path, error, problem: str = "not valid JSON", advice: str = "is the file truncated?"):
    """The JSON in a user's or a run's file; `error` naming the file and the line where it stops
    parsing (`problem` and `advice` say what that likely means for this kind of file), or that it is
    nested too deeply. Every JSON file synth reads goes through here, so all say the same."""
    text = read_text(Path(path), error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: {problem} ({exc.msg}); {advice}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply") from None
