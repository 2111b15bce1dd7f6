"""Re-ranking a search's finalists over several network initialisations.

A proxy scores an untrained network, so its score carries the draw of the initial weights. Far
from the top that noise hardly matters, but among the best few dozen architectures of a search the
scores are close and their order can follow the initialisation seed more than the architecture
(`benchmarks/proxy_robustness.py --search` measures this). After the search, the best `finalists`
architectures are therefore scored again under each of `init_seeds` and ordered by their mean rank
over those seeds: a rank aggregation, which, unlike a mean of raw scores, no single initialisation
with an outlying score can decide. The search's own score is reused for its own init seed; the
others are appended to `finalists.jsonl` as they finish, so an interrupted re-ranking resumes.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from synth.rundir import append_record, open_for_appending, read_jsonl
from synth.search.memo import SearchMemo
from synth.search.scorer import Scorer

__all__ = ["FINALISTS", "mean_ranks", "rerank_finalists", "finalist_jobs"]

FINALISTS = "finalists.jsonl"


def mean_ranks(scores: np.ndarray) -> np.ndarray:
    """Mean rank of each row over the columns of `scores` (rows: architectures, columns: init seeds);
    rank 1 is the highest score in a column, ties share their average rank, and a NaN (a failed
    score) ranks below every finite one."""
    scores = np.asarray(scores, dtype=float)
    ranks = np.column_stack([rankdata(np.where(np.isnan(col), np.inf, -col), method="average") for col in scores.T])
    return ranks.mean(axis=1)


def finalist_jobs(search: SearchMemo, own_seed: int) -> int:
    """How many networks the re-ranking scores beyond the search itself (for the progress bar)."""
    c = search.config
    return c.finalists * sum(1 for seed in c.init_seeds if seed != own_seed) if c.finalists else 0


def rerank_finalists(search: SearchMemo, scorer: Scorer, own_seed: int, progress=None) -> list[dict]:
    """The search's best `finalists` scored architectures (failures excluded), each scored under every
    seed of `init_seeds` (its search score stands for `own_seed`), ordered by mean rank over the seeds,
    ties in the search's own order. Returns one dict per finalist, best first: key, search_rank,
    init_scores (seed -> score, None where it failed) and mean_rank."""
    c = search.config
    keys = [k for k in search.ranked(search.records) if search.records[k]["score"] is not None][: c.finalists]
    scored = _read_finalists(search, set(keys))
    done = sum(1 for (key, seed) in scored if seed != own_seed)
    with open_for_appending(search.out / FINALISTS) as sink:
        for seed in c.init_seeds:
            if seed == own_seed:
                scored.update({(key, seed): search.records[key]["score"] for key in keys})
                continue
            todo = [key for key in keys if (key, seed) not in scored]
            archs = [search.records[key]["arch"] for key in todo]
            for key, (value, seconds, error, _) in zip(todo, scorer.scores(archs, [False] * len(archs), init_seed=seed)):
                scored[(key, seed)] = value
                append_record(sink, {"key": key, "init_seed": seed, "score": value, "seconds": seconds, "error": error})
                done += 1
                if progress:
                    progress(len(search.records) + done)
    table = np.array([[np.nan if scored[(k, s)] is None else scored[(k, s)] for s in c.init_seeds] for k in keys])
    ranks = mean_ranks(table) if keys else np.array([])
    order = sorted(range(len(keys)), key=lambda i: (ranks[i], i))
    return [{"key": keys[i], "search_rank": i + 1, "mean_rank": float(ranks[i]),
             "init_scores": {str(s): scored[(keys[i], s)] for s in c.init_seeds}} for i in order]


def _read_finalists(search: SearchMemo, keys: set) -> dict:
    """(key, init seed) -> score of the finalists already scored (an interrupted re-ranking's)."""
    return {(r["key"], r["init_seed"]): r["score"] for r in read_jsonl(search.out / FINALISTS)
            if r.get("key") in keys and isinstance(r.get("init_seed"), int)}
