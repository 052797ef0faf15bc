"""Click options declared once and shared by the commands.

Hyperparameter options are generated from :class:`lprcausal.config.TrainConfig`'s
fields, so a new hyperparameter appears on every command that takes an H without
editing the CLI. Options default to "not given" so a ``--config`` file's values are
only overridden by what the user typed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import click

from lprcausal.config import TrainConfig, load_toml
from lprcausal.errors import LprError
from lprcausal.pipeline import Context
from lprcausal.train import EngineOptions, pick_device

TRAIN_HELP = {
    "optimizer": "Optimizer: sgd, adam or adamw.",
    "lr": "Peak learning rate (> 0).",
    "momentum": "SGD momentum (0 disables it).",
    "nesterov": "Use Nesterov momentum (SGD only).",
    "beta1": "Adam/AdamW beta1.",
    "beta2": "Adam/AdamW beta2.",
    "eps": "Adam/AdamW epsilon.",
    "weight_decay": "Weight decay (L2 for sgd/adam, decoupled for adamw).",
    "batch_size": "Samples per optimizer step (full batches only).",
    "epochs": "Training length in epochs (give epochs or iterations).",
    "iterations": "Training length in optimizer steps (replaces epochs).",
    "schedule": "Learning-rate schedule: constant, step (milestones, gamma) or cosine.",
    "milestones": "Step-schedule milestones such as 10ep or 500it (repeat the option).",
    "gamma": "Step-schedule decay factor at each milestone.",
    "warmup": "Linear warmup length, e.g. 200it or 1ep (0it = none).",
    "augment": "Random crop (4 px padding) and horizontal flip (image datasets).",
}


def train_options(prefix: str = "") -> Callable:
    """Decorator adding one option per TrainConfig field, collected into ``train_overrides``."""

    def decorator(func: Callable) -> Callable:
        names = []
        for f in reversed(dataclasses.fields(TrainConfig)):
            flag = f"--{prefix}{f.name.replace('_', '-')}"
            dest = f"h_{f.name}"
            names.append(dest)
            help_text = TRAIN_HELP.get(f.name, "") + f" [default: {_default_text(f)}]"
            if f.type == "bool":
                opt = click.option(
                    f"{flag}/--{prefix}no-{f.name.replace('_', '-')}", dest, default=None,
                    help=help_text,
                )
            elif f.type.startswith("tuple"):
                opt = click.option(flag, dest, multiple=True, help=help_text)
            else:
                kind = {"float": float, "int": int, "int | None": int, "str": str}[f.type]
                opt = click.option(flag, dest, type=kind, default=None, help=help_text)
            func = opt(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            overrides: dict[str, Any] = {}
            for dest in names:
                value = kwargs.pop(dest)
                if value is None or value == ():
                    continue
                overrides[dest[2:]] = list(value) if isinstance(value, tuple) else value
            kwargs["train_overrides"] = overrides
            return func(*args, **kwargs)

        return wrapper

    return decorator


def _default_text(f: dataclasses.Field) -> str:
    value = f.default
    if isinstance(value, tuple):
        return "none" if not value else ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def build_train_config(config_path: str | None, table: str, overrides: dict) -> TrainConfig:
    """TrainConfig from an optional TOML file's ``[table]`` (or top level) plus CLI overrides."""
    base: dict[str, Any] = {}
    if config_path:
        data = load_toml(config_path)
        base = data.get(table, data if table not in data and "lr" in data else {})
        if not isinstance(base, dict):
            raise LprError(f"[{table}] in {config_path!r} must be a table of hyperparameters.")
    return TrainConfig.from_dict(TrainConfig.merge(base, overrides), table)


def runtime_options(func: Callable) -> Callable:
    """Where runs live and how they are computed: not part of any run's identity."""
    opts = [
        click.option("--store", default="runs", show_default=True, type=click.Path(),
                     help="Run store folder (content-addressed run directories)."),
        click.option("--data-root", default=None, type=click.Path(),
                     help="Folder holding torchvision-format datasets (MNIST, CIFAR, ...)."),
        click.option("--download", is_flag=True, help="Download a missing torchvision dataset."),
        click.option("--device", default="auto", show_default=True,
                     help="auto (CUDA if present), cpu, cuda or cuda:N."),
        click.option("--fuse/--no-fuse", default=None,
                     help="Train compatible runs together as one stacked model [default: "
                          "auto: always on CUDA; on the CPU except 2D-conv models, which "
                          "run faster one by one there]."),
        click.option("--max-members", type=int, default=None,
                     help="Cap on runs trained together (default: memory budget)."),
        click.option("--progress/--no-progress", default=True, show_default=True,
                     help="Show progress bars."),
    ]
    for opt in reversed(opts):
        func = opt(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        device = kwargs.pop("device")
        engine = EngineOptions(
            device=None if device == "auto" else pick_device(device),
            fuse="auto" if (fuse := kwargs.pop("fuse")) is None else fuse,
            max_members=kwargs.pop("max_members"),
            progress=kwargs.pop("progress"),
        )
        kwargs["ctx"] = Context.at(
            kwargs.pop("store"),
            data_root=kwargs.pop("data_root"),
            download=kwargs.pop("download"),
            engine=engine,
        )
        return func(*args, **kwargs)

    return wrapper
