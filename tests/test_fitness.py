"""Correlations and JCM against hand-worked values."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from synth.fitness import INVALID, correlation, correlations, jcm, resolution, top_quality, unscored, valid_scores


def kendall_tau_b_by_hand(x, y):
    """Kendall tau-b from its definition: (C - D) / sqrt((n0 - n1)(n0 - n2))."""
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))


def test_kendall_is_tau_b_with_ties():
    x = np.array([1, 2, 2, 3, 4, 4, 5])
    y = np.array([1, 3, 2, 2, 5, 4, 4])
    assert correlation(x, y, "kendall") == pytest.approx(kendall_tau_b_by_hand(x, y))


def test_spearman_and_pearson_on_a_known_case():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert correlation(x, x**3, "spearman") == pytest.approx(1.0)
    assert correlation(x, 2 * x + 1, "pearson") == pytest.approx(1.0)
    assert correlation(x, -x, "kendall") == pytest.approx(-1.0)


def test_missing_targets_are_left_out_per_task():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([1.0, np.nan, 3.0, 2.0, 5.0])
    keep = ~np.isnan(y)
    assert correlation(x, y) == pytest.approx(kendall_tau_b_by_hand(x[keep], y[keep]))


def test_jcm_mean_min_absolute_and_invalid():
    rows = list(range(5))
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    targets = {"a": s.copy(), "b": -s}
    assert jcm(s, targets, rows) == pytest.approx(0.0)
    assert jcm(s, targets, rows, join="min") == pytest.approx(-1.0)
    assert jcm(s, targets, rows, absolute=True) == pytest.approx(1.0)
    assert jcm(np.ones(5), targets, rows) == INVALID
    assert jcm(np.array([1, 2, np.inf, 4, 5.0]), targets, rows) == INVALID
    assert not valid_scores([1.0, np.nan])


def test_correlations_restricts_to_rows():
    s = np.array([5.0, 1.0, 2.0, 3.0])
    out = correlations(s, {"t": np.array([0.0, 1.0, 2.0, 3.0])}, [1, 2, 3])
    assert out["kendall"]["t"] == pytest.approx(1.0)
    assert set(out) == {"kendall", "spearman", "pearson"}


def test_correlations_leave_out_architectures_without_a_finite_score():
    accuracy = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    scores = np.array([0.0, 2.0, np.nan, 1.0, np.inf, 5.0])
    out = correlations(scores, {"t": accuracy}, [0, 1, 2, 3, 4, 5])
    kept = [0, 1, 3, 5]
    assert out["kendall"]["t"] == pytest.approx(sps.kendalltau(scores[kept], accuracy[kept]).statistic)
    assert out["spearman"]["t"] == pytest.approx(sps.spearmanr(scores[kept], accuracy[kept]).statistic)
    assert unscored(scores) == 2 and unscored(scores, [0, 1, 2]) == 1 and unscored(scores, [0, 1]) == 0


def test_resolution_counts_distinct_scores_and_the_largest_tie():
    # 1, 1 + 1e-9 (a float-noise tie at 1e-6 of the largest magnitude, 4), 2, 4, 4, 4; NaN and None left out
    scores = [1.0, 1.0 + 1e-9, 2.0, 4.0, 4.0, 4.0, float("nan"), None]
    assert resolution(scores) == {"architectures": 6, "distinct": 3, "largest_tie": 3}
    assert resolution([3.0, 1.0, 2.0]) == {"architectures": 3, "distinct": 3, "largest_tie": 1}
    assert resolution([0.0, 0.0]) == {"architectures": 2, "distinct": 1, "largest_tie": 2}
    assert resolution([None, float("inf")]) == {"architectures": 0, "distinct": 0, "largest_tie": 0}


def _weighted_tau_by_hand(x, y, by):
    """Vigna's weighted tau without ties, written out: pair weight 1/(r_i + 1) + 1/(r_j + 1), r the
    0-based rank of each element in decreasing order of `by`."""
    order = np.argsort(-np.asarray(by))
    rank = np.empty(len(by), dtype=int)
    rank[order] = np.arange(len(by))
    w = 1.0 / (rank + 1)
    agree = total = 0.0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            weight = w[i] + w[j]
            agree += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) * weight
            total += weight
    return agree / total


def test_weighted_kendall_is_vignas_weighted_tau_averaged_over_both_rankings():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=12), rng.normal(size=12)
    expected = (_weighted_tau_by_hand(x, y, x) + _weighted_tau_by_hand(x, y, y)) / 2
    assert correlation(x, y, "weighted_kendall") == pytest.approx(expected, abs=1e-12)


def test_weighted_kendall_counts_a_swap_at_the_top_more_than_one_at_the_bottom():
    accuracy = np.arange(20.0)
    top_swapped, bottom_swapped = accuracy.copy(), accuracy.copy()
    top_swapped[[19, 18]] = top_swapped[[18, 19]]
    bottom_swapped[[0, 1]] = bottom_swapped[[1, 0]]
    assert correlation(top_swapped, accuracy, "kendall") == correlation(bottom_swapped, accuracy, "kendall")
    assert correlation(top_swapped, accuracy, "weighted_kendall") < correlation(bottom_swapped, accuracy, "weighted_kendall")


def test_weighted_kendall_is_a_fitness_setting_not_a_reported_metric():
    from synth.config import EvolveConfig
    from synth.errors import ConfigError
    from synth.fitness import METRICS

    EvolveConfig(metric="weighted_kendall").validate()
    assert "weighted_kendall" not in METRICS
    with pytest.raises(ConfigError, match="weighted_kendall"):
        EvolveConfig(metric="tau").validate()


def _top_quality_by_tie_breaks(x, y, k):
    """top_quality written out: the mean accuracy quantile of the k highest-scored rows, averaged
    over every order of breaking ties among the scores."""
    n = len(x)
    quantile = {i: sum((y[i] > y[j]) + 0.5 * (y[i] == y[j]) for j in range(n) if j != i) / (n - 1) for i in range(n)}
    values = []
    for order in itertools.permutations(range(n)):
        ranked = sorted(order, key=lambda i: -x[i])  # stable: the permutation breaks ties
        values.append(np.mean([quantile[i] for i in ranked[:k]]))
    return 2 * np.mean(values) - 1


def test_top_quality_matches_the_tie_broken_mean_of_the_top_rows():
    rng = np.random.default_rng(5)
    y = rng.normal(size=7)
    y[3] = y[1]  # a tie in accuracy
    for x in (rng.normal(size=7), np.array([3.0, 2.0, 2.0, 2.0, 1.0, 0.0, 0.0])):
        for share in (0.15, 0.3, 0.5):
            k = max(1, round(share * 7))
            assert top_quality(x, y, share) == pytest.approx(_top_quality_by_tie_breaks(x, y, k), abs=1e-12)


def test_top_quality_sees_only_the_top_and_kendall_top_averages_it_with_kendall():
    accuracy = np.arange(40.0)
    assert top_quality(accuracy, accuracy) == pytest.approx(2 * np.mean(np.arange(36, 40) / 39) - 1)
    assert top_quality(-accuracy, accuracy) == pytest.approx(-top_quality(accuracy, accuracy))
    bottom_shuffled = accuracy.copy()
    bottom_shuffled[:30] = np.random.default_rng(0).permutation(bottom_shuffled[:30])
    assert top_quality(bottom_shuffled, accuracy) == top_quality(accuracy, accuracy)
    tau = sps.kendalltau(bottom_shuffled, accuracy).statistic
    assert correlation(bottom_shuffled, accuracy, "kendall_top") == pytest.approx((tau + top_quality(bottom_shuffled, accuracy)) / 2)
    big_but_bad = accuracy.copy()
    big_but_bad[0] = 100.0  # the worst row scored highest
    assert correlation(big_but_bad, accuracy, "kendall") > 0.89
    assert correlation(big_but_bad, accuracy, "kendall_top") < correlation(accuracy, accuracy, "kendall_top") - 0.2


def test_top_share_sets_how_many_top_rows_kendall_top_judges():
    accuracy = np.arange(20.0)
    scores = accuracy.copy()
    scores[3] = 100.0  # the 4th-worst row is scored highest; the rest are in order
    tau = sps.kendalltau(scores, accuracy).statistic
    # share 1/20: only the highest-scored row counts, at accuracy quantile 3/19
    assert correlation(scores, accuracy, "kendall_top", top_share=0.05) == pytest.approx((tau + 2 * 3 / 19 - 1) / 2)
    # share 1/5: rows 3, 19, 18, 17
    assert correlation(scores, accuracy, "kendall_top", top_share=0.2) == pytest.approx((tau + 2 * np.mean([3, 19, 18, 17]) / 19 - 1) / 2)
    targets = {"a": accuracy, "b": np.roll(accuracy, 5)}
    by_hand = np.mean([correlation(scores, t, "kendall_top", top_share=0.05) for t in targets.values()])
    assert jcm(scores, targets, list(range(20)), "kendall_top", top_share=0.05) == pytest.approx(by_hand)
    assert jcm(scores, targets, list(range(20)), "kendall_top") != pytest.approx(by_hand)


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_top_share_outside_0_1_is_refused_by_name(share):
    from synth.config import EvolveConfig
    from synth.errors import ConfigError

    with pytest.raises(ConfigError, match="top_share"):
        EvolveConfig(metric="kendall_top", top_share=share).validate()
