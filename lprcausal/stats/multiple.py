"""Multiple-comparison corrections over a whole family of tests.

Holm for a pre-registered family, Benjamini-Hochberg across exploratory grids.
The correction always runs on the flattened p-values of the whole family, so an
(pair x sparsity) grid counts every cell, not each row separately.
"""

from __future__ import annotations

import numpy as np

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
        out[present] = _ADJUST[method](flat[present])
    return out.reshape(p.shape)


# The step-up/step-down formulas of statsmodels.stats.multitest.multipletests (the tests
# check the two agree), computed here because statsmodels' Holm calls gc.collect() on
# every call, which takes ~0.1 s in a process that has torch loaded.
def _holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down: running max of (m - i) * p_(i) over the sorted p, capped at 1."""
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1))
    out = np.empty_like(p)
    out[order] = np.minimum(steps, 1.0)
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up: running min from the top of m * p_(i) / i, capped at 1."""
    order = np.argsort(p, kind="stable")
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    steps = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(steps, 1.0)
    return out


def _bonferroni(p: np.ndarray) -> np.ndarray:
    return np.minimum(p * p.size, 1.0)


_ADJUST = {"holm": _holm, "fdr_bh": _bh, "bonferroni": _bonferroni}


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
