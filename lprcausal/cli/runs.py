"""``lprcausal runs list`` and ``lprcausal runs show``."""

from __future__ import annotations

import json
import random

import click

from lprcausal.cli.app import cli
from lprcausal.cli.options import runtime_options, store_option
from lprcausal.cli.tables import table
from lprcausal.config import SPEC_TYPES, CodeRef, hash_payload, to_toml
from lprcausal.pipeline import FindRun, open_run
from lprcausal.pipeline.runs import FIND_KINDS, StoredRun
from lprcausal.pipeline.verify import check_store, retrain_alone
from lprcausal.store import RunStore


@cli.group("runs")
def runs_group() -> None:
    """List and inspect stored runs."""


@runs_group.command("list")
@store_option
@click.option("--kind", type=click.Choice(tuple(SPEC_TYPES)), default=None,
              help="Only runs of this kind.")
def list_command(store: str, kind: str | None) -> None:
    """One line per run: id, name, kind, model/dataset, H (lr, optimizer, length), accuracy."""
    st = RunStore(store)
    aliases: dict[str, list[str]] = {}
    for alias, run_id in st.names().items():
        aliases.setdefault(run_id, []).append(alias)
    rows = []
    for run_id in st.run_ids():
        why = st.damage(run_id)
        if why is not None:
            rows.append([run_id, ",".join(aliases.get(run_id, [])) or "-", "damaged", why,
                         "-", "see `lprcausal runs verify`", float("nan")])
            continue
        run = StoredRun(st, run_id)
        if kind and run.kind != kind:
            continue
        spec, m = run.spec, run.metrics
        what, h = _describe(run.kind, spec)
        if run.kind in FIND_KINDS:
            acc = m.get("dense_test_acc", float("nan"))
            detail = "levels " + ",".join(f"{s:g}" for s in m["levels"])
        else:
            acc = m["test_acc"]
            detail = f"sparsity {spec.sparsity:g}"
        rows.append([run_id, ",".join(aliases.get(run_id, [])) or "-", run.kind, what, h,
                     detail, acc])
    if not rows:
        click.echo(f"No runs in store {store!r}.")
        return
    click.echo(table(["id", "name", "kind", "what", "H", "detail", "test_acc"], rows))


def _describe(kind: str, spec) -> tuple[str, str]:
    """The 'what' and 'H' columns of a run of any kind."""
    if kind == "import":
        return f"imported masks on {spec.model.name}/{spec.data.name}", "-"
    if kind in ("own-find", "own-eval"):
        h = spec.hparams if len(spec.hparams) <= 40 else spec.hparams[:37] + "..."
        code = spec.code if len(spec.code) <= 19 else spec.code[:19]
        if kind == "own-find":
            return f"own loop {code} {spec.prune.method}", h
        return f"own loop: mask {spec.mask.kind} of {spec.find[:8]} ({spec.mode})", h
    t = spec.train
    length = f"{t.epochs}ep" if t.epochs is not None else f"{t.iterations}it"
    h = f"{t.optimizer} lr={t.lr:g} {length}"
    if kind == "find":
        return f"{spec.model.name}/{spec.data.name} {spec.prune.method}", h
    return f"mask {spec.mask.kind} of {spec.find[:8]} ({spec.mode})", h


@runs_group.command("show")
@click.argument("run")
@store_option
def show_command(run: str, store: str) -> None:
    """Everything stored about RUN: config (TOML), metrics summary, provenance."""
    obj = open_run(RunStore(store), run)
    click.echo(f"run {obj.id}  kind {obj.kind}")
    if obj.record.get("parents"):
        click.echo(f"parents: {', '.join(obj.record['parents'])}")
    click.echo("\n# resolved configuration\n" + to_toml(obj.spec))
    click.echo("# identity: the run id is the SHA-256 of this JSON (non-default fields; "
               "user code by file hash)\n"
               + json.dumps(hash_payload(obj.spec), sort_keys=True, separators=(",", ":")))
    for line in code_lines(obj.spec if isinstance(obj, FindRun) else None):
        click.echo(line)
    m = dict(obj.metrics)
    if isinstance(obj, FindRun):
        m.pop("rounds", None)
    click.echo("# metrics\n" + json.dumps(m, indent=1, sort_keys=True))
    click.echo("\n# provenance\n" + json.dumps(obj.record.get("provenance", {}), indent=1))
    click.echo(f"\nprunable set ({len(obj.prunable)} tensors): {', '.join(obj.prunable)}")


@runs_group.command("verify")
@click.option("--retrain", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also retrain this many runs (a sample) alone and compare with the store.")
@click.option("--sample-seed", type=int, default=0, show_default=True,
              help="Seed of the sample of runs to retrain.")
@click.option("--dry-run", is_flag=True,
              help="Only report damaged runs; do not move them aside.")
@runtime_options
def verify_command(retrain: int, sample_seed: int, dry_run: bool, ctx) -> None:
    """Check every run of the store; move damaged ones into .quarantine/ (never deleted).

    A run is valid when its id is the hash of its run.json spec and its manifest lists
    exactly the files present with matching SHA-256. With --retrain N, N runs are
    trained again alone (no fusion) and the largest weight and accuracy differences are
    shown next to the accuracy's seed-to-seed spread: 0 on the CPU, float noise on CUDA.
    """
    store = ctx.store
    found = check_store(store, quarantine=not dry_run)
    click.echo(
        f"{len(found.valid) + len(found.damaged)} runs in {str(store.root)!r}: "
        f"{len(found.valid)} valid, {len(found.damaged)} damaged"
        + ("" if not found.damaged or dry_run else " (moved to .quarantine/)")
        + f"; {len(found.stale)} stale temp entries removed."
    )
    for run_id, why in found.damaged.items():
        click.echo(f"  damaged {run_id}: it {why}")
    for name, run_id in found.dangling_names.items():
        click.echo(f"  name {name!r} points at run {run_id}, which is not a valid run here")
    if not retrain:
        return
    # only runs this package trained can be trained again (not own-loop or imported ones)
    ours = [i for i in found.valid if StoredRun(store, i).kind in ("find", "eval")]
    sample = sorted(random.Random(sample_seed).sample(ours, min(retrain, len(ours))))
    rows = []
    for run_id in sample:
        r = retrain_alone(ctx, run_id)
        rows.append([r["run"], r["kind"], f"{r['max_weight_diff']:.3g}", f"{r['acc_diff']:.4g}",
                     f"{r['seed_std']:.4g}", r["n_seeds"]])
    click.echo(table(["run", "kind", "max |dw|", "|d acc|", "seed std acc", "seeds"], rows))


def code_lines(spec) -> list[str]:
    """One line per piece of user code a find run names: import path, kwargs, file hash."""
    if spec is None:
        return []
    lines = []
    for what, cfg in (("model", getattr(spec, "model", None)),
                      ("dataset", getattr(spec, "data", None))):
        code = getattr(cfg, "code", None)
        if not isinstance(code, CodeRef):  # built-ins; runs of other kinds
            continue
        pkg = f", package {code.package} {code.version}" if code.package else ""
        kwargs = getattr(cfg, "kwargs", ())
        kw = f", kwargs {json.dumps(kwargs.as_dict(), sort_keys=True)}" if kwargs else ""
        lines.append(f"{what} code: {cfg.name}{kw}{pkg}, sha256 {code.sha256} of {code.file}")
    return lines
