import math

import numpy as np
import pytest

from lprcausal.errors import LprError
from lprcausal.stats import (
    CONTRASTS,
    mediation_tests,
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
    rec = proportion_mediated(y, n_boot=500)
    assert rec.estimate == 1.0
    assert (rec.ci_low, rec.ci_high) == (1.0, 1.0)


def test_proportion_mediated_uses_chosen_indirect_effect():
    y = np.zeros((2, 2, 4))
    y[A, A] = [0.0, 0.0, 0.0, 0.0]
    y[A, B] = [1.0, 1.0, 1.0, 1.0]  # NIE_a = 1
    y[B, A] = [1.0, 1.5, 1.0, 1.5]
    y[B, B] = [4.0, 4.5, 3.5, 4.0]  # TE mean 4, NIE_b mean 2.75
    assert proportion_mediated(y, nie="a", n_boot=200).estimate == 0.25
    assert proportion_mediated(y, nie="b", n_boot=200).estimate == 2.75 / 4
    assert proportion_mediated(y, n_boot=200).estimate == (1 + 2.75) / 2 / 4


def test_proportion_mediated_not_reported_when_te_interval_covers_zero():
    y = np.zeros((2, 2, 4))
    y[B, B] = [1.0, -1.0, 1.0, -1.0]
    y[A, B] = [0.5, -0.5, 0.5, -0.5]
    rec = proportion_mediated(y)
    assert math.isnan(rec.estimate) and math.isnan(rec.ci_low)
    assert "does not exclude 0" in rec.note


def test_proportion_mediated_warns_about_small_bootstrap():
    rec = proportion_mediated(fully_mediated_y(), n_boot=100)
    assert "only n=6 seeds" in rec.note


def test_proportion_mediated_bootstrap_is_reproducible_with_seed():
    y = dyadic_random_y(n_seeds=12, seed=4)
    y[B, B] += 60.0  # a clear total effect so the ratio is reported
    r1 = proportion_mediated(y, n_boot=300, seed=5)
    r2 = proportion_mediated(y, n_boot=300, seed=5)
    assert not math.isnan(r1.ci_low)
    assert (r1.ci_low, r1.ci_high) == (r2.ci_low, r2.ci_high)
    assert r1.ci_low <= r1.estimate <= r1.ci_high
