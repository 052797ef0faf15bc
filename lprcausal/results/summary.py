"""Descriptive summaries of result Datasets, computed once for every reader (figures, tables).

The figures draw these; they compute no statistic of their own.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats as sps

from lprcausal.errors import bad_value


def mean_ci(
    da: xr.DataArray, dim: str = "seed", level: float = 0.95
) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """(mean, low, high) over ``dim``: the t interval mean +- t_{n-1} * sd / sqrt(n).

    NaN entries (diverged runs) are left out, so n may differ between cells; cells
    with fewer than two values have a NaN interval (no spread to estimate).
    """
    if not 0 < level < 1:
        raise bad_value("level", level, "a confidence level between 0 and 1, e.g. 0.95")
    n = da.count(dim)
    mean = da.mean(dim, skipna=True)
    with warnings.catch_warnings():  # cells with one value: NaN sd, as documented
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = da.std(dim, ddof=1, skipna=True)
    df = (n - 1).where(n >= 2)
    tcrit = xr.apply_ufunc(lambda d: sps.t.ppf((1 + level) / 2, d), df)
    half = tcrit * sd / np.sqrt(n.where(n >= 2))
    return mean, mean - half, mean + half
