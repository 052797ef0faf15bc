"""Minimum detectable effects of the paired-by-seed t tests a study ran.

For a paired t test on ``n`` per-seed differences (two-sided, level ``alpha``), the
minimum detectable effect at ``power`` is the standardized effect ``d_z = mean / SD``
that the test rejects with that probability (statsmodels' ``TTestPower``, the
noncentral t). In accuracy units it is ``d_z * SD``, with ``SD`` the standard
deviation of the per-seed differences, read back from each record's t interval:
``SD = half-width * sqrt(n) / t_(1 - (1 - level) / 2, n - 1)``.

A family corrected for multiple tests rejects at a smaller per-test level. Holm's first
step and Bonferroni test at ``alpha / m`` (m tests in the family), the strictest level
any test of the family faces, so :func:`mde_by_family` gives the MDE at ``alpha``
(one test alone) and at ``alpha / m`` (the bound under the family's correction;
Benjamini-Hochberg rejects at levels between the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import stats as sps

from lprcausal.errors import LprError

DEFAULT_POWER = 0.8


def mde_dz(n: int, alpha: float = 0.05, power: float = DEFAULT_POWER) -> float:
    """Smallest ``d_z`` a two-sided paired t test on ``n`` differences detects with
    probability ``power`` at level ``alpha`` (NaN for n < 2: no test)."""
    from statsmodels.stats.power import TTestPower

    if not 0 < alpha < 1 or not 0 < power < 1:
        raise LprError(
            f"alpha = {alpha!r}, power = {power!r}: expected both strictly between 0 and 1."
        )
    if n < 2:
        return float("nan")
    return float(
        TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided")
    )


@dataclass(frozen=True)
class FamilyMde:
    """The MDE of one family's paired t tests (see the module doc)."""

    family: str
    correction: str
    tests: int
    n: int  # the median number of seeds per test
    dz: float  # MDE as d_z at alpha, one test alone
    dz_family: float  # MDE as d_z at alpha / tests
    sd: float  # median SD of the per-seed differences (accuracy fraction)

    @property
    def accuracy(self) -> float:
        return self.dz * self.sd

    @property
    def accuracy_family(self) -> float:
        return self.dz_family * self.sd


def _sd(rec: xr.Dataset) -> np.ndarray:
    """Per-record SD of the per-seed differences from the t interval."""
    n = rec["n"].values.astype(float)
    level = rec["ci_level"].values.astype(float)
    half = (rec["ci_high"].values - rec["ci_low"].values) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        t = sps.t.ppf(1 - (1 - level) / 2, n - 1)
        return half * np.sqrt(n) / t


def mde_by_family(
    stats: xr.Dataset, *, alpha: float | None = None, power: float = DEFAULT_POWER
) -> list[FamilyMde]:
    """One :class:`FamilyMde` per family of paired t tests in ``stats`` (a stats.nc
    Dataset), in the order families first appear; ``alpha`` defaults to the file's."""
    if "family" not in stats or "ci_method" not in stats:
        raise LprError("stats has no test records (family, ci_method): expected a stats.nc.")
    alpha = float(stats.attrs.get("alpha", 0.05)) if alpha is None else alpha
    paired = (stats["ci_method"].values == "t") & np.char.startswith(
        stats["test"].values.astype(str), "paired t"
    )
    out = []
    families = stats["family"].values.astype(str)
    for family in dict.fromkeys(families[paired]):
        rec = stats.isel(record=np.flatnonzero(paired & (families == family)))
        sd = _sd(rec)
        sd = sd[np.isfinite(sd)]
        n = int(np.median(rec["n"].values))
        m = int(rec.sizes["record"])
        out.append(
            FamilyMde(
                family=family,
                correction=str(rec["correction"].values[0]),
                tests=m,
                n=n,
                dz=mde_dz(n, alpha, power),
                dz_family=mde_dz(n, alpha / m, power),
                sd=float(np.median(sd)) if sd.size else float("nan"),
            )
        )
    return out


def mde_markdown(rows: list[FamilyMde], *, alpha: float, power: float = DEFAULT_POWER) -> str:
    """A GitHub table of :func:`mde_by_family` (accuracy in percentage points)."""
    lines = [
        f"| family | correction | tests | seeds | MDE d_z (alpha {alpha:g}) | "
        f"MDE d_z (alpha {alpha:g}/tests) | median SD of differences (points) | "
        "MDE (points) | MDE under the correction (points) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.family} | {r.correction} | {r.tests} | {r.n} | {r.dz:.2f} | "
            f"{r.dz_family:.2f} | {100 * r.sd:.2f} | {100 * r.accuracy:.2f} | "
            f"{100 * r.accuracy_family:.2f} |"
        )
    return "\n".join(lines) + f"\n\nPower {power:g}, two-sided paired t (statsmodels TTestPower).\n"
