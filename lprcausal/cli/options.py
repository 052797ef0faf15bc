"""Click options declared once and shared by the commands.

Options of the config dataclasses (data, model, H, pruning) are generated from their
fields (:func:`config_options`), so a new field appears on every command that takes
that config without editing the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import click

from lprcausal.config import TrainConfig, load_toml
from lprcausal.errors import LprError, bad_value
from lprcausal.pipeline import Context
from lprcausal.train import EngineOptions, pick_device

SCALARS = {"float": float, "int": int, "str": str}


def config_options(cls: type, dest: str, *, prefix: str = "") -> Callable:
    """Decorator adding one option per field of the config dataclass ``cls``; the values
    given are collected into the keyword argument ``dest`` as a dict (field -> value).

    Everything comes from the field: its name (``batch_size`` -> ``--batch-size``, or
    the metadata ``flag``), its type (a bool is a ``--x/--no-x`` pair, a tuple a
    repeatable option or, with ``comma``, one ``1,2,3`` value), its ``choices`` and its
    ``help`` (see :func:`lprcausal.config.option`). Options default to "not given", so
    a ``--config`` file's values are overridden only by what the user typed.
    """
    fields = [f for f in dataclasses.fields(cls) if "help" in f.metadata]

    def decorator(func: Callable) -> Callable:
        for f in reversed(fields):
            func = _field_option(f, dest, prefix)(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            given: dict[str, Any] = {}
            for f in fields:
                value = kwargs.pop(_kwarg(dest, f))
                if value is None or value == ():
                    continue
                if f.metadata.get("comma"):
                    value = _comma_list(value, _flag(f, prefix), _scalar(f))
                given[f.name] = list(value) if isinstance(value, tuple) else value
            kwargs[dest] = given
            return func(*args, **kwargs)

        return wrapper

    return decorator


def _kwarg(dest: str, f: dataclasses.Field) -> str:
    return f"{dest}__{f.name}"


def _flag(f: dataclasses.Field, prefix: str) -> str:
    return f.metadata.get("flag") or f"--{prefix}{f.name.replace('_', '-')}"


def _scalar(f: dataclasses.Field) -> type:
    """The Python type of one value of the field (of each item, for a tuple)."""
    text = str(f.type).replace(" | None", "")
    if text.startswith("tuple["):
        text = text[len("tuple[") :].split(",")[0].rstrip("]")
    return SCALARS.get(text.strip(), str)


def _field_option(f: dataclasses.Field, dest: str, prefix: str) -> Callable:
    flag, meta = _flag(f, prefix), f.metadata
    help_text = f"{meta['help']} [default: {_default_text(f)}]"
    if str(f.type) == "bool":
        off = meta.get("off_flag") or f"--{prefix}no-{f.name.replace('_', '-')}"
        return click.option(f"{flag}/{off}", _kwarg(dest, f), default=None, help=help_text)
    kind = click.Choice(meta["choices"]) if "choices" in meta else _scalar(f)
    if str(f.type).startswith("tuple") and not meta.get("comma"):
        return click.option(flag, _kwarg(dest, f), type=kind, multiple=True, help=help_text)
    if meta.get("comma"):
        kind = str
    return click.option(flag, _kwarg(dest, f), type=kind, default=None, help=help_text)


def _comma_list(text: str, flag: str, kind: type) -> list:
    try:
        return [kind(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise bad_value(flag, text, f"comma-separated {kind.__name__} values like 300,100") from None



def train_options(prefix: str = "") -> Callable:
    """One option per hyperparameter of H (TrainConfig), collected into ``train_overrides``."""
    return config_options(TrainConfig, "train_overrides", prefix=prefix)


def _default_text(f: dataclasses.Field) -> str:
    value = f.default
    if isinstance(value, tuple):
        return "none" if not value else " ".join(map(str, value))
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def config_table(config_path: str | None, table: str, *, top_level: bool = False) -> dict:
    """The ``[table]`` of an optional ``--config`` TOML file ({} without a file or table);
    with ``top_level``, a file of hyperparameters without tables is that table."""
    if not config_path:
        return {}
    data = load_toml(config_path)
    section = data.get(table, data if top_level and table not in data and "lr" in data else {})
    if not isinstance(section, dict):
        raise LprError(f"[{table}] in {config_path!r} must be a table, got {section!r}.")
    return section


def build_train_config(config_path: str | None, table: str, overrides: dict) -> TrainConfig:
    """TrainConfig from an optional TOML file's ``[table]`` (or top level) plus CLI overrides."""
    base = config_table(config_path, table, top_level=True)
    return TrainConfig.from_dict(TrainConfig.merge(base, overrides), table)


# The run store of the commands that only read runs (the others take runtime_options).
store_option = click.option("--store", default="runs", show_default=True, type=click.Path(),
                            help="Run store folder.")



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
        click.option("--cuda-graphs/--no-cuda-graphs", default=None,
                     help="On CUDA, replay each group's training step as a CUDA graph "
                          "[default: auto: the built-in models; models given by import "
                          "path only with --cuda-graphs]."),
        click.option("--max-members", type=int, default=None,
                     help="Cap on runs trained together (default: the memory budget and, "
                          "on the CPU, groups whose activations stay in the cache)."),
        click.option("--progress/--no-progress", default=True, show_default=True,
                     help="Show progress bars (without: a plain line every 30 s of a "
                          "study)."),
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
            cuda_graphs="auto" if (graphs := kwargs.pop("cuda_graphs")) is None else graphs,
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
