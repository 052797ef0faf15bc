"""``lprcausal lpr``: per-layer pruning ratios of a run's mask(s)."""

from __future__ import annotations

import click
import torch

from lprcausal.cli.app import cli
from lprcausal.cli.tables import table
from lprcausal.config import check_sparsity
from lprcausal.pipeline import FindRun, open_run
from lprcausal.store import RunStore


def lpr_rows(layers: list[dict], mask: dict[str, torch.Tensor]) -> list[list]:
    """Rows name, shape, n_params, kept, removed, LPR, plus a total row."""
    rows, total_n, total_kept = [], 0, 0
    for layer in layers:
        name, n = layer["name"], int(layer["n_params"])
        kept = int(mask[name].sum()) if name in mask else n
        rows.append([name, tuple(layer["shape"]), n, kept, n - kept, (n - kept) / n])
        total_n, total_kept = total_n + n, total_kept + kept
    rows.append(["total", "", total_n, total_kept, total_n - total_kept,
                 (total_n - total_kept) / total_n])
    return rows


HEADERS = ["layer", "shape", "n_params", "kept", "removed", "LPR"]


def lpr_table(layers: list[dict], mask: dict[str, torch.Tensor]) -> str:
    return table(HEADERS, lpr_rows(layers, mask))


@cli.command("lpr")
@click.argument("run")
@click.option("--sparsity", "sparsities", type=float, multiple=True,
              help="Level(s) of a find run to show (default: all).")
@click.option("--store", default="runs", show_default=True, type=click.Path(),
              help="Run store folder.")
def lpr_command(run: str, sparsities: tuple[float, ...], store: str) -> None:
    """Per-layer pruning ratios (LPR) of RUN: name, shape, n_params, kept, LPR.

    RUN is a name, a run id or a unique id prefix. For a find run every stored level
    is shown (or those given with --sparsity); for an eval run, the mask it trained with.
    """
    obj = open_run(RunStore(store), run)
    if isinstance(obj, FindRun):
        levels = [check_sparsity(s) for s in sparsities] or obj.levels
        for s in levels:
            click.echo(f"\nrun {obj.id}  sparsity {s:g}  (find run)")
            click.echo(lpr_table(obj.layers, obj.mask(s)))
    else:
        click.echo(f"\nrun {obj.id}  sparsity {obj.spec.sparsity:g}  (eval run, mask "
                   f"{obj.spec.mask.kind})")
        click.echo(lpr_table(obj.layers, obj.mask()))
