import math

import numpy as np
import pytest

from lprcausal.errors import LprError
from lprcausal.stats import isotonic_fit, page_trend, per_seed_slopes, slope_test
from lprcausal.stats.trend import _pava


def test_page_trend_on_perfectly_monotone_table():
    # Every seed ranks the 4 alphas 1..4, so L = m * sum(j^2) = 3 * 30 = 90, and
    # only that arrangement reaches it: exact p = (1/4!)^3.
    y = np.tile([70.0, 71.0, 75.0, 80.0], (3, 1)) + np.array([[0.0], [1.0], [-2.0]])
    rec = page_trend(y)
    assert rec.statistic == 90.0
    assert rec.p == pytest.approx(1 / 24**3, rel=1e-12)
    assert rec.estimate == 1.0
    assert "exact" in rec.note


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
