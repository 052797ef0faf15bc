"""Mediation contrasts for a 2 x 2 transplant design (weights source x LPR source).

``Y`` has shape (2, 2, n_seeds) indexed ``[w_src, lpr_src, seed]`` with index 0 =
H_find a and 1 = H_find b: ``Y[w, l]`` is the eval accuracy of the weights of run
``w`` pruned at the LPR of run ``l``. Definitions, per seed (a = source, b = target):

- TE = Y(b,b) - Y(a,a): total effect of moving from run a to run b;
- NIE_w = Y(w,b) - Y(w,a): indirect effect, the LPR's effect with the weights of w fixed;
- NDE_l = Y(b,l) - Y(a,l): direct effect, the weights' effect at the LPR of l fixed;
- INT = NIE_b - NIE_a = NDE_b - NDE_a: how much the LPR effect depends on the weights;
- NIE = (NIE_a + NIE_b) / 2: the LPR effect averaged over both weights (the primary
  estimand: is the effect carried by the LPR?); with NDE = (NDE_a + NDE_b) / 2 it adds
  up to TE.

So TE = NIE_b + NDE_a = NIE_a + NDE_b = NIE + NDE exactly. The six contrasts span
three degrees of freedom (NIE, NDE, INT), so testing all of them as one confirmatory
family costs power for nothing: the primary test is the NIE alone
(:func:`nie_test`), the rest are exploratory.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from lprcausal.errors import bad_value
from lprcausal.stats.paired import library_versions, paired_t
from lprcausal.stats.records import NAN, TestRecord, join_notes

A, B = 0, 1
PRIMARY = "NIE"


def _check_y(Y: object, ndims: tuple[int, ...] = (3,)) -> np.ndarray:
    y = np.asarray(Y, dtype=float)
    if y.ndim not in ndims or y.shape[:2] != (2, 2):
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


def mean_nie(Y: object) -> np.ndarray:
    """Per-seed NIE = (NIE_a + NIE_b) / 2 of a (2, 2, n_seeds) grid (NaN where a cell is)."""
    y = _check_y(Y)
    return ((y[A, B] - y[A, A]) + (y[B, B] - y[B, A])) / 2


def _scale(y: np.ndarray) -> float:
    """Magnitude of the accuracies: differences below float noise of it are degenerate."""
    finite = np.abs(y[np.isfinite(y)])
    return float(finite.max()) if finite.size else 0.0


def mediation_tests(Y: object, *, level: float = 0.95) -> list[TestRecord]:
    """Paired t test (with the exact sign-flip p in ``p_perm``) for each contrast.

    Returns one record per contrast in the order of :data:`lprcausal.results.schema.CONTRASTS`, with the
    contrast name as ``estimand``; callers add their own selection coords (pair,
    sparsity, ...) to ``record.coords``.
    """
    scale = _scale(_check_y(Y))
    return [
        paired_t(diffs, level=level, estimand=name, scale=scale)
        for name, diffs in transplant_contrasts(Y).items()
    ]


def nie_test(Y: object, *, level: float = 0.95) -> TestRecord:
    """The primary mediation test: paired t of the mean indirect effect NIE.

    ``Y`` is (2, 2, n_seeds) or (2, 2, n_seeds, n_sparsities); with sparsities, each
    seed's NIE is its mean over the sparsities (one pre-registered test per pair, not
    one per sparsity) and seeds missing a cell at any sparsity are dropped. Estimand
    "NIE"; t CI at ``level``, exact sign-flip p in ``p_perm``, d_z of the per-seed NIE.
    """
    y = _check_y(Y, ndims=(3, 4))
    if y.ndim == 3:
        y = y[..., None]
    per_seed = np.stack([mean_nie(y[..., k]) for k in range(y.shape[3])], axis=1)
    missing = np.isnan(per_seed).any(axis=1)
    rec = paired_t(
        np.where(missing, np.nan, per_seed.mean(axis=1)),
        level=level,
        estimand=PRIMARY,
        scale=_scale(y),
    )
    if y.shape[3] > 1:
        rec.note = join_notes(f"per-seed NIE averaged over {y.shape[3]} sparsities", rec.note)
    return rec


def nie_b_test(Y: object, *, level: float = 0.95) -> TestRecord:
    """The LPR effect on the weights of b alone: paired t of NIE_b = Y(b,b) - Y(b,a).

    For a pair where b's weights are the only ones that take both (cross-architecture,
    onto a checkpoint)
    LPRs (the a row of ``Y`` is absent: NaN). ``Y`` is (2, 2, n_seeds) or (2, 2, n_seeds,
    n_sparsities); with sparsities each seed's NIE_b is its mean over them (one test per
    pair) and seeds missing a cell at any sparsity are dropped.
    """
    y = _check_y(Y, ndims=(3, 4))
    if y.ndim == 3:
        y = y[..., None]
    per_seed = y[B, B] - y[B, A]  # (n_seeds, n_sparsities)
    missing = np.isnan(per_seed).any(axis=1)
    rec = paired_t(np.where(missing, np.nan, per_seed.mean(axis=1)), level=level,
                   estimand="NIE_b", scale=_scale(y[B]))
    if y.shape[3] > 1:
        rec.note = join_notes(f"per-seed NIE_b averaged over {y.shape[3]} sparsities", rec.note)
    return rec


def proportion_mediated(
    Y: object,
    *,
    level: float = 0.95,
    nie: str = "mean",
) -> TestRecord:
    """Proportion of the total effect carried by the LPR: mean NIE / mean TE.

    ``nie`` picks the indirect effect: "a" (NIE_a, weights of a), "b" (NIE_b) or
    "mean" (default: NIE = (NIE_a + NIE_b) / 2, which with the mean NDE adds up to TE
    exactly and favours neither weights source). The CI is Fieller's interval for a
    ratio of paired means: the set of r for which the per-seed ``NIE - r * TE`` has a
    mean compatible with 0 by a t test at ``level`` (n - 1 df). It is exact for
    bivariate normal per-seed effects at any n, where a percentile bootstrap over 8
    seeds covered only 0.90 at 95%. Reported only when the TE t interval at ``level``
    excludes 0, which is exactly when Fieller's set is a bounded interval; otherwise
    the estimate is NaN and the note says why (a ratio over a TE compatible with 0 is
    unbounded). Seeds with a NaN cell are dropped.
    """
    if nie not in ("a", "b", "mean"):
        raise bad_value("nie", nie, '"a", "b" or "mean"')
    c = transplant_contrasts(Y)
    indirect = {"a": c["NIE_a"], "b": c["NIE_b"], "mean": mean_nie(Y)}[nie]
    te = c["TE"]
    keep = ~(np.isnan(te) | np.isnan(indirect))
    n_drop = int((~keep).sum())
    te, indirect = te[keep], indirect[keep]
    n = te.size
    te_rec = paired_t(te, level=level, estimand="TE", scale=_scale(_check_y(Y)))
    notes = [f"{n_drop} seed(s) with a missing cell dropped" if n_drop else ""]
    name = "NIE" if nie == "mean" else f"NIE_{nie}"
    base = dict(
        estimand=f"proportion mediated (mean {name} / mean TE)",
        ci_level=level,
        ci_method="Fieller (t)",
        statistic=NAN,
        df=float(n - 1) if n >= 2 else NAN,
        p=NAN,
        n=n,
        test="ratio of paired means with Fieller interval",
        library=library_versions(),
    )
    interval = fieller_interval(indirect, te, level) if n >= 2 else None
    if not (te_rec.ci_low > 0 or te_rec.ci_high < 0) or interval is None:
        notes.append(
            f"not reported: the {level:g} t interval of TE [{te_rec.ci_low:.4g}, "
            f"{te_rec.ci_high:.4g}] does not exclude 0 (n={n})"
        )
        return TestRecord(**base, estimate=NAN, ci_low=NAN, ci_high=NAN, note=join_notes(*notes))
    estimate = float(indirect.mean() / te.mean())
    return TestRecord(
        **base,
        estimate=estimate,
        ci_low=interval[0],
        ci_high=interval[1],
        note=join_notes(*notes),
    )


def fieller_interval(num: np.ndarray, den: np.ndarray, level: float) -> tuple[float, float] | None:
    """Fieller's interval for mean(num) / mean(den) from paired per-seed values.

    Solves (N - r T)^2 <= q (s_NN - 2 r s_NT + r^2 s_TT) for r, with N, T the means,
    s the sample (co)variances (ddof=1) and q = t_{n-1, (1+level)/2}^2 / n. Returns
    ``(low, high)``, or None when the set is unbounded (the t test of mean(den) = 0
    does not reject at 1 - level).
    """
    n = num.size
    cov = np.cov(np.stack([num, den]), ddof=1)
    q = float(stats.t.ppf((1 + level) / 2, n - 1)) ** 2 / n
    mn, md = float(num.mean()), float(den.mean())
    a = md**2 - q * cov[1, 1]
    if not a > 0:
        return None
    b = mn * md - q * cov[0, 1]
    c = mn**2 - q * cov[0, 0]
    root = math.sqrt(max(b * b - a * c, 0.0))  # >= 0 in exact arithmetic when a > 0
    return float((b - root) / a), float((b + root) / a)
