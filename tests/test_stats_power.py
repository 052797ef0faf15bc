"""Minimum detectable effects of paired t tests, per family of a stats Dataset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from lprcausal.errors import LprError
from lprcausal.stats import paired_t
from lprcausal.stats.power import mde_by_family, mde_dz, mde_markdown
from lprcausal.stats.records import records_to_dataset
from lprcausal.stats.schema import tag


def power_at(dz: float, n: int, alpha: float) -> float:
    """Two-sided paired t power from the noncentral t, independently of statsmodels."""
    df, nc = n - 1, dz * np.sqrt(n)
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


@pytest.mark.parametrize("n, alpha", [(8, 0.05), (12, 0.05), (12, 0.05 / 24)])
def test_the_mde_is_the_effect_detected_with_the_asked_power(n, alpha):
    dz = mde_dz(n, alpha, 0.8)
    assert power_at(dz, n, alpha) == pytest.approx(0.8, abs=1e-6)


def test_known_values_and_degenerate_inputs():
    assert mde_dz(12) == pytest.approx(0.8889, abs=1e-3)  # G*Power: 0.889 for n = 12
    assert np.isnan(mde_dz(1))
    with pytest.raises(LprError, match="expected both strictly between 0 and 1"):
        mde_dz(8, alpha=0)


def test_mde_by_family_reads_the_sd_back_from_the_t_intervals():
    rng = np.random.default_rng(0)
    diffs = [rng.normal(0.01, sd, 12) for sd in (0.01, 0.02, 0.03)]
    records = [
        tag(paired_t(d, estimand="x"), "fam", {"sparsity": float(k)})
        for k, d in enumerate(diffs)
    ]
    ds = records_to_dataset(records)
    ds["correction"] = ("record", np.array(["holm"] * 3))
    (row,) = mde_by_family(ds, alpha=0.05)
    assert (row.family, row.correction, row.tests, row.n) == ("fam", "holm", 3, 12)
    assert row.sd == pytest.approx(float(np.median([np.std(d, ddof=1) for d in diffs])))
    assert row.dz == pytest.approx(mde_dz(12, 0.05))
    assert row.dz_family == pytest.approx(mde_dz(12, 0.05 / 3))
    assert row.accuracy == pytest.approx(row.dz * row.sd)
    text = mde_markdown([row], alpha=0.05)
    assert f"| fam | holm | 3 | 12 | {row.dz:.2f} | {row.dz_family:.2f} |" in text
