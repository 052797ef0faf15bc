import math

import numpy as np
import pytest
from scipy import stats

from lprcausal.errors import LprError
from lprcausal.stats import (
    CONTRASTS,
    fieller_interval,
    mean_nie,
    mediation_tests,
    nie_test,
    paired_t,
    proportion_mediated,
    transplant_contrasts,
)

A, B = 0, 1


def dyadic_random_y(n_seeds=7, seed=0):
    # Multiples of 1/1024 add and subtract exactly in float64, so identities hold bit for bit.
    rng = np.random.default_rng(seed)
    return rng.integers(0, 100_000, size=(2, 2, n_seeds)) / 1024


def fully_mediated_y():
    # Accuracy depends on the LPR source and the seed only: every NDE is exactly 0.
    seed_effect = np.array([0.0, 0.5, -0.25, 1.0, 0.75, -0.5])
    lpr_effect = {A: 0.0, B: 2.0}
    y = np.empty((2, 2, seed_effect.size))
    for w in (A, B):
        for lpr in (A, B):
            y[w, lpr] = 90.0 + lpr_effect[lpr] + seed_effect + 0.125 * np.arange(6) * lpr
    return y


def test_contrasts_follow_design_definitions():
    y = np.zeros((2, 2, 1))
    y[A, A], y[A, B], y[B, A], y[B, B] = 1.0, 3.0, 4.0, 10.0
    c = {k: v[0] for k, v in transplant_contrasts(y).items()}
    assert c == {"TE": 9.0, "NIE_a": 2.0, "NIE_b": 6.0, "NDE_a": 3.0, "NDE_b": 7.0, "INT": 4.0}


def test_total_effect_decomposes_exactly_per_seed():
    c = transplant_contrasts(dyadic_random_y())
    np.testing.assert_array_equal(c["TE"], c["NIE_b"] + c["NDE_a"])
    np.testing.assert_array_equal(c["TE"], c["NIE_a"] + c["NDE_b"])


def test_interaction_is_difference_of_indirect_effects_and_of_direct_effects():
    c = transplant_contrasts(dyadic_random_y(seed=1))
    np.testing.assert_array_equal(c["INT"], c["NIE_b"] - c["NIE_a"])
    np.testing.assert_array_equal(c["INT"], c["NDE_b"] - c["NDE_a"])


def test_contrasts_reject_wrong_shape():
    with pytest.raises(LprError, match="Y shape"):
        transplant_contrasts(np.zeros((3, 2, 4)))


def test_mediation_tests_give_one_paired_t_per_contrast_with_sign_flip_p():
    y = dyadic_random_y()
    records = mediation_tests(y)
    assert [r.estimand for r in records] == list(CONTRASTS)
    te = records[0]
    expected = paired_t(y[B, B] - y[A, A])
    assert (te.estimate, te.p, te.p_perm) == (expected.estimate, expected.p, expected.p_perm)
    assert all(0 < r.p_perm <= 1 for r in records)


def test_full_mediation_has_zero_direct_effect_and_proportion_one():
    y = fully_mediated_y()
    c = transplant_contrasts(y)
    np.testing.assert_array_equal(c["NDE_a"], 0.0)
    np.testing.assert_array_equal(c["NDE_b"], 0.0)
    rec = proportion_mediated(y)
    assert rec.estimate == 1.0
    assert (rec.ci_low, rec.ci_high) == (1.0, 1.0)


def test_proportion_mediated_uses_chosen_indirect_effect():
    y = np.zeros((2, 2, 4))
    y[A, A] = [0.0, 0.0, 0.0, 0.0]
    y[A, B] = [1.0, 1.0, 1.0, 1.0]  # NIE_a = 1
    y[B, A] = [1.0, 1.5, 1.0, 1.5]
    y[B, B] = [4.0, 4.5, 3.5, 4.0]  # TE mean 4, NIE_b mean 2.75
    assert proportion_mediated(y, nie="a").estimate == 0.25
    assert proportion_mediated(y, nie="b").estimate == 2.75 / 4
    assert proportion_mediated(y).estimate == (1 + 2.75) / 2 / 4


def test_proportion_mediated_not_reported_when_te_interval_covers_zero():
    y = np.zeros((2, 2, 4))
    y[B, B] = [1.0, -1.0, 1.0, -1.0]
    y[A, B] = [0.5, -0.5, 0.5, -0.5]
    rec = proportion_mediated(y)
    assert math.isnan(rec.estimate) and math.isnan(rec.ci_low)
    assert "does not exclude 0" in rec.note


def test_proportion_mediated_interval_is_fiellers():
    # Every r inside the interval has a per-seed NIE - r * TE whose t test does not reject.
    y = dyadic_random_y(n_seeds=8, seed=4)
    y[B, B] += 60.0  # a clear total effect so the ratio is reported
    y[A, B] += 25.0
    rec = proportion_mediated(y)
    c = transplant_contrasts(y)
    nie, te = (c["NIE_a"] + c["NIE_b"]) / 2, c["TE"]
    assert rec.ci_method == "Fieller (t)" and rec.df == 7
    assert rec.ci_low < rec.estimate < rec.ci_high
    for r, p_expected in [(rec.ci_low, 0.05), (rec.ci_high, 0.05)]:
        assert stats.ttest_1samp(nie - r * te, 0.0).pvalue == pytest.approx(p_expected, rel=1e-6)
    assert stats.ttest_1samp(nie - rec.estimate * te, 0.0).pvalue == pytest.approx(1.0)


def test_fieller_interval_is_unbounded_exactly_when_the_denominator_t_test_fails():
    num = np.array([1.0, 2.0, 1.5, 0.5])
    assert fieller_interval(num, np.array([1.0, -1.0, 2.0, -1.5]), 0.95) is None
    assert fieller_interval(num, np.array([1.0, 1.1, 0.9, 1.0]), 0.95) is not None


def test_proportion_mediated_is_exact_when_every_seed_has_the_same_ratio():
    y = np.zeros((2, 2, 5))
    y[B, B] = [2.0, 4.0, 3.0, 5.0, 6.0]  # TE
    y[A, B] = y[B, B] / 4  # NIE_a = TE / 4
    y[B, A] = y[B, B] * 3 / 4  # NIE_b = TE / 4
    rec = proportion_mediated(y)
    assert rec.estimate == 0.25
    assert rec.ci_low == pytest.approx(0.25, abs=1e-12)
    assert rec.ci_high == pytest.approx(0.25, abs=1e-12)


def test_nie_test_is_the_paired_t_of_the_mean_indirect_effect():
    y = dyadic_random_y(n_seeds=7, seed=2)
    c = transplant_contrasts(y)
    rec = nie_test(y)
    ref = paired_t((c["NIE_a"] + c["NIE_b"]) / 2)
    assert rec.estimand == "NIE"
    assert (rec.estimate, rec.p, rec.p_perm) == (ref.estimate, ref.p, ref.p_perm)


def test_nie_test_averages_each_seed_over_sparsities_and_drops_incomplete_seeds():
    y = np.stack([dyadic_random_y(6, seed=s) for s in (3, 4)], axis=-1)  # (2, 2, 6, 2)
    y[0, 1, 2, 1] = np.nan  # seed 2 misses a cell at the second sparsity
    per_seed = (mean_nie(y[..., 0]) + mean_nie(y[..., 1])) / 2
    rec = nie_test(y)
    assert rec.n == 5
    assert rec.p == paired_t(np.delete(per_seed, 2)).p
    assert "averaged over 2 sparsities" in rec.note
