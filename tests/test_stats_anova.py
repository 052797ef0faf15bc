import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.anova import AnovaRM

from lprcausal.errors import LprError
from lprcausal.stats import factorial_anova, paired_t, within_seed_anova
from lprcausal.stats.anova import TERMS

ACC = np.array(  # [w_src, lpr_src, seed]
    [[[90.0, 91.5, 89.0], [93.0, 94.5, 92.5]], [[90.5, 92.5, 90.5], [95.0, 96.0, 94.5]]]
)


def long_frame(y=ACC):
    rows = [
        {"acc": y[w, lpr, s], "w_src": "ab"[w], "lpr_src": "ab"[lpr], "seed": s}
        for w in range(2)
        for lpr in range(2)
        for s in range(y.shape[2])
    ]
    return pd.DataFrame(rows)


def test_anova_table_has_each_effect_followed_by_its_error_stratum():
    table = factorial_anova(long_frame())
    assert list(table.index) == list(TERMS)
    assert list(table["df"]) == [2, 1, 2, 1, 2, 1, 2]


def test_anova_sums_of_squares_add_up_to_the_total():
    table = within_seed_anova(ACC)
    assert table["sum_sq"].sum() == pytest.approx(((ACC - ACC.mean()) ** 2).sum(), rel=1e-12)


def test_anova_matches_statsmodels_anova_rm():
    rng = np.random.default_rng(0)
    y = 0.9 + rng.normal(0, 0.01, (2, 2, 7)) + rng.normal(0, 0.02, 7)
    ours = within_seed_anova(y)
    ref = AnovaRM(long_frame(y), "acc", "seed", within=["w_src", "lpr_src"]).fit().anova_table
    for term in ("w_src", "lpr_src", "w_src:lpr_src"):
        assert ours.loc[term, "F"] == pytest.approx(ref.loc[term, "F Value"], rel=1e-9)
        assert ours.loc[term, "PR(>F)"] == pytest.approx(ref.loc[term, "Pr > F"], rel=1e-9)
        assert ours.loc[f"{term}:seed", "df"] == ref.loc[term, "Den DF"]


def test_each_f_is_the_square_of_the_paired_t_of_its_per_seed_contrast():
    y = ACC
    nde = ((y[1, 0] - y[0, 0]) + (y[1, 1] - y[0, 1])) / 2
    nie = ((y[0, 1] - y[0, 0]) + (y[1, 1] - y[1, 0])) / 2
    inter = (y[1, 1] - y[1, 0]) - (y[0, 1] - y[0, 0])
    table = within_seed_anova(y)
    for term, c in (("w_src", nde), ("lpr_src", nie), ("w_src:lpr_src", inter)):
        t = paired_t(c)
        assert table.loc[term, "F"] == pytest.approx(t.statistic**2, rel=1e-9)
        assert table.loc[term, "PR(>F)"] == pytest.approx(t.p, rel=1e-9)


def test_anova_on_identical_accuracies_has_no_f_tests():
    # 0/0 rounding noise once gave F = 6.9e31 (intercept) and F = 0.273 (w_src).
    y = np.full((2, 2, 8), 0.9)
    y[1, 0] = 0.3 + 0.6  # 0.8999999999999999: equal to 0.9 up to the last bit
    table = factorial_anova(long_frame(y))
    assert table["F"].isna().all() and table["PR(>F)"].isna().all()


def test_anova_drops_seeds_with_a_missing_cell():
    frame = long_frame()
    frame.loc[0, "acc"] = np.nan  # (a, a, seed 0)
    table = factorial_anova(frame)
    assert table.loc["w_src:seed", "df"] == 1
    np.testing.assert_allclose(table["sum_sq"], within_seed_anova(ACC[:, :, 1:])["sum_sq"])


def test_anova_rejects_missing_column():
    with pytest.raises(LprError, match="lpr_src"):
        factorial_anova(long_frame().drop(columns="lpr_src"))


def test_anova_rejects_a_factor_with_three_levels():
    frame = long_frame()
    frame.loc[0, "w_src"] = "c"
    with pytest.raises(LprError, match="'w_src' has 3 level"):
        factorial_anova(frame)


def test_anova_with_one_complete_seed_is_an_error():
    with pytest.raises(LprError, match="1 seed"):
        within_seed_anova(ACC[:, :, :1])
