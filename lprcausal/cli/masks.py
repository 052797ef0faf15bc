"""``lprcausal masks export`` and ``lprcausal masks import``: masks as safetensors files."""

from __future__ import annotations

import click

from lprcausal.cli.app import cli
from lprcausal.cli.options import config_options, runtime_options, store_option
from lprcausal.config import DataConfig, ModelConfig
from lprcausal.store import RunStore


@cli.group("masks")
def masks_group() -> None:
    """Move masks between the run store and files (safetensors, metadata in the header)."""


@masks_group.command("export")
@click.argument("run")
@click.option("--sparsity", type=float, default=None,
              help="Level of a find run's masks [required for find runs].")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The .safetensors file to write.")
@store_option
def export_command(run: str, sparsity: float | None, out: str, store: str) -> None:
    """Write the mask of RUN (a find run at --sparsity, or an eval run) to a file.

    The header records the sparsity, the method, the prunable names and shapes, the
    source run id and the lprcausal version; `lprcausal.load_masks` and `masks import`
    read it back.
    """
    from lprcausal.api.imported_runs import export_masks

    path = export_masks(RunStore(store), run, sparsity, out)
    click.echo(f"masks of run {run} written to {path}")


@masks_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@config_options(ModelConfig, "model_given")
@config_options(DataConfig, "data_given")
@click.option("--sparsity", type=float, default=None,
              help="Label of the level (must give the file's exact removal count) "
                   "[default: the file's sparsity].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Replicate whose seeded initialization is the run's rewind point.")
@click.option("--name", required=True, help="Friendly name for the imported run.")
@runtime_options
def import_command(path, model_given, data_given, sparsity, seed, name, ctx) -> None:
    """Store the masks file PATH as a run of the model given by --model and --widths, so
    `lpr --compare`, `eval` (from the model's seeded initialization) and `transplant
    --source` can use it. The dataset (default mnist1d) sets the input shape and classes."""
    from lprcausal.api.imported_runs import import_masks
    from lprcausal.pipeline import FindRun

    model = ModelConfig.from_dict(model_given, "model")
    data = DataConfig.from_dict(data_given, "data")
    ctx.store.set_name(name, run_id := import_masks(ctx, path, model, data, seed, sparsity))
    run = FindRun(ctx.store, run_id)
    click.echo(f"imported {path} as run {run_id} ({name}): sparsity {run.levels[0]:g} over "
               f"{len(run.prunable)} tensors of {model.name}")
