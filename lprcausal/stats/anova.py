"""Two-way factorial ANOVA of a transplant grid with seeds as blocks."""

from __future__ import annotations

import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from lprcausal.errors import LprError

FORMULA = "acc ~ C(w_src, Sum) * C(lpr_src, Sum) + C(seed, Sum)"
REQUIRED_COLUMNS = ("acc", "w_src", "lpr_src", "seed")


def factorial_anova(df: pd.DataFrame) -> pd.DataFrame:
    """Type-III ANOVA table of ``acc ~ w_src * lpr_src + seed`` (sum contrasts).

    Input: one row per (w_src, lpr_src, seed) cell with columns acc, w_src,
    lpr_src, seed (e.g. ``ds.acc.sel(sparsity=s).to_dataframe().reset_index()``).
    Seeds enter as an additive block factor. Sum-to-zero contrasts make the type-III
    main effects meaningful in the presence of the interaction. Output: the
    ``statsmodels`` ``anova_lm(typ=3)`` table (rows Intercept, C(w_src, Sum),
    C(lpr_src, Sum), C(seed, Sum), C(w_src, Sum):C(lpr_src, Sum), Residual;
    columns sum_sq, df, F, PR(>F)). Rows with missing acc are dropped by the fit.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise LprError(
            f"factorial_anova data is missing column(s) {missing}: expected columns "
            f"{list(REQUIRED_COLUMNS)}, got {list(df.columns)}."
        )
    for factor in ("w_src", "lpr_src", "seed"):
        if df[factor].nunique() < 2:
            raise LprError(
                f"factorial_anova column {factor!r} has {df[factor].nunique()} level(s): "
                "expected at least 2 so its effect can be estimated."
            )
    model = smf.ols(FORMULA, data=df).fit()
    return anova_lm(model, typ=3)
