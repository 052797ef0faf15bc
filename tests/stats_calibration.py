"""Seeded simulations of the transplant statistics: error rates, power and coverage.

Each function simulates ``n_sims`` synthetic transplant studies (no training: the
per-cell accuracies are drawn from the model below), runs the library's tests on them
through the Python API and returns the rate it measures. ``tests/test_stats_calibration.py``
asserts the targets at 8 seeds; run this file to print the full table::

    python tests/stats_calibration.py [--sims 2000] [--seeds 4 8 12]

Model of one pair at one sparsity, seed s, weights of w, LPR of l (0 = a, 1 = b)::

    acc = 0.9 + u_s + l * nie + w * (nde + v_s) + e,   u_s ~ N(0, 0.02), e ~ N(0, noise)

so the per-seed NIE = (NIE_a + NIE_b) / 2 has mean ``nie`` and sd ``noise`` at one
sparsity, and sd ``noise / sqrt(S)`` averaged over S sparsities (the primary test);
``v_s ~ N(0, nde_sd)`` makes the weights' effect vary from seed to seed.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats

from lprcausal.stats import (
    adjust,
    mediation_tests,
    nie_test,
    page_trend,
    proportion_mediated,
    within_seed_anova,
)

ALPHA = 0.05
NOISE = 0.01


def transplant_grid(
    rng: np.random.Generator,
    n_seeds: int,
    *,
    n_pairs: int = 1,
    n_sparsities: int = 1,
    nie: float = 0.0,
    nde: float = 0.0,
    nde_sd: float = 0.0,
    noise: float = NOISE,
) -> np.ndarray:
    """Accuracies (pair, w_src, lpr_src, seed, sparsity) from the model in the module doc."""
    shape = (n_pairs, 2, 2, n_seeds, n_sparsities)
    y = 0.9 + rng.normal(0, 0.02, (n_pairs, 1, 1, n_seeds, 1)) + rng.normal(0, noise, shape)
    y[:, :, 1] += nie
    per_seed = rng.normal(0, nde_sd, (n_pairs, 1, n_seeds, 1)) if nde_sd else 0.0
    y[:, 1, :] += nde + per_seed
    return y


def primary_rejections(y: np.ndarray) -> np.ndarray:
    """Holm-adjusted rejections of the primary family (one NIE test per pair)."""
    p = [nie_test(y[i]).p for i in range(y.shape[0])]
    return adjust(p, "holm") < ALPHA


def primary_power(n_seeds: int, n_sims: int, *, n_pairs: int, n_sparsities: int, seed=0):
    """Share of studies in which pair 0's primary NIE test rejects (Holm over the pairs),
    every pair with an NIE of d_z = 1 in the primary (sparsity-averaged) contrast."""
    rng = np.random.default_rng(seed)
    nie = NOISE / math.sqrt(n_sparsities)
    hits = [
        primary_rejections(
            transplant_grid(rng, n_seeds, n_pairs=n_pairs, n_sparsities=n_sparsities, nie=nie)
        )[0]
        for _ in range(n_sims)
    ]
    return float(np.mean(hits))


def primary_fwer(n_seeds: int, n_sims: int, *, n_pairs: int = 2, n_sparsities: int = 2, seed=1):
    """Family-wise error of the primary family when no pair has an NIE (the weights
    have an effect that varies across seeds, which must not leak into the NIE)."""
    rng = np.random.default_rng(seed)
    any_false = [
        primary_rejections(
            transplant_grid(
                rng, n_seeds, n_pairs=n_pairs, n_sparsities=n_sparsities, nde=0.01, nde_sd=0.01
            )
        ).any()
        for _ in range(n_sims)
    ]
    return float(np.mean(any_false))


def contrasts_fwer(n_seeds: int, n_sims: int, *, n_pairs: int = 2, n_sparsities: int = 2, seed=2):
    """Chance that the exploratory family (NIE and the six contrasts per pair and
    sparsity, Benjamini-Hochberg) rejects anything under the global null."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sims):
        y = transplant_grid(rng, n_seeds, n_pairs=n_pairs, n_sparsities=n_sparsities)
        p = [
            r.p
            for i in range(n_pairs)
            for k in range(n_sparsities)
            for r in [nie_test(y[i, ..., k]), *mediation_tests(y[i, ..., k])]
        ]
        out.append((adjust(p, "fdr_bh") < ALPHA).any())
    return float(np.mean(out))


def anova_w_src_fpr(n_seeds: int, n_sims: int, *, seed=3) -> float:
    """Rejection rate of the ANOVA's w_src test when the weights' effect is 0 on average
    but varies across seeds (sd 0.01, residual noise 0.005)."""
    rng = np.random.default_rng(seed)
    p = [
        within_seed_anova(
            transplant_grid(rng, n_seeds, nde_sd=0.01, noise=0.005)[0, ..., 0]
        ).loc["w_src", "PR(>F)"]
        for _ in range(n_sims)
    ]
    return float(np.mean(np.array(p) < ALPHA))


def proportion_coverage(n_seeds: int, n_sims: int, *, level: float = 0.95, seed=4):
    """Coverage of the proportion-mediated interval of its true value 2/3 (NIE 0.02 of
    TE 0.03; the weights' effect varies across seeds), among the studies where it is
    reported (TE interval excludes 0); returns (coverage, share reported)."""
    rng = np.random.default_rng(seed)
    covered = reported = 0
    for _ in range(n_sims):
        y = transplant_grid(rng, n_seeds, nie=0.02, nde=0.01, nde_sd=0.005)[0, ..., 0]
        rec = proportion_mediated(y, level=level)
        if math.isfinite(rec.estimate):
            reported += 1
            covered += rec.ci_low <= 2 / 3 <= rec.ci_high
    return covered / max(reported, 1), reported / n_sims


def page_null(n_seeds: int, n_sims: int, *, n_alphas: int = 5, seed=5, compare=True):
    """Page's two-sided trend test under no trend, on accuracies of a 1000-image test set
    with sd 0.0015 within a seed (so values tie often): (false-positive rate, median of
    scipy's tie-blind one-sided p over ours; NaN unless ``compare``)."""
    rng = np.random.default_rng(seed)
    p, ratio = [], []
    for _ in range(n_sims):
        noise = rng.normal(0, 0.0015, (n_seeds, n_alphas))
        y = np.round((0.9 + rng.normal(0, 0.01, (n_seeds, 1)) + noise) * 1000) / 1000
        p.append(page_trend(y, alternative="two-sided").p)
        if compare:
            ours = page_trend(y, alternative="increasing").p
            ratio.append(stats.page_trend_test(y).pvalue / ours)
    return float(np.mean(np.array(p) < ALPHA)), float(np.median(ratio)) if ratio else math.nan


def table(seed_counts=(4, 8, 12), n_sims: int = 2000) -> list[tuple[str, list[str]]]:
    """Rows (label, one value per seed count) of the calibration table."""
    rows: dict[str, list[str]] = {}

    def put(label: str, value: str) -> None:
        rows.setdefault(label, []).append(value)

    for n in seed_counts:
        power = n_sims // 2
        put("primary NIE power, d_z=1, 1 pair (= one paired t)",
            f"{primary_power(n, power, n_pairs=1, n_sparsities=1):.3f}")
        put("primary NIE power, d_z=1, 2 pairs x 2 sparsities",
            f"{primary_power(n, power, n_pairs=2, n_sparsities=2):.3f}")
        put("primary NIE family-wise error, null, 2 x 2", f"{primary_fwer(n, n_sims):.3f}")
        put("contrasts (BH) any rejection, global null, 2 x 2",
            f"{contrasts_fwer(n, n_sims // 4):.3f}")
        put("ANOVA w_src false positives, effect varies by seed",
            f"{anova_w_src_fpr(n, n_sims):.3f}")
        cov, rep = proportion_coverage(n, n_sims)
        put("proportion mediated 95% coverage (Fieller)", f"{cov:.3f}")
        put("proportion mediated: share reported", f"{rep:.3f}")
        fpr, ratio = page_null(n, n_sims // 2)
        put("Page two-sided false positives, tied accuracies", f"{fpr:.3f}")
        put("Page: median scipy tie-blind p / tie-aware p", f"{ratio:.2f}")
    return list(rows.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulated studies per rate")
    parser.add_argument("--seeds", type=int, nargs="+", default=[4, 8, 12])
    args = parser.parse_args()
    rows = table(tuple(args.seeds), args.sims)
    width = max(len(label) for label, _ in rows)
    print(
        f"alpha {ALPHA}; {args.sims} simulated studies per rate "
        "(power and Page: half; contrasts: a quarter)"
    )
    print(f"{'':{width}}  " + "  ".join(f"{n:>2} seeds" for n in args.seeds))
    for label, values in rows:
        print(f"{label:{width}}  " + "  ".join(f"{v:>8}" for v in values))


if __name__ == "__main__":
    main()
