"""The 2 x 2 transplant: interaction plot per seed, and a forest plot of TE/NIE/NDE/INT.

Input: the ``transplant`` Dataset (``acc(pair, w_src, lpr_src, seed, sparsity)``,
``a(pair)``/``b(pair)`` naming the two H_find of each pair), and for the forest plot
optionally the ``stats`` Dataset (its ``mediation_contrasts`` records: intervals and
adjusted p).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lprcausal.errors import LprError
from lprcausal.figures.style import (
    NEUTRAL,
    Look,
    axis_labels,
    figure_style,
    h_find_looks,
    label_of,
    legend,
    look,
    look_handles,
    panels,
    percent_axis,
)
from lprcausal.figures.summary import (
    correction_name,
    pair_title,
    records,
    require,
    selection,
    why_not_drawn,
)
from lprcausal.results.check import check_transplant
from lprcausal.results.read import b_only, b_only_kind, weight_roles
from lprcausal.results.schema import CONTRASTS, ROLES
from lprcausal.results.summary import mean_ci

AxesArg = Axes | Sequence[Axes] | None

MEANING = {
    "TE": "total effect",
    "NIE_a": "LPR effect, weights a",
    "NIE_b": "LPR effect, weights b",
    "NDE_a": "weights effect, LPR a",
    "NDE_b": "weights effect, LPR b",
    "INT": "interaction",
}


def why_not_transplant(tds: xr.Dataset | None) -> str | None:
    return why_not_drawn(tds, "transplant.nc", "acc", ("w_src", "lpr_src", "seed"),
                         "(pair, w_src, lpr_src, seed, sparsity)", "transplant")



def groups(tds: xr.Dataset, pair: object, sparsity: object) -> list[tuple[str, float]]:
    """(pair, sparsity) of each panel, pairs outermost."""
    return [
        (str(p), float(s))
        for p in selection(tds, "pair", pair)
        for s in selection(tds, "sparsity", sparsity)
    ]


def panel_columns(cells: list[tuple[str, float]], width: str) -> int:
    """Columns for one panel per (pair, sparsity): one at single-column width; at double
    width one per sparsity (up to 3), so each row is one pair."""
    return 1 if width == "single" else max(1, min(3, len({s for _, s in cells})))


def roles(tds: xr.Dataset, pair: str) -> tuple[str, str]:
    """The H_find labels of roles a and b in ``pair``."""
    row = tds.sel(pair=pair)
    a, b = (str(row[r].values) if r in row.coords else r for r in ROLES)
    return a, b


def weights_handles(
    tds: xr.Dataset, cells: list[tuple[str, float]], looks: dict[str, Look], **line
) -> list[Line2D]:
    """Legend handles "weights of <H_find>" for the H_find of the panels' pairs whose
    weights are drawn (b alone when only b's weights take both LPRs)."""
    names = dict.fromkeys(name for p, _ in cells
                          for role, name in zip(ROLES, roles(tds, p), strict=True)
                          if role in weight_roles(tds, p))
    return look_handles(looks, names, "weights of {}", **line)


def default_looks(tds: xr.Dataset) -> dict[str, Look]:
    """Looks for the H_find labels of the pairs (first seen first) when none are given."""
    labels = [lab for p in tds["pair"].values for lab in roles(tds, str(p))]
    return h_find_looks(labels)


def transplant_interaction(
    tds: xr.Dataset,
    ax: AxesArg = None,
    *,
    pair: object = None,
    sparsity: object = None,
    looks: dict[str, Look] | None = None,
    level: float = 0.95,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """Eval accuracy by LPR source (x) for each weights source (line), per pair and sparsity.

    Thin lines are single seeds (the pairing the tests use); thick lines the means
    with t intervals. Parallel lines mean no interaction; a rise from LPR a to LPR b
    on both lines means the LPR carries the effect.
    """
    require(why_not_transplant(tds), "transplant_interaction")
    check_transplant(tds)
    cells = groups(tds, pair, sparsity)
    looks = dict(looks) if looks else default_looks(tds)
    with figure_style(style):
        fig, axes, owns = panels(
            ax, len(cells), "one per pair and sparsity", width=width, style=style
        )
        for axis, (p, s) in zip(axes, cells, strict=True):
            names = roles(tds, p)
            acc = tds["acc"].sel(pair=p, sparsity=s).transpose("w_src", "lpr_src", "seed")
            mean, low, high = mean_ci(acc, "seed", level)
            for w, (role, name) in enumerate(zip(("a", "b"), names, strict=True)):
                if role not in weight_roles(tds, p):
                    continue  # b's weights alone: a's take no other LPR
                lk = look(looks, name)
                x = np.array([0.0, 1.0]) + (w - 0.5) * 0.04
                for seed_values in acc.sel(w_src=role).transpose("seed", "lpr_src").values:
                    axis.plot(x, seed_values, color=lk.color, lw=0.5, alpha=0.35)
                m = mean.sel(w_src=role).values
                err = np.vstack([m - low.sel(w_src=role).values, high.sel(w_src=role).values - m])
                axis.errorbar(
                    x,
                    m,
                    yerr=None if not np.isfinite(err).all() else err,
                    color=lk.color,
                    marker=lk.marker,
                    lw=1.6,
                    ms=4,
                )
            axis.set_xticks([0, 1], labels=[f"LPR of\n{names[0]}", f"LPR of\n{names[1]}"])
            axis.set_xlim(-0.3, 1.3)
            percent_axis(axis)
            axis.set_title(pair_title(p, s))
        axis_labels(fig, axes, owns, None, label_of(tds["acc"]))
        extra = Line2D([], [], color=NEUTRAL, lw=0.5, alpha=0.5, label="one seed")
        handles = [*weights_handles(tds, cells, looks), extra]
        legend(fig, axes, handles, owns, title=f"mean ± {level:.0%} t interval")
    return fig


def defined_contrasts(tds: xr.Dataset, p: str) -> tuple[str, ...]:
    """The contrasts pair ``p`` defines: all six, or NIE_b alone when only b's weights
    take both LPRs."""
    return ("NIE_b",) if b_only(tds, p) else CONTRASTS


def effect_rows(
    stats: xr.Dataset | None, p: str, s: float, contrasts: tuple[str, ...] = CONTRASTS
) -> tuple[list[dict], str, float]:
    """``contrasts`` (default TE/NIE/NDE/INT) of one pair and sparsity from the
    ``mediation_contrasts`` records of ``stats``: estimates, CIs, adjusted p; the p's
    name; the CI level."""
    recs = {r["estimand"]: r for r in records(stats, "mediation_contrasts", pair=p, sparsity=s)}
    missing = [c for c in contrasts if c not in recs]
    if missing:
        raise LprError(
            f"stats.nc has no mediation_contrasts record {missing[0]} of pair {p!r} at "
            f"sparsity {s:g}: expected the records `lprcausal stats RESULTS_DIR` writes for "
            "this transplant.nc."
        )
    first = recs[contrasts[0]]
    corr = correction_name(str(first.get("correction", "")))
    rows = [
        {
            "name": c,
            "estimate": recs[c]["estimate"],
            "low": recs[c]["ci_low"],
            "high": recs[c]["ci_high"],
            "p": recs[c]["p_adj"],
        }
        for c in contrasts
    ]
    return rows, f"adjusted p ({corr})", float(first["ci_level"])


def transplant_effects(
    tds: xr.Dataset,
    stats: xr.Dataset,
    ax: AxesArg = None,
    *,
    pair: object = None,
    sparsity: object = None,
    alpha: float = 0.05,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """Forest plot of TE, NIE_a, NIE_b, NDE_a, NDE_b, INT with their intervals.

    One panel per pair and sparsity, in accuracy points, read from the
    ``mediation_contrasts`` records of ``stats`` (the stats.nc of ``lprcausal stats``).
    Filled markers: adjusted p < ``alpha``; the p of each row is written at the right.
    """
    require(why_not_transplant(tds), "transplant_effects")
    check_transplant(tds)
    cells = groups(tds, pair, sparsity)
    with figure_style(style):
        fig, axes, owns = panels(
            ax,
            len(cells),
            "one per pair and sparsity",
            width=width,
            style=style,
            ncols=1,  # the effect names need the width: one forest per row
            aspect=0.55,
        )
        sources = set()
        for axis, (p, s) in zip(axes, cells, strict=True):
            rows, source, ci_level = effect_rows(stats, p, s, defined_contrasts(tds, p))
            sources.add((source, ci_level))
            p_name = "p_adj"
            y = np.arange(len(rows))[::-1]
            for yi, row in zip(y, rows, strict=True):
                est = 100 * row["estimate"]
                lo, hi = 100 * row["low"], 100 * row["high"]
                color = "black" if row["name"] == "TE" else NEUTRAL
                if np.isfinite(lo) and np.isfinite(hi):
                    axis.hlines(yi, lo, hi, color=color, lw=1.2)
                sig = np.isfinite(row["p"]) and row["p"] < alpha
                axis.plot(
                    [est],
                    [yi],
                    marker="o",
                    ms=4.5,
                    color=color,
                    mfc=color if sig else "white",
                    ls="none",
                )
                axis.annotate(
                    f"{p_name} = {row['p']:.2g}" if np.isfinite(row["p"]) else f"{p_name} = n/a",
                    xy=(1.0, yi),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize="small",
                    color=NEUTRAL,
                    annotation_clip=False,
                )
            axis.axvline(0.0, color=NEUTRAL, lw=0.7, ls="--")
            a, b = roles(tds, p)
            axis.set_yticks(y, labels=[f"{r['name']}: {MEANING[r['name']]}" for r in rows])
            axis.set_ylim(-0.7, len(rows) - 0.3)
            axis.grid(axis="y", visible=False)
            if not b_only(tds, p):
                axis.set_title(f"a = {a} → b = {b}, sparsity {float(s):g}")
            else:
                axis.set_title(f"a = {a} → b = {b}\nsparsity {float(s):g}; "
                               f"{b_only_kind(tds, p)}: NIE_b only")
        axis_labels(fig, axes, owns, "effect on eval accuracy (accuracy points)", None)
        source, ci_level = sorted(sources)[0]
        handles = [  # filled: significant; open: not
            Line2D([], [], color=NEUTRAL, marker="o", ls="-", ms=4.5, mfc=fill, label=label)
            for fill, label in ((None, f"{source} < {alpha:g}"), ("white", f"p ≥ {alpha:g}"))
        ]
        legend(fig, axes, handles, owns, title=f"estimate and {ci_level:.0%} t interval")
    return fig
