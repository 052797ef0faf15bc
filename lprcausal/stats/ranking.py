"""Rank agreement between two orderings (e.g. find accuracy vs eval accuracy over H_find).

A permutation test on Spearman's rho or Kendall's tau-b: exact (every pairing
enumerated) when n! <= n_perm, Monte Carlo with a fixed seed otherwise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

from lprcausal.errors import bad_value
from lprcausal.stats.paired import no_interval, permutation_record
from lprcausal.stats.records import NAN, TestRecord, join_notes

METHODS = ("spearman", "kendall")


def _spearman(rx: np.ndarray, ry_perm: np.ndarray) -> np.ndarray:
    """Pearson correlation of rank vector ``rx`` with each row of ``ry_perm``."""
    xc = rx - rx.mean()
    yc = ry_perm - ry_perm.mean(axis=1, keepdims=True)
    denom = math.sqrt(xc @ xc) * np.sqrt(np.einsum("ij,ij->i", yc, yc))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (yc @ xc) / denom


def _kendall(sx: np.ndarray, sy: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Kendall tau-b of x with y[perm] for each perm, from pairwise sign matrices."""
    # Ties are invariant under permuting y, so the tau-b denominator is fixed.
    denom = math.sqrt(np.abs(sx).sum() * np.abs(sy).sum())
    sy_perm = sy[perms[:, :, None], perms[:, None, :]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ij,kij->k", sx, sy_perm) / denom


def rank_agreement(
    x: object,
    y: object,
    *,
    method: str = "spearman",
    n_perm: int = 10_000,
    seed: int = 0,
    estimand: str = "",
) -> TestRecord:
    """Rank correlation of x and y with a two-sided permutation p-value.

    estimate = statistic = Spearman's rho (Pearson on average ranks) or Kendall's
    tau-b. p = share of pairings (y permuted against x) with |stat| >= observed:
    all n! pairings when n! <= ``n_perm`` (exact; ``p_perm_min`` is then the
    smallest p reachable with these ties), else ``n_perm`` random ones with fixed
    ``seed`` and p = (1 + count) / (1 + n_perm). Pairs with a NaN are dropped;
    n < 3 gives no test. No CI (ci_method "none").
    """
    if method not in METHODS:
        raise bad_value("method", method, f"one of {list(METHODS)}")
    if n_perm < 1:
        raise bad_value("n_perm", n_perm, "a positive number of permutations")
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise bad_value("x/y shapes", (xa.shape, ya.shape), "two 1-D arrays of equal length")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    n_drop = int((~keep).sum())
    xa, ya = xa[keep], ya[keep]
    n = xa.size
    notes = [f"{n_drop} pair(s) with a NaN dropped" if n_drop else ""]
    base = no_interval(
        estimand or f"{method} rank correlation",
        n,
        f"permutation test of {'Spearman rho' if method == 'spearman' else 'Kendall tau-b'}",
    )
    if n < 3:
        notes.append(f"n={n}: no test was possible (need at least 3 pairs)")
        return TestRecord(**base, estimate=NAN, statistic=NAN, p=NAN, note=join_notes(*notes))

    identity = np.arange(n)[None, :]
    if method == "spearman":
        rx, ry = stats.rankdata(xa), stats.rankdata(ya)

        def stat(perms: np.ndarray) -> np.ndarray:
            return _spearman(rx, ry[perms])

    else:
        sx = np.sign(xa[:, None] - xa[None, :])
        sy = np.sign(ya[:, None] - ya[None, :])

        def stat(perms: np.ndarray) -> np.ndarray:
            return _kendall(sx, sy, perms)

    observed = float(stat(identity)[0])
    if math.isnan(observed):
        notes.append("x or y is constant: rank correlation undefined")
        return TestRecord(**base, estimate=NAN, statistic=NAN, p=NAN, note=join_notes(*notes))
    tol = 1e-10  # statistics are in [-1, 1]; absorbs rounding in equal correlations
    exact = math.factorial(n) <= n_perm
    if exact:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        null = np.abs(stat(perms))
        p = float(np.mean(null >= abs(observed) - tol))
        p_min = float(np.mean(null >= null.max() - tol))
        notes.append(f"exact: all {n}! = {len(perms)} pairings enumerated")
        if p_min >= 0.05:
            notes.append(
                f"n={n}: the exact test cannot reach p < 0.05 (min attainable p = {p_min:.4g})"
            )
    else:
        rng = np.random.default_rng(seed)
        chunk = max(1, 2_000_000 // (n * n if method == "kendall" else n))
        count = 0
        for start in range(0, n_perm, chunk):
            size = min(chunk, n_perm - start)
            perms = rng.permuted(np.tile(np.arange(n), (size, 1)), axis=1)
            count += int(np.sum(np.abs(stat(perms)) >= abs(observed) - tol))
        p = (1 + count) / (1 + n_perm)
        p_min = 1 / (1 + n_perm)
        notes.append(
            f"Monte Carlo: {n_perm} random pairings (seed {seed}), p = (1 + count) / (1 + n_perm)"
        )
    return permutation_record(base, observed, p, p_min, notes)
