"""Correlations with accuracy and the joint correlation metric (JCM) used as fitness.

Correlations come from scipy: Kendall tau-b (tie-aware), Spearman and Pearson, which every report
shows, and, as fitness only, two that look at the top of the ranking, which is all a search picking
the best architecture uses: weighted Kendall (scipy's weightedtau: hyperbolic weights that count
disagreements among the top-ranked architectures most) and `kendall_top`, the mean of Kendall tau-b
and the accuracy of the proxy's own top share of the rows, a tenth by default (`top_quality`). Rows
whose target is missing (NaN) are left out task by task.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from synth.config import FITNESS_METRICS, TOP_SHARE

__all__ = ["correlation", "correlations", "unscored", "jcm", "resampled_jcm", "resamples", "INVALID", "METRICS", "FITNESS_METRICS", "resolution", "top_quality", "valid_scores"]

INVALID = -1.0  # fitness of a program that cannot rank architectures
METRICS = ("kendall", "spearman", "pearson")  # reported everywhere; a JCM may use FITNESS_METRICS


def correlation(scores: np.ndarray, target: np.ndarray, metric: str = "kendall", top_share: float = TOP_SHARE) -> float:
    """Correlation of `scores` with `target` over rows where the target is known; NaN if undefined.
    `top_share` is the share of the rows `kendall_top` judges by their accuracy (see `top_quality`)."""
    scores, target = np.asarray(scores, dtype=float), np.asarray(target, dtype=float)
    keep = ~np.isnan(target)
    x, y = scores[keep], target[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    if metric == "kendall":
        value = sps.kendalltau(x, y, variant="b").statistic
    elif metric == "spearman":
        value = sps.spearmanr(x, y).statistic
    elif metric == "pearson":
        value = sps.pearsonr(x, y).statistic
    elif metric == "weighted_kendall":
        value = sps.weightedtau(x, y).statistic
    elif metric == "kendall_top":
        value = (sps.kendalltau(x, y, variant="b").statistic + top_quality(x, y, top_share)) / 2
    else:
        raise ValueError(f"unknown correlation {metric!r}; choose from {', '.join(FITNESS_METRICS)}")
    return float(value)


def top_quality(scores, target, share: float = TOP_SHARE) -> float:
    """How good the architectures a proxy ranks highest are, in [-1, 1]: the mean accuracy quantile
    (0 for the worst row, 1 for the best, ties averaged) of the proxy's top `share` of the rows,
    rescaled so that a random proxy expects 0. Kendall's tau counts a swap among the worst cells as
    much as one among the best; a search keeps only the best, and a proxy whose top is crowded by
    large but poorly trainable cells picks one of them. Proxy ties at the cut share the remaining
    places equally, which is the expectation over every way of breaking them."""
    x, y = np.asarray(scores, dtype=float), np.asarray(target, dtype=float)
    n = len(x)
    k = max(1, int(round(share * n)))
    quantile = (sps.rankdata(y) - 1) / (n - 1)
    first = sps.rankdata(-x, method="min")  # 1-based place of the first member of each tie group
    group = sps.rankdata(-x, method="max") - first + 1
    weight = np.clip(k - (first - 1), 0, group) / group
    return float(2 * np.dot(weight, quantile) / k - 1)


def correlations(scores, targets: dict[str, np.ndarray], rows=None) -> dict[str, dict[str, float]]:
    """{metric: {task: value}} on the given rows (all by default) whose score is finite, for every
    metric. An architecture the proxy cannot score (NaN or infinite) is left out rather than making
    every correlation NaN; `unscored` counts them."""
    scores = np.asarray(scores, dtype=float)
    rows = np.arange(len(scores)) if rows is None else np.asarray(rows, dtype=int)
    rows = rows[np.isfinite(scores[rows])]
    return {m: {task: correlation(scores[rows], t[rows], m) for task, t in targets.items()} for m in METRICS}


def unscored(scores, rows=None) -> int:
    """How many of `rows` (all by default) have no finite score: what `correlations` leaves out."""
    scores = np.asarray(scores, dtype=float)
    return int(np.sum(~np.isfinite(scores if rows is None else scores[list(rows)])))


def resolution(scores, rel: float = 1e-6) -> dict:
    """How finely `scores` separate architectures: the number of distinct finite values (values within
    `rel` of the largest magnitude count as one) and the size of the largest group of equal scores.
    A proxy with few distinct values can correlate well by ordering coarse groups (width, depth) yet
    leave a search to pick inside its largest group by tie rule alone."""
    values = np.sort(np.asarray([s for s in scores if s is not None], dtype=float))
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"architectures": 0, "distinct": 0, "largest_tie": 0}
    scale = float(np.max(np.abs(values))) or 1.0
    breaks = np.flatnonzero(np.diff(values) > rel * scale)
    sizes = np.diff(np.concatenate([[0], breaks + 1, [len(values)]]))
    return {"architectures": int(len(values)), "distinct": int(len(sizes)), "largest_tie": int(sizes.max())}


def valid_scores(scores) -> bool:
    """Auto-Prox's rule: every score finite, and not all equal."""
    scores = np.asarray(scores, dtype=float)
    return bool(np.all(np.isfinite(scores)) and np.ptp(scores) > 0)


def jcm(scores, targets: dict[str, np.ndarray], rows, metric: str = "kendall", join: str = "mean", absolute: bool = False,
        top_share: float = TOP_SHARE) -> float:
    """Joint correlation over tasks on `rows`: mean (or min) of per-task correlations; INVALID if undefined."""
    if not valid_scores(np.asarray(scores, dtype=float)[rows]):
        return INVALID
    values = [correlation(np.asarray(scores)[rows], t[rows], metric, top_share) for t in targets.values()]
    if any(math.isnan(v) for v in values):
        return INVALID
    if absolute:
        values = [abs(v) for v in values]
    return float(np.mean(values) if join == "mean" else np.min(values))


def resamples(rows, count: int, fraction: float, seed: int) -> list[list[int]]:
    """`count` seeded random subsets of `rows`, each `fraction` of them (at least 3), drawn without
    replacement (a row drawn twice would be a tie that Kendall's tau-b counts against the proxy).
    Every program is scored on the same subsets, so fitness comparisons are paired."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(list(rows))
    size = max(3, int(round(fraction * len(rows))))
    return [sorted(rng.choice(rows, size=size, replace=False).tolist()) for _ in range(count)]


def resampled_jcm(scores, targets: dict[str, np.ndarray], subsets: list[list[int]], quantile: float,
                  metric: str = "kendall", join: str = "mean", absolute: bool = False, top_share: float = TOP_SHARE) -> float:
    """The `quantile` of the JCM over `subsets` of the rows: with a low quantile, a formula whose
    correlation rests on a few architectures scores below one that ranks every part of the split
    alike. INVALID if the JCM is undefined on any subset."""
    values = [jcm(scores, targets, rows, metric, join, absolute, top_share) for rows in subsets]
    if any(v <= INVALID for v in values):
        return INVALID
    return float(np.quantile(values, quantile))
