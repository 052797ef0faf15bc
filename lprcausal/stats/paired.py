"""Paired (per-seed) tests on differences: t test, exact sign-flip test, TOST.

Arms compared within a seed share initialization and data order, so the unit of
analysis is the per-seed difference. All functions take a 1-D array of those
differences; NaNs (a missing arm in some seed) are dropped and counted in the note.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy
from scipy import stats

from lprcausal.errors import bad_value
from lprcausal.stats.records import NAN, TestRecord, join_notes

# Up to this n the sign-flip test enumerates all 2^n sign patterns (65536 at 16).
EXACT_SIGN_FLIP_MAX_N = 16
# Above it, a Monte Carlo test with this many random sign patterns and a fixed seed.
SIGN_FLIP_MC_DRAWS = 100_000
SIGN_FLIP_MC_SEED = 0
# Differences whose sd is below this fraction of their magnitude (or of the data they
# were taken from) are identical up to floating-point noise: a t statistic built on
# that sd is rounding error divided by rounding error, not evidence.
DEGENERATE_RTOL = 1e-9


def library_versions() -> str:
    """Versions of the libraries doing the arithmetic here."""
    return f"scipy {scipy.__version__}; numpy {np.__version__}"


def no_interval(estimand: str, n: int, test: str) -> dict:
    """The record fields of a test that gives no confidence interval and no df (the
    permutation and rank tests): NaN interval, ``ci_method = "none"``."""
    return dict(estimand=estimand, ci_low=NAN, ci_high=NAN, ci_level=NAN, ci_method="none",
                df=NAN, n=n, test=test, library=library_versions())


def permutation_record(
    base: dict, observed: float, p: float, p_min: float, notes: list[str]
) -> TestRecord:
    """The record of a permutation test whose statistic is its estimate: ``p`` is also
    the permutation p, ``p_min`` the smallest p it can attain."""
    return TestRecord(**base, estimate=observed, statistic=observed, p=p, p_perm=p,
                      p_perm_min=p_min, note=join_notes(*notes))



def clean_diffs(diffs: object, name: str = "diffs") -> tuple[np.ndarray, str]:
    """Return the finite-or-inf (non-NaN) differences as float64 and a note on drops.

    Raises LprError unless ``diffs`` is one-dimensional.
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1:
        raise bad_value(f"{name} shape", d.shape, "a 1-D array with one difference per seed")
    keep = ~np.isnan(d)
    n_drop = int((~keep).sum())
    note = f"{n_drop} NaN value(s) dropped (unit missing an arm)" if n_drop else ""
    return d[keep], note


def is_degenerate(sd: float, values: np.ndarray, scale: float = 0.0) -> bool:
    """True when ``sd`` is float noise: ``sd <= DEGENERATE_RTOL * max(max|values|, scale)``.

    ``values`` are the numbers whose spread ``sd`` measures; ``scale`` is the magnitude
    of the data they were computed from (e.g. the accuracies behind differences), so
    that differences that are all rounding noise around 0 count as degenerate too.
    An exact ``sd == 0`` is always degenerate.
    """
    magnitude = max(float(np.max(np.abs(values))) if values.size else 0.0, abs(scale))
    return sd == 0 or sd <= DEGENERATE_RTOL * magnitude


def degenerate_note(test: str) -> str:
    return f"all differences identical up to float noise (sd ~ 0): {test} undefined"


def min_sign_flip_p(n: int) -> float:
    """Smallest two-sided p an exact sign-flip test can attain with n non-zero differences.

    Only the observed sign pattern and its mirror reach the largest |sum|, so the
    minimum is 2 / 2^n (n=4 -> 0.125, n=5 -> 0.0625, n=6 -> 0.03125).
    """
    if n < 0:
        raise bad_value("n", n, "a non-negative number of differences")
    return min(1.0, 2.0 ** (1 - n))


@functools.lru_cache(maxsize=EXACT_SIGN_FLIP_MAX_N + 1)
def _all_sign_patterns(n: int) -> np.ndarray:
    """(2^n, n) matrix of +-1: every sign pattern once (bit j of row i -> sign j)."""
    bits = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n)) & 1
    return (1 - 2 * bits).astype(float)


def sign_flip_test(
    diffs: object, *, n_mc: int = SIGN_FLIP_MC_DRAWS, seed: int = SIGN_FLIP_MC_SEED
) -> tuple[float, float]:
    """Two-sided sign-flip permutation test of mean difference = 0.

    Statistic |sum(d)|; under H0 (differences symmetric about 0) every sign pattern
    is equally likely. For n <= 16 all 2^n patterns are enumerated (exact p =
    share of patterns with |sum| >= observed); above that, ``n_mc`` random patterns
    with a fixed ``seed`` give p = (1 + count) / (1 + n_mc). NaNs are dropped.
    Returns ``(p, min_attainable_p)``; both NaN when there are no differences.
    """
    d, _ = clean_diffs(diffs)
    n = d.size
    if n == 0:
        return NAN, NAN
    n_nonzero = int(np.count_nonzero(d))
    observed = abs(d.sum())
    # Floating-point sums of the same numbers in another order differ in the last
    # bits; a relative tolerance keeps ties (e.g. the mirrored pattern) counted.
    tol = 1e-10 * max(np.abs(d).sum(), np.finfo(float).tiny)
    if n <= EXACT_SIGN_FLIP_MAX_N:
        sums = _all_sign_patterns(n) @ d
        p = float(np.mean(np.abs(sums) >= observed - tol))
        return p, min_sign_flip_p(n_nonzero)
    rng = np.random.default_rng(seed)
    count = 0
    chunk = max(1, 2_000_000 // n)  # bounded memory for large n
    for start in range(0, n_mc, chunk):
        size = min(chunk, n_mc - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
        count += int(np.sum(np.abs(signs @ d) >= observed - tol))
    p = (1 + count) / (1 + n_mc)
    return p, max(min_sign_flip_p(n_nonzero), 1 / (1 + n_mc))


def sign_flip_note(n: int, min_p: float, alpha: float) -> str:
    """Say how the sign-flip p was computed and whether it can reach alpha at all."""
    if n == 0 or math.isnan(min_p):
        return ""
    if n <= EXACT_SIGN_FLIP_MAX_N:
        how = f"sign-flip p exact (all 2^{n} patterns)"
    else:
        how = f"sign-flip p Monte Carlo ({SIGN_FLIP_MC_DRAWS} patterns, seed {SIGN_FLIP_MC_SEED})"
    if min_p >= alpha:
        return join_notes(
            how,
            f"n={n}: an exact sign-flip test cannot reach p < {alpha:g} "
            f"(min attainable p = {min_p:.4g})",
        )
    return how


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise bad_value("level", level, "a confidence level strictly between 0 and 1, e.g. 0.95")
    return float(level)


def _untestable(base: dict, d: np.ndarray, *notes: str) -> TestRecord:
    """Record for n < 2: the estimate when there is one difference, no test."""
    n = d.size
    return TestRecord(
        **base,
        estimate=float(d[0]) if n == 1 else NAN,
        ci_low=NAN,
        ci_high=NAN,
        statistic=NAN,
        df=NAN,
        p=NAN,
        note=join_notes(*notes, f"n={n}: no test was possible (need at least 2 seeds)"),
    )


def paired_t(
    diffs: object, *, level: float = 0.95, estimand: str = "", scale: float = 0.0
) -> TestRecord:
    """Paired t test of mean(diffs) = 0 with a t confidence interval.

    Inputs: per-seed differences (1-D; NaNs dropped). Output record: estimate =
    mean difference, CI = mean +- t_{df} * sd / sqrt(n) at ``level``, statistic =
    t from ``scipy.stats.ttest_1samp``, df = n - 1, effect_size = d_z = mean / sd
    (sd with ddof=1). The exact sign-flip p (robustness check) is in ``p_perm``
    with its minimum attainable value in ``p_perm_min``; the note says when that
    minimum exceeds 1 - level. With n < 2 no test is possible: statistic and p
    are NaN (the estimate is still given when n == 1). Differences identical up to
    float noise (:func:`is_degenerate`, with ``scale`` the magnitude of the data they
    come from) have no t test either: statistic, p and d_z are NaN, the CI is the
    common value and the note says so.
    """
    level = _check_level(level)
    d, drop_note = clean_diffs(diffs)
    n = d.size
    base = dict(
        estimand=estimand,
        ci_level=level,
        ci_method="t",
        n=n,
        test="paired t (one-sample t on per-seed differences)",
        library=library_versions(),
    )
    if n < 2:
        return _untestable(base, d, drop_note)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    degenerate = ""
    if is_degenerate(sd, d, scale):
        # scipy would return t = +-inf, p = 0 (or t ~ 1e15, p ~ 1e-74 for float noise);
        # state the degeneracy rather than report a meaningless p.
        t_stat, p, ci, sd = NAN, NAN, (mean, mean), 0.0
        degenerate = degenerate_note("t test")
    else:
        res = stats.ttest_1samp(d, 0.0)
        t_stat, p = float(res.statistic), float(res.pvalue)
        ci = res.confidence_interval(confidence_level=level)
    p_perm, p_perm_min = sign_flip_test(d)
    return TestRecord(
        **base,
        estimate=mean,
        ci_low=float(ci[0]),
        ci_high=float(ci[1]),
        statistic=t_stat,
        df=float(n - 1),
        p=p,
        effect_size=mean / sd if sd > 0 else NAN,
        p_perm=p_perm,
        p_perm_min=p_perm_min,
        note=join_notes(drop_note, degenerate, sign_flip_note(n, p_perm_min, 1 - level)),
    )


def tost_paired(
    diffs: object, margin: float, *, level: float = 0.95, estimand: str = "", scale: float = 0.0
) -> TestRecord:
    """Equivalence test (TOST) of |mean(diffs)| < margin with two one-sided t tests.

    H0: mean <= -margin or mean >= margin; equivalence is shown when p < alpha =
    1 - level. p = max of the two one-sided p-values; statistic is the t of the
    binding (larger-p) side; the CI is the (1 - 2 alpha) t interval (90% at
    level=0.95), which lies inside (-margin, margin) exactly when p < alpha.
    Output in the same units as ``diffs`` (e.g. accuracy points); d_z as effect size.
    Differences identical up to float noise (:func:`is_degenerate`) have no t test:
    statistic and p are NaN (equivalence is not shown) and the note gives the common
    difference and whether it lies inside the margin.
    """
    level = _check_level(level)
    if not (np.isfinite(margin) and margin > 0):
        raise bad_value("margin", margin, "a positive equivalence margin in the units of diffs")
    margin = float(margin)
    alpha = 1 - level
    ci_level = round(1 - 2 * alpha, 12)  # 0.9, not 0.8999999999999999
    if ci_level <= 0:
        raise bad_value(
            "level", level, "a level above 0.5 so the TOST interval (1 - 2 alpha) exists"
        )
    d, drop_note = clean_diffs(diffs)
    n = d.size
    margin_note = f"equivalence margin +-{margin:g}; CI at {ci_level:g} (1 - 2 alpha)"
    base = dict(
        estimand=estimand,
        ci_level=ci_level,
        ci_method="t",
        n=n,
        test="TOST paired t (two one-sided t tests)",
        library=library_versions(),
    )
    if n < 2:
        return _untestable(base, d, drop_note, margin_note)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    df = n - 1
    if is_degenerate(sd, d, scale):
        inside = "inside" if abs(mean) < margin else "outside"
        return TestRecord(
            **base,
            estimate=mean,
            ci_low=mean,
            ci_high=mean,
            statistic=NAN,
            df=float(df),
            p=NAN,
            note=join_notes(
                drop_note,
                margin_note,
                degenerate_note("TOST"),
                f"every difference is {mean:.6g}, {inside} the margin",
            ),
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        t_lower = np.float64(mean + margin) / se  # H0: mean <= -margin
        t_upper = np.float64(mean - margin) / se  # H0: mean >= +margin
    p_lower = float(stats.t.sf(t_lower, df))
    p_upper = float(stats.t.cdf(t_upper, df))
    lower_binds = p_lower >= p_upper
    half = float(stats.t.ppf(1 - alpha, df)) * se
    return TestRecord(
        **base,
        estimate=mean,
        ci_low=mean - half,
        ci_high=mean + half,
        statistic=float(t_lower if lower_binds else t_upper),
        df=float(df),
        p=max(p_lower, p_upper),
        effect_size=mean / sd if sd > 0 else NAN,
        note=join_notes(drop_note, margin_note),
    )
