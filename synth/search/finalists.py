"""Re-ranking a search's finalists over several network initialisations and probe batches.

A proxy scores an untrained network on one batch of images, so its score carries the draw of the
initial weights and of the batch. Far from the top that noise hardly matters, but among the best few
dozen architectures of a search the scores are close and their order can follow the seed more than
the architecture (`benchmarks/proxy_robustness.py --search` measures this). After the search, the
best `finalists` architectures are therefore scored again under every pair of `init_seeds` and
`probe_seeds` (either list empty: the probe's own seed) and ordered by their mean rank over those
settings: a rank aggregation, which, unlike a mean of raw scores, no single setting with an outlying
score can decide. The search's own score stands for its own setting; the others are appended to
`finalists.jsonl` as they finish, so an interrupted re-ranking resumes.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import rankdata

from synth.rundir import append_record, open_for_appending, read_jsonl
from synth.search.memo import SearchMemo
from synth.search.scorer import Scorer

__all__ = ["FINALISTS", "mean_ranks", "rerank_finalists", "finalist_jobs", "finalist_settings"]

FINALISTS = "finalists.jsonl"


def mean_ranks(scores: np.ndarray) -> np.ndarray:
    """Mean rank of each row over the columns of `scores` (rows: architectures, columns: settings);
    rank 1 is the highest score in a column, ties share their average rank, and a NaN (a failed
    score) ranks below every finite one."""
    scores = np.asarray(scores, dtype=float)
    ranks = np.column_stack([rankdata(np.where(np.isnan(col), np.inf, -col), method="average") for col in scores.T])
    return ranks.mean(axis=1)


def finalist_settings(config, own: tuple[int, int]) -> list[tuple[int, int]]:
    """The (init seed, probe seed) pairs the finalists are scored under; `own` is the search's pair."""
    return list(itertools.product(config.init_seeds or (own[0],), config.probe_seeds or (own[1],)))


def finalist_jobs(search: SearchMemo, own: tuple[int, int]) -> int:
    """How many networks the re-ranking scores beyond the search itself (for the progress bar)."""
    c = search.config
    return c.finalists * sum(1 for pair in finalist_settings(c, own) if pair != own) if c.finalists else 0


def rerank_finalists(search: SearchMemo, scorer: Scorer, own: tuple[int, int], progress=None) -> list[dict]:
    """The search's best `finalists` scored architectures (failures excluded), each scored under every
    setting of `finalist_settings` (its search score stands for `own`, the search's (init seed,
    probe seed)), ordered by mean rank over the settings, ties in the search's own order. Returns one
    dict per finalist, best first: key, search_rank, mean_rank and scores ([{init_seed, probe_seed,
    score}], None where it failed)."""
    c = search.config
    settings = finalist_settings(c, own)
    keys = [k for k in search.ranked(search.records) if search.records[k]["score"] is not None][: c.finalists]
    scored = _read_finalists(search, set(keys))
    scored.update({(key, own): search.records[key]["score"] for key in keys})
    done = sum(1 for (key, pair) in scored if pair != own and pair in settings)
    with open_for_appending(search.out / FINALISTS) as sink:
        for init_seed, probe_seed in settings:
            todo = [key for key in keys if (key, (init_seed, probe_seed)) not in scored]
            archs = [search.records[key]["arch"] for key in todo]
            results = scorer.scores(archs, [False] * len(archs), init_seed=init_seed, probe_seed=probe_seed)
            for key, (value, seconds, error, _) in zip(todo, results):
                scored[(key, (init_seed, probe_seed))] = value
                append_record(sink, {"key": key, "init_seed": init_seed, "probe_seed": probe_seed, "score": value,
                                     "seconds": seconds, "error": error})
                done += 1
                if progress:
                    progress(len(search.records) + done)
    table = np.array([[np.nan if scored[(k, pair)] is None else scored[(k, pair)] for pair in settings] for k in keys])
    ranks = mean_ranks(table) if keys else np.array([])
    order = sorted(range(len(keys)), key=lambda i: (ranks[i], i))
    return [{"key": keys[i], "search_rank": i + 1, "mean_rank": float(ranks[i]),
             "scores": [{"init_seed": init, "probe_seed": probe, "score": scored[(keys[i], (init, probe))]}
                        for init, probe in settings]} for i in order]


def _read_finalists(search: SearchMemo, keys: set) -> dict:
    """(key, (init seed, probe seed)) -> score of the finalists already scored (an interrupted re-ranking's)."""
    return {(r["key"], (r["init_seed"], r["probe_seed"])): r["score"] for r in read_jsonl(search.out / FINALISTS)
            if r.get("key") in keys and isinstance(r.get("init_seed"), int) and isinstance(r.get("probe_seed"), int)}
