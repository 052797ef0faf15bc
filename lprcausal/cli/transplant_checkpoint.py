"""``lprcausal transplant --source RUN --target CKPT --model M``: onto weights from a file.

Declared as a decorator over the transplant command, so the store-to-store factorial keeps
its own code: with ``--model`` the target is a checkpoint file (safetensors, or a torch
state dict read with ``weights_only=True``) and this path runs instead.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import click

from lprcausal.cli.options import config_options
from lprcausal.config import DataConfig, ModelConfig, TrainConfig
from lprcausal.errors import LprError, check_distinct


def checkpoint_target_options(func: Callable) -> Callable:
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ckpt = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("ckpt_")}
        if "name" not in ckpt["ckpt_model"]:
            _refuse_checkpoint_options(ckpt)
            return func(*args, **kwargs)
        return _run(ckpt, **kwargs)

    opts = [
        click.option("--masks-out", "ckpt_masks_out", default=None,
                     type=click.Path(dir_okay=False),
                     help="With --model: masks file [default: <checkpoint>-transplant"
                          ".safetensors; -s<level> added for several levels]."),
        click.option("--eval/--no-eval", "ckpt_eval", default=False, show_default=True,
                     help="With --model: also fine-tune the checkpoint at the source's LPR "
                          "and at its own, per seed (with --alpha / --control also at "
                          "interpolated LPRs and control masks), and write the transplant "
                          "Dataset (design 'checkpoint') to --out."),
    ]
    for opt in reversed(opts):
        wrapper = opt(wrapper)
    # --model (and --widths) name the checkpoint's architecture; --dataset what it is for.
    wrapper = config_options(DataConfig, "ckpt_data")(wrapper)
    return config_options(ModelConfig, "ckpt_model")(wrapper)


def _flags(cls: type, given: dict) -> list[str]:
    """The command-line flags of the config fields in ``given``."""
    flags = {f.name: f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"
             for f in dataclasses.fields(cls)}
    return [flags[name] for name in given]


def _refuse_checkpoint_options(ckpt: dict) -> None:
    """Without --model the checkpoint-only options would be silently ignored: an error."""
    given = _flags(ModelConfig, ckpt["ckpt_model"]) + _flags(DataConfig, ckpt["ckpt_data"])
    given += ["--masks-out"] if ckpt["ckpt_masks_out"] is not None else []
    given += ["--eval"] if ckpt["ckpt_eval"] else []
    if given:
        raise LprError(
            f"{', '.join(given)} given without --model: these describe a checkpoint target "
            "(a weights file); between stored runs the runs' own model and data are used and "
            "every cell is trained. Expected --model with them, or none of them."
        )


def _refuse_store_options(mode: str, match: str | None, layer_map: str | None,
                          allow_self: bool) -> None:
    """The store-to-store options a checkpoint target cannot apply: an error, not silence."""
    given = [f"--match {match}"] if match is not None else []
    given += ["--layer-map"] if layer_map is not None else []
    given += ["--allow-self"] if allow_self else []
    source = click.get_current_context().get_parameter_source("mode")
    if source not in (None, click.core.ParameterSource.DEFAULT):
        given.insert(0, f"--mode {mode}")
    if given:
        raise LprError(
            f"{', '.join(given)} given with --model (a checkpoint target): these apply to "
            "transplants between stored runs only; onto a checkpoint the cells always "
            "fine-tune the checkpoint's own weights, matched to the source's layers by name. "
            "Expected none of them with --model."
        )


def _run(ckpt: dict, sources, targets, sparsities, config, train_overrides, eval_seeds, out,
         alphas, controls, ctx, mode, match, layer_map, allow_self) -> None:
    from lprcausal.api.checkpoint_transplant import (
        check_dose_and_controls,
        evaluate_transplant,
        transplant_onto_checkpoint,
    )
    from lprcausal.cli.options import build_train_config
    from lprcausal.cli.transplant import report
    from lprcausal.config import to_toml
    from lprcausal.pruning import overall_sparsity
    from lprcausal.results.io import save_dataset

    if len(sources) != 1 or len(targets) != 1:
        raise LprError(
            f"--model transplants one source run onto one checkpoint: got {len(sources)} "
            f"--source and {len(targets)} --target; expected one of each."
        )
    _refuse_store_options(mode, match, layer_map, allow_self)
    trains = _flags(TrainConfig, train_overrides) + [
        flag for flag, on in (("--config", config), ("--eval-seed", eval_seeds), ("--out", out),
                              ("--alpha", alphas), ("--control", controls)) if on]
    if trains and not ckpt["ckpt_eval"]:
        raise LprError(
            f"{', '.join(trains)} given without --eval: these set up the trained cells; with "
            "--model (a checkpoint target) they need --eval, which trains the transplant and "
            "the checkpoint's own mask (without it only the masks are written)."
        )
    check_dose_and_controls(tuple(alphas), tuple(controls))
    check_distinct("--sparsity", sparsities)  # a repeat: the same cells twice in every test
    check_distinct("--eval-seed", eval_seeds)
    model = ModelConfig.from_dict(ckpt["ckpt_model"], "model")
    data = DataConfig.from_dict(ckpt["ckpt_data"], "data")
    target = targets[0]
    masks_out = ckpt["ckpt_masks_out"] or str(Path(target).with_suffix("")) + "-transplant.safetensors"
    source, levels, state, masks, files = transplant_onto_checkpoint(
        ctx, sources[0], target, model, data, tuple(sparsities), masks_out)
    for s, f in zip(levels, files, strict=True):
        click.echo(f"sparsity {s:g}: masks of {target} at the LPR of run {source.id} -> {f}")
    if not ckpt["ckpt_eval"]:
        return
    h_eval = build_train_config(config, "train", train_overrides) if (
        config or train_overrides) else TrainConfig()
    seeds = tuple(eval_seeds) or (source.spec.seed,)
    names = (sources[0], Path(target).name)
    ds = evaluate_transplant(ctx, state, masks, levels, model, data, h_eval, seeds, source,
                             target, names, alphas=tuple(alphas), controls=tuple(controls))
    path = Path(out) if out else Path("results") / f"transplant-{source.id[:8]}-{Path(target).stem}.nc"
    save_dataset(ds, path)
    click.echo(f"\nH_eval {ds.attrs['h_eval']}:\n{to_toml(h_eval)}")
    click.echo(f"a = {names[0]}: source {source.id}\nb = {names[1]}: checkpoint {target}\n"
               f"seeds: {', '.join(map(str, seeds))}\n\nonto a checkpoint: only the weights of "
               "b take both LPRs (the source's, and the checkpoint's own global magnitude "
               "LPR); cells of weights a are absent.")
    report(ds, path, [overall_sparsity(source.mask(s)) for s in levels])
