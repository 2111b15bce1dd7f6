"""Training-free architecture search: evolution over a space's choices, driven by any proxy.

The loop is AutoFormer's evolutionary search (Chen et al., ICCV 2021), which
TF-TAS and Auto-Prox reuse with a zero-cost proxy in place of supernet
accuracy: a population of architectures within the budget; each iteration the
best `parents` breed `mutations` children by per-choice mutation and
`crossovers` children by uniform crossover; children that break the budget or
were seen before are redrawn; the population becomes the best `population` of
parents and children. Every architecture is scored once (memoised), so the
cost is one network per distinct architecture.

A search directory holds `search.json` (the result), `checkpoint.json` (the
state at the start of the current iteration: population, random state,
history) and `evaluated.jsonl` (one line per scored architecture, appended as
it finishes). A killed search resumes from the checkpoint and replays the
interrupted iteration from the memo, so it ends exactly where an
uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
import types
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, ClassVar

from synth.errors import ConfigError, InputError, RunDirError
from synth.records import Record
from synth.space import SearchSpace, arch_key

__all__ = ["SearchConfig", "SearchPick", "SearchResult", "mutate", "crossover", "run_search", "search", "search_probe",
           "parse_count", "SEARCH_FORMAT"]

SEARCH_FORMAT = "synth-search/1"
RESULT, CHECKPOINT, EVALUATED = "search.json", "checkpoint.json", "evaluated.jsonl"


@dataclass(frozen=True)
class SearchConfig:
    """The search's settings; defaults are AutoFormer's (population 50, 20 iterations, top 10 breed,
    25 mutations and 25 crossovers per iteration, each choice mutated with probability 0.2)."""

    population: int = 50
    iterations: int = 20
    parents: int = 10
    mutations: int = 25
    crossovers: int = 25
    mutation_prob: float = 0.2
    top_k: int = 5
    max_params: float | None = None
    max_flops: float | None = None
    seed: int = 0
    max_draws: int = 100  # consecutive unusable draws (over budget or seen) before settling for fewer children

    def validate(self) -> "SearchConfig":
        for name in ("population", "parents", "top_k", "max_draws"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("iterations", "mutations", "crossovers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative (got {getattr(self, name)})")
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise ConfigError(f"mutation_prob must lie in [0, 1] (got {self.mutation_prob})")
        for name in ("max_params", "max_flops"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive (got {value})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "SearchConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def parse_count(text: str) -> float:
    """'6M' -> 6e6, '1.5G' -> 1.5e9, '250k' -> 2.5e5, '1e6' -> 1e6: budgets as people write them."""
    scale = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
    text = str(text).strip()
    factor = scale.get(text[-1:].lower(), 1.0)
    number = text[:-1] if factor != 1.0 else text
    try:
        value = float(number) * factor
    except ValueError:
        raise ValueError(f"{text!r} is not a count (examples: 6M, 1.5G, 250k, 1e6)") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r}: a budget must be a positive number")
    return value


@dataclass(frozen=True, kw_only=True)
class SearchPick(Record):
    """One of a search's top architectures: its rank, the architecture and its key, its fixed-length
    encoding in the space, the proxy's score (None where it failed), parameters and multiply-adds."""

    rank: int
    arch: dict
    key: str
    encoding: list
    score: float | None
    params: float
    flops: float | None


@dataclass(frozen=True, kw_only=True)
class SearchResult(Record):
    """What `run_search` returns and writes as search.json (`to_dict()`, key for key)."""

    format: str
    proxy: str
    space: dict  # {"name", "source"}
    config: SearchConfig
    probe: dict  # synth.stats.Probe.to_dict()
    top: list[SearchPick]
    history: list  # one entry per iteration
    evaluated: int  # distinct architectures scored
    tied_at_top: int  # scored architectures sharing the top-1's score exactly
    failed: int  # architectures the proxy could not score
    errors: dict  # error message -> count
    seconds: dict
    versions: dict

    _readers: ClassVar[dict[str, Callable]] = {
        "config": lambda raw: SearchConfig.from_dict(raw),
        "top": lambda rows: [SearchPick.from_dict(row) for row in rows],
    }


# ---------------------------------------------------------------- variation


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


# ---------------------------------------------------------------- scoring


def search_probe(space: SearchSpace, proxy: str, overrides: dict):
    """The probe batch a proxy is scored with: for a run directory evolved on this very space, the
    run's own probe (the proxy is then measured as it was found); otherwise seeded Gaussian noise,
    64 images for small inputs and 16 at 224 px, as for published benchmarks. `overrides` win."""
    from dataclasses import replace

    from synth.rundir import RUN_RECORD, read_record
    from synth.stats import Probe, noise_probe

    probe = None
    record = Path(proxy) / RUN_RECORD
    if record.is_file():
        run = read_record(record, "no run record")
        if (run.get("bench") or {}).get("space") == space.name and isinstance(run.get("probe"), dict):
            probe = Probe(**run["probe"])
    if probe is None:
        probe = noise_probe(space)
    return replace(probe, **{k: v for k, v in overrides.items() if v is not None})


class _Scorer:
    """Scores architectures with one proxy on one probe batch, in this process or in a pool of
    single-threaded worker processes (networks are independent, so workers scale almost linearly
    where torch's own threads do not)."""

    def __init__(self, proxy: str, space: SearchSpace, probe, device: str, workers: int):
        self.args = (proxy, space, probe, device)
        self.workers = workers
        self.pool = None
        if workers > 1:
            import multiprocessing as mp

            self.pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=self.args)
        else:
            _init_worker(*self.args, threads=None)

    def scores(self, archs: list[dict], count_flops: list[bool]):
        """Yield [score or None, seconds, error or None, multiply-adds or None] per architecture, in
        order; multiply-adds are counted where `count_flops` says so (the rest are known already)."""
        jobs = list(zip(archs, count_flops))
        if self.pool is None:
            yield from map(_score_job, jobs)
        else:
            yield from self.pool.imap(_score_job, jobs)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None


_WORKER: dict = {}


def _init_worker(proxy: str, space: SearchSpace, probe, device: str, threads: int | None = 1) -> None:
    """Resolve the proxy and draw the probe batch once per process."""
    import torch

    from synth.zoo.scoring import resolve_proxies

    if threads:
        torch.set_num_threads(threads)
    inputs, targets = probe.batch(space)
    _WORKER.update(entry=resolve_proxies([proxy], space)[0], space=space, init_seed=probe.init_seed,
                   inputs=inputs.to(device), targets=targets.to(device), device=device)


def _score_job(job: tuple) -> list:
    return _score_in_worker(*job)


def _score_in_worker(arch: dict, count_flops: bool = True) -> list:
    """The proxy's [score, seconds, error] on the network of `arch`, and its multiply-adds (the zoo's
    `flops`, counted on a meta-device copy) unless the budget check has counted them already, so that
    the size of every scored network is known and counted once."""
    from synth.zoo import get_proxy
    from synth.zoo.scoring import score_network

    w = _WORKER
    model = w["space"].build(arch, seed=w["init_seed"]).to(w["device"])
    flops = get_proxy("flops")(model, w["inputs"], w["targets"]) if count_flops else None
    return score_network(w["entry"], model, w["inputs"], w["targets"]) + [flops]


# ---------------------------------------------------------------- the search


class _Search:
    """The memo of scored and measured architectures, and the variation that uses it."""

    def __init__(self, space: SearchSpace, config: SearchConfig, out: Path):
        self.space, self.config, self.out = space, config, out
        self.records: dict[str, dict] = {}  # key -> {"arch", "score", "seconds", "error", "generation", ...}
        self.sizes: dict[str, list[float]] = {}  # key -> [params, flops]
        self.generation = 0  # 0: the initial population; i: the children of iteration i

    # ------------------------------------------------ memo on disk

    def load_evaluated(self) -> None:
        from synth.rundir import read_jsonl

        for record in read_jsonl(self.out / EVALUATED):
            self.records[record["key"]] = record
            self.sizes[record["key"]] = [record["params"], record["flops"]]

    def evaluate(self, archs: list[dict], scorer: _Scorer, progress) -> None:
        """Score the architectures not yet in the memo, appending each result as it arrives."""
        todo = [a for a in archs if arch_key(a) not in self.records]
        from synth.rundir import append_record, open_for_appending

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

    def rescore_lost(self, scored: dict[str, int], scorer: "_Scorer", progress) -> int:
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
        from synth.baselines import arch_size

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


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def _read_search_checkpoint(out: Path) -> dict:
    from synth.rundir import read_checked_record

    raw = read_checked_record(out / CHECKPOINT, f"no search checkpoint to resume from (is {out} a synth search directory?)",
                      ("format", "proxy", "space", "config", "probe", "state"))
    if raw["format"] != SEARCH_FORMAT:
        raise RunDirError(f"{out / CHECKPOINT}: not a synth search checkpoint (format {raw['format']!r})")
    return raw


def run_search(proxy: str, space: SearchSpace | None, config: SearchConfig | None, out: Path, probe_overrides: dict | None = None,
               device: str = "cpu", workers: int = 1, resume: bool = False, progress=None, log=None) -> SearchResult:
    """Search `space` with `proxy` (a zoo name, an exported proxy.py or a run directory); write
    `out`/search.json and return it. With `resume`, continue the search in `out` from its checkpoint
    (its proxy, space, settings and probe are taken from there)."""
    from synth.rundir import no_progress, versions, write_checkpoint, write_json
    from synth.space import load_space
    from synth.stats import Probe

    out = Path(out)
    log = log or (lambda message: None)
    if resume:
        saved = _read_search_checkpoint(out)
        proxy, config, probe = saved["proxy"], SearchConfig.from_dict(saved["config"]), Probe(**saved["probe"])
        space = load_space(saved["space"]["source"])
        state = saved["state"]
    else:
        if (out / CHECKPOINT).exists():
            raise RunDirError(f"{out}: already holds a search; resume it with --resume {out} or choose another --out")
        config = config.validate()
        probe = search_probe(space, proxy, probe_overrides or {})
        state = {"iteration": 0, "population": [], "history": [], "rng": None}
    out.mkdir(parents=True, exist_ok=True)
    search = _Search(space, config, out)
    search.load_evaluated()
    rng = random.Random(config.seed)
    if state["rng"] is not None:
        _set_rng_state(rng, state["rng"])
    header = {"format": SEARCH_FORMAT, "proxy": proxy, "space": {"name": space.name, "source": space.source},
              "config": asdict(config), "probe": probe.to_dict()}

    def checkpoint() -> None:
        scored = {key: record["generation"] for key, record in search.records.items()}
        write_checkpoint(out / CHECKPOINT, {**header, "state": {**state, "rng": _rng_state(rng), "scored": scored}})

    budget = config.population + config.iterations * (config.mutations + config.crossovers)
    start = time.perf_counter()
    scorer = _Scorer(proxy, space, probe, device, workers)
    try:
        with (progress or no_progress)(f"search {space.name} with {Path(proxy).name}", budget) as advance:
            # an older checkpoint lists no scored keys: its population's were scored before it
            lost = search.rescore_lost(state.get("scored") or dict.fromkeys(state["population"], 0), scorer, advance)
            if lost:
                log(f"rescored {lost} architecture(s) whose records in {EVALUATED} were damaged")
            advance(len(search.records))
            if not state["history"]:  # the initial population is not scored yet
                checkpoint()  # the random state before the initial draw, so a kill replays it
                initial = search.initial(rng)
                search.evaluate(initial, scorer, advance)
                state["population"] = search.ranked(arch_key(a) for a in initial)[: config.population]
                state["history"].append(_history_entry(search, state, 0))
                checkpoint()
            while state["iteration"] < config.iterations:
                search.generation = state["iteration"] + 1
                parents = state["population"][: config.parents]
                kids = search.children(parents, rng)
                search.evaluate(kids, scorer, advance)
                pool = state["population"] + [arch_key(a) for a in kids]
                state["population"] = search.ranked(pool)[: config.population]
                state["iteration"] += 1
                state["history"].append(_history_entry(search, state, len(kids)))
                checkpoint()
                best = search.records[state["population"][0]]
                score = "NaN" if best["score"] is None else f"{best['score']:.6g}"
                log(f"iteration {state['iteration']}/{config.iterations}: {len(kids)} new, best score {score} "
                    f"({best['params'] / 1e6:.3g}M params)")
    finally:
        scorer.close()
    result = {**header, "top": _top(search, state["population"], config.top_k), "history": state["history"],
              "evaluated": len(search.records), "tied_at_top": _tied_at_top(search, state["population"]),
              "failed": sum(1 for r in search.records.values() if r["score"] is None),
              "errors": _error_counts(search.records.values()),
              "seconds": {"this_session": time.perf_counter() - start,
                          "scoring_total": sum(r["seconds"] for r in search.records.values())},
              "versions": versions()}
    write_json(out / RESULT, result)
    return SearchResult.from_dict(result)


def _history_entry(search: _Search, state: dict, new: int) -> dict:
    scores = [search.records[k]["score"] for k in state["population"] if search.records[k]["score"] is not None]
    best = state["population"][0]
    return {"iteration": state["iteration"], "new": new, "evaluated": len(search.records),
            "best_score": search.records[best]["score"], "best_key": best,
            "population_mean": sum(scores) / len(scores) if scores else None}


def _top(search: _Search, population: list[str], k: int) -> list[dict]:
    top = []
    for rank, key in enumerate(population[:k], start=1):
        record = search.records[key]
        top.append({"rank": rank, "arch": record["arch"], "key": key, "encoding": search.space.encode(record["arch"]),
                    "score": record["score"], "params": record["params"], "flops": record["flops"]})
    return top


def _tied_at_top(search: _Search, population: list[str]) -> int:
    """How many scored architectures share the top-1's score exactly: above 1, the proxy cannot tell
    them apart and the pick among them is the tie rule's (smaller first, then the seeded hash)."""
    best = search.records[population[0]]["score"]
    return sum(1 for r in search.records.values() if r["score"] is not None and r["score"] == best) if best is not None else 0


def _error_counts(records) -> dict:
    counts: dict[str, int] = {}
    for record in records:
        if record["error"]:
            counts[record["error"]] = counts.get(record["error"], 0) + 1
    return counts


# ---------------------------------------------------------------- the Python API: synth.search(...)


def search(proxy: str | None = None, space: str | SearchSpace | None = None, *, out: str | Path | None = None,
           resume: bool = False, probe: dict | None = None, device: str = "cpu", workers: int = 1, progress=None, log=None,
           **settings) -> SearchResult:
    """Search `space` for the architectures `proxy` scores highest, as `synth search` does.

    Args:
        proxy: a zoo proxy name, an exported proxy.py or a `synth evolve` run directory.
        space: a space name, YAML file or `SearchSpace`.
        out: the search directory (default: a new folder under runs/); a folder that holds a search
            is refused unless `resume`.
        resume: continue the search in `out` from its checkpoint, with its own proxy, space and
            settings (give none of them).
        probe: Probe fields to override, e.g. {"batch_size": 32}.
        device, workers: where networks run, and how many single-threaded processes score them.
        progress, log: a progress-bar factory (synth.rundir.no_progress) and a line printer.
        **settings: SearchConfig fields; budgets may be written as in the CLI ("6M").

    Returns:
        The SearchResult also written as `out`/search.json.

    Raises:
        ConfigError: an unknown or out-of-range setting, named.

    Example:
        >>> synth.search("params", "vit-digits", out="runs/s", population=8, iterations=2)  # doctest: +SKIP
    """
    from synth.config import config_from
    from synth.rundir import locked_run_dir, new_run_dir, refuse_existing_run
    from synth.space import load_space

    config = None
    if resume:
        if settings or proxy or space:
            raise ConfigError("a resumed search keeps its proxy, space and settings; give only `out` (and `resume`)")
    elif proxy is None or space is None:
        raise ConfigError("`proxy` and `space` are required (or `resume=True` with `out`)")
    else:
        config = config_from(SearchConfig, {k: _budget(k, v) for k, v in settings.items()}, "synth.search").validate()
        space = load_space(space) if isinstance(space, (str, Path)) else space
    if workers < 1:
        raise ConfigError(f"`workers` must be at least 1 (got {workers!r})")
    out = Path(out) if out is not None else new_run_dir()
    with locked_run_dir(out):
        if not resume:
            refuse_existing_run(out, (CHECKPOINT, RESULT))
        (log or (lambda message: None))(f"search directory: {out}")
        return run_search(proxy, space, config, out, probe, device=device, workers=workers, resume=resume,
                          progress=progress, log=log)


def _budget(name: str, value):
    """A budget setting written as people write counts ('6M') as its number; other settings as given."""
    if name not in ("max_params", "max_flops") or not isinstance(value, str):
        return value
    try:
        return parse_count(value)
    except ValueError as exc:
        raise ConfigError(f"`{name}`: {exc}") from None


class _CallableModule(types.ModuleType):
    """`synth.search` is this module and, called, its `search` function: a package attribute cannot be
    both a submodule and a function of the same name, so the module itself is callable."""

    def __call__(self, *args, **kwargs) -> SearchResult:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
