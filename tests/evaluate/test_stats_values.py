"""Statistics against hand-computed values and printed t tables."""
from __future__ import annotations

import math

import pytest

from cogsim.evaluate.stats import betainc, mean_std, paired_difference, roc_auc, t_cdf, t_quantile

# two-sided 95% critical values of Student's t (any printed table)
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 9: 2.2622, 10: 2.2281, 30: 2.0423, 120: 1.9799}


@pytest.mark.parametrize("df,value", sorted(T975.items()))
def test_t_quantile_matches_the_table(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-value, abs=1e-4)


def test_t_distribution_closed_forms():
    # df = 1 is the Cauchy distribution; df = 2 has F(t) = 1/2 + t / (2 sqrt(t² + 2))
    for t in (-3.0, -0.4, 0.0, 0.7, 5.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(t * t + 2)), abs=1e-12)
    assert t_quantile(0.995, 1) == pytest.approx(math.tan(math.pi * 0.495), rel=1e-9)
    assert t_quantile(0.975, 1_000_000) == pytest.approx(1.959964, abs=1e-5)  # → the normal quantile
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)  # 1 - (0.6^4 + 4·0.4·0.6^3)
    with pytest.raises(ValueError, match="p: must be in"):
        t_quantile(1.0, 3)


def test_mean_std_uses_n_minus_1_and_skips_missing_values():
    mean, std, n = mean_std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert (mean, n) == (5.0, 8) and std == pytest.approx(math.sqrt(32 / 7))
    assert mean_std([1.0, None, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2)), 2)
    mean, std, n = mean_std([4.0])
    assert mean == 4.0 and math.isnan(std) and n == 1


def test_paired_difference_by_hand():
    a = [2.10, 2.20, 2.30]
    b = [2.00, 2.05, 2.25]
    d = paired_difference(a, b)  # differences 0.10, 0.15, 0.05: mean 0.1, sd 0.05
    half = 4.302652729911275 * 0.05 / math.sqrt(3)
    assert d.mean == pytest.approx(0.1) and d.std == pytest.approx(0.05) and d.n == 3
    assert (d.low, d.high) == (pytest.approx(0.1 - half), pytest.approx(0.1 + half))
    assert not d.significant  # 0.1 ± 0.124 includes 0
    tight = paired_difference([1.10, 1.11, 1.12], [1.0, 1.0, 1.0])  # 0.11 ± 4.3027 · 0.01 / √3
    assert tight.significant and tight.low == pytest.approx(0.11 - 0.024841, abs=1e-6)
    worse = paired_difference([1.0, 1.0, 1.0], [1.10, 1.11, 1.12])
    assert worse.significant and worse.high == pytest.approx(-0.11 + 0.024841, abs=1e-6)


def test_paired_difference_drops_incomplete_pairs_and_needs_two():
    d = paired_difference([1.0, None, 3.0, 5.0], [0.5, 2.0, float("nan"), 4.0])  # pairs 0 and 3
    assert d.n == 2 and d.mean == pytest.approx(0.75)
    one = paired_difference([1.0], [0.5])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.low) and not one.significant
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


def test_roc_auc_by_hand():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 1 + 2 of 4
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([0.2, 0.2, 0.9, 0.1], [1, 0, 1, 0]) == pytest.approx((1.5 + 2) / 4)  # a tie counts 1/2
    assert roc_auc([3, 2, 1], [1, 0, 0]) == 1.0 and roc_auc([1, 2, 3], [1, 0, 0]) == 0.0
    assert math.isnan(roc_auc([1.0, 2.0], [0, 0]))
