"""Figures from small synthetic result Datasets: panels, artists, values, files, bad input."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import xarray as xr
from conftest import run_cli
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from scipy import stats as sps

from lprcausal.errors import LprError
from lprcausal.figures import (
    OKABE_ITO,
    WIDTHS,
    accuracy_vs_sparsity,
    controls,
    dose_response,
    figure_style,
    find_vs_eval,
    heatmap,
    layer_lpr,
    load_results,
    render_figures,
    save_figure,
    transplant_effects,
    transplant_interaction,
)
from lprcausal.figures.style import text_color
from lprcausal.results import build
from lprcausal.results.io import save_dataset
from lprcausal.results.summary import mean_ci
from lprcausal.stats.analyses import dose_fit

FINDS = ("lr=0.01", "lr=0.03", "lr=0.1")
ACC = {"long_name": "eval test accuracy (final epoch)", "units": "1"}


# ---------------------------------------------------------------------------- data
def decoupled(evals=("coupled", "lr=0.03"), sparsities=(0.5, 0.8, 0.9), seeds=3) -> xr.Dataset:
    """The decoupled schema of `lprcausal study run`, with made-up accuracies."""
    rng = np.random.default_rng(0)
    shape = (len(FINDS), len(evals), seeds, len(sparsities))
    acc = 0.8 + 0.02 * rng.standard_normal(shape)
    find_acc = np.repeat(
        (0.9 + 0.01 * rng.standard_normal((len(FINDS), seeds)))[..., None], len(sparsities), axis=2
    )
    layers = ["hidden.0.weight", "hidden.1.weight", "fc.weight"]
    lpr = np.clip(
        np.array(sparsities)[None, None, :, None]
        + 0.05 * rng.standard_normal((len(FINDS), seeds, len(sparsities), 3)),
        0,
        1,
    )
    ds = xr.Dataset(
        {
            "acc": (("h_find", "h_eval", "seed", "sparsity"), acc, ACC),
            "find_acc": (
                ("h_find", "seed", "sparsity"),
                find_acc,
                {"long_name": "find-phase test accuracy of the dense network", "units": "1"},
            ),
            "lpr": (
                ("h_find", "seed", "sparsity", "layer"),
                lpr,
                {"long_name": "layerwise pruning ratio", "units": "1"},
            ),
            "n_params": ("layer", np.array([2400, 288, 120]), {"long_name": "weights"}),
        },
        coords={
            "h_find": list(FINDS),
            "h_eval": list(evals),
            "seed": np.arange(seeds),
            "sparsity": (
                "sparsity",
                list(sparsities),
                {"long_name": "fraction of prunable weights removed", "units": "1"},
            ),
            "layer": layers,
            "lr": ("h_find", [0.01, 0.03, 0.1]),
        },
    )
    same = np.array([[f == e for e in evals] for f in FINDS], dtype=bool)
    design, attrs = build.decoupled_design(list(FINDS), list(evals), same)
    return ds.assign_coords(design).assign_attrs(attrs)


def transplant(
    alphas=(0.0, 0.5, 1.0), kinds=("shuffle", "random", "uniform", "erk", "lamp"), seeds=3
) -> xr.Dataset:
    """The transplant schema: one pair a=lr=0.1, b=lr=0.01, one sparsity."""
    rng = np.random.default_rng(1)
    data = {
        "acc": (
            ("pair", "w_src", "lpr_src", "seed", "sparsity"),
            0.7 + 0.02 * rng.standard_normal((1, 2, 2, seeds, 1)),
            ACC,
        )
    }
    coords = {
        "pair": ["lr=0.1->lr=0.01"],
        "a": ("pair", ["lr=0.1"]),
        "b": ("pair", ["lr=0.01"]),
        "w_src": ["a", "b"],
        "lpr_src": ["a", "b"],
        "seed": np.arange(seeds),
        "sparsity": [0.8],
    }
    if alphas:
        data["acc_alpha"] = (
            ("pair", "alpha", "seed", "sparsity"),
            0.7 + 0.02 * rng.standard_normal((1, len(alphas), seeds, 1)),
            ACC,
        )
        coords["alpha"] = (
            "alpha",
            list(alphas),
            {"long_name": "interpolation weight toward the LPR of b", "units": "1"},
        )
    if kinds:
        data["acc_control"] = (
            ("pair", "control", "w_src", "seed", "sparsity"),
            0.6 + 0.02 * rng.standard_normal((1, len(kinds), 2, seeds, 1)),
            ACC,
        )
        coords["control"] = list(kinds)
    return xr.Dataset(data, coords=coords)


def stats_records(rows: list[dict]) -> xr.Dataset:
    """A stats Dataset (dim `record`) as `lprcausal stats` stores it."""

    def col(key, fill):
        return [r.get(key, fill) for r in rows]

    ds = xr.Dataset(
        {
            k: ("record", np.array(col(k, np.nan), dtype=float))
            for k in ("estimate", "ci_low", "ci_high", "ci_level", "p", "p_adj")
        }
        | {
            k: ("record", np.array(col(k, ""), dtype=str))
            for k in ("family", "estimand", "test", "correction")
        },
        coords={
            k: ("record", np.array(col(k, ""), dtype=str)) for k in ("h_find", "h_eval", "pair")
        }
        | {"sparsity": ("record", np.array(col("sparsity", np.nan), dtype=float))},
    )
    return ds


def results_dir(tmp_path, *, with_transplant=True, with_stats=False, **tp):
    folder = tmp_path / "results"
    save_dataset(decoupled(), folder / "decoupled.nc")
    if with_transplant:
        save_dataset(transplant(**tp), folder / "transplant.nc")
    if with_stats:
        save_dataset(
            stats_records(
                [
                    {
                        "family": "decoupled_vs_coupled",
                        "h_find": "lr=0.1",
                        "h_eval": "lr=0.03",
                        "sparsity": 0.5,
                        "p_adj": 0.01,
                        "correction": "fdr_bh",
                    }
                ]
            ),
            folder / "stats.nc",
        )
    return folder


def mean_lines(axis, n):
    """The first ``n`` lines of an axes with a marker (the per-H_find means)."""
    return [ln for ln in axis.lines if ln.get_marker() not in (None, "None", "")][:n]


# ---------------------------------------------------------------------------- numbers
def test_mean_ci_is_the_t_interval_over_seeds_without_nan():
    da = xr.DataArray(
        [[1.0, 2.0, 3.0, np.nan], [5.0, np.nan, np.nan, np.nan]], dims=("cell", "seed")
    )
    mean, low, high = mean_ci(da, "seed", 0.95)
    half = sps.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert mean.values.tolist() == [2.0, 5.0]
    assert low.values[0] == pytest.approx(2.0 - half) and high.values[0] == pytest.approx(2 + half)
    assert np.isnan(low.values[1]) and np.isnan(high.values[1])  # one seed: no interval


# ---------------------------------------------------------------------------- figures
def test_accuracy_vs_sparsity_draws_mean_line_band_and_dense_line_per_h_find_per_h_eval():
    ds = decoupled()
    fig = accuracy_vs_sparsity(ds)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # coupled, lr=0.03
    for axis, e in zip(fig.axes, ["coupled", "lr=0.03"], strict=True):
        bands = [c for c in axis.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 3 and axis.get_xscale() == "log" and axis.xaxis_inverted()
        dashed = [ln for ln in axis.lines if ln.get_linestyle() == "--"]
        expected_dense = ds["find_acc"].isel(sparsity=0).mean("seed").values
        assert sorted(ln.get_ydata()[0] for ln in dashed) == pytest.approx(sorted(expected_dense))
        first = mean_lines(axis, 1)[0]  # lr=0.01, x = weights remaining, densest first
        assert first.get_xdata().tolist() == pytest.approx([0.5, 0.2, 0.1])
        want = ds["acc"].sel(h_find="lr=0.01", h_eval=e).mean("seed").values
        assert first.get_ydata().tolist() == pytest.approx(want.tolist())


def test_find_vs_eval_puts_each_h_find_mean_at_its_seed_means():
    ds = decoupled()
    fig = find_vs_eval(ds, sparsity=0.8)
    (axis,) = fig.axes
    assert len(axis.containers) == 3  # one error bar (mean +- CI) per H_find
    x, y = axis.containers[2].lines[0].get_data()
    assert x[0] == pytest.approx(float(ds["find_acc"].sel(h_find="lr=0.1", sparsity=0.8).mean()))
    assert y[0] == pytest.approx(
        float(ds["acc"].sel(h_find="lr=0.1", h_eval="lr=0.03", sparsity=0.8).mean())
    )


def test_heatmap_writes_mean_differences_to_coupled_and_stars_significant_cells():
    ds = decoupled()
    stats = stats_records(
        [
            {
                "family": "decoupled_vs_coupled",
                "h_find": f,
                "h_eval": "lr=0.03",
                "sparsity": 0.5,
                "p_adj": 0.01 if f == "lr=0.1" else 0.3,
                "correction": "fdr_bh",
            }
            for f in FINDS
        ]
    )
    fig = heatmap(ds, stats, sparsity=0.5)
    acc_ax, diff_ax = fig.axes
    texts = [t.get_text() for t in diff_ax.texts]
    assert [t.endswith("*") for t in texts] == [False, False, True]  # rows lr=0.01, 0.03, 0.1
    d = (ds["acc"].sel(h_eval="lr=0.03") - ds["acc"].sel(h_eval="coupled")).mean("seed")
    assert texts[0] == f"{100 * float(d.sel(h_find='lr=0.01', sparsity=0.5)):+.1f}"
    assert len(acc_ax.texts) == 6 and "Benjamini-Hochberg" in fig.get_suptitle()
    # the H_find rows are named once, on the accuracy panel; the difference panel beside it
    # has the same rows in the same order
    assert [t.get_text() for t in acc_ax.get_yticklabels()] == list(FINDS)
    assert diff_ax.get_yticklabels() == [] and diff_ax.get_ylabel() == ""


def test_heatmap_values_fit_their_cells_and_drop_decimals_when_crowded():
    evals = ("coupled", *(f"lr={v}" for v in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)))
    crowded = heatmap(decoupled(evals=evals), None, sparsity=0.5)
    roomy = heatmap(decoupled(), None, sparsity=0.5)
    for fig in (crowded, roomy):
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        for axis in fig.axes:
            cell = axis.get_window_extent(renderer).width / len(axis.get_xticks())
            for t in axis.texts:
                assert t.get_window_extent(renderer).width < cell, t.get_text()
    # 8 columns in half a column width: whole points; 2 columns: one decimal
    assert all("." not in t.get_text() for ax in crowded.axes for t in ax.texts)
    assert all("." in t.get_text() for ax in roomy.axes for t in ax.texts)
    assert "-0" not in [t.get_text() for ax in crowded.axes for t in ax.texts]


def test_light_colours_are_darkened_for_text_only():
    # Okabe-Ito's yellow is faint as text on white; every other colour is kept as it is
    assert [text_color(c) for c in OKABE_ITO] == [*OKABE_ITO[:6], "#908928", OKABE_ITO[7]]


def test_heatmap_without_stats_marks_no_cell():
    fig = heatmap(decoupled(), None, sparsity=0.9)
    assert not any("*" in t.get_text() for ax in fig.axes for t in ax.texts)
    assert fig.get_suptitle() == ""


def test_layer_lpr_keeps_network_order_and_shows_layer_sizes():
    ds = decoupled()
    fig = layer_lpr(ds, sparsity=0.9)
    (axis,) = fig.axes
    labels = [t.get_text() for t in axis.get_xticklabels()]
    assert labels == ["hidden.0\n2.4k", "hidden.1\n288", "fc\n120"]
    spread = [c for c in axis.collections if isinstance(c, LineCollection)]
    assert len(spread) == 3  # one seed-range bar set per H_find
    means = mean_lines(axis, 3)
    want = ds["lpr"].sel(h_find="lr=0.03", sparsity=0.9).mean("seed").values
    assert means[1].get_ydata().tolist() == pytest.approx(want.tolist())


def test_transplant_interaction_draws_a_line_per_seed_and_a_mean_per_weights_source():
    tds = transplant()
    fig = transplant_interaction(tds)
    (axis,) = fig.axes
    thin = [ln for ln in axis.lines if ln.get_linewidth() == 0.5]
    assert len(thin) == 2 * 3  # weights a and b, three seeds each
    assert len(axis.containers) == 2
    mean_a = axis.containers[0].lines[0].get_ydata()
    want = tds["acc"].sel(w_src="a").isel(pair=0, sparsity=0).mean("seed").values
    assert mean_a.tolist() == pytest.approx(want.tolist())
    assert [t.get_text() for t in axis.get_xticklabels()] == ["LPR of\nlr=0.1", "LPR of\nlr=0.01"]


def test_transplant_effects_without_the_mediation_records_is_a_user_error():
    with pytest.raises(LprError, match="stats.nc has no mediation_contrasts record TE of pair"):
        transplant_effects(transplant(), stats_records([]))


def test_transplant_effects_uses_the_stats_intervals_and_adjusted_p():
    names = ["TE", "NIE_a", "NIE_b", "NDE_a", "NDE_b", "INT"]
    stats = stats_records(
        [
            {
                "family": "mediation_contrasts",
                "estimand": n,
                "pair": "lr=0.1->lr=0.01",
                "sparsity": 0.8,
                "estimate": 0.01 * i,
                "ci_low": 0.01 * i - 0.005,
                "ci_high": 0.01 * i + 0.005,
                "ci_level": 0.9,
                "p": 0.001,
                "p_adj": 0.004,
                "correction": "fdr_bh",
            }
            for i, n in enumerate(names)
        ]
    )
    fig = transplant_effects(transplant(), stats)
    (axis,) = fig.axes
    segments = [c for c in axis.collections if isinstance(c, LineCollection)]
    assert segments[1].get_segments()[0][:, 0].tolist() == pytest.approx([0.5, 1.5])  # NIE_a
    filled = [ln.get_markerfacecolor() != "white" for ln in axis.lines if ln.get_marker() == "o"]
    assert all(filled)  # adjusted p 0.004 < 0.05
    assert axis.texts[0].get_text() == "p_adj = 0.004"
    assert "90%" in fig.legends[0].get_title().get_text()


def test_dose_response_draws_seed_lines_band_and_isotonic_fit():
    tds = transplant(alphas=(0.0, 0.25, 0.5, 1.0))
    fitted = dose_fit(tds)
    fig = dose_response(tds, fitted)
    (axis,) = fig.axes
    assert len([c for c in axis.collections if isinstance(c, PolyCollection)]) == 1
    assert len([ln for ln in axis.lines if ln.get_linewidth() == 0.5]) == 3
    (fit,) = [ln for ln in axis.lines if ln.get_linestyle() == "--"]
    want = fitted["acc_isotonic"].isel(pair=0, sparsity=0).values
    assert fit.get_ydata().tolist() == want.tolist()  # drawn as dose_fit.nc holds it
    ticks = [t.get_text() for t in axis.get_xticklabels()]
    assert ticks == ["0\nLPR a", "0.25", "0.5", "1\nLPR b"]
    assert axis.get_title() == "a = lr=0.1 → b = lr=0.01\nsparsity 0.8"


def test_controls_show_own_lpr_transplant_and_each_control_side_by_side():
    tds = transplant()
    fig = controls(tds)
    (axis,) = fig.axes
    labels = [t.get_text().replace("\n", " ") for t in axis.get_xticklabels()]
    assert labels == [
        "own LPR (global)",
        "other's LPR",
        "shuffle",
        "random",
        "uniform",
        "ERK",
        "LAMP",
    ]
    means_a = axis.containers[0].lines[0].get_ydata()
    y = tds["acc"].isel(pair=0, sparsity=0)
    assert means_a[0] == pytest.approx(float(y.sel(w_src="a", lpr_src="a").mean()))
    assert means_a[1] == pytest.approx(float(y.sel(w_src="a", lpr_src="b").mean()))
    assert means_a[6] == pytest.approx(
        float(tds["acc_control"].sel(control="lamp", w_src="a").mean())
    )


def test_controls_at_double_width_lay_out_one_column_per_sparsity():
    one = transplant()
    tds = xr.concat([one, one.assign_coords(sparsity=[0.9])], "sparsity")
    rows = {round(ax.get_position().y0, 3) for ax in controls(tds, width="double").axes}
    assert len(rows) == 1  # the pair's two sparsities side by side
    rows = {round(ax.get_position().y0, 3) for ax in controls(tds).axes}
    assert len(rows) == 2  # single column width: one panel per row


# ---------------------------------------------------------------------------- style & API
def test_each_h_find_keeps_its_colour_in_every_figure(tmp_path):
    results = load_results(results_dir(tmp_path))
    looks = results.looks()
    assert [looks[f].color for f in FINDS] == list(OKABE_ITO[:3])
    acc_fig = accuracy_vs_sparsity(results.decoupled, looks=looks)
    tp_fig = transplant_interaction(results.transplant, looks=looks)
    color_of_01 = mean_lines(acc_fig.axes[0], 3)[2].get_color()  # lr=0.1, third H_find
    assert tp_fig.axes[0].containers[0].lines[0].get_color() == color_of_01  # weights a = lr=0.1


def test_figure_width_is_the_column_width():
    assert accuracy_vs_sparsity(decoupled()).get_figwidth() == WIDTHS["single"] == 3.3
    assert layer_lpr(decoupled(), width="double").get_figwidth() == WIDTHS["double"] == 6.9


def test_axes_are_labelled_from_long_name():
    fig = accuracy_vs_sparsity(decoupled(), h_eval="lr=0.03")
    (axis,) = fig.axes
    assert axis.get_ylabel().replace("\n", " ") == "eval test accuracy (final epoch)"
    assert "fraction of prunable weights remaining" in axis.get_xlabel().replace("\n", " ")


def test_drawing_into_the_callers_axes_returns_the_callers_figure():
    user = Figure()
    axes = user.subplots(1, 2)
    assert accuracy_vs_sparsity(decoupled(), ax=axes) is user
    with pytest.raises(LprError, match="draws 2 panel"):
        accuracy_vs_sparsity(decoupled(), ax=axes[0])


def test_rendering_needs_no_font_but_dejavu_sans(caplog):
    with caplog.at_level(logging.WARNING, logger="matplotlib.font_manager"), figure_style("talk"):
        import matplotlib as mpl

        assert mpl.rcParams["font.sans-serif"][0] == "DejaVu Sans"
        save_figure(heatmap(decoupled()), io.BytesIO(), "png", "talk")
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_same_data_gives_the_same_file_bytes(fmt):
    def render() -> bytes:
        buf = io.BytesIO()
        save_figure(dose_response(transplant(), dose_fit(transplant())), buf, fmt)
        return buf.getvalue()

    first, second = render(), render()
    assert len(first) > 1000 and first == second


def test_a_figure_the_data_cannot_support_raises_a_user_error():
    with pytest.raises(LprError, match="acc_alpha"):
        dose_response(transplant(alphas=()), xr.Dataset())
    all_nan = decoupled().assign(acc=lambda d: d["acc"] * np.nan)
    with pytest.raises(LprError, match="all NaN"):
        accuracy_vs_sparsity(all_nan)


# ---------------------------------------------------------------------------- command line
def test_figures_command_writes_every_figure_in_each_format(tmp_path, capsys):
    folder = results_dir(tmp_path)  # no stats.nc: the command runs the stats once
    out = tmp_path / "figs"
    stdout = run_cli(capsys, "figures", str(folder), "--out", str(out), "--format", "png,svg")
    names = [
        "accuracy_vs_sparsity",
        "find_vs_eval",
        "heatmap",
        "layer_lpr",
        "transplant_interaction",
        "transplant_effects",
        "dose_response",
        "controls",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{e}" for n in names for e in ("png", "svg")
    )
    for n in names:
        assert (out / f"{n}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"{n}.svg").read_bytes()[:2000]
    assert stdout.startswith(f"no stats.nc in {folder}: ran `lprcausal stats` with its defaults")
    assert (folder / "stats.nc").is_file() and (folder / "dose_fit.nc").is_file()


def test_figures_the_study_cannot_support_are_skipped_with_the_reason(tmp_path, capsys):
    folder = results_dir(tmp_path, with_transplant=False)
    stdout = run_cli(
        capsys,
        "figures",
        str(folder),
        "--out",
        str(tmp_path / "f"),
        "--only",
        "transplant_interaction",
        "--only",
        "dose_response",
    )
    assert stdout.splitlines()[1:] == [
        "transplant_interaction: skipped, no transplant.nc in this study",
        "dose_response: skipped, no transplant.nc in this study",
    ]


def test_transplant_without_alphas_or_controls_skips_those_figures(tmp_path):
    folder = results_dir(tmp_path, alphas=(), kinds=())
    done = render_figures(folder, tmp_path / "f", only=["dose_response", "controls"])
    assert done.paths == []
    assert done.messages == [
        "dose_response: skipped, transplant.nc has no acc_alpha (the study sets no "
        "transplant.alphas)",
        "controls: skipped, transplant.nc has no acc_control (the study sets no "
        "transplant.controls)",
    ]


def test_heatmap_without_stats_says_significance_marks_were_skipped(tmp_path):
    done = render_figures(results_dir(tmp_path), tmp_path / "f", only=["heatmap"])
    assert [p.name for p in done.paths] == ["heatmap.png"]
    assert done.messages[1] == (
        "heatmap: significance marks skipped, no stats.nc (run `lprcausal stats RESULTS_DIR` first)"
    )


def test_a_folder_without_results_is_a_user_error(tmp_path, capsys):
    err = run_cli(capsys, "figures", str(tmp_path), "--out", str(tmp_path / "f"), code=2)
    assert "holds no decoupled.nc or transplant.nc" in err
    err = run_cli(capsys, "figures", str(tmp_path / "missing"), "--out", str(tmp_path), code=2)
    assert "is not a directory" in err and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["bmp", "pgf", "png,gif"])
def test_a_format_matplotlib_cannot_write_is_a_user_error(tmp_path, capsys, fmt):
    folder = results_dir(tmp_path)
    err = run_cli(
        capsys, "figures", str(folder), "--out", str(tmp_path / "f"), "--format", fmt, code=2
    )
    bad = fmt.split(",")[-1]
    assert f"--format = {bad!r} is not valid" in err
    assert not (tmp_path / "f").exists()  # checked before anything is drawn


def test_an_output_folder_that_cannot_be_written_is_a_user_error(tmp_path, capsys):
    folder = results_dir(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = run_cli(capsys, "figures", str(folder), "--out", str(blocker / "figs"), code=2)
    assert "cannot be written" in err and not (blocker / "figs").exists()


def test_every_public_name_of_the_package_resolves():
    import lprcausal.figures as package

    assert [n for n in package.__all__ if getattr(package, n, None) is None] == []
