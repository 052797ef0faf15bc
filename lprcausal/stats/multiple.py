"""Multiple-comparison corrections over a whole family of tests.

Holm for a pre-registered family, Benjamini-Hochberg across exploratory grids.
The correction always runs on the flattened p-values of the whole family, so an
(pair x sparsity) grid counts every cell, not each row separately.
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats.multitest import multipletests

from lprcausal.errors import bad_value
from lprcausal.stats.records import TestRecord

METHODS = ("holm", "fdr_bh", "bonferroni")


def adjust(p_values: object, method: str) -> np.ndarray:
    """Adjusted p-values, same shape as ``p_values``.

    ``method``: "holm" (family-wise error, pre-registered family), "fdr_bh"
    (false discovery rate, exploratory) or "bonferroni". NaN entries (tests that
    could not be run) stay NaN and do not count towards the family size.
    """
    if method not in METHODS:
        raise bad_value("method", method, f"one of {list(METHODS)}")
    p = np.asarray(p_values, dtype=float)
    flat = p.ravel()
    present = ~np.isnan(flat)
    if ((flat[present] < 0) | (flat[present] > 1)).any():
        raise bad_value("p_values", p_values, "p-values in [0, 1] (or NaN for tests not run)")
    out = np.full(flat.shape, np.nan)
    if present.any():
        out[present] = multipletests(flat[present], method=method)[1]
    return out.reshape(p.shape)


def adjust_records(records: list[TestRecord], family: str, method: str) -> list[TestRecord]:
    """Adjust the p of every record as one family; fill p_adj, correction, family in place.

    Returns the same list for chaining.
    """
    adjusted = adjust([r.p for r in records], method)
    for rec, p_adj in zip(records, adjusted, strict=True):
        rec.p_adj = float(p_adj)
        rec.correction = method
        rec.family = family
    return records
