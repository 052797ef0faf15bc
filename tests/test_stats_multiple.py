import math

import numpy as np
import pytest

from lprcausal.errors import LprError
from lprcausal.stats import adjust, adjust_records, paired_t

P = [0.01, 0.04, 0.03, 0.005]


def test_holm_on_hand_checked_vector():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max.
    np.testing.assert_allclose(adjust(P, "holm"), [0.03, 0.06, 0.06, 0.02])


def test_bh_on_hand_checked_vector():
    # Sorted p * 4 / rank -> 0.02, 0.02, 0.04, 0.04; running min from the top keeps them.
    np.testing.assert_allclose(adjust(P, "fdr_bh"), [0.02, 0.04, 0.04, 0.02])


def test_nan_stays_nan_and_does_not_count_in_family_size():
    out = adjust([0.01, np.nan, 0.04], "holm")
    np.testing.assert_allclose(out, [0.02, np.nan, 0.04])


def test_all_nan_family_stays_nan():
    assert np.isnan(adjust([np.nan, np.nan], "fdr_bh")).all()


def test_grid_is_adjusted_as_one_flattened_family():
    grid = np.array([[0.01, 0.04], [0.03, 0.005]])
    out = adjust(grid, "holm")
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out.ravel(), adjust(P, "holm"))


def test_adjust_rejects_unknown_method():
    with pytest.raises(LprError, match="method"):
        adjust(P, "hochberg")


def test_adjust_rejects_p_outside_unit_interval():
    with pytest.raises(LprError, match="p_values"):
        adjust([0.5, 1.5], "holm")


def test_adjust_records_fills_p_adj_correction_and_family():
    records = [paired_t([1.0, 2.0, 3.0, 6.0]), paired_t([0.5]), paired_t([1.0, -1.0, 0.5])]
    adjust_records(records, "transplant-primary", "holm")
    assert records[0].p_adj == pytest.approx(min(1.0, 2 * records[0].p))  # 2 tests in family
    assert math.isnan(records[1].p_adj)
    assert {r.correction for r in records} == {"holm"}
    assert {r.family for r in records} == {"transplant-primary"}
