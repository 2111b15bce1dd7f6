"""Several benchmarks evolved on at once: `--bench vit-digits+pit-digits` joins the JCM over every
task of every benchmark, so a formula must rank each family's architectures among themselves.

The architectures are concatenated; each task keeps its values on its own benchmark's rows and is
NaN elsewhere (named `<benchmark>:<task>` when there are several), so every correlation sees only
its own benchmark's architectures and the JCM averages the benchmarks' tasks. Each benchmark keeps
its own seeded search/test split, statistics cache and space; all must share one probe, since the
exported proxy carries one. `--tasks` applies to every benchmark, each of which must have them.

Two samples of one table may share architectures (`nasbench201:cifar10@1000+nasbench201:cifar10@300,
seed=1,largest=0.1`). Such an architecture is searched only where no benchmark tests it: a test
figure never reads an architecture that fitness saw.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from synth.baselines import size_baselines
from synth.bench.load import benchmark_space, load_benchmark, require_rankable
from synth.bench.record import Benchmark, split_indices
from synth.errors import BenchError
from synth.probe import Probe, default_probe
from synth.space import arch_key
from synth.stats import load_statistics

__all__ = ["JoinedBenchmark", "benchmark_sources"]


def benchmark_sources(source: str | None) -> list[str | None]:
    """`a+b` -> [a, b]; any other source (including a file whose name holds a '+') -> [source]."""
    if source is None or "+" not in source or Path(source).is_file():
        return [source]
    parts = [p.strip() for p in source.split("+")]
    if not all(parts):
        raise BenchError(f"{source!r}: an empty benchmark name between '+' signs")
    return parts


class JoinedBenchmark:
    """One or more benchmarks as one row space (see the module docstring); one benchmark is
    itself, with its own task names."""

    def __init__(self, source: str | None, tasks: list[str] | None = None):
        sources = benchmark_sources(source)
        self.parts: list[Benchmark] = [load_benchmark(s, tasks) for s in sources]
        self.spaces = [benchmark_space(b) for b in self.parts]
        self.offsets = [sum(len(b) for b in self.parts[:k]) for k in range(len(self.parts))]  # plain ints: rows go to JSON
        self.name = "+".join(b.name for b in self.parts)
        self.space_name = "+".join(s.name for s in self.spaces)
        self.targets = self._targets()
        self.tasks = list(self.targets)

    def __len__(self) -> int:
        return sum(len(b) for b in self.parts)

    def _targets(self) -> dict[str, np.ndarray]:
        if len(self.parts) == 1:
            return dict(self.parts[0].targets)
        out = {}
        for bench, offset in zip(self.parts, self.offsets):
            for task, values in bench.targets.items():
                column = np.full(len(self), np.nan)
                column[offset: offset + len(bench)] = values
                out[f"{bench.name}:{task}"] = column
        return out

    def notes(self) -> list[str]:
        """The benchmarks' flags and missing-value counts, one line each."""
        lines = []
        for bench in self.parts:
            lines += [f"task {task}: {note}" for task, note in bench.meta.flags.items()]
            lines += [f"task {task}: {count} of {len(bench)} architectures have no value and are left out of its correlations"
                      for task, count in bench.meta.missing.items() if count]
        return lines

    def split(self, seed: int, search_fraction: float) -> tuple[list[int], list[int]]:
        """Each benchmark's own seeded split, in joined row numbers, less the search rows whose
        architecture another benchmark tests (see the module docstring)."""
        search, test = [], []
        for bench, offset in zip(self.parts, self.offsets):
            s, t = split_indices(len(bench), seed, search_fraction)
            search += [offset + i for i in s]
            test += [offset + i for i in t]
        if len(self.parts) > 1:
            keys = self._arch_keys()
            tested = {keys[r] for r in test}
            search = [r for r in search if keys[r] not in tested]
        return search, test

    def _arch_keys(self) -> list[tuple[str, str, str]]:
        """(space, its fixed options, architecture) of every row: equal for the same network in two
        benchmarks."""
        return [(space.name, json.dumps(space.fixed, sort_keys=True), arch_key(arch))
                for bench, space in zip(self.parts, self.spaces) for arch in bench.archs]

    def require_rankable(self, rows: list[int], part: str) -> None:
        """Every benchmark's tasks can rank their share of `rows` (see `require_rankable`)."""
        for bench, offset in zip(self.parts, self.offsets):
            require_rankable(bench, [r - offset for r in rows if offset <= r < offset + len(bench)], part)

    def probe(self, overrides: dict) -> Probe:
        """The probe every benchmark is read with: each one's default with `overrides` applied, which
        must agree (BenchError naming them otherwise)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        probes = [replace(default_probe(b, s), **given) for b, s in zip(self.parts, self.spaces)]
        if any(p != probes[0] for p in probes[1:]):
            raise BenchError(f"{self.name}: the benchmarks' default probes differ ("
                             + "; ".join(f"{b.name}: {p.to_dict()}" for b, p in zip(self.parts, probes))
                             + "); give --probe-data, --probe-batch and --probe-rows so that they share one")
        return probes[0]

    def statistics(self, probe: Probe, stats, progress=None, **options) -> list[dict]:
        """Every architecture's statistics, benchmark after benchmark, with progress over all."""
        out, total = [], len(self)
        for bench, space, offset in zip(self.parts, self.spaces, self.offsets):
            step = (lambda done, _n, o=offset: progress(o + done, total)) if progress else None
            out += load_statistics(space, bench.archs, probe, stats, progress=step, **options)
        return out

    def sizes(self) -> dict[str, np.ndarray]:
        """#params and FLOPs of every architecture, each counted in its own space."""
        parts = [size_baselines(space, bench.archs) for bench, space in zip(self.parts, self.spaces)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
