"""Figure style: colorblind-safe colors per H_find, rcParams per style, sizes, saving.

Every figure is drawn inside :func:`figure_style` (fonts, line widths, the DejaVu Sans
font matplotlib ships, so a bare machine gives no font warnings) on a
:class:`matplotlib.figure.Figure` made directly, never through pyplot: no display and
no global backend switch. :func:`save_figure` writes byte-identical files for the same
figure (no dates or software versions in PNG/SVG/PDF metadata, a fixed SVG hash salt).
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D

from lprcausal.errors import LprError, bad_value
from lprcausal.figures.names import FORMATS, STYLES, WIDTHS

__all__ = ["FORMATS", "STYLES", "WIDTHS"]  # re-exported: part of the style's vocabulary

# Okabe & Ito (2008), ordered so the first colours stay apart under every common
# colour-vision deficiency; yellow comes late because it is faint on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
# A second cue besides colour, so the figures also read in greyscale.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NEUTRAL = "#4D4D4D"
ACC_CMAP = "viridis"  # sequential, perceptually uniform, colorblind-safe
DIFF_CMAP = "PuOr"  # diverging, colorblind-safe; centred on 0


_BASE_RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.5,
    "legend.frameon": False,
    "image.cmap": ACC_CMAP,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.facecolor": "white",
    # text as paths in SVG and embedded TrueType in PDF/PS: editable, no font lookup later
    "svg.fonttype": "path",
    "svg.hashsalt": "lprcausal",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}

_STYLE_RC = {
    "paper": {
        "font.size": 7,
        "axes.titlesize": 7,
        "axes.labelsize": 7,
        "figure.labelsize": 7,
        "figure.titlesize": 7,
        "xtick.labelsize": 6,
        "ytick.labelsize": 6,
        "legend.fontsize": 6,
        "legend.title_fontsize": 6,
        "lines.linewidth": 1.0,
        "lines.markersize": 3.5,
        "axes.linewidth": 0.6,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "xtick.major.size": 2.5,
        "ytick.major.size": 2.5,
        "errorbar.capsize": 1.5,
        "patch.linewidth": 0.5,
    },
    "talk": {
        "font.size": 11,
        "axes.titlesize": 11,
        "axes.labelsize": 11,
        "figure.labelsize": 11,
        "figure.titlesize": 11,
        "xtick.labelsize": 10,
        "ytick.labelsize": 10,
        "legend.fontsize": 10,
        "legend.title_fontsize": 10,
        "lines.linewidth": 2.0,
        "lines.markersize": 6,
        "axes.linewidth": 1.0,
        "errorbar.capsize": 3,
        "patch.linewidth": 0.8,
    },
}
# Smallest panel height (inches) at which ticks, title and labels still fit.
_MIN_PANEL_HEIGHT = {"paper": 1.55, "talk": 2.4}

# Metadata that would make two saves of the same figure differ (dates, versions).
_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None},
    "svgz": {"Date": None},
    "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
}


@dataclass(frozen=True)
class Look:
    """How one H_find is drawn: colour and marker."""

    color: str
    marker: str


def check_style(style: str) -> str:
    if style not in STYLES:
        raise bad_value("style", style, f"one of {', '.join(STYLES)}")
    return style


def check_width(width: str) -> str:
    if width not in WIDTHS:
        raise bad_value("width", width, f"one of {', '.join(WIDTHS)} (3.3 in / 6.9 in)")
    return width


def style_rc(style: str = "paper") -> dict:
    """The rcParams of a style ("paper": 6-7 pt text for a column; "talk": slides)."""
    return {**_BASE_RC, **_STYLE_RC[check_style(style)]}


@contextlib.contextmanager
def figure_style(style: str = "paper") -> Iterator[None]:
    """Context in which figures are drawn and saved (rcParams restored afterwards)."""
    with mpl.rc_context(style_rc(style)):
        yield


def h_find_looks(labels: Iterable[str]) -> dict[str, Look]:
    """Colour and marker per H_find label, by position in the study's H_find order.

    Pass the labels of the whole study (``decoupled.h_find``) so every figure,
    transplants included, draws the same H_find in the same colour. Past eight
    labels the colours repeat with a different marker.
    """
    out: dict[str, Look] = {}
    for label in labels:
        label = str(label)
        if label not in out:
            i = len(out)
            out[label] = Look(
                OKABE_ITO[i % len(OKABE_ITO)], MARKERS[(i + i // len(OKABE_ITO)) % len(MARKERS)]
            )
    return out


def text_color(color: str) -> str:
    """``color`` for text on white: light colours (Okabe-Ito's yellow) darkened to read."""
    r, g, b = mpl.colors.to_rgb(color)
    if 0.299 * r + 0.587 * g + 0.114 * b <= 0.7:
        return color
    return mpl.colors.to_hex((0.6 * r, 0.6 * g, 0.6 * b))


def look(looks: dict[str, Look], label: str) -> Look:
    """The look of ``label``; labels missing from ``looks`` get the next free ones."""
    if label not in looks:
        looks.update({label: h_find_looks([*looks, label])[label]})
    return looks[label]


def look_handles(
    looks: dict[str, Look], labels: Iterable[str], text: str = "{}", **line
) -> list[Line2D]:
    """Legend handles, one per label in its look, named ``text.format(label)`` (``line``:
    more Line2D options)."""
    return [Line2D([], [], color=look(looks, f).color, marker=look(looks, f).marker,
                   label=text.format(f), **line) for f in labels]


def new_figure(
    n_panels: int,
    *,
    width: str = "single",
    style: str = "paper",
    ncols: int | None = None,
    aspect: float = 0.78,
    sharey: bool = False,
    sharex: bool = False,
    extra_height: float = 0.35,
) -> tuple[Figure, list[Axes]]:
    """A figure of the column width with ``n_panels`` axes on a grid (unused cells removed).

    Panels are ``aspect`` times as tall as wide (at least a readable minimum);
    ``extra_height`` (inches) leaves room for a legend above the panels.
    """
    fig_w = WIDTHS[check_width(width)]
    if ncols is None:
        ncols = 1 if n_panels == 1 else min(n_panels, 2 if width == "single" else 3)
    nrows = math.ceil(n_panels / ncols)
    panel_h = max(fig_w / ncols * aspect, _MIN_PANEL_HEIGHT[check_style(style)])
    fig = Figure(figsize=(fig_w, panel_h * nrows + extra_height), layout="constrained")
    FigureCanvasAgg(fig)  # an Agg canvas, never a GUI one: text can be measured, no display
    grid = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey, sharex=sharex)
    axes = list(grid.ravel())
    for extra in axes[n_panels:]:
        extra.remove()
    return fig, axes[:n_panels]


def root_figure(ax: Axes) -> Figure:
    fig = ax.figure
    while isinstance(fig, SubFigure):
        fig = fig.figure
    return fig


def panels(
    ax: Axes | Sequence[Axes] | None, n: int, what: str, **layout
) -> tuple[Figure, list[Axes], bool]:
    """(figure, axes, owns_figure): a new figure of ``n`` panels, or the caller's axes.

    ``ax`` may be one Axes (when ``n`` is 1) or a sequence of exactly ``n`` Axes.
    """
    if ax is None:
        fig, axes = new_figure(n, **layout)
        return fig, axes, True
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != n or not all(isinstance(a, Axes) for a in axes):
        raise LprError(
            f"ax = {len(axes)} Axes is not valid: this figure draws {n} panel(s) ({what}); "
            f"pass {n} Axes, or select fewer panels with the keyword arguments."
        )
    return root_figure(axes[0]), axes, False


def font_points(key: str) -> float:
    """A font size rcParam in points (rcParams may hold names such as "small")."""
    return mpl.font_manager.FontProperties(size=mpl.rcParams[key]).get_size_in_points()


def text_width(text: str, size: float) -> float:
    """Rough width in points of one line of DejaVu Sans (about 0.6 em per character)."""
    return max((len(line) for line in text.split("\n")), default=0) * 0.6 * size


_HANDLE, _SPACING = 1.8, 1.2  # legend handle length and column gap, in font sizes


def legend(
    fig: Figure, axes: list[Axes], handles: list, owns: bool, title: str | None = None
) -> None:
    """Legend above the panels on our own figures (never over data), else in the first axes.

    On our figures the legend takes as many columns as fit the figure's width (measured
    with the renderer, so long labels wrap onto more rows instead of overflowing).
    """
    if not handles:
        return
    if not owns:
        axes[0].legend(handles=handles, title=title)
        return
    renderer = fig.canvas.get_renderer()  # our figures carry an Agg canvas (new_figure)
    for ncols in range(min(len(handles), 6), 0, -1):
        box = fig.legend(
            handles=handles,
            loc="outside upper center",
            ncols=ncols,
            title=title,
            handlelength=_HANDLE,
            columnspacing=_SPACING,
        )
        if ncols == 1 or box.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return
        box.remove()


def wrap(text: str, ax: Axes, along: str = "x") -> str:
    """Wrap a label to the length of the axis it labels (long_names can be long)."""
    fig = root_figure(ax)
    pos = ax.get_position()
    inches = fig.get_figwidth() * pos.width if along == "x" else fig.get_figheight() * pos.height
    return wrap_to(text, inches, font_points("axes.labelsize"))


def wrap_to(text: str, inches: float, size: float) -> str:
    """Wrap ``text`` to lines of about ``inches`` at font ``size``; a trailing
    parenthesis ("(units)", "(final epoch)") goes on its own line when it fits there."""
    chars = max(12, int(inches * 72 / (0.6 * size)))
    if len(text) <= chars:
        return text
    head, sep, tail = text.rpartition(" (")
    if sep and text.endswith(")") and len(tail) + 1 <= chars:
        return "\n".join([*textwrap.wrap(head, chars), "(" + tail])
    return "\n".join(textwrap.wrap(text, chars)) or text


def axis_labels(
    fig: Figure, axes: list[Axes], owns: bool, xlabel: str | None = None, ylabel: str | None = None
) -> None:
    """Label the axes: once for the whole figure when we made it with several panels
    (more room, no repetition), else on every axes."""
    shared = owns and len(axes) > 1
    size = font_points("figure.labelsize")
    if xlabel:
        if shared:
            fig.supxlabel(wrap_to(xlabel, 0.9 * fig.get_figwidth(), size))
        else:
            for axis in axes:
                axis.set_xlabel(wrap(xlabel, axis))
    if ylabel:
        if shared:
            # the label spans the panels, not the legend above them
            span = max(a.get_position().y1 for a in axes) - min(a.get_position().y0 for a in axes)
            fig.supylabel(wrap_to(ylabel, span * fig.get_figheight(), size))
        else:
            for axis in axes:
                axis.set_ylabel(wrap(ylabel, axis, "y"))


def fit_ticklabels(axis: Axes, ticks: Sequence[float], labels: Sequence[str]) -> None:
    """Set x tick labels, turned 30 degrees when they would not fit side by side."""
    fig = root_figure(axis)
    room = fig.get_figwidth() * axis.get_position().width * 72 / max(len(labels), 1)
    size = font_points("xtick.labelsize")
    # room is measured before the layout shrinks the axes (colorbars, labels): keep a margin
    crowded = max((text_width(t, size) for t in labels), default=0) > 0.7 * room
    if crowded:
        axis.set_xticks(
            ticks,
            labels=[t.replace("\n", " ") for t in labels],
            rotation=30,
            ha="right",
            rotation_mode="anchor",
        )
    else:
        axis.set_xticks(ticks, labels=labels)


def label_of(var, fallback: str = "") -> str:
    """``long_name (units)`` from a variable's attrs; dimensionless units ("1") are left out."""
    attrs = getattr(var, "attrs", {}) or {}
    name = str(attrs.get("long_name") or fallback or getattr(var, "name", ""))
    units = str(attrs.get("units", "")).strip()
    return f"{name} ({units})" if units and units != "1" else name


def percent_text(value: float, _pos: object = None) -> str:
    """0.3 -> '30%', 0.125 -> '12.5%' (no trailing zeros)."""
    return f"{round(100 * value, 6):g}%"


def percent_axis(ax: Axes, along: str = "y") -> None:
    """Show a fraction axis (accuracy, LPR) in percent."""
    fmt = mpl.ticker.FuncFormatter(percent_text)
    (ax.yaxis if along == "y" else ax.xaxis).set_major_formatter(fmt)


def save_figure(fig: Figure, path: str | Path, fmt: str, style: str = "paper") -> None:
    """Write ``fig`` as ``fmt``; the same figure always gives the same bytes (PNG/SVG/PDF)."""
    with figure_style(style):
        fig.savefig(path, format=fmt, metadata=_METADATA.get(fmt))
