"""``lprcausal lpr``: per-layer pruning ratios of a run's mask(s).

For structured (unit) runs the table has both forms of the LPR: the fraction of each
layer's parameters removed (``LPR``, counting the input columns a removed unit's
consumer loses) and the fraction of its units removed (``unit LPR``), followed by the
parameter and FLOP counts of the model before and after compaction.
"""

from __future__ import annotations

import click
import torch

from lprcausal.cli.app import cli
from lprcausal.cli.options import store_option
from lprcausal.cli.tables import table
from lprcausal.compact import compaction_summary, count_params, save_compact
from lprcausal.config import check_sparsity
from lprcausal.errors import LprError
from lprcausal.models import build_network
from lprcausal.pipeline import EvalRun, FindRun, open_run
from lprcausal.pipeline.masks import check_same_layers, check_same_structure
from lprcausal.pruning import SCHEMES, allocate_ratios, layerwise_ratios
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


UNIT_HEADERS = [*HEADERS[:-1], "LPR (params)", "units", "units kept", "unit LPR"]


def unit_lpr_rows(layers: list[dict], mask: dict[str, torch.Tensor],
                  unit_masks: dict[str, torch.Tensor]) -> list[list]:
    """:func:`lpr_rows` plus units, units kept and unit LPR ("-" where a layer has no
    prunable units); the total row counts units over the unit layers."""
    rows = lpr_rows(layers, mask)
    n_total, kept_total = 0, 0
    for row in rows[:-1]:
        m = unit_masks.get(row[0])
        if m is None:
            row += [None, None, None]
            continue
        n, kept = m.numel(), int(m.sum())
        row += [n, kept, (n - kept) / n]
        n_total, kept_total = n_total + n, kept_total + kept
    rows[-1] += [n_total, kept_total, (n_total - kept_total) / n_total if n_total else 0.0]
    return rows


def _build(find: FindRun) -> tuple[torch.nn.Module, dict]:
    """A freshly built model of ``find``'s architecture and its build arguments."""
    spec, record = find.spec, find.record
    build = {"name": spec.model.name, "in_shape": list(record["in_shape"]),
             "n_classes": record["n_classes"],
             "widths": list(spec.model.widths) if spec.model.widths else None}
    net = build_network(spec.model, tuple(build["in_shape"]), build["n_classes"])
    return net, build


def compaction_line(find: FindRun, unit_masks: dict[str, torch.Tensor]) -> str:
    """Parameters and FLOPs before -> after compacting a model of ``find``'s architecture."""
    net, _ = _build(find)
    c = compaction_summary(net, unit_masks, find.record["in_shape"], find.unit_layers())
    return (f"compacted model: params {c['params_dense']} -> {c['params_compact']} "
            f"({100 * c['params_kept']:.2f}% kept), FLOPs/sample {c['flops_dense']} -> "
            f"{c['flops_compact']} ({100 * c['flops_kept']:.2f}% kept)")


def echo_lpr(find: FindRun | None, layers: list[dict], mask: dict[str, torch.Tensor],
          unit_masks: dict[str, torch.Tensor] | None) -> None:
    """Print the LPR table (with unit columns and compaction for structured runs)."""
    if unit_masks is None or find is None:
        click.echo(table(HEADERS, lpr_rows(layers, mask)))
        return
    click.echo(table(UNIT_HEADERS, unit_lpr_rows(layers, mask, unit_masks)))
    click.echo(compaction_line(find, unit_masks))


def _compare(runs: list[FindRun], s: float, against: tuple[str, ...]) -> None:
    """Side-by-side LPR of several find runs (and allocation schemes) with L1 distances."""
    base = runs[0]
    columns: list[tuple[str, dict[str, float]]] = []
    for run in runs:
        check_same_layers(base, run)
        check_same_structure(base, run)
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
              type=click.Choice(SCHEMES),
              help="Allocation scheme(s) at the same sparsity to show side by side.")
@click.option("--export-compact", "export", type=click.Path(dir_okay=False), default=None,
              help="Structured runs: write the compacted model (fewer channels/neurons) to "
                   "this safetensors file: an eval run's retrained weights, or a find run's "
                   "pruned trained weights at one --sparsity.")
@store_option
def lpr_command(run: str, sparsities: tuple[float, ...], compare: tuple[str, ...],
                against: tuple[str, ...], export: str | None, store: str) -> None:
    """Per-layer pruning ratios (LPR) of RUN: name, shape, n_params, kept, LPR.

    RUN is a name, a run id or a unique id prefix. For a find run every stored level
    is shown (or those given with --sparsity); for an eval run, the mask it trained with.
    With --compare/--against, the LPR of several runs and schemes side by side.
    Structured runs also show unit fractions and the compacted model's size.
    """
    st = RunStore(store)
    obj = open_run(st, run)
    levels = [check_sparsity(s) for s in sparsities] or (
        obj.levels if isinstance(obj, FindRun) else [])
    if export:
        _export(st, obj, levels, export)
        return
    if compare or against:
        if not isinstance(obj, FindRun):
            raise LprError(f"RUN = {run!r} is an eval run: --compare/--against need find runs.")
        others = [FindRun(st, st.resolve(r, "--compare"), "--compare") for r in compare]
        if against and obj.structured:
            raise LprError(
                f"--against {against[0]} compares weight allocation schemes at a weight "
                f"sparsity, but run {obj.id} is structured (its levels are unit fractions): "
                "expected --against only with weight-pruning find runs."
            )
        for s in levels:
            _compare([obj, *others], s, against)
        return
    find_run = obj if isinstance(obj, FindRun) else FindRun(st, obj.spec.find, "find")
    click.echo(prunable_line(find_run))
    if isinstance(obj, FindRun):
        for s in levels:
            click.echo(f"\nrun {obj.id}  sparsity {s:g}  (find run)")
            echo_lpr(obj, obj.layers, obj.mask(s), obj.unit_mask(s) if obj.structured else None)
    else:
        click.echo(f"\nrun {obj.id}  sparsity {obj.spec.sparsity:g}  (eval run, mask "
                   f"{obj.spec.mask.kind})")
        units = obj.unit_mask() if isinstance(obj, EvalRun) else None
        find = FindRun(st, obj.spec.find, "find") if units is not None else None
        echo_lpr(find, obj.layers, obj.mask(), units)


def prunable_line(find: FindRun) -> str:
    """The prunable set of a find run and the rule that chose it."""
    spec = find.spec
    p = getattr(spec, "prune", None)
    # engine runs keep the globs in [prune]; runs of a user's own loop at the top level
    include = getattr(p, "include", ()) or getattr(spec, "include", ())
    exclude = getattr(p, "exclude", ()) or getattr(spec, "exclude", ())
    rule = []
    if include:
        rule.append(f"include {', '.join(include)}")
    if exclude:
        rule.append(f"exclude {', '.join(exclude)}")
    if getattr(p, "exclude_first", False):
        rule.append("first layer dense")
    if getattr(p, "exclude_last", False):
        rule.append("last layer dense")
    how = "; ".join(rule) or "default: Linear/Conv/ConvTranspose/attention weights"
    return f"prunable set ({how}): {len(find.prunable)} tensors: {', '.join(find.prunable)}"


def _export(st: RunStore, obj: FindRun | EvalRun, levels: list[float], path: str) -> None:
    """Write the compact model of a structured find run level or eval run to ``path``."""
    if isinstance(obj, FindRun):
        find = obj
        if len(levels) != 1:

            raise LprError(
                f"--export-compact writes one model, but find run {obj.id} has levels "
                f"{', '.join(f'{s:g}' for s in levels)}: expected one --sparsity."
            )
        find.level(levels[0])
        state = find.source_state(levels[0]) if find.structured else None
        units = find.unit_mask(levels[0]) if find.structured else None
    else:
        find = FindRun(st, obj.spec.find, "find")
        units = obj.unit_mask()
        state = st.read_tensors(obj.id, "weights_final.safetensors")
    if units is None:
        raise LprError(
            f"--export-compact needs a structured run (prune.structure = 'unit'), but run "
            f"{obj.id} prunes single weights: its masked model has no smaller dense form."
        )
    net, build = _build(find)
    net.load_state_dict(state)
    small = save_compact(path, net, units, build, find.unit_layers())
    click.echo(f"compact model written to {path}: params {count_params(net)} -> "
               f"{count_params(small)}")
