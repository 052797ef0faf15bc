"""``lprcausal stats RESULTS_DIR``: the default tests, stored beside the results."""

from __future__ import annotations

import click

from lprcausal.cli.app import cli
from lprcausal.stats.defaults import DEFAULT_LEVEL, DEFAULT_TOST_MARGIN, FORMATS


@cli.command("stats")
@click.argument("results_dir", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="How to print the test records (csv/json/latex carry every field; markdown: "
    "GitHub tables, one per family, for a README or a supplement).",
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
    eval rank agreement over H_find; the transplant's primary NIE test per pair (Holm),
    its contrasts per sparsity (Benjamini-Hochberg), proportion mediated (Fieller
    interval), within-seed ANOVA and TOST on the direct effects; dose-response (Page's
    trend test with a tie-aware p, per-seed slopes); per-layer LPR differences and an
    omnibus permutation test. Warnings (few seeds, diverged runs) lead the output; with
    --format csv they go to stderr so stdout stays a plain table.

    \b
    Transplant estimands, per seed; a = source, b = target run of a pair,
    Y(w, l) = eval accuracy of the weights of w pruned at the LPR of l:
      TE    = Y(b,b) - Y(a,a)   total effect of running b instead of a
      NIE_w = Y(w,b) - Y(w,a)   LPR effect: b's LPR instead of a's, weights w fixed
      NDE_l = Y(b,l) - Y(a,l)   weights effect: b's weights instead of a's, LPR l fixed
      INT   = NIE_b - NIE_a     how much the LPR effect depends on the weights
      NIE   = (NIE_a + NIE_b)/2 the LPR effect over both weights: the primary test
    TE = NIE_b + NDE_a = NIE_a + NDE_b; proportion mediated = mean NIE / mean TE.
    A positive effect means b's part raises accuracy.
    """
    # the analyses (scipy, statsmodels) load here, not with every command
    from lprcausal.stats.render import render
    from lprcausal.stats.report import analyze_results, write_stats

    result = analyze_results(results_dir, tost_margin=tost_margin, level=level)
    paths = write_stats(results_dir, result) if write else []
    click.echo(render(result, fmt), nl=False)
    if fmt == "csv":
        for w in result.warnings:
            click.echo(f"warning: {w}", err=True)
    if paths:
        click.echo(f"stats written to {', '.join(str(p) for p in paths)}", err=fmt != "table")
