"""Eval accuracy against sparsity, and find-stage against eval-stage accuracy.

Input: the ``decoupled`` Dataset (``acc(h_find, h_eval, seed, sparsity)``,
``find_acc(h_find, seed, sparsity)``). Means are over seeds with t intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

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
    percent_text,
)
from lprcausal.figures.summary import default_eval, records, require, selection, why_not_drawn
from lprcausal.results.schema import COUPLED
from lprcausal.results.summary import mean_ci

AxesArg = Axes | Sequence[Axes] | None


def why_not_accuracy(ds: xr.Dataset | None) -> str | None:
    """Why the accuracy figures cannot be drawn from ``ds`` (None: they can)."""
    dims = ("h_find", "h_eval", "seed", "sparsity")
    return why_not_drawn(ds, "decoupled.nc", "acc", dims, f"({', '.join(dims)})", "eval")



def why_not_find_vs_eval(ds: xr.Dataset | None) -> str | None:
    why = why_not_accuracy(ds)
    if why is None and "find_acc" not in ds:  # type: ignore[operator]
        why = "decoupled.nc has no find_acc (find-phase accuracy)"
    return why


def dense_accuracy(ds: xr.Dataset) -> xr.DataArray | None:
    """Dense find-phase accuracy per H_find (mean over seeds), or None without find_acc.

    ``find_acc`` at the lowest sparsity is the dense network's (for IMP the later
    levels hold the accuracy of already-pruned rounds).
    """
    if "find_acc" not in ds:
        return None
    first = ds["find_acc"].isel(sparsity=int(np.argmin(ds["sparsity"].values)))
    return first.mean("seed", skipna=True)


def accuracy_vs_sparsity(
    ds: xr.Dataset,
    ax: AxesArg = None,
    *,
    h_eval: object = None,
    looks: dict[str, Look] | None = None,
    level: float = 0.95,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """Eval accuracy against the fraction of weights remaining (log axis), one line per H_find.

    One panel per H_eval label (or those chosen with ``h_eval``): mean over seeds
    with a t-interval band, and a dashed line at each H_find's dense find-phase
    accuracy. Returns the Figure (the caller's, when ``ax`` is given).
    """
    require(why_not_accuracy(ds), "accuracy_vs_sparsity")
    evals = selection(ds, "h_eval", h_eval)
    looks = dict(looks) if looks else h_find_looks(ds["h_find"].values)
    order = np.argsort(ds["sparsity"].values)
    remaining = 1.0 - ds["sparsity"].values[order]
    dense = dense_accuracy(ds)
    with figure_style(style):
        fig, axes, owns = panels(
            ax, len(evals), "one per H_eval", width=width, style=style, sharey=True
        )
        for axis, e in zip(axes, evals, strict=True):
            mean, low, high = mean_ci(ds["acc"].sel(h_eval=e), "seed", level)
            for f in ds["h_find"].values.tolist():
                lk = look(looks, f)
                m, lo, hi = (v.sel(h_find=f).values[order] for v in (mean, low, high))
                axis.fill_between(remaining, lo, hi, color=lk.color, alpha=0.22, lw=0)
                axis.plot(remaining, m, color=lk.color, marker=lk.marker, label=f)
                if dense is not None and np.isfinite(dense.sel(h_find=f)):
                    axis.axhline(
                        float(dense.sel(h_find=f)),
                        color=lk.color,
                        ls="--",
                        lw=0.7 * axis.lines[-1].get_linewidth(),
                        alpha=0.8,
                    )
            _remaining_axis(axis, remaining)
            axis.set_title("H_eval = H_find (coupled)" if e == COUPLED else f"H_eval: {e}")
            percent_axis(axis)
        name = label_of(ds["sparsity"]).replace("removed", "remaining")
        axis_labels(fig, axes, owns, f"{name} (log scale)", label_of(ds["acc"]))
        handles = look_handles(looks, ds["h_find"].values.tolist())
        handles.append(
            Patch(color=NEUTRAL, alpha=0.22, lw=0, label=f"{level:.0%} t interval over seeds")
        )
        if dense is not None:
            handles.append(
                Line2D([], [], color=NEUTRAL, ls="--", lw=0.7, label="dense find-phase accuracy")
            )
        legend(fig, axes, handles, owns, title="H_find")
    return fig


def _remaining_axis(axis: Axes, remaining: np.ndarray) -> None:
    """Log axis of weights remaining, ticks at the study's levels, sparser to the right."""
    axis.set_xscale("log")
    axis.set_xticks(remaining, labels=[percent_text(r) for r in remaining])
    axis.xaxis.set_minor_locator(NullLocator())
    lo, hi = float(remaining.min()), float(remaining.max())
    axis.set_xlim(hi * 1.25, lo / 1.25)  # inverted: more pruning to the right


def find_vs_eval(
    ds: xr.Dataset,
    ax: AxesArg = None,
    *,
    h_eval: object = None,
    sparsity: object = None,
    stats: xr.Dataset | None = None,
    looks: dict[str, Look] | None = None,
    level: float = 0.95,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """Find-stage (dense) accuracy against eval-stage accuracy, one point per H_find.

    The decoupling picture: a worse find model can give a mask that trains better.
    One panel per sparsity; eval accuracy with one fixed H_eval (default: the
    reference, as in the stats). Faint points are seeds; large markers the means with
    t intervals on both axes. With ``stats``, the Spearman rank correlation between
    the two (and its adjusted p) is added to each panel title.
    """
    require(why_not_find_vs_eval(ds), "find_vs_eval")
    e = selection(ds, "h_eval", h_eval)[0] if h_eval is not None else default_eval(ds)
    levels = selection(ds, "sparsity", sparsity)
    looks = dict(looks) if looks else h_find_looks(ds["h_find"].values)
    acc = ds["acc"].sel(h_eval=e)
    with figure_style(style):
        fig, axes, owns = panels(ax, len(levels), "one per sparsity", width=width, style=style)
        for axis, s in zip(axes, levels, strict=True):
            x_all, y_all = ds["find_acc"].sel(sparsity=s), acc.sel(sparsity=s)
            xm, xl, xh = mean_ci(x_all, "seed", level)
            ym, yl, yh = mean_ci(y_all, "seed", level)
            for f in ds["h_find"].values.tolist():
                lk = look(looks, f)
                axis.scatter(
                    x_all.sel(h_find=f),
                    y_all.sel(h_find=f),
                    s=6,
                    color=lk.color,
                    marker=lk.marker,
                    alpha=0.35,
                    lw=0,
                )
                x, y = float(xm.sel(h_find=f)), float(ym.sel(h_find=f))
                axis.errorbar(
                    x,
                    y,
                    xerr=_err(x, xl.sel(h_find=f), xh.sel(h_find=f)),
                    yerr=_err(y, yl.sel(h_find=f), yh.sel(h_find=f)),
                    color=lk.color,
                    marker=lk.marker,
                    ms=5,
                    lw=0.8,
                    label=f,
                )
            axis.set_title(f"sparsity {float(s):g}" + _rank_note(stats, s, e))
            percent_axis(axis, "x")
            percent_axis(axis, "y")
        axis_labels(fig, axes, owns, label_of(ds["find_acc"]), label_of(ds["acc"]))
        handles = look_handles(looks, ds["h_find"].values.tolist(), ls="none")
        title = f"H_find, eval with {'H_eval = H_find' if e == COUPLED else e}"
        if any(_rank_note(stats, s, e) for s in levels):
            title += "; ρ: Spearman over H_find"
        legend(fig, axes, handles, owns, title=title)
    return fig


def _err(center: float, low: xr.DataArray, high: xr.DataArray) -> np.ndarray | None:
    lo, hi = float(low), float(high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return np.array([[center - lo], [hi - center]])


def _rank_note(stats: xr.Dataset | None, s: float, h_eval: str) -> str:
    """A title line with the Spearman rank correlation of find vs eval accuracy, if tested."""
    recs = [
        r
        for r in records(stats, "find_eval_ranking", sparsity=float(s), h_eval=h_eval)
        if "spearman" in str(r.get("test", "")).lower()
    ]
    if not recs or not np.isfinite(recs[0]["estimate"]):
        return ""
    r = recs[0]
    text = f"\nρ = {r['estimate']:.2f}"
    if np.isfinite(r.get("p_adj", np.nan)):
        text += f", p_adj = {r['p_adj']:.2g}"
    return text
