"""Dose-response tests: does accuracy rise with the interpolation weight alpha?

Inputs are (n_seeds, n_alpha) tables with columns in increasing alpha order, one
row per seed (seeds are blocks: every alpha of a seed shares its initialization).
"""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
from scipy import stats

from lprcausal.errors import bad_value
from lprcausal.stats.paired import no_interval, paired_t
from lprcausal.stats.records import NAN, TestRecord, join_notes

try:  # scipy >= 1.12
    from scipy.optimize import isotonic_regression as _scipy_isotonic
except ImportError:  # pragma: no cover - depends on the installed scipy
    _scipy_isotonic = None


def _check_table(Y: object, name: str = "Y") -> np.ndarray:
    y = np.asarray(Y, dtype=float)
    if y.ndim != 2:
        raise bad_value(f"{name} shape", y.shape, "a 2-D (n_seeds, n_alpha) table")
    return y


ALTERNATIVES = ("increasing", "decreasing", "two-sided")
# Up to this many alphas every one of the k! orders of each seed's row is enumerated
# (40320 at 8) and the exact null distribution of L is their convolution over seeds.
PAGE_EXACT_MAX_K = 8
# Above it, a Monte Carlo permutation test with this many draws and a fixed seed.
PAGE_MC_DRAWS = 20_000
PAGE_MC_SEED = 0


@functools.lru_cache(maxsize=PAGE_EXACT_MAX_K + 1)
def _orders(k: int) -> np.ndarray:
    """(k!, k) matrix: every permutation of range(k) once."""
    return np.array(list(itertools.permutations(range(k))), dtype=np.int64)


def _midranks(y: np.ndarray) -> np.ndarray:
    """Within-row ranks 1..k, ties given their average rank (midranks)."""
    return stats.rankdata(y, method="average", axis=1)


def page_null_tails(y: object) -> tuple[float, float, float, str]:
    """Page's L and its tie-aware permutation p-values: ``(L, p_increasing, p_decreasing,
    method)``.

    L = sum_j j * R_j with R_j the sum over rows (seeds) of the within-row midranks of
    column j (scipy's statistic). Under H0 the values of each row are exchangeable
    across its columns, so each row's midranks, ties included, are permuted uniformly
    and independently of the other rows. For k <= :data:`PAGE_EXACT_MAX_K` columns the
    null distribution of L is exact (all k! orders of each row, convolved over rows);
    above that it is estimated from :data:`PAGE_MC_DRAWS` random row orders with seed
    :data:`PAGE_MC_SEED`, p = (1 + count) / (1 + draws). scipy's exact p assumes no ties
    and is too large (up to about 2x) when accuracies tie, as they do on a finite test
    set. p_increasing = P(L >= observed), p_decreasing = P(L <= observed).
    """
    ranks2 = np.rint(2 * _midranks(np.asarray(y, dtype=float))).astype(np.int64)
    m, k = ranks2.shape
    weights = np.arange(1, k + 1, dtype=np.int64)
    observed2 = int((ranks2 @ weights).sum())  # 2 L, an integer with midranks
    if k <= PAGE_EXACT_MAX_K:
        orders = _orders(k)
        total = np.ones(1)
        low = 0
        for row in ranks2:
            values = row[orders] @ weights  # 2 L_i of every order of this row
            row_low = int(values.min())
            counts = np.bincount(values - row_low).astype(float)
            total = np.convolve(total, counts / counts.sum())
            low += row_low
        i = observed2 - low
        p_up = float(total[i:].sum())
        p_down = float(total[: i + 1].sum())
        method = f"p exact, tie-aware (all {k}! orders of each seed's ranks)"
    else:
        rng = np.random.default_rng(PAGE_MC_SEED)
        up = down = 0
        chunk = max(1, 1_000_000 // (m * k))
        for start in range(0, PAGE_MC_DRAWS, chunk):
            size = min(chunk, PAGE_MC_DRAWS - start)
            draws = rng.permuted(np.broadcast_to(ranks2, (size, m, k)), axis=2)
            l2 = (draws @ weights).sum(axis=1)
            up += int((l2 >= observed2).sum())
            down += int((l2 <= observed2).sum())
        p_up = (1 + up) / (1 + PAGE_MC_DRAWS)
        p_down = (1 + down) / (1 + PAGE_MC_DRAWS)
        method = (
            f"p Monte Carlo, tie-aware ({PAGE_MC_DRAWS} random orders of each seed's ranks, "
            f"seed {PAGE_MC_SEED})"
        )
    return observed2 / 2, min(1.0, p_up), min(1.0, p_down), method


def page_trend(
    Y_alpha_by_seed: object, *, estimand: str = "", alternative: str = "increasing"
) -> TestRecord:
    """Page's L test for a monotone trend of accuracy over alpha.

    Rows are seeds (blocks), columns alphas in increasing order; seeds with any
    NaN are dropped. statistic = Page's L for the increasing order (midranks within
    each seed), p from its tie-aware permutation distribution
    (:func:`page_null_tails`: exact up to 8 alphas, Monte Carlo above; the note says
    which). ``alternative``: "increasing"
    (one-sided, default), "decreasing" (one-sided, L of the reversed columns) or
    "two-sided" (twice the smaller one-sided p, capped at 1: either direction
    counts). estimate = mean over seeds of the Spearman correlation between alpha
    rank and accuracy (1 = every seed strictly increasing; seeds with constant
    accuracy are left out of it). Needs >= 2 seeds and >= 3 alphas.
    """
    if alternative not in ALTERNATIVES:
        raise bad_value("alternative", alternative, f"one of {list(ALTERNATIVES)}")
    y = _check_table(Y_alpha_by_seed, "Y_alpha_by_seed")
    complete = ~np.isnan(y).any(axis=1)
    n_drop = int((~complete).sum())
    y = y[complete]
    m, k = y.shape
    notes = [f"{n_drop} seed(s) with a missing alpha dropped" if n_drop else ""]
    sided = "two-sided" if alternative == "two-sided" else f"one-sided, {alternative}"
    base = no_interval(
        estimand or "monotone trend of acc with alpha",
        m,
        f"Page's L trend test ({sided}; tie-aware permutation p)",
    )

    if m < 2 or k < 3:
        notes.append(f"{m} seed(s) x {k} alpha(s): no test was possible (need >= 2 x >= 3)")
        return TestRecord(**base, estimate=NAN, statistic=NAN, p=NAN, note=join_notes(*notes))
    statistic, p_up, p_down, method = page_null_tails(y)
    if alternative == "increasing":
        p = p_up
    elif alternative == "decreasing":
        p = p_down
    else:
        p = min(1.0, 2 * min(p_up, p_down))
        notes.append("two-sided p = 2 x the smaller one-sided p")
    rhos = _row_spearman(y)
    if np.isnan(rhos).any():
        notes.append("seeds with constant accuracy have no Spearman rho and are left out of it")
    notes.append(method)
    return TestRecord(
        **base,
        estimate=float(np.nanmean(rhos)) if not np.isnan(rhos).all() else NAN,
        statistic=statistic,
        p=p,
        note=join_notes(*notes),
    )


def _row_spearman(y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row against its column order; NaN for a constant row."""
    ranks_alpha = np.arange(1, y.shape[1] + 1)
    # A constant row has no rho; scipy says so with a ConstantInputWarning that would
    # reach the terminal. The NaN is the answer and the caller notes it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return np.array([stats.spearmanr(ranks_alpha, row).statistic for row in y], dtype=float)


def per_seed_slopes(alphas: object, Y: object) -> np.ndarray:
    """OLS slope of acc on alpha for each seed (row of Y); NaN cells are skipped.

    A seed with fewer than 2 distinct alphas observed gets a NaN slope.
    """
    a = np.asarray(alphas, dtype=float)
    y = _check_table(Y)
    if a.ndim != 1 or a.size != y.shape[1]:
        raise bad_value(
            "alphas", alphas, f"a 1-D array with one alpha per column of Y ({y.shape[1]})"
        )
    slopes = np.full(y.shape[0], np.nan)
    for i, row in enumerate(y):
        ok = ~np.isnan(row)
        x, v = a[ok], row[ok]
        if np.unique(x).size < 2:
            continue
        xc = x - x.mean()
        slopes[i] = float(xc @ (v - v.mean()) / (xc @ xc))
    return slopes


def slope_test(alphas: object, Y: object, *, level: float = 0.95, estimand: str = "") -> TestRecord:
    """Per-seed OLS slope of acc on alpha, then a t test of mean slope = 0 over seeds.

    ``Y`` is (n_seeds, n_alpha) with columns matching ``alphas``. The estimate is the
    mean slope in accuracy units per unit alpha, with a t CI; the exact sign-flip p
    of the slopes is in ``p_perm``. Two-sided.
    """
    slopes = per_seed_slopes(alphas, Y)
    rec = paired_t(slopes, level=level, estimand=estimand or "slope of acc on alpha")
    rec.test = "per-seed OLS slope, then one-sample t over seeds"
    return rec


def isotonic_fit(alphas: object, y_mean: object) -> np.ndarray:
    """Best non-decreasing fit (least squares) of ``y_mean`` as a function of ``alphas``.

    Points are ordered by alpha (stable for ties) before fitting and the fit is
    returned in the input order; NaN entries stay NaN and are left out of the fit.
    Uses ``scipy.optimize.isotonic_regression`` when available, else the same
    pool-adjacent-violators algorithm implemented here.
    """
    a = np.asarray(alphas, dtype=float)
    y = np.asarray(y_mean, dtype=float)
    if a.ndim != 1 or a.shape != y.shape:
        raise bad_value(
            "alphas/y_mean shapes", (a.shape, y.shape), "two 1-D arrays of equal length"
        )
    out = np.full(y.shape, np.nan)
    ok = ~(np.isnan(a) | np.isnan(y))
    if not ok.any():
        return out
    order = np.flatnonzero(ok)[np.argsort(a[ok], kind="stable")]
    out[order] = _isotonic_increasing(y[order])
    return out


def _isotonic_increasing(y: np.ndarray) -> np.ndarray:
    if _scipy_isotonic is not None:
        return np.asarray(_scipy_isotonic(y, increasing=True).x, dtype=float)
    return _pava(y)


def _pava(y: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: least-squares non-decreasing fit, equal weights."""
    means: list[float] = []
    sizes: list[int] = []
    for v in y:
        means.append(float(v))
        sizes.append(1)
        # Merge the last two blocks while they violate monotonicity.
        while len(means) > 1 and means[-2] > means[-1]:
            m2, s2 = means.pop(), sizes.pop()
            m1, s1 = means.pop(), sizes.pop()
            means.append((m1 * s1 + m2 * s2) / (s1 + s2))
            sizes.append(s1 + s2)
    return np.repeat(means, sizes).astype(float)
