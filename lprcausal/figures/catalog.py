"""Every figure of a results directory, drawn and saved: the work behind ``lprcausal figures``.

:func:`load_results` reads ``decoupled.nc``, ``transplant.nc``, ``stats.nc`` and
``dose_fit.nc`` (whichever exist); :data:`FIGURES` lists the figures, each with the reason it cannot
be drawn from a given study (None: it can) and notes on parts left out;
:func:`render_figures` draws them all and writes one file per figure and format.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure

from lprcausal.errors import LprError, bad_value
from lprcausal.figures.accuracy import (
    accuracy_vs_sparsity,
    find_vs_eval,
    why_not_accuracy,
    why_not_find_vs_eval,
)
from lprcausal.figures.controls import controls, why_not_controls
from lprcausal.figures.dose import dose_response, why_not_dose_response
from lprcausal.figures.heatmap import has_difference, has_significance, heatmap
from lprcausal.figures.lpr import layer_lpr, why_not_layer_lpr
from lprcausal.figures.names import FIGURE_NAMES
from lprcausal.figures.style import (
    FORMATS,
    Look,
    check_style,
    check_width,
    h_find_looks,
    save_figure,
)
from lprcausal.figures.transplant import (
    default_looks,
    transplant_effects,
    transplant_interaction,
    why_not_transplant,
)
from lprcausal.filemode import atomic_path
from lprcausal.results.check import check_decoupled, check_transplant, labels
from lprcausal.results.io import load_results_dir
from lprcausal.results.read import b_only_pairs, b_only_reason


@dataclass(frozen=True)
class Results:
    """The Datasets of one study's results directory (None where a file is absent)."""

    decoupled: xr.Dataset | None = None
    transplant: xr.Dataset | None = None
    stats: xr.Dataset | None = None
    dose_fit: xr.Dataset | None = None

    def looks(self) -> dict[str, Look]:
        """One look per H_find of the study, in the order of ``decoupled.h_find``."""
        found = labels(self.decoupled, "h_find") if self.decoupled else []
        if self.transplant is not None and "acc" in self.transplant:
            found += list(default_looks(self.transplant))  # the pairs' H_find, first seen first
        return h_find_looks(found)


def load_results(results_dir: str | os.PathLike) -> Results:
    """Read a study's results folder; a folder with neither result file is a user error."""
    found = load_results_dir(results_dir, ("decoupled", "transplant", "stats", "dose_fit"))
    if found["decoupled"] is not None:
        check_decoupled(found["decoupled"])
    if found["transplant"] is not None:
        check_transplant(found["transplant"])
    return Results(**found)


Draw = Callable[[Results, dict[str, Look], str, str], Figure]


@dataclass(frozen=True)
class Entry:
    """One figure: its file name, why a study cannot support it, how to draw it."""

    name: str
    why_not: Callable[[Results], str | None]
    draw: Draw
    notes: Callable[[Results], list[str]] = field(default=lambda r: [])


def _heatmap_notes(r: Results) -> list[str]:
    out = []
    if r.decoupled is not None and not has_difference(r.decoupled):
        out.append("difference-to-coupled panels skipped, the study has no coupled arm")
    elif r.stats is None:
        out.append(
            "significance marks skipped, no stats.nc (run `lprcausal stats RESULTS_DIR` first)"
        )
    elif not has_significance(r.stats):
        out.append("significance marks skipped, stats.nc has no decoupled_vs_coupled tests")
    return out


def _needs(r: Results, name: str) -> str | None:
    """Why a figure drawn from ``name`` (stats, dose_fit) cannot be, if it cannot."""
    if getattr(r, name) is None:
        return f"no {name}.nc (run `lprcausal stats RESULTS_DIR` first)"
    return None


def _b_only_notes(what: str) -> Callable[[Results], list[str]]:
    """Notes for a transplant figure on the pairs of b's weights alone it draws in part."""

    def notes(r: Results) -> list[str]:
        if r.transplant is None:
            return []
        return [f"pair {p}: {what}; {b_only_reason(r.transplant, p)}"
                for p in b_only_pairs(r.transplant)]

    return notes


def _find_eval_notes(r: Results) -> list[str]:
    return [] if r.stats is not None else ["rank correlation not shown, no stats.nc"]


FIGURES: tuple[Entry, ...] = (
    Entry(
        "accuracy_vs_sparsity",
        lambda r: why_not_accuracy(r.decoupled),
        lambda r, lk, w, st: accuracy_vs_sparsity(r.decoupled, looks=lk, width=w, style=st),
    ),
    Entry(
        "find_vs_eval",
        lambda r: why_not_find_vs_eval(r.decoupled),
        lambda r, lk, w, st: find_vs_eval(r.decoupled, stats=r.stats, looks=lk, width=w, style=st),
        _find_eval_notes,
    ),
    Entry(
        "heatmap",
        lambda r: why_not_accuracy(r.decoupled),
        lambda r, lk, w, st: heatmap(r.decoupled, r.stats, looks=lk, width=w, style=st),
        _heatmap_notes,
    ),
    Entry(
        "layer_lpr",
        lambda r: why_not_layer_lpr(r.decoupled),
        lambda r, lk, w, st: layer_lpr(r.decoupled, looks=lk, width=w, style=st),
    ),
    Entry(
        "transplant_interaction",
        lambda r: why_not_transplant(r.transplant),
        lambda r, lk, w, st: transplant_interaction(r.transplant, looks=lk, width=w, style=st),
        _b_only_notes("only the weights of b are drawn"),
    ),
    Entry(
        "transplant_effects",
        lambda r: why_not_transplant(r.transplant) or _needs(r, "stats"),
        lambda r, lk, w, st: transplant_effects(r.transplant, r.stats, width=w, style=st),
        _b_only_notes("only NIE_b is drawn"),
    ),
    Entry(
        "dose_response",
        lambda r: why_not_dose_response(r.transplant) or _needs(r, "dose_fit"),
        lambda r, lk, w, st: dose_response(
            r.transplant, r.dose_fit, looks=lk, width=w, style=st
        ),
    ),
    Entry(
        "controls",
        lambda r: why_not_controls(r.transplant),
        lambda r, lk, w, st: controls(r.transplant, looks=lk, width=w, style=st),
        _b_only_notes("only the weights of b are drawn"),
    ),
)
assert tuple(e.name for e in FIGURES) == FIGURE_NAMES


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """File formats from ``"png,pdf"`` or ``["png", "pdf"]`` (checked, duplicates dropped)."""
    items = [formats] if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in items:
        for fmt in str(item).split(","):
            fmt = fmt.strip().lower().lstrip(".")
            if not fmt:
                continue
            if fmt not in FORMATS:
                raise bad_value("--format", fmt, f"formats matplotlib writes: {', '.join(FORMATS)}")
            if fmt not in out:
                out.append(fmt)
    if not out:
        raise bad_value("--format", formats, "at least one format, e.g. png or pdf,png")
    return tuple(out)


def writable_folder(out: str | os.PathLike) -> Path:
    """Create ``out`` if needed and check that files can be written in it."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise LprError(
            f"--out = {str(path)!r} cannot be written ({exc.strerror or exc}): expected a "
            "folder that can be created and written to."
        ) from None
    return path


@dataclass
class Rendered:
    """What a render did: files written, and one line per figure skipped or trimmed."""

    paths: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def render_figures(
    results_dir: str | os.PathLike,
    out: str | os.PathLike,
    formats: str | Iterable[str] = ("png",),
    *,
    style: str = "paper",
    width: str = "single",
    only: Iterable[str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> Rendered:
    """Draw every figure the results support into ``out`` (``<name>.<format>``).

    Figures a study cannot support are skipped with a line saying why, never an error.
    ``echo`` (e.g. ``print``) receives each line as it happens.
    """
    fmts = parse_formats(formats)
    check_style(style)
    check_width(width)
    chosen = list(FIGURE_NAMES if only is None else only)
    for name in chosen:
        if name not in FIGURE_NAMES:
            raise bad_value("figure", name, f"one of {', '.join(FIGURE_NAMES)}")
    results = load_results(results_dir)
    folder = writable_folder(out)
    looks = results.looks()
    done = Rendered()

    def say(line: str) -> None:
        done.messages.append(line)
        if echo is not None:
            echo(line)

    for entry in FIGURES:
        if entry.name not in chosen:
            continue
        why = entry.why_not(results)
        if why is not None:
            say(f"{entry.name}: skipped, {why}")
            continue
        fig = entry.draw(results, looks, width, style)
        written = [_write(fig, folder / f"{entry.name}.{fmt}", fmt, style) for fmt in fmts]
        done.paths += written
        say(f"{entry.name}: {', '.join(str(p) for p in written)}")
        for note in entry.notes(results):
            say(f"{entry.name}: {note}")
    return done


def _write(fig: Figure, path: Path, fmt: str, style: str) -> Path:
    """Save through a temp file in the same folder and a rename (no half-written figures)."""
    try:
        with atomic_path(path) as tmp:
            save_figure(fig, tmp, fmt, style)
    except OSError as exc:
        raise LprError(
            f"Cannot write figure {str(path)!r} ({exc.strerror or exc}): "
            "expected a writable folder."
        ) from None
    return path

