"""The settings of an evolution, in a module of their own so that reading them (the CLI's option
defaults and `synth --help`, a run record) does not import torch, sympy or DEAP."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from synth.errors import ConfigError, did_you_mean

# correlations a JCM may use (synth.fitness.correlation); weighted_kendall is scipy's weightedtau,
# kendall_top the mean of Kendall tau-b and the accuracy of the proxy's top share of the rows (top_quality)
FITNESS_METRICS = ("kendall", "spearman", "pearson", "weighted_kendall", "kendall_top")
TOP_SHARE = 0.1  # the share of rows kendall_top's top_quality judges by default: a tenth of the split, set before any run

__all__ = ["EvolveConfig", "MODES", "FITNESS_METRICS", "config_from"]

MODES = ("steady", "generational")


@dataclass(frozen=True)
class EvolveConfig:
    population: int = 20  # P
    iterations: int = 200  # T
    mutation_prob: float = 0.5  # probability of resampling each node
    margin: float = 0.1  # m: a child is kept if JCM(child) >= JCM(parent) - m
    sample_size: int = 10  # size of the subset a parent is chosen from
    top_k: int = 3  # the parent is drawn among the subset's k best
    max_retries: int = 10  # mutations tried per iteration before giving up
    subtree_prob: float = 0.3  # chance a mutation first regrows a random subtree
    crossover_prob: float = 0.0  # chance a child is a crossover with a second parent instead of a mutant
    insert_prob: float = 0.0  # chance a child is its parent with one node inserted instead of a mutant
    metric: str = "kendall"  # one of FITNESS_METRICS
    top_share: float = TOP_SHARE  # kendall_top: the share of the rows whose accuracy top_quality averages
    join: str = "mean"  # JCM over tasks: mean | min
    absolute: bool = False  # correlate by |value| (the group's later code) instead of signed
    seed: int = 0
    split_seed: int = 0
    search_fraction: float = 0.6
    time_limit: float = 10.0  # seconds one program may take over the search split; 0 for none
    mode: str = "steady"  # steady (Auto-Prox's Algorithm 1) | generational
    children: int = 20  # generational mode: children scored together per iteration
    resamples: int = 0  # fitness from this many seeded subsets of the search rows; 0: the whole split at once
    resample_fraction: float = 0.8  # each subset's share of the search rows
    resample_quantile: float = 0.25  # fitness is this quantile of the subsets' JCMs
    resample_seed: int = -1  # seed of the subsets; -1: the evolution seed (runs of different seeds then differ in subsets)
    validation: float = 0.0  # share of the search split held out to pick the final formula; 0: pick by fitness
    seed_programs: bool = False  # start the population with the grammar's named programs
    restarts: int = 1  # independent evolutions in a row, sharing the fitness memo; the pick is over all
    init_from: str = ""  # comma-separated run directories whose best programs start the population (warm start)

    def to_dict(self) -> dict:
        return asdict(self)

    def subset_seed(self) -> int:
        """The seed of the resampled fitness's subsets: `resample_seed`, or the evolution seed."""
        return self.seed if self.resample_seed == -1 else self.resample_seed

    @classmethod
    def from_dict(cls, raw: dict, where: str = "EvolveConfig") -> "EvolveConfig":
        return config_from(cls, raw, where)

    def validate(self) -> "EvolveConfig":
        """`self` if every setting has its type and lies in its range; ConfigError naming the first
        setting that does not (as the Python field and as the command-line option)."""
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), type(f.default))
        checks = [
            ("population", self.population >= 2, "must be at least 2"),
            ("iterations", self.iterations >= 0, "must be >= 0"),
            ("mutation_prob", 0.0 <= self.mutation_prob <= 1.0, "must be in [0, 1]"),
            ("subtree_prob", 0.0 <= self.subtree_prob <= 1.0, "must be in [0, 1]"),
            ("crossover_prob", 0.0 <= self.crossover_prob <= 1.0, "must be in [0, 1]"),
            ("insert_prob", 0.0 <= self.insert_prob <= 1.0 - self.crossover_prob, "must be in [0, 1 - crossover-prob]"),
            ("margin", self.margin >= 0, "must be >= 0"),
            ("top_k", 1 <= self.top_k <= self.sample_size, "needs 1 <= top-k <= sample-size"),
            ("max_retries", self.max_retries >= 1, "must be >= 1"),
            ("metric", self.metric in FITNESS_METRICS, f"must be one of {', '.join(FITNESS_METRICS)}"),
            ("top_share", 0.0 < self.top_share <= 1.0, "must be in (0, 1]"),
            ("join", self.join in ("mean", "min"), "must be mean or min"),
            ("search_fraction", 0.0 < self.search_fraction < 1.0, "must be in (0, 1)"),
            ("time_limit", self.time_limit >= 0 and math.isfinite(self.time_limit), "must be a finite number >= 0"),
            ("mode", self.mode in MODES, f"must be one of {', '.join(MODES)}"),
            ("children", self.children >= 1, "must be at least 1"),
            ("resamples", self.resamples >= 0, "must be >= 0"),
            ("resample_fraction", 0.0 < self.resample_fraction <= 1.0, "must be in (0, 1]"),
            ("resample_quantile", 0.0 <= self.resample_quantile <= 1.0, "must be in [0, 1]"),
            ("resample_seed", self.resample_seed >= -1, "must be a seed >= 0, or -1 for the evolution seed"),
            ("validation", 0.0 <= self.validation < 1.0, "must be in [0, 1)"),
            ("restarts", self.restarts >= 1, "must be at least 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{_named(name)} {rule} (got {getattr(self, name)!r})")
        return self


def config_from(cls, raw: dict, where: str):
    """`cls(**raw)` for a config dataclass `cls`; ConfigError naming an unknown setting (with the
    closest known ones) first, so a misspelt keyword is an error instead of a silently kept default."""
    known = [f.name for f in fields(cls)]
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}: unknown setting `{key}`{did_you_mean(key, known)} (settings: {', '.join(known)})")
    return cls(**raw)


def _named(name: str) -> str:
    """A setting as both audiences know it: `top_k` (--top-k)."""
    return f"`{name}` (--{name.replace('_', '-')})"


def _check_type(name: str, value, kind: type) -> None:
    """ConfigError unless `value` is a `kind` (an int is a float too; a bool is neither an int nor a
    float, so `population=True` is refused rather than read as 1)."""
    kinds = (int, float) if kind is float else (kind,)
    if not isinstance(value, kinds) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{_named(name)} must be {kind.__name__}, got {value!r}")
