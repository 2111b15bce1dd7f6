"""Scoring programs for evolution: fitness (the JCM on the search split) memoised by canonical
formula, every program's evaluation timed and stopped at `time_limit`, and each rejection's reason.

Every program's evaluation is timed; one that exceeds `time_limit` seconds over the search split is
stopped and gets fitness -1, and each rejected program's reason is kept (see `Evaluator.reason_of`).
The evolution loop (synth/evolve.py) and the final choices of a run (synth/run.py) share it.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter

import numpy as np

from synth.config import EvolveConfig
from synth.execute import evaluate
from synth.fitness import INVALID, jcm, resampled_jcm, resamples
from synth.symbolic import DegenerateProgram, Formula, to_formula

__all__ = ["Evaluator"]


class Evaluator:
    """Scores programs on cached statistics; fitness is memoised by canonical formula.

    Sub-expressions that reduce to per-layer or network scalars are memoised per
    architecture for the whole run (up to `scalar_memo_size` per architecture,
    oldest dropped first): a child shares most of its parent's subtrees, so an
    expensive reduction such as a nuclear norm is computed once per architecture,
    not once per program that contains it.

    Each distinct program's evaluation time over the search split (CPU seconds of this process, or
    wall seconds when the statistics are on a GPU) is kept in `seconds_of`, and the reason a program got fitness INVALID in `reason_of`
    (see `REASONS`); a program is stopped as soon as its fitness is decided
    (a non-finite score or an error on one architecture) or its time passes
    `config.time_limit`, so no program can stall a run.
    """

    scalar_memo_size = 4096
    REASONS = ("degenerate", "error", "out_of_memory", "non_finite", "constant", "undefined_correlation", "time_limit")

    def __init__(self, grammar, stats_per_arch: list[dict], targets: dict[str, np.ndarray], search_rows, config: EvolveConfig):
        self.grammar = grammar
        self.values = [grammar.terminal_values(record) for record in stats_per_arch]
        self.targets = targets
        self.search_rows = list(search_rows)
        self.config = config
        self.fitness_of: dict[str, float] = {}  # canonical -> JCM on the search split
        self.complexity_of: dict[str, int] = {}
        self.seconds_of: dict[str, float] = {}  # canonical -> evaluation seconds over the search split
        self.reason_of: dict[str, str] = {}  # canonical -> why its fitness is INVALID
        self.program_of: dict[str, str] = {}  # canonical -> the first program (DEAP tree text) scored under it
        self.degenerate = 0  # programs that collapsed to a constant before any evaluation
        self.latex = {name: t.latex for name, t in grammar.terminals.items()}
        self.clock = _clock_for(self.values)
        self.subsets = resamples(self.search_rows, config.resamples, config.resample_fraction, config.subset_seed()) if config.resamples else None
        self._scalars = [{} for _ in self.values]  # per architecture: sympy node -> per-layer or network scalar

    def formula(self, tree) -> Formula | None:
        try:
            return to_formula(tree, self.grammar, self.latex)
        except DegenerateProgram:
            return None

    def scores(self, formula: Formula, rows=None) -> np.ndarray:
        """Score per architecture (NaN where evaluation fails); all rows by default."""
        rows = range(len(self.values)) if rows is None else rows
        out = np.full(len(self.values), math.nan)
        for i in rows:
            out[i] = self._score(formula, self.values[i], self._shared(i))[0]
        return out

    def _shared(self, arch: int) -> dict:
        """Architecture `arch`'s run-long scalar memo, trimmed to `scalar_memo_size` (oldest first)."""
        memo = self._scalars[arch]
        if len(memo) > self.scalar_memo_size:
            for key in list(memo)[: len(memo) - self.scalar_memo_size]:
                del memo[key]
        return memo

    def fitness(self, tree) -> tuple[float, str | None]:
        """(JCM on the search split, canonical key); INVALID for degenerate or non-finite programs."""
        return self.fitness_many([tree])[0]

    def fitness_many(self, trees) -> list[tuple[float, str | None]]:
        """`fitness` of several programs in one pass over the architectures: each architecture's
        statistics are visited once and scalar sub-expressions computed once per run."""
        formulas = [self.formula(tree) for tree in trees]
        self.degenerate += sum(f is None for f in formulas)
        todo = {f.canonical: f for f in formulas if f is not None and f.canonical not in self.fitness_of}
        for tree, f in zip(trees, formulas):
            if f is not None and f.canonical in todo:
                self.program_of.setdefault(f.canonical, str(tree))
        if todo:
            self._score_search_split(todo)
        return [(INVALID, None) if f is None else (self.fitness_of[f.canonical], f.canonical) for f in formulas]

    def _score_search_split(self, todo: dict[str, Formula]) -> None:
        """Score `todo` on the search rows, architecture by architecture, and record fitness, time and
        the reason of each rejection. A program leaves the pass once its fitness is decided: at its
        first failed or non-finite score (the JCM needs every score finite) or past the time limit."""
        limit = self.config.time_limit
        scores = {key: np.full(len(self.values), math.nan) for key in todo}
        seconds = dict.fromkeys(todo, 0.0)
        failed: dict[str, str] = {}
        live = dict(todo)
        for i in self.search_rows:
            shared = self._shared(i)
            for key, formula in list(live.items()):
                start = self.clock()
                value, error = self._score(formula, self.values[i], shared)
                seconds[key] += self.clock() - start
                scores[key][i] = value
                if error or not math.isfinite(value):
                    failed[key] = error or "non_finite"
                elif limit and seconds[key] > limit:
                    failed[key] = "time_limit"
                if key in failed:
                    del live[key]
        _release_freed_memory()
        for key, formula in todo.items():
            fit = INVALID if key in failed else self._jcm(scores[key])
            self.fitness_of[key] = fit
            self.complexity_of[key] = formula.complexity
            self.seconds_of[key] = seconds[key]
            if fit <= INVALID:
                self.reason_of[key] = failed.get(key) or _invalid_reason(scores[key][self.search_rows])

    def _jcm(self, scores: np.ndarray) -> float:
        """Fitness of finite scores: the JCM on the search rows, or its quantile over the row subsets."""
        c = self.config
        if self.subsets is None:
            return jcm(scores, self.targets, self.search_rows, c.metric, c.join, c.absolute, c.top_share)
        return resampled_jcm(scores, self.targets, self.subsets, c.resample_quantile, c.metric, c.join, c.absolute, c.top_share)

    def validation_jcm(self, formula: Formula, rows) -> float:
        """The plain JCM of `formula` on other `rows` (an inner validation fold), for the final pick."""
        c = self.config
        return jcm(self.scores(formula, rows), self.targets, list(rows), c.metric, c.join, c.absolute, c.top_share)

    @staticmethod
    def _score(formula: Formula, values: dict, memo: dict | None = None) -> tuple[float, str | None]:
        """(score, None), or (NaN, reason) when evaluation fails."""
        try:
            return evaluate(formula.expr, values, memo), None
        except MemoryError:
            return math.nan, "out_of_memory"
        except RuntimeError as exc:  # torch's OutOfMemoryError is a RuntimeError
            return math.nan, "out_of_memory" if "out of memory" in str(exc).lower() else "error"
        except (ValueError, ZeroDivisionError, OverflowError):
            return math.nan, "error"

    def rejections(self) -> dict[str, int]:
        """How many distinct programs got fitness INVALID, by reason (degenerate programs counted per draw)."""
        counts = Counter(self.reason_of.values())
        if self.degenerate:
            counts["degenerate"] += self.degenerate
        return {reason: counts[reason] for reason in self.REASONS if counts[reason]}

    def costs(self) -> dict:
        """Evaluation seconds per distinct program over the search split: count, median, 99th percentile, max."""
        seconds = np.asarray(list(self.seconds_of.values()), dtype=float)
        if not len(seconds):
            return {"programs": 0}
        return {"programs": int(len(seconds)), "median_seconds": float(np.median(seconds)),
                "p99_seconds": float(np.percentile(seconds, 99)), "max_seconds": float(seconds.max()),
                "total_seconds": float(seconds.sum()), "time_limit": self.config.time_limit}

    def programs(self) -> list[dict]:
        """Every distinct program scored, in the order scored: formula, program (tree text), fitness,
        complexity, seconds, reason."""
        return [{"formula": key, "program": self.program_of.get(key), "fitness": fit, "complexity": self.complexity_of[key],
                 "seconds": self.seconds_of.get(key), "reason": self.reason_of.get(key)}
                for key, fit in self.fitness_of.items()]

    def memo(self) -> dict:
        """The fitness memo as JSON: {canonical: [fitness, complexity, seconds, reason, program]}, plus the
        count of degenerate draws under the key "" (no formula has an empty canonical form)."""
        entries = {key: [fit, self.complexity_of[key], self.seconds_of.get(key), self.reason_of.get(key),
                         self.program_of.get(key)]
                   for key, fit in self.fitness_of.items()}
        return {"": self.degenerate, **entries}

    def restore(self, memo: dict) -> None:
        """Load a `memo()`; also takes the older {canonical: [fitness, complexity]} form."""
        for key, entry in memo.items():
            if key == "":
                self.degenerate = int(entry)
                continue
            fit, complexity, *rest = entry
            self.fitness_of[key], self.complexity_of[key] = float(fit), int(complexity)
            if rest and rest[0] is not None:
                self.seconds_of[key] = float(rest[0])
            if len(rest) > 1 and rest[1]:
                self.reason_of[key] = str(rest[1])
            if len(rest) > 2 and rest[2]:
                self.program_of[key] = str(rest[2])


def _clock_for(values: list[dict]):
    """The clock a program's cost is measured by: this process's CPU time on the CPU, so that the
    time limit (and with it the run) does not depend on what else the machine is doing; wall time
    when the statistics live on a GPU, whose work CPU time does not see."""
    first = next(iter(values[0].values()), None) if values else None
    data = getattr(first, "data", first)
    return time.perf_counter if getattr(data, "is_cuda", False) else time.process_time


def _invalid_reason(scores: np.ndarray) -> str:
    """Why finite scores on the search rows give no JCM: all equal, or a correlation that is undefined."""
    return "constant" if np.ptp(scores) == 0 else "undefined_correlation"


def _release_freed_memory() -> None:
    """Give the heap's freed pages back to the OS (glibc's malloc_trim; a no-op elsewhere).

    Evaluating programs allocates and frees many temporaries of a few to tens of MB;
    glibc keeps such freed blocks in the heap, and over a long run on 200 architectures
    the process grew past 20 GB of anonymous memory that it was no longer using.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
