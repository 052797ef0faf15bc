import dataclasses
import io
import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from stats_synthetic import cells, decoupled_ds, example_results, transplant_ds

from lprcausal.cli import main
from lprcausal.errors import LprError
from lprcausal.results.io import load_dataset, save_dataset
from lprcausal.stats.render import fmt_p, fmt_value, latex_escape, records_frame, render
from lprcausal.stats.report import analyze, analyze_results, family_dataset, write_stats


@pytest.fixture(scope="module")
def example():
    dec, tp = example_results()
    return analyze({"decoupled": dec, "transplant": tp}, source="results/example")


@pytest.fixture
def results_dir(tmp_path):
    dec, tp = example_results()
    save_dataset(dec, tmp_path / "decoupled.nc")
    save_dataset(tp, tmp_path / "transplant.nc")
    return tmp_path


# ---------------------------------------------------------------------------- analyze
def test_analyze_runs_every_family_on_complete_results(example):
    families = set(example.stats["family"].values.tolist())
    assert families == {
        "decoupled_vs_coupled",
        "h_find_vs_reference",
        "find_eval_ranking",
        "find_eval_ranking_kendall",
        "lpr_layers",
        "lpr_omnibus",
        "mediation",
        "mediation_contrasts",
        "proportion_mediated",
        "direct_effect_equivalence",
        "dose_response",
    }


def test_stats_dataset_records_carry_adjusted_p_correction_and_family(example):
    s = example.stats
    tested = s["correction"].values != "none"
    assert np.isfinite(s["p_adj"].values[tested & np.isfinite(s["p"].values)]).all()
    assert set(s["correction"].values.tolist()) == {"holm", "fdr_bh", "none"}
    for name in (
        "estimate",
        "ci_low",
        "ci_high",
        "statistic",
        "df",
        "p",
        "p_adj",
        "n",
        "effect_size",
        "ci_level",
        "ci_method",
        "test",
        "library",
    ):
        assert name in s
    for coord in (
        "family",
        "estimand",
        "pair",
        "h_find",
        "reference",
        "h_eval",
        "sparsity",
        "layer",
    ):
        assert s[coord].dims == ("record",)


def test_stats_attrs_name_families_libraries_level_and_selection(example):
    attrs = example.stats.attrs
    assert json.loads(attrs["families"])["mediation"]["correction"] == "holm"
    assert "statsmodels" in attrs["libraries"] and "scipy" in attrs["libraries"]
    assert attrs["ci_level"] == 0.95 and attrs["alpha"] == 0.05
    assert attrs["tost_margin"] == 0.01
    assert "every test" in attrs["selection"]
    assert json.loads(attrs["warnings"]) == example.warnings


def test_decoupled_estimate_in_stats_is_the_mean_paired_difference():
    dec, _ = example_results()
    res = analyze({"decoupled": dec})
    d = family_dataset(res.stats, "decoupled_vs_coupled")
    acc = dec["acc"]
    expected = (acc.sel(h_eval="lr=0.03") - acc.sel(h_eval="coupled")).mean("seed")
    got = d["estimate"].sel(h_find="lr=0.01", sparsity=0.5)
    assert float(got) == pytest.approx(float(expected.sel(h_find="lr=0.01", sparsity=0.5)))
    assert float(got) == pytest.approx(0.02, abs=0.003)  # built in by example_results


def test_family_dataset_unstacks_into_named_dims(example):
    med = family_dataset(example.stats, "mediation_contrasts")
    assert med["estimate"].dims == ("estimand",)
    assert list(med["estimand"].values) == ["NIE", "TE", "NIE_a", "NIE_b", "NDE_a", "NDE_b", "INT"]
    assert str(med["pair"].values) == "lr=0.1->lr=0.01"
    layers = family_dataset(example.stats, "lpr_layers")
    assert set(layers["p_adj"].dims) == {"sparsity", "h_find", "layer"}
    assert "h_eval" not in layers.coords  # unused by this family


def test_family_dataset_of_an_unknown_family_is_an_error(example):
    with pytest.raises(LprError, match="family = 'nope'"):
        family_dataset(example.stats, "nope")


def test_dose_fit_and_anova_come_with_the_transplant(example):
    assert set(example.dose_fit.data_vars) >= {"acc_mean", "acc_isotonic", "slope"}
    assert example.anova["F"].dims == ("pair", "sparsity", "term")


def test_few_seeds_warn_that_sign_flip_cannot_reach_alpha():
    dec, _ = example_results(n_seeds=3)
    warns = analyze({"decoupled": dec}).warnings
    text = next(w for w in warns if "sign-flip" in w)
    assert "n = 3 seeds" in text and "cannot go below 0.25" in text and ">= 6 seeds" in text


def test_six_seeds_do_not_warn_about_the_sign_flip_floor(example):
    assert not any("sign-flip" in w for w in example.warnings)


def test_single_seed_warns_and_still_reports_estimates():
    dec, tp = example_results(n_seeds=1)
    res = analyze({"decoupled": dec, "transplant": tp})
    assert any("1 seed: no paired test is possible" in w for w in res.warnings)
    contrasts = family_dataset(res.stats, "mediation_contrasts")
    assert np.isfinite(contrasts["estimate"].sel(estimand="TE"))
    assert np.isnan(contrasts["p"]).all()
    assert np.isnan(family_dataset(res.stats, "mediation")["p"]).all()


def test_diverged_runs_are_counted_in_the_warnings():
    dec, tp = example_results()
    acc = dec["acc"].values.copy()
    acc[0, 1, 0, 0] = acc[2, 0, 3, 1] = np.nan
    dec["acc"].values = acc
    dec["diverged"].values = np.isnan(acc)
    warns = analyze({"decoupled": dec, "transplant": tp}).warnings
    assert any(w.startswith("decoupled.nc: 2 of 72 eval runs diverged") for w in warns)


def test_proportion_mediated_has_a_fieller_interval_and_no_bootstrap_warning():
    y = cells(6, {(0, 1): 0.05, (1, 1): 0.05}, noise=0.002)
    res = analyze({"transplant": transplant_ds(y[None, ..., None])})
    pm = family_dataset(res.stats, "proportion_mediated")
    assert str(pm["ci_method"].values) == "Fieller (t)"
    assert float(pm["ci_low"]) < float(pm["estimate"]) < float(pm["ci_high"])
    assert not any("bootstrap" in w for w in res.warnings)
    assert any("no decoupled.nc" in w for w in res.warnings)


def test_missing_transplant_is_a_warning_naming_the_spec_table():
    dec, _ = example_results()
    warns = analyze({"decoupled": dec}).warnings
    assert any("no transplant.nc" in w and "[transplant]" in w for w in warns)


def test_analysis_leaks_no_python_warnings():
    dec, tp = example_results(n_seeds=3)
    tp["acc_alpha"][:] = 0.8  # constant rows: scipy would warn about Spearman's rho
    tp["acc"][:] = 0.8  # sd = 0 contrasts
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyze({"decoupled": dec, "transplant": tp})


@pytest.mark.parametrize(
    ("level", "margin", "field"),
    [
        (1.0, 0.01, "--level"),
        (0.4, 0.01, "--level"),
        (0.95, 0.0, "--tost-margin"),
        (0.95, 5.0, "--tost-margin"),
    ],
)
def test_bad_options_are_errors_naming_the_option(level, margin, field):
    dec, _ = example_results()
    with pytest.raises(LprError, match=field):
        analyze({"decoupled": dec}, level=level, tost_margin=margin)


def test_level_sets_interval_level_and_alpha():
    dec, _ = example_results()
    s = analyze({"decoupled": dec}, level=0.9).stats
    t_levels = s["ci_level"].values[s["ci_method"].values == "t"]
    assert set(t_levels.tolist()) == {0.9}
    assert s.attrs["alpha"] == pytest.approx(0.1)


# ---------------------------------------------------------------------------- files
def test_write_stats_saves_netcdf_files_that_load_back(example, tmp_path):
    paths = write_stats(tmp_path, example)
    assert sorted(p.name for p in paths) == ["anova.nc", "dose_fit.nc", "stats.nc"]
    back = load_dataset(tmp_path / "stats.nc")
    np.testing.assert_array_equal(back["p_adj"].values, example.stats["p_adj"].values)
    assert list(back["family"].values) == list(example.stats["family"].values)


def test_a_path_that_is_not_a_directory_is_an_error(tmp_path):
    with pytest.raises(LprError, match="is not a directory"):
        analyze_results(tmp_path / "missing")


def test_a_directory_without_results_is_an_error(tmp_path):
    with pytest.raises(LprError, match="holds no decoupled.nc or transplant.nc"):
        analyze_results(tmp_path)


# ---------------------------------------------------------------------------- render
def test_table_fits_in_100_columns_and_groups_by_family(example):
    text = render(example, "table")
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "== mediation: Holm over 1 test (pre-registered) ==" in text
    assert "== mediation_contrasts: Benjamini-Hochberg over 7 tests (exploratory) ==" in text
    assert "== decoupled_vs_coupled: Benjamini-Hochberg over 4 tests (exploratory) ==" in text
    assert "-- H_eval lr=0.03, sparsity 0.5" in text
    assert "No selection: every test of every family is reported" in text


def test_table_says_proportion_not_reported_only_once():
    y = cells(4, {}, seed=4)
    res = analyze({"transplant": transplant_ds(y[None, ..., None])})
    assert render(res, "table").count("not reported") == 1


def test_table_shows_the_equivalence_verdict():
    y = cells(12, {(0, 1): 0.04, (1, 1): 0.04}, noise=0.002, seed=3)
    text = render(analyze({"transplant": transplant_ds(y[None, ..., None])}), "table")
    section = text[text.index("== direct_effect_equivalence") :]
    assert section.count("shown") >= 2 and "not shown" not in section.split("==")[2]


def test_table_starts_with_the_warnings():
    dec, _ = example_results(n_seeds=3)
    res = analyze({"decoupled": dec})
    lines = render(res, "table").splitlines()
    assert lines[0].startswith("warning: no transplant.nc")
    assert any(line.startswith("warning: n = 3 seeds") for line in lines[:6])


def test_csv_has_one_row_per_record_with_every_field(example):
    frame = pd.read_csv(io.StringIO(render(example, "csv")), keep_default_na=False)
    assert len(frame) == example.stats.sizes["record"]
    assert {"family", "estimand", "p", "p_adj", "ci_method", "note"} <= set(frame.columns)


def test_json_carries_records_warnings_families_and_anova(example):
    payload = json.loads(render(example, "json"))
    assert len(payload["records"]) == example.stats.sizes["record"]
    assert payload["warnings"] == example.warnings
    assert payload["families"]["lpr_layers"]["correction"] == "fdr_bh"
    assert {row["term"] for row in payload["anova"]} >= {"w_src", "w_src:seed"}


def test_json_keeps_every_digit_of_tiny_p_values(example):
    # pandas' to_json rounds to 10 decimals: p = 3.83e-11 came out as 0.0.
    stats = example.stats.copy(deep=True)
    tiny = [3.83e-11, 3.3e-13, 3.8e-15, 1.9e-12, 1.2345678901234567e-300]
    stats["p"].values[: len(tiny)] = tiny
    stats["p_adj"].values[0] = 3.83e-11
    anova = example.anova.copy(deep=True)
    anova["p"].values.flat[0] = 1.9e-12
    result = dataclasses.replace(example, stats=stats, anova=anova)
    payload = json.loads(render(result, "json"))
    assert [row["p"] for row in payload["records"][: len(tiny)]] == tiny
    assert payload["records"][0]["p_adj"] == 3.83e-11
    assert 1.9e-12 in [row["p"] for row in payload["anova"]]
    assert math.isnan(stats["p"].values[-1]) == (payload["records"][-1]["p"] is None)


def test_latex_is_one_tabular_per_family_with_escaped_text(example):
    text = render(example, "latex")
    assert text.count("\\begin{tabular}") == 11
    assert "NIE\\_a" in text and "lr=0.1$\\to$lr=0.01" in text


def test_markdown_is_one_github_table_per_family_with_adjusted_p(example):
    text = render(example, "markdown")
    families = list(dict.fromkeys(example.stats["family"].values.tolist()))
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert [h.split(":")[0][4:] for h in headings[:-1]] == families
    assert headings[-1].startswith("### Within-seed ANOVA")
    assert "### mediation: Holm over 1 test (pre-registered)" in headings
    lines = text.splitlines()
    for heading in headings:
        start = lines.index(heading)
        header = next(line for line in lines[start:] if line.startswith("| "))
        rule = lines[lines.index(header, start) + 1]
        assert set(rule.replace("|", "").split()) <= {"---", "---:"}
        if "Holm" in heading or "Benjamini" in heading:
            assert "| adjusted p |" in header


def test_markdown_rows_escape_pipes_and_every_footnote_is_defined(example):
    text = render(example, "markdown")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert any("\\|NDE_a\\| < margin" in row for row in rows)
    for block in text.split("\n\n"):
        table = [line for line in block.splitlines() if line.startswith("| ")]
        cols = {line.replace("\\|", "").count("|") for line in table}
        assert len(cols) <= 1, block  # every row of a table has the same number of cells
    refs = set(re.findall(r"\[\^(\d+)\](?!:)", text))
    defined = set(re.findall(r"^\[\^(\d+)\]:", text, flags=re.M))
    assert refs and refs == defined


def test_unknown_format_is_an_error(example):
    with pytest.raises(LprError, match="--format = 'xml'"):
        render(example, "xml")


def test_records_frame_drops_coords_no_record_uses():
    dec, _ = example_results()
    frame = records_frame(analyze({"decoupled": dec}).stats)
    assert "pair" not in frame.columns and "layer" in frame.columns


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.012345, "0.0123"),
        (-0.5, "-0.5000"),
        (0.0, "0.0000"),
        (12345.0, "1.23e+04"),
        (1e-6, "1e-06"),
        (math.nan, ""),
    ],
)
def test_fmt_value(value, text):
    assert fmt_value(value) == text


@pytest.mark.parametrize(
    ("p", "text"), [(0.04567, "0.046"), (1.0, "1.000"), (4.6e-8, "5e-08"), (math.nan, "")]
)
def test_fmt_p(p, text):
    assert fmt_p(p) == text


def test_latex_escape_handles_special_characters():
    assert latex_escape("a_b & 5% #1 ->") == "a\\_b \\& 5\\% \\#1 $\\to$"


# ---------------------------------------------------------------------------- CLI
def test_cli_prints_the_table_and_writes_stats(results_dir, capsys):
    main(["stats", str(results_dir)])
    out = capsys.readouterr().out
    assert "== mediation: Holm over 1 test" in out
    assert "stats written to" in out
    assert (results_dir / "stats.nc").is_file() and (results_dir / "dose_fit.nc").is_file()


@pytest.mark.parametrize("fmt", ["csv", "json", "latex", "markdown", "table"])
def test_cli_each_format_prints_to_stdout(results_dir, capsys, fmt):
    main(["stats", str(results_dir), "--format", fmt, "--no-write"])
    out = capsys.readouterr().out
    if fmt == "csv":
        assert out.startswith("family,estimand,")
    elif fmt == "json":
        assert "records" in json.loads(out)
    elif fmt == "latex":
        assert "\\begin{tabular}" in out
    elif fmt == "markdown":
        assert out.startswith("## Statistical tests") and "| --- |" in out
    else:
        assert "== mediation" in out
    assert not (results_dir / "stats.nc").exists()


def test_cli_csv_sends_warnings_to_stderr(tmp_path, capsys):
    dec, _ = example_results(n_seeds=3)
    save_dataset(dec, tmp_path / "decoupled.nc")
    main(["stats", str(tmp_path), "--format", "csv"])
    captured = capsys.readouterr()
    assert "warning: n = 3 seeds" in captured.err
    assert "warning" not in captured.out
    assert "stats written to" in captured.err


def test_cli_tost_margin_reaches_the_records(results_dir, capsys):
    main(["stats", str(results_dir), "--format", "json", "--tost-margin", "0.02", "--no-write"])
    records = json.loads(capsys.readouterr().out)["records"]
    tost = [r for r in records if r["family"] == "direct_effect_equivalence"]
    assert tost and all("margin +-0.02" in r["note"] for r in tost)


def test_cli_help_defines_the_transplant_estimands_and_their_signs(capsys):
    main(["stats", "--help"])
    text = capsys.readouterr().out
    for line in (
        "TE    = Y(b,b) - Y(a,a)",
        "NIE_w = Y(w,b) - Y(w,a)",
        "NDE_l = Y(b,l) - Y(a,l)",
        "INT   = NIE_b - NIE_a",
        "NIE   = (NIE_a + NIE_b)/2",
        "a = source, b = target",
    ):
        assert line in text


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["stats", "{dir}/nowhere"], "is not a directory"),
        (None, ["stats", "{dir}"], "holds no decoupled.nc or transplant.nc"),
        ("bad_acc", ["stats", "{dir}"], "decoupled.nc has no variable 'acc'"),
        ("not_netcdf", ["stats", "{dir}"], "is not a readable netCDF file"),
        ("ok", ["stats", "{dir}", "--level", "2"], "--level = 2.0 is not valid"),
        ("ok", ["stats", "{dir}", "--tost-margin", "-1"], "--tost-margin = -1.0 is not valid"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message_and_no_traceback(
    tmp_path, capsys, make, args, message
):
    dec, _ = example_results(n_seeds=3)
    if make == "ok":
        save_dataset(dec, tmp_path / "decoupled.nc")
    elif make == "bad_acc":
        save_dataset(dec.rename({"acc": "accuracy"}), tmp_path / "decoupled.nc")
    elif make == "not_netcdf":
        (tmp_path / "decoupled.nc").write_text("not a netCDF file")
    with pytest.raises(SystemExit) as exc:
        main([a.replace("{dir}", str(tmp_path)) for a in args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "stats.nc").exists()


def test_cli_unknown_format_is_a_usage_error(results_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["stats", str(results_dir), "--format", "xml"])
    assert exc.value.code == 2


def test_cli_stats_runs_on_a_transplant_only_results_dir(tmp_path, capsys):
    y = cells(4, {(1, 1): 0.03})
    save_dataset(transplant_ds(y[None, ..., None]), tmp_path / "transplant.nc")
    main(["stats", str(tmp_path), "--no-write"])
    out = capsys.readouterr().out
    assert "warning: no decoupled.nc" in out and "== mediation" in out


def test_cli_stats_on_a_single_seed_study_prints_estimates(tmp_path, capsys):
    acc = 0.9 + np.random.default_rng(0).normal(0, 0.01, (3, 2, 1, 1))
    save_dataset(decoupled_ds(acc), tmp_path / "decoupled.nc")
    main(["stats", str(tmp_path), "--no-write"])
    out = capsys.readouterr().out
    assert "1 seed: no paired test is possible" in out
    assert "== decoupled_vs_coupled" in out


def test_two_seeds_warn_that_the_lpr_omnibus_cannot_reach_alpha():
    dec, _ = example_results(n_seeds=2)
    warns = analyze({"decoupled": dec}).warnings
    assert any(w.startswith("LPR omnibus test over 2 seeds") for w in warns)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda ds: ds.assign(acc=ds["acc"].where(ds["seed"] != ds["seed"][0], np.inf)),
         r"acc.* holds 12 infinite value\(s\)"),
        (lambda ds: ds.assign(acc=ds["acc"].astype(str)), r"acc.* dtype <U.*expected accuracies"),
        (lambda ds: ds.rename({"seed": "replicate"}), r"dims .*replicate.*expected acc\("),
    ],
    ids=["infinite", "strings", "renamed-seed"],
)
def test_stats_and_figures_refuse_damaged_accuracies_with_one_message(
    tmp_path, capsys, damage, message
):
    dec, _ = example_results()
    save_dataset(damage(dec), tmp_path / "decoupled.nc")
    for command in (["stats", str(tmp_path), "--no-write"],
                    ["figures", str(tmp_path), "--out", str(tmp_path / "figs")]):
        err = run_cli(capsys, *command, code=2)
        assert re.search(message, err), err
        assert "Traceback" not in err
    assert not (tmp_path / "figs").exists() or not any((tmp_path / "figs").iterdir())
