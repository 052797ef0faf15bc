"""``lprcausal study plan|run|collect SPEC``: whole studies from a TOML spec."""

from __future__ import annotations

import sys

import click

from lprcausal.cli.app import cli
from lprcausal.cli.options import runtime_options
from lprcausal.errors import LprError
from lprcausal.pipeline import Context

# Above either size `study run` asks for --yes (a typo in a grid can ask for months).
MAX_PLAN_RUNS = 5_000
MAX_PLAN_STEPS = 1e9


def _study(spec: str, ctx: Context, results: str = "results"):
    from lprcausal.study import Study  # lazy: keeps `lprcausal --help` fast

    return Study.from_toml(spec, ctx=ctx, results=results)


results_option = click.option(
    "--results",
    default="results",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Results root; files go to RESULTS/<study name>/.",
)


@cli.group("study")
def study_group() -> None:
    """Whole studies: a TOML spec -> cached runs -> xarray results (see studies/README.md)."""


@study_group.command("plan")
@click.argument("spec", type=click.Path(dir_okay=False))
@runtime_options
def plan_command(spec: str, ctx: Context) -> None:
    """Size of SPEC's job graph: runs cached vs to train and their optimizer steps.

    Validates the spec and trains nothing.
    """
    click.echo(str(_study(spec, ctx).plan()))


@study_group.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@results_option
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: this process. dask: a Dask LocalCluster sized to the machine, or "
    "the cluster at --scheduler.",
)
@click.option(
    "--scheduler",
    default=None,
    help="Address of a running Dask scheduler (e.g. tcp://host:8786); implies "
    "--executor dask. The run store must be on a filesystem every worker sees.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="LocalCluster workers [default: one per GPU, else one per 2 CPU cores].",
)
@click.option("--yes", is_flag=True,
              help=f"Run even a plan with more than {MAX_PLAN_RUNS} runs or "
                   f"{MAX_PLAN_STEPS:.0e} optimizer steps to train.")
@runtime_options
def run_command(
    spec: str, results: str, executor: str, scheduler: str | None, workers: int | None,
    yes: bool, ctx: Context
) -> None:
    """Train every run of SPEC the store lacks, then collect the results.

    Runs are content-addressed, so a second `study run` recomputes nothing and a changed
    spec recomputes only what changed; a killed study resumes where it stopped. Ends
    with a one-line summary naming the results folder.
    """
    study = _study(spec, ctx, results)
    if scheduler:
        executor = "dask"
    plan = study.plan()
    click.echo(str(plan))
    too_big = plan.missing > MAX_PLAN_RUNS or (plan.steps or 0) > MAX_PLAN_STEPS
    if too_big and not yes:
        raise LprError(
            f"study {study.name} would train {plan.missing} runs ({plan.steps or '?'} optimizer "
            f"steps), more than {MAX_PLAN_RUNS} runs or {MAX_PLAN_STEPS:.0e} steps: check the "
            "plan above and pass --yes to run it."
        )
    # without bars, plain progress lines (a batch job's log would be silent for hours)
    summary = study.run(executor, scheduler=scheduler, workers=workers, log=sys.stderr)
    click.echo(str(summary))


@study_group.command("collect")
@click.argument("spec", type=click.Path(dir_okay=False))
@results_option
@runtime_options
def collect_command(spec: str, results: str, ctx: Context) -> None:
    """Write SPEC's results (netCDF Datasets and study.json) from the stored runs."""
    study = _study(spec, ctx, results)
    paths = study.collect()
    click.echo(
        f"study {study.name}: results in {study.results_dir}/ "
        f"({', '.join(p.name for p in paths.values())})"
    )
