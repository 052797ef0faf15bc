"""``lprcausal stats RESULTS_DIR``: the default tests, stored beside the results."""

from __future__ import annotations

import click

from lprcausal.cli.app import cli
from lprcausal.stats.analyses import DEFAULT_LEVEL, DEFAULT_TOST_MARGIN
from lprcausal.stats.render import FORMATS, render
from lprcausal.stats.report import analyze_results, write_stats


@cli.command("stats")
@click.argument("results_dir", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="How to print the test records (csv/json/latex carry every field).",
)
@click.option(
    "--tost-margin",
    type=float,
    default=DEFAULT_TOST_MARGIN,
    show_default=True,
    help="Equivalence margin for 'no direct effect of the weights' (TOST), as an "
    "accuracy fraction: 0.01 = one accuracy point.",
)
@click.option(
    "--level",
    type=float,
    default=DEFAULT_LEVEL,
    show_default=True,
    help="Confidence level of the intervals; tests use alpha = 1 - level.",
)
@click.option(
    "--write/--no-write",
    default=True,
    show_default=True,
    help="Save stats.nc (and anova.nc, dose_fit.nc) into RESULTS_DIR.",
)
def stats_command(
    results_dir: str, fmt: str, tost_margin: float, level: float, write: bool
) -> None:
    """Statistical tests on a study's results (RESULTS_DIR, e.g. results/quickstart).

    Paired by seed: decoupled vs coupled eval and each H_find vs the reference H_find
    (t intervals, exact sign-flip p, d_z; Benjamini-Hochberg over the grid); find vs
    eval rank agreement over H_find; transplant contrasts TE/NIE/NDE/INT (Holm),
    proportion mediated, type-III ANOVA and TOST on the direct effects; dose-response
    (Page's trend test, per-seed slopes); per-layer LPR differences and an omnibus
    permutation test. Warnings (few seeds, diverged runs) lead the output; with
    --format csv they go to stderr so stdout stays a plain table.
    """
    result = analyze_results(results_dir, tost_margin=tost_margin, level=level)
    paths = write_stats(results_dir, result) if write else []
    click.echo(render(result, fmt), nl=False)
    if fmt == "csv":
        for w in result.warnings:
            click.echo(f"warning: {w}", err=True)
    if paths:
        click.echo(f"stats written to {', '.join(str(p) for p in paths)}", err=fmt != "table")
