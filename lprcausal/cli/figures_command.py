"""``lprcausal figures RESULTS_DIR``: paper figures of a study's results."""

from __future__ import annotations

from pathlib import Path

import click

from lprcausal.cli.app import cli
from lprcausal.figures.names import FIGURE_NAMES, FORMATS, STYLES, WIDTHS


@cli.command("figures")
@click.argument("results_dir", type=click.Path())
@click.option(
    "--out",
    "out",
    type=click.Path(),
    default=None,
    help="Folder for the figure files.  [default: RESULTS_DIR/figures]",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    default=("png",),
    show_default=True,
    help=f"File format(s), repeat or comma-separate: {', '.join(FORMATS)}.",
)
@click.option(
    "--style",
    type=click.Choice(STYLES),
    default="paper",
    show_default=True,
    help="paper: 6-7 pt text for print; talk: larger text and lines for slides.",
)
@click.option(
    "--width",
    type=click.Choice(tuple(WIDTHS)),
    default="single",
    show_default=True,
    help="Figure width: single column (3.3 in) or double column (6.9 in).",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(FIGURE_NAMES),
    help="Draw only these figures (repeatable).  [default: all]",
)
def figures_command(
    results_dir: str,
    out: str | None,
    formats: tuple[str, ...],
    style: str,
    width: str,
    only: tuple[str, ...],
) -> None:
    """Paper figures from a study's results (RESULTS_DIR, e.g. results/quickstart).

    Eval accuracy against weights remaining per H_find; find-stage against eval-stage
    accuracy; H_find x H_eval heatmaps with significance marks (from stats.nc, written
    by `lprcausal stats`); per-layer LPR; the transplant interaction plot and forest
    plot of TE/NIE/NDE/INT; dose-response over alpha; control masks. Figures the study
    cannot support are skipped with a line saying why. Same data, same file bytes.
    Statistics are read from stats.nc / dose_fit.nc; without stats.nc, `lprcausal
    stats` runs once first (with its defaults) and writes them.
    """
    from lprcausal.figures.catalog import render_figures  # matplotlib only when drawing

    ensure_stats(results_dir)
    folder = Path(out) if out is not None else Path(results_dir) / "figures"
    render_figures(
        results_dir, folder, formats, style=style, width=width, only=only or None, echo=click.echo
    )


def ensure_stats(results_dir: str) -> None:
    """Run ``lprcausal stats`` (default options) once when RESULTS_DIR has no stats.nc."""
    from lprcausal.stats.report import STATS_FILE, analyze_results, write_stats

    if (Path(results_dir) / STATS_FILE).is_file() or not Path(results_dir).is_dir():
        return
    paths = write_stats(results_dir, analyze_results(results_dir))
    click.echo(
        f"no {STATS_FILE} in {results_dir}: ran `lprcausal stats` with its defaults, wrote "
        + ", ".join(str(p) for p in paths)
    )
