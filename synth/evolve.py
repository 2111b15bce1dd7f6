"""Auto-Prox's elitism-preserving evolution (Algorithm 1) over typed programs, with DEAP trees.

Steady mode (Algorithm 1, the default): each iteration samples a subset of the
population, picks a parent at random among the subset's top-k, and mutates it
until a child scores within `margin` of its parent (at most `max_retries`
tries); an accepted child joins the population and the population's worst
member is removed.

Generational mode: each iteration draws `children` parents the same way,
mutates each once, scores all children together in one pass over the
architectures (shared sub-expressions and per-layer scalars computed once),
keeps the children within `margin` of their parent, and trims the population
back to its size by dropping the worst.

In either mode a child is Auto-Prox's node mutant of its parent unless the
options `crossover_prob` / `insert_prob` (default 0) make it a typed crossover
with a second parent or the parent with one node inserted (PySR's operators):
Algorithm 1 has no way to join two good subtrees, and its per-node resampling
rewrites about half of a program at once.

Fitness is the JCM on the search split, memoised by canonical formula, as the
Evaluator (synth/evaluator.py) computes it.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field

import numpy as np

from synth.config import MODES, EvolveConfig
from synth.evaluator import Evaluator
from synth.fitness import INVALID
from synth.programs import ProgramSpace
from synth.rundir import rng_state, seeded_rng

__all__ = ["EvolveConfig", "Member", "EvolutionState", "evolve", "initial_population", "MODES"]


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
    restart: int = 0  # index of the evolution under way (see EvolveConfig.restarts)
    archive: list[Member] = field(default_factory=list)  # final populations of the finished restarts

    def best(self) -> Member:
        """The fittest member; ties go to the earliest (the population keeps insertion order)."""
        return max(self.population, key=lambda m: m.fitness)

    def members(self) -> list[Member]:
        """Every restart's final population (the current one last): what the final pick chooses from."""
        return self.archive + self.population

    def to_dict(self) -> dict:
        return {
            "population": [asdict(m) for m in self.population],
            "iteration": self.iteration,
            "history": self.history,
            "rng_state": self.rng_state,
            "evaluations": self.evaluations,
            "restart": self.restart,
            "archive": [asdict(m) for m in self.archive],
        }

    @classmethod
    def from_dict(cls, raw: dict) -> "EvolutionState":
        return cls(
            population=[Member(**m) for m in raw["population"]],
            iteration=int(raw["iteration"]),
            history=list(raw["history"]),
            rng_state=raw.get("rng_state"),
            evaluations=int(raw.get("evaluations", 0)),
            restart=int(raw.get("restart", 0)),
            archive=[Member(**m) for m in raw.get("archive", [])],
        )


def initial_population(programs: ProgramSpace, evaluator: Evaluator, config: EvolveConfig, rng: random.Random,
                       sources: dict[str, list[str]] | None = None) -> list[Member]:
    """P programs with distinct canonical forms, valid ones preferred: from each of `sources` (the
    program texts of earlier runs by run directory: a warm start) its best P/len(sources) under this
    run's fitness, so that every source keeps an equal share however this fitness ranks them (runs
    evolved on different fitnesses, islands merged); then the grammar's named programs when
    `config.seed_programs`, then random ones. Candidates are scored a batch at a time (one pass over
    the architectures per batch)."""
    valid, invalid, seen = [], [], set()
    share = math.ceil(config.population / len(sources)) if sources else 0
    for run_dir, texts in (sources or {}).items():
        trees = [programs.parse(text, f"{run_dir}: program {i + 1} of the warm start") for i, text in enumerate(texts)]
        scored = sorted(((fit, key, str(tree)) for tree, (fit, key) in zip(trees, evaluator.fitness_many(trees))
                         if key is not None and fit > INVALID), key=lambda c: -c[0])
        kept = 0
        for fit, key, text in scored:
            if kept == share:
                break
            if key not in seen:
                seen.add(key)
                valid.append(Member(text, key, fit))
                kept += 1
    named = [programs.parse(text, f"named program {name!r}") for name, text in programs.grammar.programs.items()] if config.seed_programs else []
    for attempt in range(25):
        if len(valid) >= config.population:
            break
        trees = [programs.random_tree(rng) for _ in range(2 * config.population)]
        if attempt == 0:
            trees = named + trees
        for tree, (fit, key) in zip(trees, evaluator.fitness_many(trees)):
            if key is None or key in seen:
                continue
            seen.add(key)
            (valid if fit > INVALID else invalid).append(Member(str(tree), key, fit))
    members = (valid + invalid)[: config.population]
    if len(members) < config.population:
        raise ValueError("the grammar yields too few distinct programs for the population size")
    return members


def evolve(programs: ProgramSpace, evaluator: Evaluator, config: EvolveConfig, state: EvolutionState | None = None,
           on_iteration=None, sources: dict[str, list[str]] | None = None) -> EvolutionState:
    """Run (or continue) `config.restarts` evolutions of `config.iterations` each, one after another
    (each from a fresh population, started from `sources` as `initial_population` says; the fitness
    memo is shared); `on_iteration(state)` after each iteration and after each first population."""
    state = state or EvolutionState()
    rng = seeded_rng(config.seed, state.rng_state)
    step = _generational_step if config.mode == "generational" else _steady_step
    while True:
        if not state.population:
            state.population = initial_population(programs, evaluator, config, rng, sources)
            state.rng_state = rng_state(rng)
            if on_iteration:
                on_iteration(state)  # a checkpoint of the first population: a kill from here on loses no work
        while state.iteration < config.iterations:
            accepted, tries = step(programs, evaluator, config, state, rng)
            state.iteration += 1
            best = state.best()
            entry = {
                "iteration": state.iteration,
                "best_fitness": best.fitness,
                "best": best.canonical,
                "mean_fitness": float(np.mean([m.fitness for m in state.population])),
                "accepted": accepted,
                "tries": tries,
                "distinct_evaluated": len(evaluator.fitness_of),
            }
            state.history.append(entry | ({"restart": state.restart} if config.restarts > 1 else {}))
            state.rng_state = rng_state(rng)
            if on_iteration:
                on_iteration(state)
        if state.restart + 1 >= config.restarts:
            return state
        state.archive += state.population
        state.population, state.iteration, state.restart = [], 0, state.restart + 1


def _parent(state: EvolutionState, config: EvolveConfig, rng: random.Random) -> Member:
    """Auto-Prox's parent choice: a random member among the top-k of a random subset."""
    subset = rng.sample(state.population, min(config.sample_size, len(state.population)))
    subset.sort(key=lambda m: m.fitness, reverse=True)
    return rng.choice(subset[: config.top_k])


def _acceptable(fit: float, key: str | None, parent: Member, config: EvolveConfig, population: list[Member]) -> bool:
    """A child is kept if it is valid and within `margin` of its parent's fitness. With crossover or
    insertion on, it must also be a formula the population does not hold yet: crossing two copies
    makes a third, and without this rule the population fills with clones of its best member."""
    if key is None or fit <= INVALID or fit < parent.fitness - config.margin:
        return False
    return not (config.crossover_prob or config.insert_prob) or all(m.canonical != key for m in population)


def _drop_worst(population: list[Member], size: int) -> None:
    """Remove the least fit members (the earliest among equals) until `size` remain."""
    while len(population) > size:
        population.pop(min(range(len(population)), key=lambda i: population[i].fitness))


def _variant(programs, state: EvolutionState, config: EvolveConfig, rng: random.Random, parent_tree):
    """A child of `parent_tree`: Auto-Prox's node mutation, or, with the options `crossover_prob` and
    `insert_prob`, a crossover with a second parent (chosen as Algorithm 1 chooses parents) or an
    inserted node. With both options at 0 (the default) no extra random number is drawn, so the
    default run is exactly Algorithm 1's."""
    if config.crossover_prob or config.insert_prob:
        draw = rng.random()
        if draw < config.crossover_prob:
            return programs.crossover(parent_tree, programs.parse(_parent(state, config, rng).program), rng)
        if draw < config.crossover_prob + config.insert_prob:
            return programs.insert(parent_tree, rng)
    return programs.mutate(parent_tree, rng, config.mutation_prob, config.subtree_prob)


def _steady_step(programs, evaluator, config, state, rng) -> tuple[bool, int]:
    """One iteration of Algorithm 1: mutate one parent until a child is acceptable (at most
    `max_retries` tries), add it, drop the worst. Returns (accepted, tries)."""
    parent = _parent(state, config, rng)
    parent_tree = programs.parse(parent.program)
    child, tries = None, 0
    while child is None and tries < config.max_retries:
        tries += 1
        tree = _variant(programs, state, config, rng, parent_tree)
        if not programs.within_limits(tree):
            continue
        fit, key = evaluator.fitness(tree)
        state.evaluations += 1
        if _acceptable(fit, key, parent, config, state.population):
            child = Member(str(tree), key, fit)
    if child is not None:
        state.population.append(child)
        _drop_worst(state.population, config.population)
    return child is not None, tries


def _generational_step(programs, evaluator, config, state, rng) -> tuple[int, int]:
    """One generation: `children` mutants of parents chosen as in Algorithm 1, scored together in one
    pass over the architectures; the acceptable ones join, then the worst are dropped down to the
    population size. Returns (children accepted, mutations drawn)."""
    parents, trees, tries = [], [], 0
    while len(trees) < config.children and tries < config.children * config.max_retries:
        tries += 1
        parent = _parent(state, config, rng)
        tree = _variant(programs, state, config, rng, programs.parse(parent.program))
        if programs.within_limits(tree):
            parents.append(parent)
            trees.append(tree)
    results = evaluator.fitness_many(trees)
    state.evaluations += len(trees)
    children = []
    for tree, parent, (fit, key) in zip(trees, parents, results):
        if _acceptable(fit, key, parent, config, state.population + children):
            children.append(Member(str(tree), key, fit))
    state.population.extend(children)
    _drop_worst(state.population, config.population)
    return len(children), tries
