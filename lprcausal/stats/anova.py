"""Two-way within-seed ANOVA of a transplant grid (weights source x LPR source).

Every seed contributes all four cells, so the grid is a repeated-measures design:
seeds are the units, ``w_src`` and ``lpr_src`` vary within each seed. Each effect is
tested against its own interaction with seed (the seed-to-seed variation of that
effect), not against one pooled residual. Pooling seed x factor interactions into
the residual (an OLS with seed as a fixed block) makes the F test of a factor whose
effect varies across seeds reject far too often (0.21 at alpha 0.05 with 8 seeds in
simulation); testing against the matching stratum keeps it at alpha.

With two levels per factor each test has 1 numerator df and is exactly the paired t
test of a per-seed contrast (F = t^2): w_src the mean direct effect
``(NDE_a + NDE_b) / 2``, lpr_src the mean indirect effect ``(NIE_a + NIE_b) / 2``,
and the interaction ``INT``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from lprcausal.errors import LprError, bad_value
from lprcausal.stats.paired import is_degenerate

REQUIRED_COLUMNS = ("acc", "w_src", "lpr_src", "seed")
FORMULA = "acc ~ w_src * lpr_src + Error(seed / (w_src * lpr_src))"
# Rows of the table: each effect followed by its error stratum (effect x seed).
TERMS = (
    "seed",
    "w_src",
    "w_src:seed",
    "lpr_src",
    "lpr_src:seed",
    "w_src:lpr_src",
    "w_src:lpr_src:seed",
)
COLUMNS = ("sum_sq", "df", "F", "PR(>F)")


def within_seed_anova(Y: object) -> pd.DataFrame:
    """Repeated-measures ANOVA table of a (2, 2, n_seeds) grid ``Y[w_src, lpr_src, seed]``.

    Seeds with a NaN cell are dropped. Rows :data:`TERMS`; columns sum_sq, df, F,
    PR(>F). Each effect's F = (SS / 1) / (SS of effect x seed / (n - 1)), so its p is
    that of the paired t test of the matching per-seed contrast; error rows and the
    seed row have no F. The sums of squares add up to the total about the grand mean.
    An effect whose per-seed contrast is identical in every seed up to float noise gets
    F and p NaN (0 / 0 rounding noise is no evidence). Needs >= 2 complete seeds.
    """
    y = np.asarray(Y, dtype=float)
    if y.ndim != 3 or y.shape[:2] != (2, 2):
        raise bad_value("Y shape", y.shape, "(2, 2, n_seeds) indexed [w_src, lpr_src, seed]")
    y = y[:, :, ~np.isnan(y).any(axis=(0, 1))]
    n = y.shape[2]
    if n < 2:
        raise LprError(
            f"within_seed_anova has {n} seed(s) with all four cells: expected at least 2 "
            "so the seed-to-seed variation of each effect can be estimated."
        )
    scale = float(np.abs(y).max())
    seed_means = y.mean(axis=(0, 1))
    # Per-seed contrasts; (SS, SS x seed) of a 1-df effect with contrast c and
    # sum-of-squared-coefficients k are n mean(c)^2 / k and sum((c - mean c)^2) / k.
    contrasts = {
        "w_src": ((y[1, 0] - y[0, 0]) + (y[1, 1] - y[0, 1])) / 2,
        "lpr_src": ((y[0, 1] - y[0, 0]) + (y[1, 1] - y[1, 0])) / 2,
        "w_src:lpr_src": (y[1, 1] - y[1, 0]) - (y[0, 1] - y[0, 0]),
    }
    k = {"w_src": 1.0, "lpr_src": 1.0, "w_src:lpr_src": 4.0}
    rows = {"seed": (4 * ((seed_means - seed_means.mean()) ** 2).sum(), n - 1, np.nan, np.nan)}
    for term, c in contrasts.items():
        ss = n * c.mean() ** 2 / k[term]
        ss_err = ((c - c.mean()) ** 2).sum() / k[term]
        if is_degenerate(float(c.std(ddof=1)), c, scale):
            f = p = np.nan
        else:
            f = ss / (ss_err / (n - 1))
            p = float(stats.f.sf(f, 1, n - 1))
        rows[term] = (ss, 1, f, p)
        rows[f"{term}:seed"] = (ss_err, n - 1, np.nan, np.nan)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS))
    return table.loc[list(TERMS)].astype(float)


def factorial_anova(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`within_seed_anova` of a long table with columns acc, w_src, lpr_src, seed.

    One row per (w_src, lpr_src, seed) cell (e.g. ``ds.acc.sel(sparsity=s)
    .to_dataframe().reset_index()``); w_src and lpr_src have two levels each, taken in
    sorted order (the F tests do not depend on it). Rows with missing acc drop their seed.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise LprError(
            f"factorial_anova data is missing column(s) {missing}: expected columns "
            f"{list(REQUIRED_COLUMNS)}, got {list(df.columns)}."
        )
    for factor in ("w_src", "lpr_src", "seed"):
        levels = df[factor].nunique()
        want = "exactly 2" if factor != "seed" else "at least 2"
        if levels < 2 or (factor != "seed" and levels != 2):
            raise LprError(
                f"factorial_anova column {factor!r} has {levels} level(s): expected {want}."
            )
    if df.duplicated(["w_src", "lpr_src", "seed"]).any():
        raise LprError(
            "factorial_anova data has repeated (w_src, lpr_src, seed) rows: expected one "
            "accuracy per cell and seed."
        )
    cells = pd.MultiIndex.from_product(
        [sorted(df["w_src"].unique()), sorted(df["lpr_src"].unique())]
    )
    grid = df.pivot(index="seed", columns=["w_src", "lpr_src"], values="acc")
    y = grid.reindex(columns=cells).to_numpy(dtype=float).reshape(-1, 2, 2)
    return within_seed_anova(y.transpose(1, 2, 0))
