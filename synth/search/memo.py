"""The evolutionary search's memory and moves: every architecture scored (kept on disk as it is
scored, so a killed search loses nothing), its size, the ranking, and the mutation and crossover that
breed children from the best."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

from synth.baselines import arch_size
from synth.errors import InputError
from synth.rundir import append_record, open_for_appending, read_jsonl
from synth.search.config import EVALUATED, SearchConfig
from synth.search.scorer import Scorer
from synth.space import SearchSpace, arch_key

__all__ = ["SearchMemo", "mutate", "crossover"]


def _layer_count(space: SearchSpace, arch: dict) -> int:
    return arch.get("depth", 1) if space.per_layer else 0


def mutate(space: SearchSpace, arch: dict, prob: float, rng: random.Random) -> dict:
    """A copy of `arch` with each network-level and per-layer choice redrawn with probability `prob`.

    When the depth changes, surviving blocks keep their choices and new blocks get random ones.
    """
    child = {name: (rng.choice(values) if rng.random() < prob else arch[name]) for name, values in space.choices.items()}
    depth = _layer_count(space, child)
    for name, values in space.per_layer.items():
        kept = list(arch[name][:depth]) + [rng.choice(values) for _ in range(depth - len(arch[name]))]
        child[name] = [rng.choice(values) if rng.random() < prob else v for v in kept]
    return child


def crossover(space: SearchSpace, a: dict, b: dict, rng: random.Random) -> dict:
    """Uniform crossover: each choice from `a` or `b` with equal chance; block i's choices come from
    a parent that has a block i (either, when both do)."""
    child = {name: (a if rng.random() < 0.5 else b)[name] for name in space.choices}
    depth = _layer_count(space, child)
    for name in space.per_layer:
        child[name] = []
        for i in range(depth):
            donors = [p[name][i] for p in (a, b) if i < len(p[name])]
            child[name].append(donors[0] if len(donors) == 1 else rng.choice(donors))
    return child


class SearchMemo:
    """The memo of scored and measured architectures, and the variation that uses it."""

    def __init__(self, space: SearchSpace, config: SearchConfig, out: Path):
        self.space, self.config, self.out = space, config, out
        self.records: dict[str, dict] = {}  # key -> {"arch", "score", "seconds", "error", "generation", ...}
        self.sizes: dict[str, list[float]] = {}  # key -> [params, flops]
        self.generation = 0  # 0: the initial population; i: the children of iteration i

    # ------------------------------------------------ memo on disk

    def load_evaluated(self) -> None:
        for record in read_jsonl(self.out / EVALUATED):
            self.records[record["key"]] = record
            self.sizes[record["key"]] = [record["params"], record["flops"]]

    def evaluate(self, archs: list[dict], scorer: Scorer, progress) -> None:
        """Score the architectures not yet in the memo, appending each result as it arrives."""
        todo = [a for a in archs if arch_key(a) not in self.records]
        known = [self.sizes.get(arch_key(a), [None, None])[1] for a in todo]
        with open_for_appending(self.out / EVALUATED) as sink:
            for arch, flops_known, (value, seconds, error, flops) in zip(todo, known, scorer.scores(todo, [k is None for k in known])):
                key = arch_key(arch)
                params = self.size(arch, flops=False)[0]
                flops = flops_known if flops is None else flops
                self.sizes[key] = [params, flops]
                record = {"key": key, "arch": arch, "score": value, "seconds": seconds, "error": error,
                          "params": params, "flops": flops, "generation": self.generation}
                self.records[key] = record
                append_record(sink, record)
                progress(len(self.records))

    def rescore_lost(self, scored: dict[str, int], scorer: Scorer, progress) -> int:
        """Score again the architectures the checkpoint lists as scored whose memo records were lost
        (damaged, and skipped when the memo was read), each under the generation it was first scored
        in, so the resumed search makes the draws of the uninterrupted one. Returns how many."""
        lost = [key for key in scored if key not in self.records]
        resumed_generation = self.generation
        for generation in sorted({scored[key] for key in lost}):
            self.generation = generation
            self.evaluate([self._arch_of(key) for key in lost if scored[key] == generation], scorer, progress)
        self.generation = resumed_generation
        return len(lost)

    def _arch_of(self, key: str) -> dict:
        """The architecture of an arch_key, its fields in the space's order (as sampling makes them)."""
        arch = json.loads(key)
        order = [*self.space.choices, *self.space.per_layer]
        return self.space.validate({name: arch[name] for name in sorted(arch, key=lambda n: order.index(n) if n in order else len(order))})

    # ------------------------------------------------ budget

    def size(self, arch: dict, flops: bool = True) -> list:
        """[params, multiply-adds], memoised; multiply-adds only measured when asked for."""
        key = arch_key(arch)
        known = self.sizes.get(key)
        if known is None or (flops and known[1] is None):
            self.sizes[key] = known = arch_size(self.space, arch, flops=flops)
        return known

    def within_budget(self, arch: dict) -> bool:
        c = self.config
        params, flops = self.size(arch, flops=c.max_flops is not None)
        return (c.max_params is None or params <= c.max_params) and (c.max_flops is None or flops <= c.max_flops)

    # ------------------------------------------------ ranking and variation

    def ranked(self, keys) -> list[str]:
        """Keys best first: finite scores descending, failures last. Among equal scores the smaller
        network comes first (an equal score buys nothing with more parameters); remaining ties are
        broken by a hash of the search seed and the key. That order is reproducible and independent of
        the order architectures were scored in, and unlike the key itself it favours no choice value
        (sorted keys would always prefer, e.g., the fewest heads), so each search seed picks among
        a proxy's ties at random."""
        def order(key):
            record = self.records[key]
            score, tie = record["score"], hashlib.sha256(f"{self.config.seed}|{key}".encode()).hexdigest()
            return (0, -score, record["params"], tie) if score is not None else (1, 0.0, record["params"], tie)

        return sorted(set(keys), key=order)

    def _seen_before(self, key: str) -> bool:
        """Scored in an earlier generation. Architectures scored in this one are not 'seen': a resumed
        search replays the interrupted generation's draws and finds their scores in the memo."""
        record = self.records.get(key)
        return record is not None and record["generation"] < self.generation

    def _fresh(self, make, count: int, taken: set) -> list[dict]:
        """Up to `count` new architectures from `make()`: within budget, not scored in an earlier
        generation, not in `taken`."""
        found, misses = [], 0
        while len(found) < count and misses < self.config.max_draws:
            arch = self.space.validate(make())
            key = arch_key(arch)
            if key in taken or self._seen_before(key) or not self.within_budget(arch):
                misses += 1
                continue
            taken.add(key)
            found.append(arch)
            misses = 0
        return found

    def initial(self, rng: random.Random) -> list[dict]:
        archs = self._fresh(lambda: self.space.sample(rng), self.config.population, set())
        if not archs:
            smallest = min((s[0] for s in self.sizes.values()), default=math.nan)
            raise InputError(
                f"space {self.space.name!r}: no architecture within the budget (max params {self.config.max_params}, "
                f"max FLOPs {self.config.max_flops}) in {self.config.max_draws} draws; "
                f"the smallest drawn has {smallest:.0f} params")
        return archs

    def children(self, parents: list[str], rng: random.Random) -> list[dict]:
        c, taken = self.config, set()
        arch = lambda key: self.records[key]["arch"]  # noqa: E731
        mutants = self._fresh(lambda: mutate(self.space, arch(rng.choice(parents)), c.mutation_prob, rng), c.mutations, taken)
        crosses = self._fresh(lambda: crossover(self.space, arch(rng.choice(parents)), arch(rng.choice(parents)), rng),
                              c.crossovers, taken)
        return mutants + crosses
