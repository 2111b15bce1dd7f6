"""Typed records the engine returns, and what they share: written as JSON, read back from it.

A record is a dataclass whose `to_dict()` is exactly the JSON object it is written as (same keys, same
order), so the files a run writes do not depend on the record being typed. `from_dict` reads such an
object back (keys it does not know, written by a newer synth, are left out). `record[key]` reads one
key of that JSON: code written against the plain dicts these records replaced keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, ClassVar

from synth.config import EvolveConfig
from synth.errors import RunDirError
from synth.rundir import RUN_RECORD, read_record

__all__ = ["Record", "HallOfFameEntry", "RunRecord", "read_run_record"]


class Record:
    """Base of the typed records: `to_dict`, `from_dict` and `record[key]` (see the module docstring).
    A subclass names in `_readers` how a field's JSON value becomes its typed value."""

    _readers: ClassVar[dict[str, Callable]] = {}

    def to_dict(self) -> dict:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}

    def __getitem__(self, key: str):
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return _json(getattr(self, key))

    @classmethod
    def from_dict(cls, raw: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{key: cls._readers.get(key, _same)(value) for key, value in raw.items() if key in known})


def _same(value):
    return value


def _json(value):
    """The JSON form of a field's value: records and configs as their dicts, lists item by item."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_json(item) for item in value]
    return value


@dataclass(frozen=True)
class HallOfFameEntry(Record):
    """One of the best distinct formulas of a run: its search-split fitness (JCM), its complexity
    (nodes of the simplified expression) and its canonical sympy form."""

    fitness: float
    complexity: int
    formula: str


@dataclass(frozen=True, kw_only=True)
class RunRecord(Record):
    """What `synth evolve` (`synth.run.run_evolve`) returns and writes as run.json; the README's
    table of run.json describes every field. The final formula's `fitness` is its search-split JCM;
    `test` and `search` are {metric: {task: correlation}} of its scores on the two splits."""

    formula: str
    latex: str
    canonical: str
    complexity: int
    program: str  # the program (DEAP tree text) the formula was simplified from
    fitness: float
    validation: dict | None  # with config.validation: the inner fold's rows and the Pareto front's scores on it
    test: dict
    search: dict
    baselines: dict  # {"params" | "flops": {metric: {task: correlation}}} on the test split
    split: dict  # {"search": rows, "test": rows}
    scores: list  # the formula's score per architecture (None where not finite)
    resolution: dict
    hall_of_fame: list[HallOfFameEntry]
    grammar: str  # path of the grammar file
    bench: dict
    config: EvolveConfig
    probe: dict  # synth.probe.Probe.to_dict()
    device: str
    seed: int
    versions: dict
    timing: dict
    rejections: dict  # fitness -1 counted by reason
    programs: list = field(repr=False)  # every distinct program scored
    history: list = field(repr=False)  # one entry per iteration

    _readers: ClassVar[dict[str, Callable]] = {
        "hall_of_fame": lambda rows: [HallOfFameEntry.from_dict(row) for row in rows],
        "config": lambda raw: EvolveConfig.from_dict(raw, "run.json config"),
    }


def read_run_record(run_dir) -> RunRecord:
    """The record of a finished run directory (its run.json). RunDirError naming the file when it is
    missing or not a run record."""
    path = Path(run_dir) / RUN_RECORD
    raw = read_record(path, "no run record (a run that has not finished resumes with synth evolve --resume)",
                      tuple(f.name for f in fields(RunRecord)))
    try:
        return RunRecord.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: not a run record this synth can read ({exc})") from None
