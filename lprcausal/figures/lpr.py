"""Layerwise pruning ratios per H_find, layers in network order, with their sizes.

Input: the ``decoupled`` Dataset (``lpr(h_find, seed, sparsity, layer)``,
``n_params(layer)``); the ``layer`` order of the Dataset is the network order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lprcausal.figures.style import (
    NEUTRAL,
    Look,
    axis_labels,
    figure_style,
    fit_ticklabels,
    h_find_looks,
    label_of,
    legend,
    look,
    look_handles,
    panels,
    percent_axis,
)
from lprcausal.figures.summary import count_text, require, selection, short_layer, why_not_drawn
from lprcausal.results.check import labels


def why_not_layer_lpr(ds: xr.Dataset | None) -> str | None:
    return why_not_drawn(ds, "decoupled.nc", "lpr", ("layer",),
                         "(h_find, seed, sparsity, layer)", "find")



def layer_lpr(
    ds: xr.Dataset,
    ax: Axes | Sequence[Axes] | None = None,
    *,
    sparsity: object = None,
    looks: dict[str, Look] | None = None,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """LPR of each prunable layer per H_find: seeds as dots, the mean joined across layers.

    One panel per sparsity. The vertical bar through each mean spans the seeds (min
    to max); the dotted line is the global sparsity (what uniform pruning would give
    every layer). Tick labels give each layer's weight count.
    """
    require(why_not_layer_lpr(ds), "layer_lpr")
    levels = selection(ds, "sparsity", sparsity)
    looks = dict(looks) if looks else h_find_looks(ds["h_find"].values)
    layers, finds = labels(ds, "layer"), labels(ds, "h_find")
    x = np.arange(len(layers), dtype=float)
    step = min(0.6 / max(len(finds), 1), 0.2)
    offsets = (np.arange(len(finds)) - (len(finds) - 1) / 2) * step
    # one size per layer; a [model.grid] study has sizes per H_find: none shown
    sizes = ds["n_params"].values if "n_params" in ds and ds["n_params"].dims == ("layer",) else None
    ticks = [
        short_layer(n) + (f"\n{count_text(int(k))}" if sizes is not None else "")
        for n, k in zip(layers, sizes if sizes is not None else layers, strict=True)
    ]
    with figure_style(style):
        # a panel per row on one column: layer profiles need the width
        fig, axes, owns = panels(
            ax,
            len(levels),
            "one per sparsity",
            width=width,
            style=style,
            ncols=1 if width == "single" else min(len(levels), 2),
            aspect=0.45,
        )
        for axis, s in zip(axes, levels, strict=True):
            lpr = ds["lpr"].sel(sparsity=s).transpose("h_find", "seed", "layer")
            for k, f in enumerate(finds):
                lk = look(looks, f)
                values = lpr.sel(h_find=f).values  # (seed, layer)
                xs = x + offsets[k]
                axis.scatter(
                    np.broadcast_to(xs, values.shape).ravel(),
                    values.ravel(),
                    s=5,
                    color=lk.color,
                    alpha=0.4,
                    lw=0,
                )
                with np.errstate(all="ignore"):
                    low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
                axis.vlines(xs, low, high, color=lk.color, lw=0.8)
                axis.plot(
                    xs,
                    np.nanmean(values, axis=0),
                    color=lk.color,
                    marker=lk.marker,
                    lw=0.8,
                    label=f,
                )
            axis.axhline(float(s), color=NEUTRAL, ls=":", lw=0.8)
            fit_ticklabels(axis, x, ticks)
            axis.set_xlim(-0.5, len(layers) - 0.5)
            low, high = axis.get_ylim()  # autoscaled: per-layer differences stay visible
            axis.set_ylim(max(low, -0.02), min(high, 1.02))
            percent_axis(axis)
            axis.set_title(f"sparsity {float(s):g}")
        axis_labels(
            fig,
            axes,
            owns,
            "prunable layer in network order"
            + (", with its weight count" if sizes is not None else ""),
            label_of(ds["lpr"]),
        )
        handles = look_handles(looks, finds)
        handles.append(
            Line2D([], [], color=NEUTRAL, ls=":", lw=0.8, label="global sparsity (uniform LPR)")
        )
        legend(fig, axes, handles, owns, title="H_find (dots: seeds; bars: their range)")
    return fig
