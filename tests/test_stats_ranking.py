import math

import numpy as np
import pytest
from scipy import stats

from lprcausal.errors import LprError
from lprcausal.stats import rank_agreement

X4 = [1.0, 2.0, 3.0, 4.0]
Y4 = [10.0, 30.0, 20.0, 40.0]  # one adjacent swap


def test_spearman_exact_p_on_four_items_enumerated_by_hand():
    # rho = 1 - sum(d^2) / 10 = 0.8. Of the 24 pairings, |rho| >= 0.8 needs
    # sum(d^2) <= 2 (identity + 3 adjacent swaps) or >= 18 (reverse + its 3 swaps): 8.
    rec = rank_agreement(X4, Y4)
    assert rec.estimate == pytest.approx(0.8)
    assert rec.p == pytest.approx(8 / 24)
    assert rec.p_perm_min == pytest.approx(2 / 24)
    assert "exact: all 4! = 24 pairings" in rec.note
    assert "cannot reach p < 0.05" in rec.note


def test_kendall_exact_p_on_four_items_enumerated_by_hand():
    # tau = 1 - 2 * inversions / 6 = 2/3. |tau| >= 2/3 needs <= 1 or >= 5 inversions:
    # 1 + 3 + 3 + 1 = 8 of 24 pairings.
    rec = rank_agreement(X4, Y4, method="kendall")
    assert rec.estimate == pytest.approx(2 / 3)
    assert rec.p == pytest.approx(8 / 24)


def test_estimates_match_scipy_with_ties():
    x = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0, 7.0, 7.0, 9.0, 8.0]
    y = [2.0, 1.0, 3.0, 3.0, 4.0, 6.0, 5.0, 9.0, 9.0, 7.0]
    assert rank_agreement(x, y).estimate == pytest.approx(stats.spearmanr(x, y).statistic)
    tau = rank_agreement(x, y, method="kendall", n_perm=500).estimate
    assert tau == pytest.approx(stats.kendalltau(x, y).statistic)


def test_monte_carlo_when_n_factorial_exceeds_n_perm():
    x = np.arange(10.0)
    y = x + np.random.default_rng(0).normal(0, 2, size=10)
    rec = rank_agreement(x, y, n_perm=2000, seed=1)
    assert "Monte Carlo: 2000 random pairings (seed 1)" in rec.note
    # p = (1 + count) / (1 + n_perm) with an integer count.
    count = rec.p * 2001 - 1
    assert count == pytest.approx(round(count))
    assert rec.p == rank_agreement(x, y, n_perm=2000, seed=1).p


def test_nan_pairs_are_dropped():
    rec = rank_agreement([1.0, 2.0, np.nan, 3.0, 4.0], [10.0, 30.0, 5.0, 20.0, 40.0])
    assert rec.n == 4
    assert rec.p == pytest.approx(8 / 24)
    assert "1 pair(s) with a NaN dropped" in rec.note


def test_too_few_pairs_give_no_test():
    rec = rank_agreement([1.0, 2.0], [2.0, 1.0])
    assert math.isnan(rec.p)
    assert "no test was possible" in rec.note


def test_rank_agreement_rejects_unknown_method():
    with pytest.raises(LprError, match="method"):
        rank_agreement(X4, Y4, method="pearson")
