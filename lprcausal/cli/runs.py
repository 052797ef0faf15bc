"""``lprcausal runs list`` and ``lprcausal runs show``."""

from __future__ import annotations

import json

import click

from lprcausal.cli.app import cli
from lprcausal.cli.tables import table
from lprcausal.config import to_toml
from lprcausal.pipeline import FindRun, open_run
from lprcausal.pipeline.runs import StoredRun
from lprcausal.store import RunStore


@cli.group("runs")
def runs_group() -> None:
    """List and inspect stored runs."""


@runs_group.command("list")
@click.option("--store", default="runs", show_default=True, type=click.Path(),
              help="Run store folder.")
@click.option("--kind", type=click.Choice(["find", "eval"]), default=None,
              help="Only runs of this kind.")
def list_command(store: str, kind: str | None) -> None:
    """One line per run: id, name, kind, model/dataset, H (lr, optimizer, length), accuracy."""
    st = RunStore(store)
    aliases: dict[str, list[str]] = {}
    for alias, run_id in st.names().items():
        aliases.setdefault(run_id, []).append(alias)
    rows = []
    for run_id in st.run_ids():
        if not st.exists(run_id):
            continue
        run = StoredRun(st, run_id)
        if kind and run.kind != kind:
            continue
        spec, m = run.spec, run.metrics
        t = spec.train
        length = f"{t.epochs}ep" if t.epochs is not None else f"{t.iterations}it"
        if run.kind == "find":
            what = f"{spec.model.name}/{spec.data.name} {spec.prune.method}"
            acc = m["dense_test_acc"]
            detail = "levels " + ",".join(f"{s:g}" for s in m["levels"])
        else:
            what = f"mask {spec.mask.kind} of {spec.find[:8]} ({spec.mode})"
            acc = m["test_acc"]
            detail = f"sparsity {spec.sparsity:g}"
        rows.append([run_id, ",".join(aliases.get(run_id, [])) or "-", run.kind, what,
                     f"{t.optimizer} lr={t.lr:g} {length}", detail, acc])
    if not rows:
        click.echo(f"No runs in store {store!r}.")
        return
    click.echo(table(["id", "name", "kind", "what", "H", "detail", "test_acc"], rows))


@runs_group.command("show")
@click.argument("run")
@click.option("--store", default="runs", show_default=True, type=click.Path(),
              help="Run store folder.")
def show_command(run: str, store: str) -> None:
    """Everything stored about RUN: config (TOML), metrics summary, provenance."""
    obj = open_run(RunStore(store), run)
    click.echo(f"run {obj.id}  kind {obj.kind}")
    if obj.record.get("parents"):
        click.echo(f"parents: {', '.join(obj.record['parents'])}")
    click.echo("\n# resolved configuration\n" + to_toml(obj.spec))
    m = dict(obj.metrics)
    if isinstance(obj, FindRun):
        m.pop("rounds", None)
    click.echo("# metrics\n" + json.dumps(m, indent=1, sort_keys=True))
    click.echo("\n# provenance\n" + json.dumps(obj.record.get("provenance", {}), indent=1))
    click.echo(f"\nprunable set ({len(obj.prunable)} tensors): {', '.join(obj.prunable)}")
