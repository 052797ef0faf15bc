"""``lprcausal lpr``: per-layer pruning ratios of a run's mask(s)."""

from __future__ import annotations

import click
import torch

from lprcausal.cli.app import cli
from lprcausal.cli.tables import table
from lprcausal.config import check_sparsity
from lprcausal.errors import LprError
from lprcausal.pipeline import FindRun, open_run
from lprcausal.pipeline.masks import check_same_layers
from lprcausal.pruning import allocate_ratios, layerwise_ratios
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


def _compare(runs: list[FindRun], s: float, against: tuple[str, ...]) -> None:
    """Side-by-side LPR of several find runs (and allocation schemes) with L1 distances."""
    base = runs[0]
    columns: list[tuple[str, dict[str, float]]] = []
    for run in runs:
        check_same_layers(base, run)
        columns.append((run.id[:8], layerwise_ratios(run.mask(s))))
    weights = base.prunable_weights(s)
    for scheme in against:
        columns.append((scheme, allocate_ratios(scheme, weights, s)))
    rows = [[layer["name"], int(layer["n_params"])] + [c[1][layer["name"]] for c in columns]
            for layer in base.layers]
    click.echo(f"\nLPR at sparsity {s:g} (schemes use the weights of {base.id})")
    click.echo(table(["layer", "n_params"] + [c[0] for c in columns], rows))
    ref = columns[0][1]
    dist = [["L1 to " + columns[0][0], ""] + [
        sum(abs(ref[n] - c[1][n]) for n in ref) for c in columns]]
    click.echo(table(["", ""] + [c[0] for c in columns], dist))


@cli.command("lpr")
@click.argument("run")
@click.option("--sparsity", "sparsities", type=float, multiple=True,
              help="Level(s) of a find run to show (default: all).")
@click.option("--compare", "compare", multiple=True,
              help="Other find run(s) to show side by side, with L1 distances (repeatable).")
@click.option("--against", "against", multiple=True,
              type=click.Choice(["global", "uniform", "erk", "lamp"]),
              help="Allocation scheme(s) at the same sparsity to show side by side.")
@click.option("--store", default="runs", show_default=True, type=click.Path(),
              help="Run store folder.")
def lpr_command(run: str, sparsities: tuple[float, ...], compare: tuple[str, ...],
                against: tuple[str, ...], store: str) -> None:
    """Per-layer pruning ratios (LPR) of RUN: name, shape, n_params, kept, LPR.

    RUN is a name, a run id or a unique id prefix. For a find run every stored level
    is shown (or those given with --sparsity); for an eval run, the mask it trained with.
    With --compare/--against, the LPR of several runs and schemes side by side.
    """
    st = RunStore(store)
    obj = open_run(st, run)
    if compare or against:
        if not isinstance(obj, FindRun):
            raise LprError(f"RUN = {run!r} is an eval run: --compare/--against need find runs.")
        others = [FindRun(st, st.resolve(r, "--compare"), "--compare") for r in compare]
        levels = [check_sparsity(s) for s in sparsities] or obj.levels
        for s in levels:
            _compare([obj, *others], s, against)
        return
    if isinstance(obj, FindRun):
        levels = [check_sparsity(s) for s in sparsities] or obj.levels
        for s in levels:
            click.echo(f"\nrun {obj.id}  sparsity {s:g}  (find run)")
            click.echo(lpr_table(obj.layers, obj.mask(s)))
    else:
        click.echo(f"\nrun {obj.id}  sparsity {obj.spec.sparsity:g}  (eval run, mask "
                   f"{obj.spec.mask.kind})")
        click.echo(lpr_table(obj.layers, obj.mask()))
