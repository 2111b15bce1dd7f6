"""Benchmarks: architectures of one space with their trained accuracies; where they come from
(files, named sources, NAS-Bench-201), how one is built by training, grown by merging, and how a
search's picks are checked against one.

    record.py       the Benchmark record (BenchMeta), seeded splits
    load.py         load_benchmark: the embedded default, files, named sources; rankability
    sources.py      the registry of named sources, their verified files, row files
    nasbench201.py  NAS-Bench-201: NASLib's zero-cost benchmark and the whole table
    build.py        synth bench build: training every architecture with every seed
    merge.py        synth bench merge
    archfile.py     the architectures a build trains (--arch-file)
    check.py        synth bench check: a search's picks placed in a benchmark

The names below are the package's public surface, re-exported from those modules.
"""

from synth.bench.archfile import load_arch_file
from synth.bench.build import build_benchmark, seed_noise_summary
from synth.bench.load import DEFAULT_BENCHMARK, FORMAT, benchmark_space, load_benchmark, require_rankable
from synth.bench.merge import merge_benchmarks
from synth.bench.record import Benchmark, BenchMeta, inner_split, split_indices

__all__ = [
    "Benchmark", "BenchMeta", "load_benchmark", "require_rankable", "benchmark_space", "split_indices", "inner_split",
    "build_benchmark", "merge_benchmarks", "load_arch_file", "seed_noise_summary", "DEFAULT_BENCHMARK", "FORMAT",
]
