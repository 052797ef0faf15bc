"""Mediation contrasts for a 2 x 2 transplant design (weights source x LPR source).

``Y`` has shape (2, 2, n_seeds) indexed ``[w_src, lpr_src, seed]`` with index 0 =
H_find a and 1 = H_find b: ``Y[w, l]`` is the eval accuracy of the weights of run
``w`` pruned at the LPR of run ``l``. Definitions (DESIGN.md, per seed):
TE = Y(b,b) - Y(a,a); NIE_w = Y(w,b) - Y(w,a) (LPR effect, weights fixed);
NDE_l = Y(b,l) - Y(a,l) (weights effect, LPR fixed); INT = NIE_b - NIE_a.
So TE = NIE_b + NDE_a = NIE_a + NDE_b exactly.
"""

from __future__ import annotations

import numpy as np

from lprcausal.errors import bad_value
from lprcausal.stats.paired import library_versions, paired_t
from lprcausal.stats.records import NAN, TestRecord, join_notes

A, B = 0, 1
CONTRASTS = ("TE", "NIE_a", "NIE_b", "NDE_a", "NDE_b", "INT")
# Below this many seeds a percentile bootstrap interval is known to be too narrow.
SMALL_BOOTSTRAP_N = 10


def _check_y(Y: object) -> np.ndarray:
    y = np.asarray(Y, dtype=float)
    if y.ndim != 3 or y.shape[:2] != (2, 2):
        raise bad_value(
            "Y shape", y.shape, "(2, 2, n_seeds) indexed [w_src, lpr_src, seed] with 0 = a, 1 = b"
        )
    return y


def transplant_contrasts(Y: object) -> dict[str, np.ndarray]:
    """Per-seed contrasts TE, NIE_a, NIE_b, NDE_a, NDE_b, INT (each shape (n_seeds,)).

    A seed with a NaN cell gets NaN in every contrast that uses that cell.
    """
    y = _check_y(Y)
    nie_a = y[A, B] - y[A, A]
    nie_b = y[B, B] - y[B, A]
    return {
        "TE": y[B, B] - y[A, A],
        "NIE_a": nie_a,
        "NIE_b": nie_b,
        "NDE_a": y[B, A] - y[A, A],
        "NDE_b": y[B, B] - y[A, B],
        "INT": nie_b - nie_a,
    }


def mediation_tests(Y: object, *, level: float = 0.95) -> list[TestRecord]:
    """Paired t test (with the exact sign-flip p in ``p_perm``) for each contrast.

    Returns one record per contrast in the order of :data:`CONTRASTS`, with the
    contrast name as ``estimand``; callers add their own selection coords (pair,
    sparsity, ...) to ``record.coords``.
    """
    return [
        paired_t(diffs, level=level, estimand=name)
        for name, diffs in transplant_contrasts(Y).items()
    ]


def proportion_mediated(
    Y: object,
    *,
    level: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    nie: str = "mean",
) -> TestRecord:
    """Proportion of the total effect carried by the LPR: mean NIE / mean TE.

    ``nie`` picks the indirect effect: "a" (NIE_a, weights of a), "b" (NIE_b) or
    "mean" (default: (NIE_a + NIE_b) / 2, which with the mean NDE adds up to TE
    exactly and favours neither weights source). The CI is a percentile bootstrap
    over seeds (``n_boot`` resamples, fixed ``seed``). Reported only when the TE
    t interval at ``level`` excludes 0; otherwise the estimate is NaN and the note
    says why (a ratio over a TE compatible with 0 is unbounded). Seeds with a NaN
    cell are dropped.
    """
    if nie not in ("a", "b", "mean"):
        raise bad_value("nie", nie, '"a", "b" or "mean"')
    if n_boot < 1:
        raise bad_value("n_boot", n_boot, "a positive number of bootstrap resamples")
    c = transplant_contrasts(Y)
    indirect = {"a": c["NIE_a"], "b": c["NIE_b"], "mean": (c["NIE_a"] + c["NIE_b"]) / 2}[nie]
    te = c["TE"]
    keep = ~(np.isnan(te) | np.isnan(indirect))
    n_drop = int((~keep).sum())
    te, indirect = te[keep], indirect[keep]
    n = te.size
    te_rec = paired_t(te, level=level, estimand="TE")
    notes = [f"{n_drop} seed(s) with a missing cell dropped" if n_drop else ""]
    base = dict(
        estimand=f"proportion mediated (mean NIE_{nie} / mean TE)",
        ci_level=level,
        ci_method="percentile bootstrap over seeds",
        statistic=NAN,
        df=NAN,
        p=NAN,
        n=n,
        test="ratio of means with percentile bootstrap",
        library=library_versions(),
    )
    if not (te_rec.ci_low > 0 or te_rec.ci_high < 0):
        notes.append(
            f"not reported: the {level:g} t interval of TE [{te_rec.ci_low:.4g}, "
            f"{te_rec.ci_high:.4g}] does not exclude 0 (n={n})"
        )
        return TestRecord(**base, estimate=NAN, ci_low=NAN, ci_high=NAN, note=join_notes(*notes))
    estimate = float(indirect.mean() / te.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = indirect[idx].mean(axis=1) / te[idx].mean(axis=1)
    finite = np.isfinite(ratios)
    if not finite.all():
        notes.append(f"{int((~finite).sum())} bootstrap resample(s) with mean TE = 0 dropped")
    alpha = 1 - level
    lo, hi = np.quantile(ratios[finite], [alpha / 2, 1 - alpha / 2])
    notes.append(f"{n_boot} bootstrap resamples, seed {seed}")
    if n < SMALL_BOOTSTRAP_N:
        notes.append(f"bootstrap over only n={n} seeds: the interval is likely too narrow")
    return TestRecord(
        **base, estimate=estimate, ci_low=float(lo), ci_high=float(hi), note=join_notes(*notes)
    )
