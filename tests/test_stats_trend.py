import itertools
import math

import numpy as np
import pytest
from scipy import stats

from lprcausal.errors import LprError
from lprcausal.stats import isotonic_fit, page_trend, per_seed_slopes, slope_test, trend
from lprcausal.stats.trend import _pava, page_null_tails


def test_page_trend_on_perfectly_monotone_table():
    # Every seed ranks the 4 alphas 1..4, so L = m * sum(j^2) = 3 * 30 = 90, and
    # only that arrangement reaches it: exact p = (1/4!)^3.
    y = np.tile([70.0, 71.0, 75.0, 80.0], (3, 1)) + np.array([[0.0], [1.0], [-2.0]])
    rec = page_trend(y)
    assert rec.statistic == 90.0
    assert rec.p == pytest.approx(1 / 24**3, rel=1e-12)
    assert rec.estimate == 1.0
    assert "exact" in rec.note


def brute_force_page_p(y):
    """P(L >= observed) over every combination of within-row orders (midranks)."""
    ranks = stats.rankdata(y, axis=1)
    w = np.arange(1, y.shape[1] + 1)
    observed = (ranks @ w).sum()
    rows = [[row[list(o)] @ w for o in itertools.permutations(range(y.shape[1]))] for row in ranks]
    values = [sum(c) for c in itertools.product(*rows)]
    return np.mean(np.array(values) >= observed - 1e-9)


def test_page_p_without_ties_equals_scipys_exact_p():
    rng = np.random.default_rng(0)
    for m, k in [(3, 3), (5, 4), (8, 5)]:
        y = rng.normal(size=(m, k)) + 0.3 * np.arange(k)
        _, p_up, p_down, _ = page_null_tails(y)
        assert p_up == pytest.approx(stats.page_trend_test(y, method="exact").pvalue, rel=1e-9)
        rev = stats.page_trend_test(y[:, ::-1], method="exact").pvalue
        assert p_down == pytest.approx(rev, rel=1e-9)


def test_page_p_with_ties_equals_brute_force_enumeration():
    # Accuracies on a finite test set tie often; scipy's p ignores that.
    y = np.array([[0.91, 0.91, 0.93], [0.90, 0.92, 0.92], [0.92, 0.92, 0.92], [0.90, 0.91, 0.91]])
    rec = page_trend(y)
    assert rec.p == pytest.approx(brute_force_page_p(y), rel=1e-12)
    assert rec.statistic == stats.page_trend_test(y).statistic
    assert rec.p < stats.page_trend_test(y).pvalue / 1.5  # the tie-blind p is too large
    assert "tie-aware" in rec.note


def test_page_monte_carlo_above_the_exact_limit_is_close_to_the_exact_p(monkeypatch):
    rng = np.random.default_rng(1)
    y = np.round(rng.normal(size=(6, 5)) + 0.2 * np.arange(5), 1)
    exact = page_null_tails(y)
    monkeypatch.setattr(trend, "PAGE_EXACT_MAX_K", 4)
    mc = page_null_tails(y)
    assert "Monte Carlo" in mc[3] and mc[0] == exact[0]
    assert mc[1] == pytest.approx(exact[1], abs=0.01)
    assert mc[2] == pytest.approx(exact[2], abs=0.01)


def test_page_trend_drops_seeds_with_missing_alpha():
    y = np.tile([1.0, 2.0, 3.0], (4, 1))
    y[2, 1] = np.nan
    rec = page_trend(y)
    assert rec.n == 3
    assert "1 seed(s) with a missing alpha dropped" in rec.note


def test_page_trend_needs_three_alphas():
    rec = page_trend(np.ones((5, 2)))
    assert math.isnan(rec.p)
    assert "no test was possible" in rec.note


def test_per_seed_slopes_recover_exact_linear_slopes():
    alphas = np.array([0.0, 0.25, 0.5, 1.0])
    y = np.array(
        [[1.0 * a + 10 for a in alphas], [2.0 * a - 3 for a in alphas], [3.0 * a for a in alphas]]
    )
    np.testing.assert_allclose(per_seed_slopes(alphas, y), [1.0, 2.0, 3.0], rtol=1e-12)


def test_per_seed_slopes_skip_missing_cells():
    y = np.array([[0.0, np.nan, 4.0], [0.0, 1.0, np.nan]])
    np.testing.assert_allclose(per_seed_slopes([0.0, 0.5, 1.0], y), [4.0, 2.0])


def test_slope_test_is_t_test_over_per_seed_slopes():
    alphas = [0.0, 0.5, 1.0]
    y = np.array([[s * a for a in alphas] for s in (1.0, 2.0, 3.0)])
    rec = slope_test(alphas, y)
    # slopes 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt(3)).
    assert rec.estimate == pytest.approx(2.0)
    assert rec.statistic == pytest.approx(2 * math.sqrt(3))
    assert rec.df == 2.0


def test_slope_test_rejects_alphas_of_wrong_length():
    with pytest.raises(LprError, match="alphas"):
        slope_test([0.0, 1.0], np.zeros((3, 3)))


def test_isotonic_fit_pools_violators():
    np.testing.assert_allclose(isotonic_fit([0, 1, 2, 3], [1.0, 3.0, 2.0, 4.0]), [1, 2.5, 2.5, 4])


def test_isotonic_fit_orders_by_alpha_and_returns_input_order():
    fit = isotonic_fit([3, 0, 2, 1], [4.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(fit, [4.0, 1.0, 2.5, 2.5])


def test_isotonic_fit_keeps_nan_out_of_the_fit():
    fit = isotonic_fit([0, 1, 2, 3], [2.0, np.nan, 1.0, 5.0])
    np.testing.assert_allclose(fit, [1.5, np.nan, 1.5, 5.0])


def test_fallback_pava_matches_scipy_isotonic_regression():
    y = np.random.default_rng(0).normal(size=40).cumsum()
    np.testing.assert_allclose(_pava(y), isotonic_fit(np.arange(40), y), rtol=1e-12)
