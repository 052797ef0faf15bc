import numpy as np
import pandas as pd
import pytest

from lprcausal.errors import LprError
from lprcausal.stats import factorial_anova

ACC = np.array(  # [w_src, lpr_src, seed]
    [[[90.0, 91.5, 89.0], [93.0, 94.5, 92.5]], [[90.5, 92.5, 90.5], [95.0, 96.0, 94.5]]]
)


def balanced_frame():
    rows = [
        {"acc": ACC[w, lpr, s], "w_src": "ab"[w], "lpr_src": "ab"[lpr], "seed": s}
        for w in range(2)
        for lpr in range(2)
        for s in range(3)
    ]
    return pd.DataFrame(rows)


def manual_sums_of_squares():
    # Balanced design: type-III sums of squares with sum contrasts equal the classic ones.
    g = ACC.mean()
    ss_w = 6 * ((ACC.mean(axis=(1, 2)) - g) ** 2).sum()
    ss_l = 6 * ((ACC.mean(axis=(0, 2)) - g) ** 2).sum()
    ss_seed = 4 * ((ACC.mean(axis=(0, 1)) - g) ** 2).sum()
    cell = ACC.mean(axis=2)
    inter = cell - ACC.mean(axis=(1, 2))[:, None] - ACC.mean(axis=(0, 2))[None, :] + g
    ss_int = 3 * (inter**2).sum()
    ss_res = ((ACC - g) ** 2).sum() - ss_w - ss_l - ss_seed - ss_int
    return ss_w, ss_l, ss_seed, ss_int, ss_res


def test_anova_table_has_expected_rows():
    table = factorial_anova(balanced_frame())
    assert list(table.index) == [
        "Intercept",
        "C(w_src, Sum)",
        "C(lpr_src, Sum)",
        "C(seed, Sum)",
        "C(w_src, Sum):C(lpr_src, Sum)",
        "Residual",
    ]


def test_anova_matches_manual_sums_of_squares_and_f():
    ss_w, ss_l, ss_seed, ss_int, ss_res = manual_sums_of_squares()
    table = factorial_anova(balanced_frame())
    df_res = 12 - 6  # 12 cells; intercept, w, lpr, 2 seed, interaction
    assert table.loc["Residual", "df"] == df_res
    assert table.loc["Residual", "sum_sq"] == pytest.approx(ss_res, rel=1e-9)
    for row, ss, df in [
        ("C(w_src, Sum)", ss_w, 1),
        ("C(lpr_src, Sum)", ss_l, 1),
        ("C(seed, Sum)", ss_seed, 2),
        ("C(w_src, Sum):C(lpr_src, Sum)", ss_int, 1),
    ]:
        assert table.loc[row, "sum_sq"] == pytest.approx(ss, rel=1e-9)
        assert table.loc[row, "F"] == pytest.approx((ss / df) / (ss_res / df_res), rel=1e-9)


def test_anova_rejects_missing_column():
    with pytest.raises(LprError, match="lpr_src"):
        factorial_anova(balanced_frame().drop(columns="lpr_src"))
