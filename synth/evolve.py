"""Auto-Prox's elitism-preserving evolution (Algorithm 1) over typed programs, with DEAP trees.

Each iteration samples a subset of the population, picks a parent at random
among the subset's top-k, and mutates it until a child scores within `margin`
of its parent (at most `max_retries` tries); an accepted child joins the
population and the population's worst member is removed. Fitness is the JCM on
the search split, memoised by canonical formula.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import asdict, dataclass, field

import numpy as np

from synth.execute import evaluate
from synth.fitness import INVALID, jcm
from synth.programs import ProgramSpace
from synth.symbolic import DegenerateProgram, Formula, to_formula

__all__ = ["EvolveConfig", "Evaluator", "Member", "EvolutionState", "evolve", "initial_population"]


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
    metric: str = "kendall"  # kendall | spearman | pearson
    join: str = "mean"  # JCM over tasks: mean | min
    absolute: bool = False  # correlate by |value| (the group's later code) instead of signed
    seed: int = 0
    split_seed: int = 0
    search_fraction: float = 0.6

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> "EvolveConfig":
        checks = [
            (self.population >= 2, "population must be at least 2"),
            (self.iterations >= 0, "iterations must be >= 0"),
            (0.0 <= self.mutation_prob <= 1.0, "mutation-prob must be in [0, 1]"),
            (0.0 <= self.subtree_prob <= 1.0, "subtree-prob must be in [0, 1]"),
            (self.margin >= 0, "margin must be >= 0"),
            (1 <= self.top_k <= self.sample_size, "need 1 <= top-k <= sample-size"),
            (self.max_retries >= 1, "max-retries must be >= 1"),
            (self.metric in ("kendall", "spearman", "pearson"), "metric must be kendall, spearman or pearson"),
            (self.join in ("mean", "min"), "join must be mean or min"),
            (0.0 < self.search_fraction < 1.0, "search-fraction must be in (0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self


class Evaluator:
    """Scores programs on cached statistics; fitness is memoised by canonical formula.

    Sub-expressions that reduce to per-layer or network scalars are memoised per
    architecture for the whole run (up to `scalar_memo_size` per architecture,
    oldest dropped first): a child shares most of its parent's subtrees, so an
    expensive reduction such as a nuclear norm is computed once per architecture,
    not once per program that contains it.
    """

    scalar_memo_size = 4096

    def __init__(self, grammar, stats_per_arch: list[dict], targets: dict[str, np.ndarray], search_rows, config: EvolveConfig):
        self.grammar = grammar
        self.values = [grammar.terminal_values(record) for record in stats_per_arch]
        self.targets = targets
        self.search_rows = list(search_rows)
        self.config = config
        self.fitness_of: dict[str, float] = {}  # canonical -> JCM on the search split
        self.complexity_of: dict[str, int] = {}
        self.latex = {name: t.latex for name, t in grammar.terminals.items()}
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
            out[i] = self._score(formula, self.values[i], self._shared(i))
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
        todo = {f.canonical: f for f in formulas if f is not None and f.canonical not in self.fitness_of}
        if todo:
            scores = {key: np.full(len(self.values), math.nan) for key in todo}
            for i in self.search_rows:
                shared = self._shared(i)
                for key, formula in todo.items():
                    scores[key][i] = self._score(formula, self.values[i], shared)
            _release_freed_memory()
            c = self.config
            for key, formula in todo.items():
                self.fitness_of[key] = jcm(scores[key], self.targets, self.search_rows, c.metric, c.join, c.absolute)
                self.complexity_of[key] = formula.complexity
        return [(INVALID, None) if f is None else (self.fitness_of[f.canonical], f.canonical) for f in formulas]

    @staticmethod
    def _score(formula: Formula, values: dict, memo: dict | None = None) -> float:
        try:
            return evaluate(formula.expr, values, memo)
        except (ValueError, RuntimeError, ZeroDivisionError, OverflowError):
            return math.nan

    def memo(self) -> dict[str, list]:
        """The fitness memo as JSON: {canonical: [fitness, complexity]}."""
        return {key: [fit, self.complexity_of[key]] for key, fit in self.fitness_of.items()}

    def restore(self, memo: dict[str, list]) -> None:
        for key, (fit, complexity) in memo.items():
            self.fitness_of[key], self.complexity_of[key] = float(fit), int(complexity)


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


@dataclass
class Member:
    program: str  # str() of the DEAP tree
    canonical: str | None
    fitness: float


@dataclass
class EvolutionState:
    """Everything needed to continue a run: JSON-serialisable, no pickles."""

    population: list[Member] = field(default_factory=list)
    iteration: int = 0
    history: list[dict] = field(default_factory=list)
    rng_state: list | None = None
    evaluations: int = 0

    def best(self) -> Member:
        """The fittest member; ties go to the earliest (the population keeps insertion order)."""
        return max(self.population, key=lambda m: m.fitness)

    def to_dict(self) -> dict:
        return {
            "population": [asdict(m) for m in self.population],
            "iteration": self.iteration,
            "history": self.history,
            "rng_state": self.rng_state,
            "evaluations": self.evaluations,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> "EvolutionState":
        return cls(
            population=[Member(**m) for m in raw["population"]],
            iteration=int(raw["iteration"]),
            history=list(raw["history"]),
            rng_state=raw.get("rng_state"),
            evaluations=int(raw.get("evaluations", 0)),
        )


def _rng_from(state: EvolutionState, seed: int) -> random.Random:
    rng = random.Random(seed)
    if state.rng_state is not None:
        version, internal, gauss = state.rng_state
        rng.setstate((version, tuple(internal), gauss))
    return rng


def _save_rng(state: EvolutionState, rng: random.Random) -> None:
    version, internal, gauss = rng.getstate()
    state.rng_state = [version, list(internal), gauss]


def initial_population(programs: ProgramSpace, evaluator: Evaluator, config: EvolveConfig, rng: random.Random) -> list[Member]:
    """P random programs with distinct canonical forms, valid ones preferred; candidates are
    scored a batch at a time (one pass over the architectures per batch)."""
    valid, invalid, seen = [], [], set()
    for _ in range(25):
        trees = [programs.random_tree(rng) for _ in range(2 * config.population)]
        for tree, (fit, key) in zip(trees, evaluator.fitness_many(trees)):
            if key is None or key in seen:
                continue
            seen.add(key)
            (valid if fit > INVALID else invalid).append(Member(str(tree), key, fit))
        if len(valid) >= config.population:
            break
    members = (valid + invalid)[: config.population]
    if len(members) < config.population:
        raise ValueError("the grammar yields too few distinct programs for the population size")
    return members


def evolve(programs: ProgramSpace, evaluator: Evaluator, config: EvolveConfig, state: EvolutionState | None = None, on_iteration=None) -> EvolutionState:
    """Run (or continue) Algorithm 1 until `config.iterations`; `on_iteration(state)` after each."""
    state = state or EvolutionState()
    rng = _rng_from(state, config.seed)
    if not state.population:
        state.population = initial_population(programs, evaluator, config, rng)
        _save_rng(state, rng)
    while state.iteration < config.iterations:
        subset = rng.sample(state.population, min(config.sample_size, len(state.population)))
        subset.sort(key=lambda m: m.fitness, reverse=True)
        parent = rng.choice(subset[: config.top_k])
        parent_tree = programs.parse(parent.program)
        child, tries = None, 0
        while child is None and tries < config.max_retries:
            tries += 1
            tree = programs.mutate(parent_tree, rng, config.mutation_prob, config.subtree_prob)
            if not programs.within_limits(tree):
                continue
            fit, key = evaluator.fitness(tree)
            state.evaluations += 1
            if key is not None and fit > INVALID and fit >= parent.fitness - config.margin:
                child = Member(str(tree), key, fit)
        if child is not None:
            state.population.append(child)
            worst = min(range(len(state.population)), key=lambda i: state.population[i].fitness)
            state.population.pop(worst)
        state.iteration += 1
        best = state.best()
        state.history.append(
            {
                "iteration": state.iteration,
                "best_fitness": best.fitness,
                "best": best.canonical,
                "mean_fitness": float(np.mean([m.fitness for m in state.population])),
                "accepted": child is not None,
                "tries": tries,
                "distinct_evaluated": len(evaluator.fitness_of),
            }
        )
        _save_rng(state, rng)
        if on_iteration:
            on_iteration(state)
    return state
