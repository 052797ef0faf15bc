import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from stats_synthetic import FINDS, cells, decoupled_ds, transplant_ds
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from lprcausal.errors import LprError
from lprcausal.results.read import coupled_acc
from lprcausal.stats import analyses
from lprcausal.stats.analyses import (
    anova_dataset,
    correct,
    decoupled_design,
    decoupling_tests,
    diverged_summary,
    dose_fit,
    dose_response_tests,
    lpr_omnibus,
    lpr_tests,
    mediation_analysis,
)
from lprcausal.stats.anova import within_seed_anova
from lprcausal.stats.records import TestRecord


def random_acc(n_f=3, n_e=2, n_seeds=6, n_s=1, seed=0):
    return 0.9 + np.random.default_rng(seed).normal(0, 0.01, (n_f, n_e, n_seeds, n_s))


def family(records, name, **at):
    """Records of family ``name`` whose coords (or estimand) equal ``at``."""
    return [
        r
        for r in records
        if r.family == name
        and all((r.estimand if k == "estimand" else r.coords.get(k)) == v for k, v in at.items())
    ]


def one(records, name, **at):
    found = family(records, name, **at)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------- decoupled
def test_decoupled_minus_coupled_matches_scipy_paired_t():
    acc = random_acc()
    recs, _ = decoupling_tests(decoupled_ds(acc))
    rec = one(recs, "decoupled_vs_coupled", h_find="lr=0.01")
    dec, cpl = acc[0, 1, :, 0], acc[0, 0, :, 0]
    ref = stats.ttest_rel(dec, cpl)
    ci = ref.confidence_interval(0.95)
    assert rec.estimate == pytest.approx(np.mean(dec - cpl), rel=1e-12)
    assert rec.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert rec.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert (rec.ci_low, rec.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert rec.effect_size == pytest.approx(np.mean(dec - cpl) / np.std(dec - cpl, ddof=1))
    assert rec.coords == {"h_find": "lr=0.01", "h_eval": "lr=0.03", "sparsity": 0.8}


def test_decoupled_skips_the_h_find_that_has_the_h_of_the_fixed_h_eval():
    recs, _ = decoupling_tests(decoupled_ds(random_acc()))
    tested = [r.coords["h_find"] for r in family(recs, "decoupled_vs_coupled")]
    assert tested == ["lr=0.01", "lr=0.1"]


def test_reference_h_find_is_the_one_with_the_h_of_the_reference_h_eval():
    acc = random_acc()
    recs, warns = decoupling_tests(decoupled_ds(acc))
    rec = one(recs, "h_find_vs_reference", h_find="lr=0.1")
    assert rec.coords["reference"] == "lr=0.03"
    assert rec.estimand == "H_find - reference"
    assert rec.estimate == pytest.approx(np.mean(acc[2, 1, :, 0] - acc[1, 1, :, 0]))
    assert len(family(recs, "h_find_vs_reference")) == 2
    assert not any("reference" in w for w in warns)


def test_declared_reference_attrs_are_used():
    ds = decoupled_ds(
        random_acc(n_e=3),
        evals=("coupled", "lr=0.03", "lr=0.1"),
        attrs={"reference_h_find": "lr=0.01", "reference_h_eval": "lr=0.1"},
    )
    design = decoupled_design(ds)
    assert design.eval_arms == ("lr=0.1",)
    assert design.reference == {"lr=0.1": "lr=0.01"}


def test_without_configs_an_unmatched_reference_falls_back_to_the_first_with_a_warning():
    ds = decoupled_ds(random_acc(), evals=("coupled", "fixed"), configs=False)
    recs, warns = decoupling_tests(ds)
    assert {r.coords["reference"] for r in family(recs, "h_find_vs_reference")} == {"lr=0.01"}
    assert any("using the first H_find, 'lr=0.01'" in w for w in warns)


def test_fixed_only_h_eval_without_a_coupled_run_says_how_to_add_one():
    ds = decoupled_ds(random_acc(n_e=1), evals=("lr=0.05",))
    recs, warns = decoupling_tests(ds)
    assert family(recs, "decoupled_vs_coupled") == []
    assert len(family(recs, "h_find_vs_reference")) == 2
    assert any("coupled = true" in w for w in warns)
    assert coupled_acc(ds) is None


def test_h_eval_grid_equal_to_h_find_grid_uses_the_diagonal_as_coupled():
    acc = random_acc(n_e=3)
    recs, warns = decoupling_tests(decoupled_ds(acc, evals=FINDS))
    dvc = family(recs, "decoupled_vs_coupled")
    assert sorted((r.coords["h_find"], r.coords["h_eval"]) for r in dvc) == sorted(
        (f, e) for f in FINDS for e in FINDS if f != e
    )
    rec = one(recs, "decoupled_vs_coupled", h_find="lr=0.1", h_eval="lr=0.01")
    assert rec.estimate == pytest.approx(np.mean(acc[2, 0, :, 0] - acc[2, 2, :, 0]))
    # under each H_eval, the reference H_find is the one with that H (the coupled mask)
    refs = {r.coords["h_eval"]: r.coords["reference"] for r in family(recs, "h_find_vs_reference")}
    assert refs == {f: f for f in FINDS}
    assert any("each of the 3 fixed H_eval" in w for w in warns)


def test_coupled_acc_of_an_h_eval_grid_is_the_diagonal():
    acc = random_acc(n_e=3)
    c = coupled_acc(decoupled_ds(acc, evals=FINDS))
    np.testing.assert_array_equal(c.values, acc[[0, 1, 2], [0, 1, 2]])


def test_decoupled_effects_are_recovered_within_tolerance():
    rng = np.random.default_rng(1)
    effect = np.array([0.03, 0.0, -0.02])
    acc = 0.9 + rng.normal(0, 0.02, (1, 1, 10, 1)) + np.zeros((3, 2, 10, 1))
    acc[:, 1] += effect[:, None, None] + rng.normal(0, 0.004, (3, 10, 1))
    recs, _ = decoupling_tests(decoupled_ds(acc))
    for f, e in zip(FINDS, effect, strict=True):
        if f == "lr=0.03":
            continue
        rec = one(recs, "decoupled_vs_coupled", h_find=f)
        assert rec.estimate == pytest.approx(e, abs=0.004)
        assert rec.ci_low < e < rec.ci_high
        assert rec.p < 1e-6


def test_find_eval_ranking_is_minus_one_when_worse_find_gives_better_mask():
    finds = ("lr=0.01", "lr=0.03", "lr=0.1", "lr=0.3")
    acc = random_acc(n_f=4) * 0 + np.array([0.80, 0.82, 0.85, 0.90])[:, None, None, None]
    find_acc = np.zeros((4, 6, 1)) + np.array([0.99, 0.97, 0.95, 0.90])[:, None, None]
    recs, _ = decoupling_tests(decoupled_ds(acc, finds=finds, find_acc=find_acc))
    rho = one(recs, "find_eval_ranking")
    tau = one(recs, "find_eval_ranking_kendall")
    assert rho.estimate == pytest.approx(-1.0) and tau.estimate == pytest.approx(-1.0)
    # exact: of the 4! pairings only the observed one and its reverse reach |rho| = 1
    assert rho.p == pytest.approx(2 / 24) and tau.p == pytest.approx(2 / 24)
    assert rho.coords == {"h_eval": "lr=0.03", "sparsity": 0.8}


def test_find_eval_ranking_with_two_h_find_is_skipped_with_a_warning():
    acc = random_acc(n_f=2)
    ds = decoupled_ds(acc, finds=FINDS[:2], find_acc=np.ones((2, 6, 1)))
    recs, warns = decoupling_tests(ds)
    assert family(recs, "find_eval_ranking") == []
    assert any("needs >= 3 H_find" in w for w in warns)


def test_single_seed_gives_estimates_without_tests():
    acc = random_acc(n_seeds=1)
    recs, _ = decoupling_tests(decoupled_ds(acc))
    rec = one(recs, "decoupled_vs_coupled", h_find="lr=0.01")
    assert rec.estimate == pytest.approx(acc[0, 1, 0, 0] - acc[0, 0, 0, 0])
    assert math.isnan(rec.p) and rec.n == 1
    assert "no test was possible" in rec.note


def test_nan_from_a_diverged_run_drops_that_seed_only_and_is_counted():
    acc = random_acc()
    acc[0, 1, 2, 0] = np.nan
    ds = decoupled_ds(acc)
    recs, _ = decoupling_tests(ds)
    rec = one(recs, "decoupled_vs_coupled", h_find="lr=0.01")
    keep = np.arange(6) != 2
    assert rec.n == 5
    assert rec.estimate == pytest.approx(np.mean(acc[0, 1, keep, 0] - acc[0, 0, keep, 0]))
    assert "1 NaN value(s) dropped" in rec.note
    assert one(recs, "decoupled_vs_coupled", h_find="lr=0.1").n == 6
    assert diverged_summary(ds, "decoupled.nc").startswith("decoupled.nc: 1 of 36 eval runs")


def test_decoupled_without_acc_is_an_error_naming_the_variable():
    ds = decoupled_ds(random_acc()).rename({"acc": "accuracy"})
    with pytest.raises(LprError, match=r"decoupled.nc has no variable 'acc'"):
        decoupling_tests(ds)


def test_decoupled_acc_with_wrong_dims_is_an_error():
    ds = decoupled_ds(random_acc()).isel(sparsity=0, drop=True)
    with pytest.raises(LprError, match=r"dims \('h_find', 'h_eval', 'seed'\)"):
        decoupling_tests(ds)


# ---------------------------------------------------------------------------- LPR
def lpr_values(n_f=3, n_seeds=5, n_s=1, n_l=2, seed=0):
    return 0.8 + np.random.default_rng(seed).normal(0, 0.01, (n_f, n_seeds, n_s, n_l))


def test_lpr_layer_differences_match_scipy_paired_t():
    lpr = lpr_values()
    ds = decoupled_ds(random_acc(n_seeds=5), lpr=lpr)
    recs, _ = lpr_tests(ds)
    rec = one(recs, "lpr_layers", h_find="lr=0.1", layer="fc2.weight")
    ref = stats.ttest_rel(lpr[2, :, 0, 1], lpr[1, :, 0, 1])
    assert rec.coords["reference"] == "lr=0.03"
    assert rec.estimate == pytest.approx(np.mean(lpr[2, :, 0, 1] - lpr[1, :, 0, 1]))
    assert rec.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert len(family(recs, "lpr_layers")) == 2 * 2


def brute_force_omnibus_p(x):
    """Every relabelling of H_find within each seed, enumerated directly."""

    def spread(y):
        m = y.mean(axis=1)
        return sum(np.abs(m[i] - m[j]).sum() for i, j in itertools.combinations(range(len(m)), 2))

    observed = spread(x)
    n_h, n_seeds, _ = x.shape
    count = total = 0
    for perms in itertools.product(itertools.permutations(range(n_h)), repeat=n_seeds):
        y = np.stack([x[list(p), s] for s, p in enumerate(perms)], axis=1)
        count += spread(y) >= observed - 1e-12
        total += 1
    return count / total


def test_lpr_omnibus_exact_p_matches_brute_force_enumeration():
    x = np.random.default_rng(3).normal(0, 1, (3, 3, 2))
    x[2] += 0.8
    rec = lpr_omnibus(x)
    assert rec.p == pytest.approx(brute_force_omnibus_p(x), abs=1e-12)
    assert rec.estimate == pytest.approx(rec.statistic)
    assert "exact: all 36 label arrangements" in rec.note


def test_lpr_omnibus_monte_carlo_is_close_to_the_exact_p():
    x = np.random.default_rng(4).normal(0, 1, (3, 4, 2))
    exact = lpr_omnibus(x).p
    mc = lpr_omnibus(x, n_perm=100)  # 6^3 = 216 arrangements > 100: Monte Carlo
    assert "Monte Carlo" in mc.note
    assert mc.p == pytest.approx(exact, abs=0.15)


def test_lpr_omnibus_with_one_seed_is_not_a_test():
    rec = lpr_omnibus(np.ones((3, 1, 2)))
    assert math.isnan(rec.p)
    assert "no test was possible" in rec.note


def test_lpr_omnibus_drops_seeds_with_a_missing_ratio():
    x = np.random.default_rng(5).normal(0, 1, (2, 4, 2))
    x[0, 1, 0] = np.nan
    rec = lpr_omnibus(x)
    assert rec.n == 3
    assert rec.p == pytest.approx(brute_force_omnibus_p(x[:, [0, 2, 3]]))


def test_lpr_tests_without_lpr_warn_and_return_nothing():
    recs, warns = lpr_tests(decoupled_ds(random_acc()))
    assert recs == [] and "no lpr" in warns[0]


# ---------------------------------------------------------------------------- mediation
def test_mediation_contrasts_match_scipy_one_sample_t():
    y = cells(7, {(1, 1): 0.02})
    recs = mediation_analysis(transplant_ds(y[None, ..., None]))
    te = one(recs, "mediation_contrasts", pair="lr=0.1->lr=0.01", estimand="TE")
    ref = stats.ttest_1samp(y[1, 1] - y[0, 0], 0.0)
    assert te.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert te.p == pytest.approx(ref.pvalue, rel=1e-10)
    names = [r.estimand for r in family(recs, "mediation_contrasts")]
    assert names == ["NIE", "TE", "NIE_a", "NIE_b", "NDE_a", "NDE_b", "INT"]


def test_primary_mediation_family_is_one_nie_test_per_pair_over_the_sparsities():
    rng = np.random.default_rng(21)
    y = 0.9 + rng.normal(0, 0.01, (2, 2, 2, 6, 3))  # pair, w, lpr, seed, sparsity
    pairs = ("a0->b0", "a1->b1")
    recs = mediation_analysis(transplant_ds(y, pairs=pairs, sparsities=(0.5, 0.8, 0.9)))
    primary = family(recs, "mediation")
    assert [(r.estimand, r.coords["pair"]) for r in primary] == [("NIE", p) for p in pairs]
    assert all("sparsity" not in r.coords for r in primary)
    nie = ((y[1, 0, 1] - y[1, 0, 0]) + (y[1, 1, 1] - y[1, 1, 0])) / 2  # pair 1: (seed, sparsity)
    ref = stats.ttest_1samp(nie.mean(axis=1), 0.0)
    assert primary[1].p == pytest.approx(ref.pvalue, rel=1e-10)
    assert "averaged over 3 sparsities" in primary[1].note
    per_cell = one(recs, "mediation_contrasts", pair="a1->b1", sparsity=0.8, estimand="NIE")
    assert per_cell.p == pytest.approx(stats.ttest_1samp(nie[:, 1], 0.0).pvalue, rel=1e-10)


def test_total_effect_equals_indirect_plus_direct_for_the_estimates():
    y = cells(6, {(0, 1): 0.01, (1, 0): 0.02, (1, 1): 0.05}, seed=2)
    est = {
        r.estimand: r.estimate
        for r in family(
            mediation_analysis(transplant_ds(y[None, ..., None])), "mediation_contrasts"
        )
    }
    assert est["TE"] == pytest.approx(est["NIE_b"] + est["NDE_a"], abs=1e-12)
    assert est["TE"] == pytest.approx(est["NIE_a"] + est["NDE_b"], abs=1e-12)
    assert est["INT"] == pytest.approx(est["NIE_b"] - est["NIE_a"], abs=1e-12)
    assert est["NIE"] == pytest.approx((est["NIE_a"] + est["NIE_b"]) / 2, abs=1e-12)


def test_mediation_recovers_a_pure_lpr_effect():
    # acc follows the LPR source only: NIE = 0.04, NDE = 0, all of TE mediated
    y = cells(12, {(0, 1): 0.04, (1, 1): 0.04}, noise=0.002, seed=3)
    recs = mediation_analysis(transplant_ds(y[None, ..., None]), tost_margin=0.01)
    est = {r.estimand: r for r in family(recs, "mediation_contrasts")}
    assert one(recs, "mediation").p < 1e-6
    assert est["NIE_a"].estimate == pytest.approx(0.04, abs=0.003)
    assert est["NIE_b"].estimate == pytest.approx(0.04, abs=0.003)
    assert est["NDE_a"].estimate == pytest.approx(0.0, abs=0.003)
    pm = one(recs, "proportion_mediated")
    assert pm.estimate == pytest.approx(1.0, abs=0.1)
    assert pm.ci_low < 1.0 < pm.ci_high
    tost = family(recs, "direct_effect_equivalence")
    assert [r.estimand for r in tost] == ["|NDE_a| < margin", "|NDE_b| < margin"]
    assert all(r.p < 0.05 for r in tost)


def test_proportion_mediated_says_not_reported_once_when_te_includes_zero():
    y = cells(5, {}, seed=4)
    pm = one(mediation_analysis(transplant_ds(y[None, ..., None])), "proportion_mediated")
    assert math.isnan(pm.estimate)
    assert pm.note.count("not reported") == 1


def test_tost_matches_statsmodels_ttost_paired():
    y = cells(8, {(1, 0): 0.004}, seed=5)
    recs = mediation_analysis(transplant_ds(y[None, ..., None]), tost_margin=0.02)
    rec = family(recs, "direct_effect_equivalence")[0]
    p, _, _ = ttost_paired(y[1, 0], y[0, 0], -0.02, 0.02)
    assert rec.p == pytest.approx(p, rel=1e-10)


def test_anova_dataset_is_the_within_seed_anova_of_each_cell():
    y = cells(5, {(0, 1): 0.02, (1, 1): 0.05}, seed=6)
    anova, warns = anova_dataset(transplant_ds(y[None, ..., None]))
    table = within_seed_anova(y)
    got = anova.isel(pair=0, sparsity=0)
    assert list(got["term"].values) == list(table.index)
    np.testing.assert_allclose(got["F"].values, table["F"].values, rtol=1e-12)
    np.testing.assert_allclose(got["p"].values, table["PR(>F)"].values, rtol=1e-12)
    np.testing.assert_allclose(got["sum_sq"].values, table["sum_sq"].values, rtol=1e-12)
    assert int(got["n"]) == 5 and warns == []


def test_anova_needs_two_complete_seeds_and_warns_otherwise():
    y = cells(2, {}, seed=7)
    y[0, 1, 1] = np.nan
    anova, warns = anova_dataset(transplant_ds(y[None, ..., None]))
    assert np.isnan(anova["F"].values).all()
    assert int(anova["n"].values[0, 0]) == 1
    assert "1 seed(s) with all four cells" in warns[0]


def test_transplant_roles_other_than_a_b_are_an_error():
    ds = transplant_ds(cells(3, {})[None, ..., None]).assign_coords(w_src=["x", "y"])
    with pytest.raises(LprError, match="coordinate 'w_src'"):
        mediation_analysis(ds)


# ---------------------------------------------------------------------------- dose-response
ALPHAS = (0.0, 0.25, 0.5, 1.0)


def dose_values(n_seeds=6, slope=0.02, seed=0):
    rng = np.random.default_rng(seed)
    a = np.array(ALPHAS)
    return 0.8 + slope * a[:, None] + rng.normal(0, 0.01, (len(a), n_seeds))  # (alpha, seed)


def test_dose_response_matches_scipy_page_and_per_seed_slopes():
    dose = dose_values()
    tds = transplant_ds(
        cells(6, {})[None, ..., None], acc_alpha=dose[None, ..., None], alphas=ALPHAS
    )
    recs, warns = dose_response_tests(tds)
    page, slope = family(recs, "dose_response")
    y = dose.T
    p_up = stats.page_trend_test(y).pvalue
    p_down = stats.page_trend_test(y[:, ::-1]).pvalue
    assert page.p == pytest.approx(min(1.0, 2 * min(p_up, p_down)), rel=1e-12)
    assert page.statistic == stats.page_trend_test(y).statistic
    slopes = [np.polyfit(ALPHAS, row, 1)[0] for row in y]
    assert slope.estimate == pytest.approx(np.mean(slopes), rel=1e-9)
    assert slope.p == pytest.approx(stats.ttest_1samp(slopes, 0).pvalue, rel=1e-9)
    assert warns == []


def test_dose_response_detects_a_decreasing_trend_two_sided():
    dose = dose_values(slope=-0.05, n_seeds=8)
    tds = transplant_ds(
        cells(8, {})[None, ..., None], acc_alpha=dose[None, ..., None], alphas=ALPHAS
    )
    page, slope = family(dose_response_tests(tds)[0], "dose_response")
    assert page.p < 0.01 and page.estimate < 0
    assert slope.estimate == pytest.approx(-0.05, abs=0.02)


def test_dose_response_sorts_alphas_given_out_of_order():
    dose = dose_values()
    order = [2, 0, 3, 1]
    tds = transplant_ds(
        cells(6, {})[None, ..., None],
        acc_alpha=dose[order][None, ..., None],
        alphas=[ALPHAS[i] for i in order],
    )
    recs, _ = dose_response_tests(tds)
    assert family(recs, "dose_response")[1].estimate == pytest.approx(
        np.mean([np.polyfit(ALPHAS, row, 1)[0] for row in dose.T]), rel=1e-9
    )


def test_page_trend_decreasing_is_the_increasing_test_on_reversed_alphas():
    from lprcausal.stats import page_trend

    y = dose_values(slope=-0.03).T
    down = page_trend(y, alternative="decreasing")
    assert down.p == pytest.approx(stats.page_trend_test(y[:, ::-1]).pvalue, rel=1e-12)
    assert down.statistic == stats.page_trend_test(y).statistic
    with pytest.raises(LprError, match="alternative"):
        page_trend(y, alternative="up")


def test_dose_fit_stores_seed_means_and_their_isotonic_fit():
    dose = dose_values(n_seeds=3, slope=0.0, seed=1)
    dose[:, :] = np.array([0.80, 0.82, 0.81, 0.85])[:, None]
    dose[:, 1] += 0.01
    tds = transplant_ds(
        cells(3, {})[None, ..., None], acc_alpha=dose[None, ..., None], alphas=ALPHAS
    )
    fit = dose_fit(tds).isel(pair=0, sparsity=0)
    mean = dose.mean(axis=1)
    np.testing.assert_allclose(fit["acc_mean"].values, mean, rtol=1e-12)
    # 0.82 and 0.81 violate the increase: pooled to their mean
    pooled = (mean[1] + mean[2]) / 2
    np.testing.assert_allclose(
        fit["acc_isotonic"].values, [mean[0], pooled, pooled, mean[3]], rtol=1e-12
    )
    assert str(fit["direction"].values) == "increasing"
    assert list(fit["n"].values) == [3, 3, 3, 3]


def test_constant_dose_rows_leak_no_scipy_warning():
    dose = np.full((3, 4), 0.8)
    dose[2, 1] = 0.81
    tds = transplant_ds(
        cells(4, {})[None, ..., None], acc_alpha=dose[None, ..., None], alphas=(0.0, 0.5, 1.0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recs, _ = dose_response_tests(tds)
    assert "constant accuracy" in family(recs, "dose_response")[0].note


def test_missing_acc_alpha_warns_naming_the_study_option():
    recs, warns = dose_response_tests(transplant_ds(cells(3, {})[None, ..., None]))
    assert recs == []
    assert "no acc_alpha" in warns[0] and "alphas = [" in warns[0] and "[transplant]" in warns[0]


def test_two_alphas_give_slopes_but_no_page_test():
    dose = dose_values()[[0, 3]]
    tds = transplant_ds(
        cells(6, {})[None, ..., None], acc_alpha=dose[None, ..., None], alphas=(0.0, 1.0)
    )
    recs, warns = dose_response_tests(tds)
    assert [r.estimand for r in recs] == ["slope per alpha"]
    assert "Page's trend test needs >= 3" in warns[0]


# ---------------------------------------------------------------------------- families
def test_correct_adjusts_each_family_over_its_flattened_p_values():
    acc = random_acc(n_s=2)
    recs, _ = decoupling_tests(decoupled_ds(acc, sparsities=(0.5, 0.8)))
    correct(recs)
    dvc = family(recs, "decoupled_vs_coupled")
    expected = multipletests([r.p for r in dvc], method="fdr_bh")[1]
    np.testing.assert_allclose([r.p_adj for r in dvc], expected, rtol=1e-12)
    assert {r.correction for r in dvc} == {"fdr_bh"}
    assert len(dvc) == 4  # 2 H_find x 2 sparsities, corrected together


def test_correct_uses_holm_for_preregistered_bh_for_exploratory_none_for_estimates():
    y = cells(6, {(1, 1): 0.05}, seed=8)
    tds = transplant_ds(np.stack([y, y[::-1]])[..., None], pairs=("a->b", "c->d"))
    recs = correct(mediation_analysis(tds))
    med = family(recs, "mediation")
    assert len(med) == 2
    np.testing.assert_allclose(
        [r.p_adj for r in med], multipletests([r.p for r in med], method="holm")[1]
    )
    contrasts = family(recs, "mediation_contrasts")
    assert len(contrasts) == 14
    np.testing.assert_allclose(
        [r.p_adj for r in contrasts],
        multipletests([r.p for r in contrasts], method="fdr_bh")[1],
    )
    pm = one(recs, "proportion_mediated", pair="a->b")
    assert pm.correction == "none" and math.isnan(pm.p_adj)


def test_correct_rejects_an_undeclared_family():
    rec = TestRecord(
        estimand="x",
        estimate=0.0,
        ci_low=0.0,
        ci_high=0.0,
        ci_level=0.95,
        ci_method="t",
        statistic=0.0,
        df=1.0,
        p=0.5,
        n=2,
        test="t",
        library="",
        family="made_up",
    )
    with pytest.raises(LprError, match="'made_up' is not declared"):
        correct([rec])


def test_every_family_declares_a_known_correction():
    for spec in analyses.FAMILIES.values():
        assert spec.correction in ("holm", "fdr_bh", "none")


# ---------------------------------------------------------------------------- null calibration
N_NULL = 400


def test_decoupled_paired_t_false_positive_rate_is_near_alpha_under_the_null():
    # 400 H_find with no decoupling effect: 400 independent null decoupled-vs-coupled tests
    rng = np.random.default_rng(11)
    finds = tuple(f"h{i}" for i in range(N_NULL))
    acc = 0.9 + rng.normal(0, 0.02, (1, 1, 8, 1)) + rng.normal(0, 0.01, (N_NULL, 2, 8, 1))
    ds = decoupled_ds(acc, finds=finds, evals=("coupled", "fixed"), configs=False)
    recs, _ = decoupling_tests(ds)
    dvc = family(recs, "decoupled_vs_coupled")
    assert len(dvc) == N_NULL
    assert 0.02 <= np.mean([r.p < 0.05 for r in dvc]) <= 0.08
    assert np.mean([r.p_perm < 0.05 for r in dvc]) <= 0.08


def test_mediation_false_positive_rate_is_near_alpha_under_the_null():
    rng = np.random.default_rng(12)
    y = 0.9 + rng.normal(0, 0.02, (N_NULL, 1, 1, 8, 1)) + rng.normal(0, 0.01, (N_NULL, 2, 2, 8, 1))
    pairs = tuple(f"a{i}->b{i}" for i in range(N_NULL))
    recs = mediation_analysis(transplant_ds(y, pairs=pairs))
    for name in ("TE", "NIE_a", "NDE_b"):
        p = [r.p for r in family(recs, "mediation_contrasts") if r.estimand == name]
        assert 0.02 <= np.mean(np.array(p) < 0.05) <= 0.08, name


def test_lpr_omnibus_false_positive_rate_is_near_alpha_under_the_null():
    rng = np.random.default_rng(13)
    p = [lpr_omnibus(rng.normal(0, 1, (3, 5, 3))).p for _ in range(N_NULL)]
    assert 0.02 <= np.mean(np.array(p) < 0.05) <= 0.08


def test_page_two_sided_false_positive_rate_is_near_alpha_under_the_null():
    rng = np.random.default_rng(14)
    alphas = (0.0, 0.25, 0.5, 0.75, 1.0)
    dose = rng.normal(0, 1, (N_NULL, 5, 8, 1))
    tds = transplant_ds(
        np.zeros((N_NULL, 2, 2, 8, 1)),
        pairs=tuple(f"a{i}->b{i}" for i in range(N_NULL)),
        acc_alpha=dose,
        alphas=alphas,
    )
    recs, _ = dose_response_tests(tds)
    p = [r.p for r in recs if r.test.startswith("Page")]
    assert len(p) == N_NULL
    assert 0.02 <= np.mean(np.array(p) < 0.05) <= 0.08


@pytest.mark.parametrize("method", ["holm", "fdr_bh", "bonferroni"])
def test_adjust_agrees_with_statsmodels_on_random_p_with_ties(method):
    from lprcausal.stats import adjust

    rng = np.random.default_rng(15)
    p = rng.uniform(size=40) ** 3
    p[:10] = p[0]
    np.testing.assert_allclose(
        adjust(p, method), multipletests(p, method=method)[1], rtol=0, atol=1e-15
    )
