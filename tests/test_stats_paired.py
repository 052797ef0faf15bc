import itertools
import math

import numpy as np
import pytest
from scipy import stats

from lprcausal.errors import LprError
from lprcausal.stats import min_sign_flip_p, paired_t, sign_flip_test, tost_paired

# d = [1, 2, 3, 6]: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, sd = sqrt(14/3).
D = [1.0, 2.0, 3.0, 6.0]
SD = math.sqrt(14 / 3)
SE = SD / 2
T_975_DF3 = 3.182446305284263  # two-sided 95% critical value of t with 3 df (tables)


def brute_force_sign_flip_p(d):
    observed = abs(sum(d))
    sums = [
        abs(sum(s * x for s, x in zip(signs, d, strict=True)))
        for signs in itertools.product([1, -1], repeat=len(d))
    ]
    return sum(v >= observed - 1e-12 for v in sums) / len(sums)


def test_paired_t_matches_hand_computed_mean_sd_and_t():
    rec = paired_t(D, estimand="x")
    assert rec.estimate == 3.0
    assert rec.statistic == pytest.approx(3 / SE, rel=1e-12)
    assert rec.df == 3.0
    assert rec.n == 4
    assert rec.p == pytest.approx(2 * stats.t.sf(3 / SE, 3), rel=1e-12)
    assert rec.effect_size == pytest.approx(3 / SD, rel=1e-12)
    assert rec.estimand == "x"


def test_paired_t_ci_is_mean_plus_minus_t_times_se():
    rec = paired_t(D)
    assert rec.ci_low == pytest.approx(3 - T_975_DF3 * SE, rel=1e-9)
    assert rec.ci_high == pytest.approx(3 + T_975_DF3 * SE, rel=1e-9)
    assert (rec.ci_level, rec.ci_method) == (0.95, "t")


def test_paired_t_drops_nans_and_reports_the_count():
    rec = paired_t([1.0, np.nan, 2.0, 3.0, np.nan, 6.0])
    assert rec.n == 4
    assert rec.estimate == 3.0
    assert "2 NaN value(s) dropped" in rec.note


def test_paired_t_with_one_value_gives_estimate_but_no_test():
    rec = paired_t([0.7, np.nan])
    assert rec.estimate == 0.7
    assert math.isnan(rec.statistic) and math.isnan(rec.p)
    assert "no test was possible" in rec.note


def test_paired_t_with_no_values_gives_nan_estimate():
    rec = paired_t([])
    assert rec.n == 0
    assert math.isnan(rec.estimate)
    assert "no test was possible" in rec.note


def test_paired_t_with_zero_variance_reports_no_p():
    rec = paired_t([0.5, 0.5, 0.5])
    assert rec.estimate == 0.5
    assert math.isnan(rec.p)
    assert "sd ~ 0" in rec.note


def test_paired_t_rejects_two_dimensional_input():
    with pytest.raises(LprError, match="diffs shape"):
        paired_t(np.zeros((2, 3)))


def test_sign_flip_exact_p_equals_brute_force():
    d = [0.3, -0.1, 0.5, 0.2, 0.7, -0.4]
    p, p_min = sign_flip_test(d)
    assert p == brute_force_sign_flip_p(d)
    assert p_min == 2 / 2**6


def test_sign_flip_with_zero_differences_counts_only_nonzero_for_min_p():
    # Flipping the zero changes nothing: |+-1 +-2| >= 3 in 4 of 8 patterns.
    p, p_min = sign_flip_test([0.0, 1.0, 2.0])
    assert p == 0.5
    assert p_min == 0.5


def test_min_sign_flip_p_is_two_over_two_to_the_n():
    assert min_sign_flip_p(4) == 0.125
    assert min_sign_flip_p(5) == 0.0625
    assert min_sign_flip_p(6) == 0.03125


def test_paired_t_note_says_five_seeds_cannot_reach_005():
    rec = paired_t([1.0, 2.0, 3.0, 4.0, 5.0])
    assert rec.p_perm == 0.0625  # all positive: only the pattern and its mirror
    assert rec.p_perm_min == 0.0625
    assert "n=5: an exact sign-flip test cannot reach p < 0.05 (min attainable p = 0.0625)" in (
        rec.note
    )


def test_paired_t_note_has_no_warning_with_six_seeds():
    rec = paired_t([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert rec.p_perm == 0.03125
    assert "cannot reach" not in rec.note


def test_sign_flip_monte_carlo_above_16_is_close_to_exact():
    d = np.random.default_rng(3).normal(0.3, 1.0, size=20)
    signs = 1 - 2 * ((np.arange(2**20)[:, None] >> np.arange(20)) & 1)
    exact = np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-9)
    p, p_min = sign_flip_test(d)
    assert abs(p - exact) < 0.006  # > 4 Monte Carlo standard errors at 1e5 draws
    assert p_min == 1 / 100_001  # the Monte Carlo floor is above 2 / 2^20
    assert "Monte Carlo" in paired_t(d).note


def test_tost_p_is_the_larger_one_sided_p():
    rec = tost_paired(D, 4.0)
    p_lower = stats.t.sf((3 + 4) / SE, 3)
    p_upper = stats.t.cdf((3 - 4) / SE, 3)
    assert rec.p == pytest.approx(max(p_lower, p_upper), rel=1e-12)
    assert rec.statistic == pytest.approx((3 - 4) / SE, rel=1e-12)
    assert rec.ci_level == pytest.approx(0.90)
    assert "margin +-4" in rec.note


def test_tost_shows_equivalence_for_differences_well_inside_margin():
    rec = tost_paired([0.1, -0.1, 0.05, 0.0, 0.02], 1.0)
    assert rec.p < 0.001
    assert -1.0 < rec.ci_low < rec.ci_high < 1.0


def test_tost_fails_for_differences_outside_margin():
    rec = tost_paired([2.1, 1.9, 2.0, 2.2, 1.8], 1.0)
    assert rec.p > 0.99
    assert rec.ci_low > 1.0


def test_tost_equivalence_iff_ci_inside_margin():
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = rng.normal(rng.uniform(-1, 1), 0.5, size=6)
        rec = tost_paired(d, 0.8)
        assert (rec.p < 0.05) == (-0.8 < rec.ci_low and rec.ci_high < 0.8)


def test_tost_rejects_nonpositive_margin():
    with pytest.raises(LprError, match="margin"):
        tost_paired(D, 0.0)


def test_paired_t_on_differences_identical_up_to_float_noise_reports_no_p():
    # 0.02 +- 1e-16: scipy gives t ~ 1e15, p ~ 1e-74, which is rounding noise, not evidence.
    d = 0.02 + np.array([1e-16, -1e-16, 0.0, 2e-16, -2e-16, 1e-16, 0.0, -1e-16])
    rec = paired_t(d)
    assert math.isnan(rec.statistic) and math.isnan(rec.p) and math.isnan(rec.effect_size)
    assert rec.estimate == pytest.approx(0.02, abs=1e-15)
    assert (rec.ci_low, rec.ci_high) == (rec.estimate, rec.estimate)
    assert "float noise" in rec.note


def test_paired_t_on_float_noise_around_zero_is_degenerate_given_the_data_scale():
    # Differences of accuracies near 0.9 that agree to the last bit: sd ~ 1e-17.
    d = np.array([1e-17, -2e-17, 0.0, 3e-17, 1e-17])
    assert not math.isnan(paired_t(d).p)  # on their own scale these are data
    rec = paired_t(d, scale=0.9)
    assert math.isnan(rec.p) and "float noise" in rec.note


def test_paired_t_keeps_small_but_real_spread():
    d = 0.02 + np.array([1e-6, -1e-6, 2e-6, 0.0, -2e-6])
    rec = paired_t(d)
    assert rec.p == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-12)


def test_tost_with_zero_spread_does_not_claim_equivalence():
    rec = tost_paired(np.full(6, 0.002), margin=0.01)
    assert math.isnan(rec.p) and math.isnan(rec.statistic)
    assert "TOST undefined" in rec.note and "inside the margin" in rec.note
    assert (rec.estimate, rec.ci_low, rec.ci_high) == (0.002, 0.002, 0.002)


def test_tost_with_zero_spread_outside_the_margin_says_outside():
    rec = tost_paired(np.full(4, 0.05), margin=0.01)
    assert math.isnan(rec.p) and "outside the margin" in rec.note
