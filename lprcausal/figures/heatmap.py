"""H_find x H_eval heatmaps: eval accuracy, and its difference to the coupled arm.

Input: the ``decoupled`` Dataset, and optionally the ``stats`` Dataset of
``lprcausal stats``, whose ``decoupled_vs_coupled`` records (adjusted p) mark the
difference cells that are significant after correction.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from lprcausal.figures.accuracy import why_not_accuracy
from lprcausal.figures.style import (
    ACC_CMAP,
    DIFF_CMAP,
    Look,
    figure_style,
    fit_ticklabels,
    font_points,
    h_find_looks,
    label_of,
    look,
    panels,
    root_figure,
    text_color,
    text_width,
    wrap,
    wrap_to,
)
from lprcausal.figures.summary import correction_name, records, require, selection
from lprcausal.results.check import labels
from lprcausal.results.read import coupled_acc, fixed_evals

FAMILY = "decoupled_vs_coupled"


def has_difference(ds: xr.Dataset) -> bool:
    """Whether the study has a coupled arm and at least one other H_eval to compare."""
    return coupled_acc(ds) is not None and bool(fixed_evals(ds))


def has_significance(stats: xr.Dataset | None) -> bool:
    return bool(records(stats, FAMILY))


def heatmap(
    ds: xr.Dataset,
    stats: xr.Dataset | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    *,
    sparsity: object = None,
    alpha: float = 0.05,
    looks: dict[str, Look] | None = None,
    width: str = "single",
    style: str = "paper",
) -> Figure:
    """Mean eval accuracy over H_find (rows) x H_eval (columns), and acc - coupled.

    Per sparsity: one accuracy panel and, when the study has a coupled arm, one panel
    of the per-seed difference to it (accuracy points), with ``*`` on cells whose
    ``decoupled_vs_coupled`` test in ``stats`` has adjusted p < ``alpha``. Without
    ``stats`` no cell is marked.
    """
    require(why_not_accuracy(ds), "heatmap")
    levels = selection(ds, "sparsity", sparsity)
    looks = dict(looks) if looks else h_find_looks(ds["h_find"].values)
    diff = has_difference(ds)
    per_level = 2 if diff else 1
    finds = labels(ds, "h_find")
    mean_acc = ds["acc"].mean("seed", skipna=True)
    delta = _difference(ds) if diff else None
    with figure_style(style):
        fig, axes, owns = panels(
            ax,
            per_level * len(levels),
            "accuracy and difference to coupled, per sparsity",
            width=width,
            style=style,
            ncols=per_level,
            aspect=0.5 + 0.1 * len(finds),
            extra_height=0.15,
        )
        bound = max(
            float(np.nanmax(np.abs(delta.values)))
            if delta is not None and np.isfinite(delta.values).any()
            else 0.0,
            1e-3,
        )
        grids = []  # (axis, texts, columns) of every panel, fitted once laid out
        for i, s in enumerate(levels):
            acc_ax = axes[per_level * i]
            m = mean_acc.sel(sparsity=s).transpose("h_find", "h_eval").values
            grids.append(
                (
                    acc_ax,
                    *_cells(
                        acc_ax,
                        m,
                        finds,
                        labels(ds, "h_eval"),
                        Normalize(*_limits(m)),
                        ACC_CMAP,
                        ("{:.1f}", "{:.0f}"),
                        looks,
                    ),
                )
            )
            acc_ax.set_title(_title(f"{label_of(ds['acc'])}, %", s, i == 0, acc_ax))
            if delta is None:
                continue
            d_ax = axes[per_level * i + 1]
            d = delta.sel(sparsity=s).transpose("h_find", "h_eval")
            marks = _marks(stats, d, float(s), alpha)
            grids.append(
                (
                    d_ax,
                    *_cells(
                        d_ax,
                        d.values,
                        finds,
                        [str(e) for e in d["h_eval"].values],
                        TwoSlopeNorm(0.0, -bound, bound),
                        DIFF_CMAP,
                        ("{:+.1f}", "{:+.0f}"),
                        looks,
                        marks,
                        row_labels=False,
                    ),
                )
            )
            d_ax.set_title(_title("acc − coupled (accuracy points)", s, i == 0, d_ax))
        # Cell values must stay inside their cells: sized once the layout is final.
        root_figure(axes[0]).draw_without_rendering()
        for grid in grids:
            _fit_cells(*grid)
        if delta is not None and has_significance(stats):
            corr = correction_name(str(records(stats, FAMILY)[0].get("correction", "")))
            note = f"* adjusted p < {alpha:g} ({corr}): decoupled vs coupled, paired t test"
            if owns:
                fig.suptitle(wrap_to(note, 0.95 * fig.get_figwidth(), font_points("font.size")))
            else:
                axes[1].set_title(axes[1].get_title() + f"\n{note}")
    return fig


def _title(quantity: str, s: object, top: bool, axis: Axes) -> str:
    """Panel title: the sparsity, and on the top row what the cells hold."""
    return (wrap(quantity, axis) + "\n" if top else "") + f"sparsity {float(s):g}"


def _difference(ds: xr.Dataset) -> xr.DataArray:
    """Per-seed acc - coupled acc, averaged over seeds, for every H_eval but the coupled one."""
    coupled = coupled_acc(ds)
    assert coupled is not None
    return (ds["acc"].sel(h_eval=fixed_evals(ds)) - coupled).mean("seed", skipna=True)


def _limits(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo - 0.005, hi + 0.005)


def _marks(stats: xr.Dataset | None, d: xr.DataArray, s: float, alpha: float) -> np.ndarray:
    """True where the decoupled-vs-coupled test of that cell has adjusted p < alpha."""
    out = np.zeros(d.shape, dtype=bool)
    for i, f in enumerate(d["h_find"].values):
        for j, e in enumerate(d["h_eval"].values):
            recs = records(stats, FAMILY, h_find=str(f), h_eval=str(e), sparsity=s)
            out[i, j] = bool(recs) and float(recs[0].get("p_adj", np.nan)) < alpha
    return out


# Cell text below this size (points) switches to the coarse format (no decimals).
_MIN_CELL_FONT = 5.0


def _cells(
    axis: Axes,
    values: np.ndarray,
    rows: list[str],
    cols: list[str],
    norm,
    cmap: str,
    formats: tuple[str, str],
    looks: dict[str, Look],
    marks: np.ndarray | None = None,
    row_labels: bool = True,
):
    """Draw a labelled grid of coloured cells with their values (in %) written in them.

    ``row_labels=False``: no H_find labels (the panel to the left shows the same rows).

    ``formats``: the fine and the coarse format of a value; :func:`_fit_cells` picks one
    and the font size so that every value fits its cell.
    """
    axis.pcolormesh(
        np.ma.masked_invalid(values), norm=norm, cmap=cmap, edgecolors="white", linewidth=0.8
    )
    colormap = mpl.colormaps[cmap]
    texts = []
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if not np.isfinite(v):
                t = axis.text(j + 0.5, i + 0.5, "n/a", ha="center", va="center", fontsize="small")
                texts.append((t, "n/a", "n/a"))
                continue
            r, g, b, _ = colormap(norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            star = "*" if marks is not None and marks[i, j] else ""
            fine, coarse = (_number(f, 100 * v) + star for f in formats)
            t = axis.text(
                j + 0.5,
                i + 0.5,
                fine,
                ha="center",
                va="center",
                fontsize="small",
                color="white" if dark else "black",
            )
            texts.append((t, fine, coarse))
    fit_ticklabels(axis, np.arange(len(cols)) + 0.5, cols)
    if row_labels:
        axis.set_yticks(np.arange(len(rows)) + 0.5, labels=rows)
        for tick, row in zip(axis.get_yticklabels(), rows, strict=True):
            tick.set_color(text_color(look(looks, row).color))
        axis.set_ylabel("H_find")
    else:  # the rows of the panel on its left, in the same order: not repeated
        axis.set_yticks([])
    axis.set_xlabel("H_eval")
    axis.set_xlim(0, len(cols))
    axis.set_ylim(len(rows), 0)  # first H_find on top, as in a table
    axis.grid(False)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    return texts, values.shape[1]


def _number(fmt: str, x: float) -> str:
    """``fmt.format(x)``, with values that round to zero written as zero (no "-0")."""
    text = fmt.format(x)
    return fmt.format(0.0) if float(text) == 0 else text


def _fit_cells(axis: Axes, texts: list, n_cols: int) -> None:
    """Shrink the values of a :func:`_cells` grid to their cells; coarse format if tiny."""
    fig = root_figure(axis)
    cell = 0.9 * axis.get_window_extent().width / n_cols * 72 / fig.dpi  # points
    if not texts:
        return
    size = texts[0][0].get_fontsize()

    def fitted(labels: list[str]) -> float:
        return min(size, *(size * cell / max(text_width(t, size), 1e-9) for t in labels))

    fit = fitted([fine for _, fine, _ in texts])
    use_coarse = fit < _MIN_CELL_FONT
    if use_coarse:
        fit = fitted([coarse for _, _, coarse in texts])
    for t, fine, coarse in texts:
        t.set_text(coarse if use_coarse else fine)
        t.set_fontsize(fit)
