"""Control masks beside the transplant cells, for the weights of a and of b.

Input: the ``transplant`` Dataset: ``acc(pair, w_src, lpr_src, seed, sparsity)`` and
``acc_control(pair, control, w_src, seed, sparsity)`` (controls such as shuffle,
random, uniform, erk, lamp, all at the same sparsity).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lprcausal.figures.style import (
    NEUTRAL,
    Look,
    axis_labels,
    figure_style,
    fit_ticklabels,
    label_of,
    legend,
    look,
    panels,
    percent_axis,
)
from lprcausal.figures.summary import pair_title, require, why_not_drawn
from lprcausal.figures.transplant import (
    default_looks,
    groups,
    panel_columns,
    roles,
    weights_handles,
)
from lprcausal.results.check import check_transplant
from lprcausal.results.read import weight_roles
from lprcausal.results.summary import mean_ci

CONTROL_NAMES = {"erk": "ERK", "lamp": "LAMP"}  # the other controls print as they are


def why_not_controls(tds: xr.Dataset | None) -> str | None:
    return why_not_drawn(tds, "transplant.nc", "acc_control", (),
                         " (the study sets no transplant.controls)", "control")



def control_cells(tds: xr.Dataset, p: str, s: float) -> tuple[list[str], xr.DataArray]:
    """(column names, acc(column, w_src, seed)): own LPR, transplanted LPR, then controls.

    "own LPR" is the weights pruned at their own run's LPR (the global-magnitude
    mask); "transplant" the weights pruned at the other run's LPR.
    """
    roles = ["a", "b"]
    y = tds["acc"].sel(pair=p, sparsity=s, w_src=roles, lpr_src=roles)
    y = y.transpose("w_src", "lpr_src", "seed").values  # [w, l, seed]
    ctl = tds["acc_control"].sel(pair=p, sparsity=s, w_src=roles)
    kinds = [str(c) for c in ctl["control"].values]
    columns = np.concatenate(
        [
            np.stack([y[0, 0], y[1, 1]])[None],  # own LPR
            np.stack([y[0, 1], y[1, 0]])[None],  # the other run's LPR
            ctl.transpose("control", "w_src", "seed").values,
        ]
    )
    names = ["own LPR\n(global)", "other's\nLPR", *[CONTROL_NAMES.get(c, c) for c in kinds]]
    cells = xr.DataArray(
        columns,
        dims=("column", "w_src", "seed"),
        coords={"w_src": roles, "seed": ctl["seed"].values},
    )
    return names, cells


def controls(
    tds: xr.Dataset,
    ax: Axes | Sequence[Axes] | None = None,
    *,
    pair: object = None,
    sparsity: object = None,
    looks: dict[str, Look] | None = None,
    level: float = 0.95,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """Eval accuracy of each mask kind for the weights of a and of b, side by side.

    One panel per pair and sparsity; columns: own LPR (global magnitude), the
    transplanted LPR, then each control. Dots are seeds; markers the means with t
    intervals; colours the H_find whose weights are pruned.
    """
    require(why_not_controls(tds), "controls")
    check_transplant(tds)
    cells = groups(tds, pair, sparsity)
    looks = dict(looks) if looks else default_looks(tds)
    with figure_style(style):
        fig, axes, owns = panels(
            ax,
            len(cells),
            "one per pair and sparsity",
            width=width,
            style=style,
            ncols=panel_columns(cells, width),
            aspect=0.5,
        )
        for axis, (p, s) in zip(axes, cells, strict=True):
            names, acc = control_cells(tds, p, s)
            mean, low, high = mean_ci(acc, "seed", level)
            x = np.arange(len(names), dtype=float)
            for w, (role, name) in enumerate(zip(("a", "b"), roles(tds, p), strict=True)):
                if role not in weight_roles(tds, p):
                    continue  # b's weights alone: a's take no other LPR
                lk = look(looks, name)
                xs = x + (w - 0.5) * 0.3
                seeds = acc.sel(w_src=role).values  # (column, seed)
                axis.scatter(
                    np.repeat(xs, seeds.shape[1]),
                    seeds.ravel(),
                    s=6,
                    color=lk.color,
                    alpha=0.4,
                    lw=0,
                )
                m = mean.sel(w_src=role).values
                err = np.vstack([m - low.sel(w_src=role).values, high.sel(w_src=role).values - m])
                axis.errorbar(
                    xs,
                    m,
                    yerr=np.nan_to_num(err, nan=0.0),
                    color=lk.color,
                    marker=lk.marker,
                    ls="none",
                    ms=4,
                    lw=1.0,
                )
            axis.axvline(1.5, color=NEUTRAL, lw=0.6, ls=":")
            fit_ticklabels(axis, x, names)
            axis.set_xlim(-0.6, len(names) - 0.4)
            percent_axis(axis)
            axis.set_title(pair_title(p, s))
        axis_labels(fig, axes, owns, None, label_of(tds["acc_control"]))
        legend(
            fig,
            axes,
            weights_handles(tds, cells, looks, ls="none"),
            owns,
            title=f"dots: seeds; markers: mean ± {level:.0%} t interval",
        )
    return fig
