"""Dose-response over alpha: weights of a (of b when the design has b's alone) at the LPR
(1 - alpha) * LPR_a + alpha * LPR_b.

Input: the ``transplant`` Dataset's ``acc_alpha(pair, alpha, seed, sparsity)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lprcausal.config import LEVEL_TOL
from lprcausal.errors import LprError
from lprcausal.figures.style import (
    NEUTRAL,
    Look,
    axis_labels,
    figure_style,
    label_of,
    legend,
    look,
    panels,
    percent_axis,
)
from lprcausal.figures.summary import require, why_not_drawn
from lprcausal.figures.transplant import default_looks, groups, roles
from lprcausal.results.check import check_transplant
from lprcausal.results.read import weight_roles
from lprcausal.results.summary import mean_ci


def why_not_dose_response(tds: xr.Dataset | None) -> str | None:
    return why_not_drawn(tds, "transplant.nc", "acc_alpha", (),
                         " (the study sets no transplant.alphas)", "dose-response")



def dose_response(
    tds: xr.Dataset,
    fit: xr.Dataset,
    ax: Axes | Sequence[Axes] | None = None,
    *,
    pair: object = None,
    sparsity: object = None,
    looks: dict[str, Look] | None = None,
    level: float = 0.95,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """Eval accuracy of the weights of a as their LPR moves from a's (alpha 0) to b's (1)
    (of the weights of b for a pair of b's weights alone, which says so in its title).

    One panel per pair and sparsity: thin lines are seeds, the thick line their mean
    with a t-interval band, the dashed black line the isotonic (monotone) fit of the
    mean in whichever direction fits better.
    """
    require(why_not_dose_response(tds), "dose_response")
    check_transplant(tds)
    cells = groups(tds, pair, sparsity)
    looks = dict(looks) if looks else default_looks(tds)
    directions = []
    with figure_style(style):
        fig, axes, owns = panels(
            ax, len(cells), "one per pair and sparsity", width=width, style=style
        )
        for axis, (p, s) in zip(axes, cells, strict=True):
            a, b = roles(tds, p)
            w = weight_roles(tds, p)[0]  # whose weights move along alpha: a, or b across nets
            lk = look(looks, a if w == "a" else b)
            dose = tds["acc_alpha"].sel(pair=p, sparsity=s).sortby("alpha")
            alphas = dose["alpha"].values.astype(float)
            for seed_values in dose.transpose("seed", "alpha").values:
                axis.plot(alphas, seed_values, color=lk.color, lw=0.5, alpha=0.35)
            mean, low, high = mean_ci(dose, "seed", level)
            axis.fill_between(alphas, low.values, high.values, color=lk.color, alpha=0.22, lw=0)
            axis.plot(alphas, mean.values, color=lk.color, marker=lk.marker, lw=1.6)
            iso = fitted(fit, p, s)
            directions.append(str(iso["direction"].values))
            axis.plot(alphas, iso["acc_isotonic"].sel(alpha=alphas).values, color="black",
                      ls="--", lw=0.9)
            _alpha_ticks(axis, alphas)
            percent_axis(axis)
            on = "" if w == "a" else ", weights of b"
            axis.set_title(f"a = {a} → b = {b}\nsparsity {float(s):g}{on}")
        axis_labels(fig, axes, owns, label_of(tds["alpha"], "alpha"), label_of(tds["acc_alpha"]))
        handles = [
            Line2D([], [], color=NEUTRAL, lw=0.5, alpha=0.5, label="one seed"),
            Line2D([], [], color=NEUTRAL, lw=1.6, label="mean"),
            Patch(color=NEUTRAL, alpha=0.22, lw=0, label=f"{level:.0%} t interval"),
            Line2D(
                [],
                [],
                color="black",
                ls="--",
                lw=0.9,
                label="isotonic fit (" + "/".join(sorted(set(directions))) + ")",
            ),
        ]
        legend(fig, axes, handles, owns)
    return fig


def fitted(fit: xr.Dataset, pair: str, sparsity: float) -> xr.Dataset:
    """The dose_fit.nc entries of one pair and sparsity (LprError when absent)."""
    if "acc_isotonic" not in fit or pair not in [str(p) for p in fit["pair"].values]:
        raise LprError(
            f"dose_fit.nc has no isotonic fit of pair {pair!r}: expected the dose_fit.nc "
            "`lprcausal stats RESULTS_DIR` writes for this transplant.nc."
        )
    return fit.sel(pair=pair).sel(sparsity=sparsity, method="nearest", tolerance=LEVEL_TOL)


def _alpha_ticks(axis: Axes, alphas: np.ndarray) -> None:
    """Ticks at the study's alphas; the ends say whose LPR they are (a at 0, b at 1)."""
    values = sorted(set(alphas.tolist()))
    ends = {0.0: "\nLPR a", 1.0: "\nLPR b"}
    axis.set_xticks(values, labels=[f"{v:g}{ends.get(v, '')}" for v in values])
