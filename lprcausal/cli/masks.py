"""``lprcausal masks export`` and ``lprcausal masks import``: masks as safetensors files."""

from __future__ import annotations

import click

from lprcausal.cli.app import cli
from lprcausal.cli.options import runtime_options
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
@click.option("--store", default="runs", show_default=True, type=click.Path(),
              help="Run store folder.")
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
@click.option("--model", "model_name", required=True,
              help="The model the masks belong to (mlp, cnn1d, lenet5, resnet20, ...).")
@click.option("--widths", default=None, help="Comma-separated layer widths of the model.")
@click.option("--dataset", default="mnist1d", show_default=True,
              help="Dataset the model is built for (input shape, classes) and evaluated on.")
@click.option("--n-samples", type=int, default=None, help="MNIST-1D: samples to generate.")
@click.option("--sparsity", type=float, default=None,
              help="Label of the level (must give the file's exact removal count) "
                   "[default: the file's sparsity].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Replicate whose seeded initialization is the run's rewind point.")
@click.option("--name", required=True, help="Friendly name for the imported run.")
@runtime_options
def import_command(path, model_name, widths, dataset, n_samples, sparsity, seed, name,
                   ctx) -> None:
    """Store the masks file PATH as a run, so `lpr --compare`, `eval` (from the model's
    seeded initialization) and `transplant --source` can use it."""
    from lprcausal.api.imported_runs import import_masks
    from lprcausal.cli.find_eval import _parse_widths
    from lprcausal.pipeline import FindRun

    model = ModelConfig.from_dict(
        {"name": model_name, **({"widths": _parse_widths(widths)} if widths else {})}, "model")
    data = DataConfig.from_dict(
        {"name": dataset, **({"n_samples": n_samples} if n_samples is not None else {})}, "data")
    ctx.store.set_name(name, run_id := import_masks(ctx, path, model, data, seed, sparsity))
    run = FindRun(ctx.store, run_id)
    click.echo(f"imported {path} as run {run_id} ({name}): sparsity {run.levels[0]:g} over "
               f"{len(run.prunable)} tensors of {model_name}")
