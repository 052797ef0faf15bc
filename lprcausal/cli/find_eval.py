"""``lprcausal find`` and ``lprcausal eval``."""

from __future__ import annotations

from pathlib import Path

import click

from lprcausal.cli.app import cli
from lprcausal.cli.lpr import echo_lpr
from lprcausal.cli.options import (
    build_train_config,
    config_options,
    config_table,
    runtime_options,
    train_options,
)
from lprcausal.cli.tables import pct, table
from lprcausal.config import (
    CONTROLS,
    EVAL_MODES,
    DataConfig,
    EvalSpec,
    FindSpec,
    MaskSpec,
    ModelConfig,
    PruneConfig,
    check_sparsity,
    tomllib,
)
from lprcausal.errors import bad_value
from lprcausal.pipeline import EvalRun, FindRun, ensure_evals, ensure_finds
from lprcausal.store import check_name
from lprcausal.usercode import resolve_find


def _ensure_named(ctx, specs: list, ensure, name: str | None,
                  suffixes: list[str]) -> list[tuple[str, str | None]]:
    """Make (or find) the runs of ``specs`` with ``ensure``; with ``--name``, name them
    ``name`` (one run) or ``name-<suffix>``. Returns (run id, name or None) per spec."""
    aliases = [None] * len(specs) if name is None else (
        [name] if len(specs) == 1 else [f"{name}-{s}" for s in suffixes])
    for alias in aliases:
        if alias:
            check_name(alias, "--name")  # before any training
    ids = ensure(ctx, specs)
    for run_id, alias in zip(ids, aliases, strict=True):
        if alias:
            ctx.store.set_name(alias, run_id)
    return list(zip(ids, aliases, strict=True))


@cli.command("find")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="TOML file with [data], [model], [train] (= H_find) and [prune] tables; "
                   "options given on the command line override it.")
@config_options(DataConfig, "data_overrides")
@config_options(ModelConfig, "model_overrides")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument for a model given by import path (repeatable; VALUE "
                   "is read as a TOML value: 2, 0.1, true, [64, 64], gelu).")
@train_options()
@config_options(PruneConfig, "prune_overrides")
@click.option("--seed", "seeds", type=int, multiple=True,
              help="Replicate index (repeatable; several seeds train together) [default: 0].")
@click.option("--name", default=None, help="Friendly name for the run (-seedN added if several).")
@runtime_options
def find_command(config, data_overrides, model_overrides, model_args, train_overrides,
                 prune_overrides,
                 seeds, name, ctx) -> None:
    """Find masks: train a dense network with H_find and prune it by global magnitude.

    One-shot prunes the trained network to every --sparsity; IMP prunes --rate of the
    remaining weights per round, rewinding to --rewind and retraining, until the largest
    target (the targets are extra levels). Prints the find accuracy and the accuracy of
    each pruned network before retraining.

    With --structure unit, whole units are pruned one-shot: conv output channels and
    linear output neurons (never the classifier's outputs), ranked globally by the norm
    of their weights; each --sparsity is the fraction of units removed, and each layer
    keeps at least one unit. `lprcausal lpr` shows the unit and parameter fractions.

    Your own network: --model nets.py:build (or mypkg.nets:build) is called as
    build(in_shape, n_classes, **kwargs) with the --model-arg values; the run id
    includes the SHA-256 of that file, so editing it gives new runs.
    """
    data = {**config_table(config, "data"), **data_overrides}
    model_cfg = {**config_table(config, "model"), **model_overrides}
    if model_args:
        model_cfg["kwargs"] = {**model_cfg.get("kwargs", {}), **parse_model_args(model_args)}
    prune = {**config_table(config, "prune"), **prune_overrides}
    base = Path(config).resolve().parent if config else None
    train = build_train_config(config, "train", train_overrides)
    seeds = list(seeds) or [int(config_table(config, "find").get("seed", 0))]
    specs = [
        resolve_find(FindSpec(
            data=DataConfig.from_dict(data, "data"),
            model=ModelConfig.from_dict(model_cfg, "model"),
            train=train,
            prune=PruneConfig.from_dict(prune, "prune"),
            seed=s,
        ), base)
        for s in seeds
    ]
    named = _ensure_named(ctx, specs, ensure_finds, name, [f"seed{s}" for s in seeds])
    for run_id, alias in named:
        run = FindRun(ctx.store, run_id)
        m = run.metrics
        label = f" ({alias})" if alias else ""
        click.echo(f"\nfind run {run_id}{label}: {run.spec.model.name} on {run.spec.data.name}, "
                   f"seed {run.spec.seed}")
        click.echo(f"  find accuracy (dense, test): {pct(m['dense_test_acc'])}"
                   + ("  [diverged]" if m["diverged"] else ""))
        rows = [[float(k), m["find_acc"][k], m["pruned_acc"][k]] for k in m["find_acc"]]
        headers = ["sparsity", "find_acc", "pruned_acc (no retrain)"]
        if "compact" in m:  # structured: sizes of the compacted networks
            headers += ["params kept", "FLOPs kept"]
            rows = [r + [m["compact"][k]["params_kept"], m["compact"][k]["flops_kept"]]
                    for r, k in zip(rows, m["find_acc"], strict=True)]
        click.echo(table(headers, rows))


@cli.command("eval")
@click.argument("run")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="TOML file whose [train] table (or top level) is H_eval.")
@train_options()
@click.option("--sparsity", "sparsities", type=float, multiple=True,
              help="Level(s) of the find run's masks to evaluate [default: all].")
@click.option("--mode", type=click.Choice(EVAL_MODES), default="rewind",
              show_default=True,
              help="Start from the rewind point, from the trained weights, or a fresh init.")
@click.option("--mask", "mask_kind", default="own", show_default=True,
              type=click.Choice(("own", *CONTROLS)),
              help="The find run's mask, or a control / allocation at the same sparsity.")
@click.option("--mask-seed", type=int, default=0, show_default=True,
              help="Seed of the shuffle/random control masks.")
@click.option("--seed", type=int, default=None,
              help="Eval replicate (data order) [default: the find run's seed].")
@click.option("--name", default=None, help="Friendly name (-s<sparsity> added if several).")
@runtime_options
def eval_command(run, config, train_overrides, sparsities, mode, mask_kind, mask_seed, seed,
                 name, ctx) -> None:
    """Evaluate the masks of find run RUN: rewind, apply the mask, retrain with H_eval.

    RUN is a name, a run id or a unique prefix. H_eval is set independently of the find
    run's H_find (defaults, --config, then command-line options). Prints the eval test
    accuracy (final epoch; never selected on test), the find accuracy and the LPR table.
    """
    find = FindRun(ctx.store, ctx.store.resolve(run, "RUN"), "RUN")
    train = build_train_config(config, "train", train_overrides)
    levels = [check_sparsity(s) for s in sparsities] or find.levels
    for s in levels:
        find.level(s)
    specs = [
        EvalSpec(find=find.id, sparsity=s, train=train, mode=mode,
                 mask=MaskSpec(kind=mask_kind, seed=mask_seed),
                 seed=find.spec.seed if seed is None else seed)
        for s in levels
    ]
    named = _ensure_named(ctx, specs, ensure_evals, name, [f"s{s:g}" for s in levels])
    rows = []
    for (run_id, alias), s in zip(named, levels, strict=True):
        ev = EvalRun(ctx.store, run_id)
        m = ev.metrics
        rows.append([run_id, s, m["find_acc"], m["final_val_acc"], m["test_acc"],
                     "yes" if m["diverged"] else "no"])
        click.echo(f"\neval run {run_id}{f' ({alias})' if alias else ''}: mask {mask_kind} at "
                   f"sparsity {s:g} of find run {find.id}, mode {mode}")
        echo_lpr(find, ev.layers, ev.mask(), ev.unit_mask())
    click.echo("\nsummary (accuracies on test unless noted; eval = final epoch)")
    click.echo(table(["eval run", "sparsity", "find_acc", "eval_val_acc", "eval_test_acc",
                      "diverged"], rows))


def parse_model_args(items) -> dict:
    """``("depth=2", "act=gelu")`` -> ``{"depth": 2, "act": "gelu"}``: each value is read
    as a TOML value; a bare word that is not one is taken as a string."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise bad_value("--model-arg", item, "KEY=VALUE with KEY a keyword argument name, "
                            "e.g. --model-arg depth=2 or --model-arg act=gelu")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out[key] = value
    return out
