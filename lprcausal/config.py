"""Hyperparameters and run descriptions.

A :class:`TrainConfig` is one set of training hyperparameters ``H``; ``H_find`` and
``H_eval`` are two independent instances. A :class:`FindSpec` or :class:`EvalSpec`
describes one run completely; its :func:`spec_hash` names the run's directory in the
store, so identical work is never redone.

Hashing rule (kept from OpenLTH): only fields that differ from their default enter
the hash. A new option added later with a default that reproduces the old behaviour
therefore changes no existing hash. Never change an existing default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, packaged for Python 3.10
    import tomli as tomllib

from lprcausal.errors import LprError, bad_value, check_choice, did_you_mean, wrong_type

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
PRUNE_METHODS = ("oneshot", "imp")
PRUNE_STRUCTURES = ("weight", "unit")
UNIT_NORMS = ("l1", "l2")
EVAL_MODES = ("rewind", "finetune", "reinit")
MASK_KINDS = ("own", "transplant", "interp", "uniform", "erk", "lamp", "shuffle", "random")
# The mask kinds a transplant can use as controls (same sparsity, no LPR of the other run).
CONTROLS = ("shuffle", "random", "uniform", "erk", "lamp")
# How a transplant between two architectures matches target layers to source layers
# (lprcausal.pruning.matching).
MATCH_RULES = ("name", "position", "stage", "map")

# Two sparsity levels closer than this are one level (they pass through TOML, JSON, CLI).
LEVEL_TOL = 1e-9


def level_key(s: float) -> str:
    """The text key of a sparsity level in stored tensors and metrics ("0.8")."""
    return repr(round(float(s), 12))


def matching_level(levels, s: float) -> float | None:
    """The level of ``levels`` that is ``s`` (within :data:`LEVEL_TOL`), or None."""
    return next((have for have in levels if abs(float(have) - float(s)) < LEVEL_TOL), None)


_POINT = re.compile(r"^\s*(\d+)\s*(it|ep)\s*$")


def parse_point(text: str, field_name: str = "rewind") -> tuple[int, str]:
    """Parse a training point such as ``"500it"`` or ``"2ep"`` into (count, unit)."""
    m = _POINT.match(str(text))
    if not m:
        raise LprError(
            f"{field_name} = {text!r} is not a training point: expected 'init', "
            "'<N>it' (after N iterations) or '<N>ep' (after N epochs), e.g. '500it' or '1ep'."
        )
    return int(m.group(1)), m.group(2)


def point_to_step(text: str, steps_per_epoch: int, field_name: str = "rewind") -> int:
    """Convert ``init`` / ``<N>it`` / ``<N>ep`` into an optimizer step index."""
    if str(text).strip() == "init":
        return 0
    n, unit = parse_point(text, field_name)
    return n if unit == "it" else n * steps_per_epoch


def option(default: Any, help: str, **cli: Any) -> Any:
    """A config field whose command-line option is generated from it: ``help`` is the
    option's help text; ``cli`` may add ``choices`` (the enum tuple), ``flag`` (another
    option name), ``off_flag`` (a bool's negative flag) or ``comma`` (a list given as
    ``1,2,3``). See :func:`lprcausal.cli.options.config_options`."""
    return field(default=default, metadata={"help": help, **cli})


class _Config:
    """Shared behaviour of the frozen config dataclasses: dict/TOML I/O and hashing."""

    _section: ClassVar[str] = ""

    def to_dict(self, *, omit_defaults: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if omit_defaults and not f.metadata.get("hashed", True):
                continue  # a location, not content: stored with the run, never hashed
            if isinstance(value, _Config):
                value = value.to_dict(omit_defaults=omit_defaults)
                if omit_defaults and not value:
                    continue
            elif isinstance(value, Kwargs):
                value = value.as_dict()
            elif isinstance(value, tuple):
                value = list(value)
            if omit_defaults and _equals_default(f, getattr(self, f.name)):
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = ""):
        where = where or cls._section
        if not isinstance(data, dict):
            raise LprError(f"{where} must be a table of options, got {data!r}.")
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = [k for k in data if k not in known]
        if unknown:
            key = unknown[0]
            raise LprError(
                f"Unknown option '{where}.{key}'.{did_you_mean(key, known)} Valid options of "
                f"{where} are: {', '.join(sorted(known))}."
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            kwargs[key] = _coerce(known[key], value, f"{where}.{key}")
        return cls(**kwargs)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _equals_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return value == f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return value == f.default_factory()  # type: ignore[misc]
    return False


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    """Check a TOML/JSON value against the field's annotation and convert lists to tuples."""
    ann = str(f.type)
    if value is None and "None" in ann:
        return None
    nested = _NESTED.get(ann.replace(" | None", ""))
    if nested is not None:
        return nested.from_dict(value, where)
    if ann == "Kwargs":
        return Kwargs.of(value, where)
    if ann.startswith("tuple"):
        if not isinstance(value, (list, tuple)):
            raise wrong_type(where, value, "a list")
        inner = ann[ann.index("[") + 1 : ann.index(",") if "," in ann else ann.index("]")]
        return tuple(_check_scalar(v, inner.strip(), where) for v in value)
    base = ann.replace(" | None", "").strip()
    return _check_scalar(value, base, where)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_scalar(value: Any, type_name: str, where: str) -> Any:
    if type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type_name == "int | str":
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return value
        raise wrong_type(where, value, "an integer or a string")
    expected = _TYPES.get(type_name)
    if expected is None or (isinstance(value, expected) and not (
        expected is not bool and isinstance(value, bool)
    )):
        return value
    raise wrong_type(where, value, type_name)


_TOML_SCALARS = (bool, int, float, str)


class Kwargs(tuple):
    """Keyword arguments for user code (``[model.kwargs]``, ``--model-arg``).

    Stored as ``(name, value)`` pairs sorted by name, so a config holding them stays
    hashable and its hash does not depend on the order they were given in; written
    out (TOML, JSON, the run hash) as a table. Values are TOML scalars or arrays of
    them (arrays are kept as tuples).
    """

    @classmethod
    def of(cls, value: Any, where: str = "kwargs") -> Kwargs:
        if isinstance(value, Kwargs):
            return value
        if not isinstance(value, dict):
            raise wrong_type(
                where, value, "a table of keyword arguments such as { depth = 2, act = 'gelu' }"
            )
        pairs = []
        for key, v in value.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise LprError(
                    f"{where}: the key {key!r} is not valid: expected a Python identifier "
                    "(a keyword argument name)."
                )
            pairs.append((key, _kwarg_value(v, f"{where}.{key}")))
        return cls(sorted(pairs))

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self}


def _kwarg_value(value: Any, where: str) -> Any:
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, _TOML_SCALARS) for v in value):
            raise bad_value(where, value, "an array of numbers, strings or booleans")
        return tuple(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_value(where, value, "a finite number")
    if not isinstance(value, _TOML_SCALARS):
        raise wrong_type(where, value, "a number, a string, a boolean or an array of them")
    return value


@dataclass(frozen=True)
class CodeRef(_Config):
    """The identity of user code named by import path (see :mod:`lprcausal.usercode`).

    ``sha256``: SHA-256 of the source file that defines the factory or loader;
    ``package`` / ``version``: the installed distribution it comes from, if any. These
    enter the run hash, so editing the file gives new run ids. ``file`` is where the
    file was found: stored with the run so it can be built again, but a location, not
    content, so never hashed.
    """

    _section: ClassVar[str] = "code"

    sha256: str = ""
    package: str | None = None
    version: str | None = None
    file: str | None = field(default=None, metadata={"hashed": False})


@dataclass(frozen=True)
class TrainConfig(_Config):
    """One set of training hyperparameters H (used for H_find and for H_eval).

    Length is given by exactly one of ``epochs`` and ``iterations``. Milestones and
    warmup use training points (``"<N>it"`` or ``"<N>ep"``). ``lr`` is the peak learning
    rate; the schedule multiplies it by a factor that depends on the step only.
    """

    _section: ClassVar[str] = "train"

    optimizer: str = option("sgd", "Optimizer.", choices=OPTIMIZERS)
    lr: float = option(0.1, "Peak learning rate (> 0).")
    momentum: float = option(0.9, "SGD momentum (0 disables it).")
    nesterov: bool = option(False, "Use Nesterov momentum (SGD only).")
    beta1: float = option(0.9, "Adam/AdamW beta1.")
    beta2: float = option(0.999, "Adam/AdamW beta2.")
    eps: float = option(1e-8, "Adam/AdamW epsilon.")
    weight_decay: float = option(0.0, "Weight decay (L2 for sgd/adam, decoupled for adamw).")
    batch_size: int = option(128, "Samples per optimizer step (full batches only).")
    epochs: int | None = option(20, "Training length in epochs (give epochs or iterations).")
    iterations: int | None = option(None, "Training length in optimizer steps (replaces epochs).")
    schedule: str = option(
        "constant", "Learning-rate schedule: step (milestones, gamma) or cosine.",
        choices=SCHEDULES,
    )
    milestones: tuple[str, ...] = option(
        (), "Step-schedule milestones such as 10ep or 500it (repeat the option)."
    )
    gamma: float = option(0.1, "Step-schedule decay factor at each milestone.")
    warmup: str = option("0it", "Linear warmup length, e.g. 200it or 1ep (0it = none).")
    augment: bool = option(False, "Random crop (4 px padding) and horizontal flip (image datasets).")

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> TrainConfig:
        # TOML has no null: giving `iterations` alone means "train by iterations".
        return super().from_dict(cls.merge({}, data) if isinstance(data, dict) else data, where)

    @staticmethod
    def merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
        """``base`` with ``change`` applied: giving one training length clears the other.

        The one rule for every layered H (a TOML table under CLI options, a study's
        base H under a grid point)."""
        out = {**base, **change}
        for given, other in (("iterations", "epochs"), ("epochs", "iterations")):
            if given in change and other not in change:
                out[other] = None
        return out

    def validate(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise bad_value("lr", self.lr, "a positive learning rate")
        if not 0 <= self.momentum < 1:
            raise bad_value("momentum", self.momentum, "0 <= momentum < 1")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise LprError(
                "nesterov = true needs optimizer = 'sgd' with momentum > 0 "
                f"(got optimizer = {self.optimizer!r}, momentum = {self.momentum})."
            )
        if not (_finite(self.weight_decay) and self.weight_decay >= 0):
            raise bad_value("weight_decay", self.weight_decay, "a finite value >= 0")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not (_finite(value) and 0 <= value < 1):
                raise bad_value(name, value, f"0 <= {name} < 1")
        if not (_finite(self.eps) and self.eps > 0):
            raise bad_value("eps", self.eps, "a finite value > 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad_value("batch_size", self.batch_size, "a positive integer")
        if (self.epochs is None) == (self.iterations is None):
            raise LprError(
                f"epochs = {self.epochs!r}, iterations = {self.iterations!r}: expected exactly "
                "one of the two training lengths to be set."
            )
        length = self.epochs if self.epochs is not None else self.iterations
        if not isinstance(length, int) or length < 1:
            name = "epochs" if self.epochs is not None else "iterations"
            raise bad_value(name, length, "a positive integer")
        check_choice("schedule", self.schedule, SCHEDULES)
        for m in self.milestones:
            parse_point(m, "milestones")
        if self.warmup.strip() != "init":
            parse_point(self.warmup, "warmup")
        if not 0 < self.gamma <= 1:
            raise bad_value("gamma", self.gamma, "0 < gamma <= 1")
        self._check_warmup_fits(None)

    def _check_warmup_fits(self, n_train: int | None) -> None:
        """Warmup no longer than training (checked without data when the units agree)."""
        if self.warmup.strip() == "init":
            return
        value, unit = parse_point(self.warmup, "warmup")
        length, length_unit = (
            (self.epochs, "ep") if self.epochs is not None else (self.iterations, "it")
        )
        if unit == length_unit:
            warm, total = value, length
        elif n_train is None:
            return  # mixed units: known once the training set's size is
        else:
            spe = self.steps_per_epoch(n_train)
            warm, total = point_to_step(self.warmup, spe, "warmup"), self.total_steps(n_train)
        if warm > total:
            raise LprError(
                f"warmup = {self.warmup!r} is longer than training ({length}{length_unit}): "
                "expected a warmup of at most the training length."
            )

    def check_fits(self, n_train: int) -> None:
        """Errors that need the training set's size: batch size and warmup vs its length."""
        self.steps_per_epoch(n_train)
        self._check_warmup_fits(n_train)

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimizer steps per epoch: full batches only, so every step sees batch_size samples."""
        if self.batch_size > n_train:
            raise LprError(
                f"batch_size = {self.batch_size} is larger than the training set "
                f"({n_train} samples): expected batch_size <= {n_train}."
            )
        return n_train // self.batch_size

    def total_steps(self, n_train: int) -> int:
        spe = self.steps_per_epoch(n_train)
        return self.iterations if self.iterations is not None else self.epochs * spe

    def lr_factors(self, n_train: int) -> list[float]:
        """Learning-rate multiplier for each optimizer step ``0 .. total_steps-1``."""
        spe = self.steps_per_epoch(n_train)
        total = self.total_steps(n_train)
        warm = point_to_step(self.warmup, spe, "warmup")
        miles = sorted(point_to_step(m, spe, "milestones") for m in self.milestones)
        out = []
        for t in range(total):
            if self.schedule == "step":
                f = self.gamma ** sum(1 for m in miles if t >= m)
            elif self.schedule == "cosine":
                f = 0.5 * (1 + math.cos(math.pi * t / total))
            else:
                f = 1.0
            if t < warm:
                f *= (t + 1) / warm
            out.append(f)
        return out


@dataclass(frozen=True)
class DataConfig(_Config):
    """Which dataset a run trains on. The data root is a location, not content: not hashed."""

    _section: ClassVar[str] = "data"

    name: str = option(
        "mnist1d",
        "mnist1d (generated locally), mnist, fashionmnist, cifar10, cifar100, folder "
        "(ImageFolder layout under --data-root), or your own loader by import path: "
        "mypkg.data:load or data.py:load.",
        flag="--dataset",
    )
    n_samples: int | None = option(None, "MNIST-1D: samples to generate.")
    val_fraction: float = option(0.1, "Share of the training set held out for validation.")
    image_size: int | None = option(
        None, "Dataset 'folder': side every image is resized to (default 32)."
    )
    # the identity of a loader by import path: computed from its file, never typed in
    code: CodeRef | None = field(default=None, metadata={"cli": False})
    # dataset 'folder': SHA-256 of its image files under --data-root (computed, never typed
    # in), so runs on other images get other ids; None (every other dataset) is not hashed
    content: str | None = field(default=None, metadata={"cli": False})

    def __post_init__(self):
        if not 0 <= self.val_fraction < 1:
            raise bad_value("val_fraction", self.val_fraction, "0 <= val_fraction < 1")
        if self.content is not None and self.name != "folder":
            raise LprError(
                f"content = {self.content!r} is given for dataset {self.name!r}: expected it "
                "only for dataset 'folder', where it is computed from the images."
            )
        if self.image_size is not None and (
            self.name != "folder" or isinstance(self.image_size, bool) or self.image_size < 1
        ):
            raise LprError(
                f"image_size = {self.image_size!r} is not valid for dataset {self.name!r}: "
                "expected a positive integer, and only with name = 'folder' (the side "
                "every image is resized to; default 32)."
            )


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Architecture: a name from :data:`lprcausal.models.MODELS` and optional widths, or
    user code by import path (``package.module:attr`` or ``file.py:attr``) called with
    ``kwargs``; ``code`` identifies that code (filled in by :mod:`lprcausal.usercode`).
    """

    _section: ClassVar[str] = "model"

    name: str = option(
        "mlp",
        "mlp, cnn1d, lenet5, resnet20/32/56 (any resnet6n+2), vgg11, vgg16, or your own by "
        "import path: mypkg.nets:build, nets.py:build, torchvision.models:resnet18.",
        flag="--model",
    )
    widths: tuple[int, ...] | None = option(
        None, "Comma-separated layer widths, e.g. 300,100 for the MLP.", comma=True
    )
    # keyword arguments of a factory by import path (the CLI's repeated --model-arg)
    kwargs: Kwargs = field(default=Kwargs(), metadata={"cli": False})
    # the identity of a factory by import path: computed from its file, never typed in
    code: CodeRef | None = field(default=None, metadata={"cli": False})

    @property
    def is_user(self) -> bool:
        """True for a model given by import path (not a built-in name)."""
        return ":" in self.name


@dataclass(frozen=True)
class PruneConfig(_Config):
    """How the find phase turns a trained network into masks.

    ``oneshot`` trains once and prunes to every target sparsity; ``imp`` prunes a
    fraction ``rate`` of the remaining weights per round (the targets are inserted as
    extra levels), rewinding to ``rewind`` and retraining with H_find between rounds.

    ``structure = "unit"`` prunes whole units (conv output channels, linear output
    neurons) instead of single weights, one-shot only: units are scored by the
    ``unit_norm`` (``"l1"`` or ``"l2"``) of their weights, divided by the mean score
    of their layer when ``unit_normalize``, and ranked globally; a level ``s`` then
    removes ``round(s * U)`` of the ``U`` prunable units (see
    :mod:`lprcausal.pruning.structured` and :mod:`lprcausal.models.units`).
    """

    _section: ClassVar[str] = "prune"

    method: str = option(
        "oneshot", "One-shot magnitude pruning or iterative (IMP).", choices=PRUNE_METHODS
    )
    sparsities: tuple[float, ...] = option(
        (0.5, 0.8, 0.9), "Target sparsity (fraction removed, repeatable).", flag="--sparsity"
    )
    rate: float = option(0.2, "IMP: fraction of the remaining weights pruned per round.")
    rewind: str = option("init", "Rewind point for IMP and eval: init, <N>it or <N>ep.")
    exclude_first: bool = option(False, "Leave the first layer dense.", off_flag="--prune-first")
    exclude_last: bool = option(
        False, "Leave the last (classifier) layer dense.", off_flag="--prune-last"
    )
    structure: str = option(
        "weight",
        "Prune single weights, or whole units (conv channels / linear neurons, one-shot; a "
        "sparsity is then a fraction of units).",
        choices=PRUNE_STRUCTURES,
    )
    unit_norm: str = option(
        "l1", "Structured: score units by the L1 or L2 norm of their weights.", choices=UNIT_NORMS
    )
    unit_normalize: bool = option(
        False, "Structured: divide unit scores by their layer's mean before the global ranking."
    )
    include: tuple[str, ...] = option(
        (), "Prune exactly the parameters whose names match this glob (repeatable), instead "
        "of every Linear/Conv/attention weight.", flag="--prunable",
    )
    exclude: tuple[str, ...] = option(
        (), "Leave the parameters whose names match this glob dense (repeatable)."
    )

    def __post_init__(self):
        check_choice("method", self.method, PRUNE_METHODS)
        self._check_structure()
        for key in ("include", "exclude"):
            for pattern in getattr(self, key):
                if not isinstance(pattern, str) or not pattern.strip():
                    raise bad_value(key, pattern, "a non-empty glob over parameter names, "
                                    "e.g. 'blocks.*.weight'")
        if not self.sparsities:
            raise LprError("sparsities = [] is empty: expected at least one target sparsity.")
        for s in self.sparsities:
            check_sparsity(s)
        if not 0 < self.rate < 1:
            raise bad_value("rate", self.rate, "0 < rate < 1")
        if self.rewind.strip() != "init":
            parse_point(self.rewind, "rewind")

    def _check_structure(self) -> None:
        check_choice("structure", self.structure, PRUNE_STRUCTURES)
        check_choice("unit_norm", self.unit_norm, UNIT_NORMS)
        if self.structure == "unit" and self.method != "oneshot":
            raise LprError(
                f"structure = 'unit' with method = {self.method!r} is not supported: "
                "structured (unit) pruning is one-shot; expected method = 'oneshot'."
            )
        # Unit options on weight pruning would change the run's hash without changing it.
        if self.structure == "weight" and (self.unit_norm != "l1" or self.unit_normalize):
            raise LprError(
                f"unit_norm = {self.unit_norm!r}, unit_normalize = {self.unit_normalize!r} "
                "apply only to structured pruning: expected structure = 'unit' with them, "
                "or the defaults (unit_norm = 'l1', unit_normalize = false)."
            )

    def levels(self) -> list[float]:
        """Sparsity levels the find phase produces masks for, ascending."""
        targets = sorted(set(self.sparsities))
        if self.method == "oneshot":
            return targets
        top = targets[-1]
        levels = set(targets)
        r = 1
        while (level := 1 - (1 - self.rate) ** r) < top - 1e-12:
            levels.add(round(level, 12))
            r += 1
        return sorted(levels)


def check_sparsity(s: float, field_name: str = "sparsity") -> float:
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 <= s < 1:
        raise bad_value(field_name, s, "a fraction of weights removed, 0 <= s < 1")
    return float(s)


@dataclass(frozen=True)
class FindSpec(_Config):
    """A find run: train a dense network with H_find and derive masks at each level."""

    _section: ClassVar[str] = "find"
    kind: ClassVar[str] = "find"

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    seed: int = 0


@dataclass(frozen=True)
class MaskSpec(_Config):
    """Where an eval run's mask comes from.

    ``own``: the mask stored by the weights' find run. ``transplant``: layerwise
    magnitude pruning of the weights at the LPR of run ``lpr_from``. ``interp``: at
    ``(1-alpha)*LPR(lpr_from) + alpha*LPR(lpr_to)``. ``uniform``/``erk``/``lamp``:
    layerwise magnitude pruning at that allocation. ``shuffle``: the own mask
    shuffled within each layer (same LPR). ``random``: random positions at the own LPR.

    ``match`` / ``layer_map``: when ``lpr_from`` (or ``lpr_to``) is a run of another
    architecture, how the weights' layers take its layers' ratios (one of
    :data:`MATCH_RULES`; ``layer_map``: the canonical JSON of a ``map``, see
    :mod:`lprcausal.pruning.matching`). The defaults (by name, no map) leave every
    existing run's hash unchanged.
    """

    _section: ClassVar[str] = "mask"

    kind: str = "own"
    lpr_from: str | None = None
    lpr_to: str | None = None
    alpha: float | None = None
    seed: int = 0
    match: str = "name"
    layer_map: str | None = None

    def __post_init__(self):
        check_choice("mask kind", self.kind, MASK_KINDS)
        if self.alpha is not None and not 0 <= self.alpha <= 1:
            raise bad_value("alpha", self.alpha, "0 <= alpha <= 1")
        check_choice("match", self.match, MATCH_RULES)
        if (self.match == "map") != (self.layer_map is not None):
            raise LprError(
                f"match = {self.match!r} with layer_map = {self.layer_map!r}: expected a "
                "layer map exactly with match = 'map'."
            )


@dataclass(frozen=True)
class EvalSpec(_Config):
    """An eval run: a mask at ``sparsity`` on the weights of find run ``find``, retrained with H_eval.

    ``mode``: ``rewind`` (to the find run's rewind point), ``finetune`` (from its final
    weights) or ``reinit`` (fresh random init of the surviving weights, a control).
    """

    _section: ClassVar[str] = "eval"
    kind: ClassVar[str] = "eval"

    find: str = ""
    sparsity: float = 0.8
    train: TrainConfig = field(default_factory=TrainConfig)
    mask: MaskSpec = field(default_factory=MaskSpec)
    mode: str = "rewind"
    seed: int = 0

    def __post_init__(self):
        check_sparsity(self.sparsity)
        check_choice("mode", self.mode, EVAL_MODES)


@dataclass(frozen=True)
class OwnFindSpec(_Config):
    """A find run trained by the user's own loop (:func:`lprcausal.find`).

    ``code`` identifies the code that trained it: the user's ``code_version`` string, or
    ``sha256:<hex>`` of the source of the model builder and the train function.
    ``hparams`` is the user's hyperparameter dict as canonical JSON. ``include`` /
    ``exclude`` are the prunable-set globs. ``prune.exclude_first/last`` and unit
    pruning do not apply.
    """

    _section: ClassVar[str] = "own_find"
    kind: ClassVar[str] = "own-find"

    code: str = ""
    hparams: str = "{}"
    prune: PruneConfig = field(default_factory=PruneConfig)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class OwnEvalSpec(_Config):
    """An eval run of the user's own loop (:func:`lprcausal.evaluate`) on a find run's mask.

    ``find`` is a find run of either kind (``mask`` as in :class:`EvalSpec`); ``code`` and
    ``hparams`` as in :class:`OwnFindSpec`; ``mode`` is ``rewind`` or ``finetune``.
    """

    _section: ClassVar[str] = "own_eval"
    kind: ClassVar[str] = "own-eval"

    find: str = ""
    sparsity: float = 0.8
    code: str = ""
    hparams: str = "{}"
    mask: MaskSpec = field(default_factory=MaskSpec)
    mode: str = "rewind"
    seed: int = 0

    def __post_init__(self):
        check_sparsity(self.sparsity)
        if self.mode not in ("rewind", "finetune"):
            raise LprError(
                f"mode = {self.mode!r} is not valid for an eval of your own loop: expected "
                "'rewind' or 'finetune'."
            )


@dataclass(frozen=True)
class ImportSpec(_Config):
    """Masks imported from a file (``lprcausal masks import``) as a find run of one level.

    The masks (``masks_sha256``, the hash of the file's tensors) sit on model ``model``
    for dataset ``data``; the run's rewind point is the model's initialization for
    ``seed``, so ``lprcausal eval`` can train the imported mask like any find run's.
    ``sparsity``: the level's label when the user gave one (else the file's sparsity).
    """

    _section: ClassVar[str] = "import"
    kind: ClassVar[str] = "import"

    masks_sha256: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    sparsity: float | None = None
    seed: int = 0


_NESTED: dict[str, type[_Config]] = {
    "CodeRef": CodeRef,
    "TrainConfig": TrainConfig,
    "DataConfig": DataConfig,
    "ModelConfig": ModelConfig,
    "PruneConfig": PruneConfig,
    "MaskSpec": MaskSpec,
}

SPEC_TYPES: dict[str, type[_Config]] = {
    "find": FindSpec,
    "eval": EvalSpec,
    "own-find": OwnFindSpec,
    "own-eval": OwnEvalSpec,
    "import": ImportSpec,
}


def spec_from_record(record: dict[str, Any]) -> FindSpec | EvalSpec:
    kind = record.get("kind")
    check_choice("run kind", kind, SPEC_TYPES)
    return SPEC_TYPES[kind].from_dict(record["spec"], kind)


def hash_payload(spec: FindSpec | EvalSpec) -> dict[str, Any]:
    """Exactly what :func:`spec_hash` hashes: the kind and the non-default fields."""
    return {"kind": spec.kind, **spec.to_dict(omit_defaults=True)}


def spec_hash(spec: FindSpec | EvalSpec) -> str:
    """Stable 16-hex-digit hash of the non-default fields (see module docstring)."""
    text = json.dumps(hash_payload(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def derive_seed(seed: int, role: str) -> int:
    """A 63-bit seed from a replicate index and a role (``"init"``, ``"find-data"``, ...).

    Arms compared within a replicate share every role's seed, so paired tests are valid.
    """
    digest = hashlib.sha256(f"lprcausal/{int(seed)}/{role}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise LprError(f"The file {str(p)!r} does not exist: expected a TOML file.") from None
    except IsADirectoryError:
        raise LprError(f"{str(p)!r} is a folder: expected a TOML file.") from None
    except UnicodeDecodeError as exc:
        raise LprError(
            f"The file {str(p)!r} is not UTF-8 text (byte {exc.start}): expected a TOML file "
            "in UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise LprError(f"The file {str(p)!r} is not valid TOML: {exc}.") from None


def to_toml(config: _Config) -> str:
    """TOML text for a config (``None`` fields are left out, as TOML has no null)."""
    return tomli_w.dumps(_drop_none(config.to_dict()))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}
