"""Shared helpers of the dataset-level analyses (their defaults: :mod:`lprcausal.stats.defaults`).

The Datasets they read are checked by :mod:`lprcausal.results.check` (the schema is
:mod:`lprcausal.results.schema`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lprcausal.stats.records import TestRecord, join_notes


def tag(rec: TestRecord, family: str, coords: dict, note: str = "") -> TestRecord:
    """Set a record's family, add selection coords, append a note; returns it."""
    rec.family = family
    rec.coords.update(coords)
    rec.note = join_notes(rec.note, note)
    return rec


def nan_mean(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean over ``axis`` ignoring NaN, count of the values it averages); the mean is
    NaN, without numpy's warning, where every value is NaN."""
    n = (~np.isnan(x)).sum(axis=axis)
    return np.where(n > 0, np.nansum(x, axis=axis) / np.maximum(n, 1), np.nan), n


def diverged_summary(ds: xr.Dataset, file: str) -> str:
    """One line on diverged runs (``diverged*`` flags, else NaN accuracies) in ``ds``."""
    flags = [v for v in ds.data_vars if str(v).startswith("diverged")]
    if flags:
        n = sum(int(np.asarray(ds[v].values, dtype=bool).sum()) for v in flags)
        total = sum(int(ds[v].size) for v in flags)
        what = f"{n} of {total} eval runs diverged"
        if "find_diverged" in ds and int(ds["find_diverged"].sum()):
            what += f" (incl. those of {int(ds['find_diverged'].sum())} diverged find run(s))"
    else:
        accs = [v for v in ds.data_vars if str(v).startswith("acc")]
        n = sum(int(np.isnan(ds[v].values.astype(float)).sum()) for v in accs)
        what = f"{n} accuracy value(s) are NaN"
    if not n:
        return ""
    return (
        f"{file}: {what}; their accuracy is NaN and each paired test drops those seeds "
        "(n and the note of each test say how many)"
    )
