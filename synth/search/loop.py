"""The search loop: the initial population, then AutoFormer's iterations of breeding, scoring and
selection, checkpointed at the start of each iteration so a killed search replays it from the memo."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from synth.errors import RunDirError
from synth.probe import Probe
from synth.rundir import no_progress, read_checked_record, rng_state, seeded_rng, versions, write_checkpoint, write_json
from synth.search.config import CHECKPOINT, EVALUATED, RESULT, SEARCH_FORMAT, SearchConfig, SearchResult
from synth.search.finalists import finalist_jobs, rerank_finalists
from synth.search.memo import SearchMemo
from synth.search.scorer import Scorer, search_probe
from synth.space import SearchSpace, arch_key, load_space

__all__ = ["run_search"]


def _read_search_checkpoint(out: Path) -> dict:
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
    search = SearchMemo(space, config, out)
    search.load_evaluated()
    rng = seeded_rng(config.seed, state["rng"])
    header = {"format": SEARCH_FORMAT, "proxy": proxy, "space": {"name": space.name, "source": space.source},
              "config": asdict(config), "probe": probe.to_dict()}

    def checkpoint() -> None:
        scored = {key: record["generation"] for key, record in search.records.items()}
        write_checkpoint(out / CHECKPOINT, {**header, "state": {**state, "rng": rng_state(rng), "scored": scored}})

    own = (probe.init_seed, probe.seed)  # the setting the search scores under; finalists may add others
    budget = config.population + config.iterations * (config.mutations + config.crossovers) + finalist_jobs(search, own)
    start = time.perf_counter()
    scorer = Scorer(proxy, space, probe, device, workers)
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
            finalists_start = time.perf_counter()
            finalists = rerank_finalists(search, scorer, own, advance) if config.finalists else []
            finalist_seconds = time.perf_counter() - finalists_start
            if finalists:
                log(f"finalists: the best {len(finalists)} re-ranked by mean rank over {len(finalists[0]['scores'])} "
                    f"(init seed, probe seed) settings; the search's top is now ranked "
                    f"{next(i for i, f in enumerate(finalists, 1) if f['search_rank'] == 1)}")
    finally:
        scorer.close()
    reranked = {f["key"] for f in finalists}
    order = [f["key"] for f in finalists] + [key for key in state["population"] if key not in reranked]
    result = {**header, "top": _top(search, order, config.top_k, finalists), "history": state["history"],
              "evaluated": len(search.records), "tied_at_top": _tied_at_top(search, state["population"]),
              "failed": sum(1 for r in search.records.values() if r["score"] is None),
              "errors": _error_counts(search.records.values()),
              "seconds": {"this_session": time.perf_counter() - start,
                          "scoring_total": sum(r["seconds"] for r in search.records.values()),
                          "finalists": finalist_seconds},
              "versions": versions(), "finalists": finalists}
    write_json(out / RESULT, result)
    return SearchResult.from_dict(result)


def _history_entry(search: SearchMemo, state: dict, new: int) -> dict:
    scores = [search.records[k]["score"] for k in state["population"] if search.records[k]["score"] is not None]
    best = state["population"][0]
    return {"iteration": state["iteration"], "new": new, "evaluated": len(search.records),
            "best_score": search.records[best]["score"], "best_key": best,
            "population_mean": sum(scores) / len(scores) if scores else None}


def _top(search: SearchMemo, order: list[str], k: int, finalists: list[dict]) -> list[dict]:
    """The first `k` of `order`, with the finalists' scores per setting and mean rank where re-ranked."""
    reranked = {f["key"]: f for f in finalists}
    top = []
    for rank, key in enumerate(order[:k], start=1):
        record, final = search.records[key], reranked.get(key, {})
        top.append({"rank": rank, "arch": record["arch"], "key": key, "encoding": search.space.encode(record["arch"]),
                    "score": record["score"], "params": record["params"], "flops": record["flops"],
                    "scores": final.get("scores"), "mean_rank": final.get("mean_rank")})
    return top


def _tied_at_top(search: SearchMemo, population: list[str]) -> int:
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
