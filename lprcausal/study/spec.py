"""Study specs: a TOML (or dict) description of a whole experiment, validated up front.

A spec names the data and model, a base H_find with a grid (or a list of points)
over any of its fields, the H_eval arms (``coupled`` = each H_find, a fixed H, or a
grid), the replicate seeds, the pruning procedure and optional transplants. Every
grid point gets a readable label (``lr=0.03``, ``lr=0.1,batch_size=64``) that becomes
its coordinate value in the results.

:func:`parse_spec` turns the raw dict into a :class:`StudySpec` or raises
:class:`LprError` naming the file, the key path and the expected form. It runs no
training and touches no store. The format is documented in ``studies/README.md``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from lprcausal.config import (
    CONTROLS,
    EVAL_MODES,
    DataConfig,
    ModelConfig,
    PruneConfig,
    TrainConfig,
    load_toml,
    matching_level,
)
from lprcausal.data.load import DATASETS, is_known_dataset
from lprcausal.errors import LprError, bad_value, check_choice, did_you_mean, wrong_type
from lprcausal.results.schema import COUPLED
from lprcausal.study.pair_rule import parse_pairs_from, pick_pairs
from lprcausal.usercode import resolve_data, resolve_model

TRAIN_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

TOP_KEYS = ("study", "data", "model", "prune", "find", "eval", "transplant", "stats")
STUDY_KEYS = ("name", "title", "description", "seeds")
FIND_KEYS = (*TRAIN_FIELDS, "grid", "points")
EVAL_KEYS = ("mode", "coupled", "train", "label", "grid", "points")
TRANSPLANT_KEYS = (
    "pairs", "reference", "pairs_from", "h_eval", "sparsities", "alphas", "controls", "match",
    "layer_map",
)
# [model.grid]: the model fields a study may vary (each a list of values).
MODEL_GRID_KEYS = ("name", "widths")
# How a grid point's model field appears in its label (``model=resnet20``, ``widths=16+16``).
MODEL_LABEL = {"name": "model", "widths": "widths"}
MATCH_KEYS = ("name", "position", "stage")
STATS_KEYS = ("reference_h_find", "reference_h_eval")


@dataclass(frozen=True)
class HPoint:
    """One H arm: its label, its full TrainConfig (None for ``coupled``) and the
    fields that define it (shown as coordinates along its dimension)."""

    label: str
    train: TrainConfig | None
    fields: tuple[str, ...] = ()
    model: ModelConfig | None = None  # an H_find arm of a [model.grid]: its model

    @property
    def coupled(self) -> bool:
        return self.train is None


@dataclass(frozen=True)
class TransplantPart:
    """Transplant cells between pairs of H_find labels (a, b), evaluated with one H_eval."""

    pairs: tuple[tuple[str, str], ...]
    h_eval: str
    sparsities: tuple[float, ...]
    alphas: tuple[float, ...] = ()
    controls: tuple[str, ...] = ()
    match: str = "name"  # pairs of two [model.grid] variants: how b's layers take a's ratios
    layer_map: str | None = None  # match "map": canonical JSON of [transplant.layer_map]
    picked: tuple = ()  # PickedPair of each pair when chosen by pairs_from (see pair_rule)


@dataclass(frozen=True)
class StudySpec:
    """A validated study: everything needed to build its job graph."""

    name: str
    title: str
    description: str
    seeds: tuple[int, ...]
    data: DataConfig
    model: ModelConfig
    prune: PruneConfig
    h_find: tuple[HPoint, ...]
    h_eval: tuple[HPoint, ...]
    mode: str
    transplant: TransplantPart | None
    raw: dict
    source: str
    # [stats]: the arms the decoupling tests compare against (None: stats infers them)
    reference_h_find: str | None = None
    reference_h_eval: str | None = None

    @property
    def sparsities(self) -> tuple[float, ...]:
        """Target sparsities, in the order the spec gives them."""
        return tuple(dict.fromkeys(self.prune.sparsities))


    def model_of(self, point: HPoint) -> ModelConfig:
        """The model an H_find arm trains: its [model.grid] variant, else [model]."""
        return point.model if point.model is not None else self.model

    def eval_point(self, label: str) -> HPoint:
        return next(p for p in self.h_eval if p.label == label)


# ---------------------------------------------------------------------------- entry points
def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study TOML file; the study name defaults to the file stem."""
    raw = load_toml(path)
    return parse_spec(raw, source=str(path), default_name=Path(path).stem)


def parse_spec(raw: dict, source: str = "<python>", default_name: str = "study") -> StudySpec:
    """Validate a spec dict (the parsed TOML). Errors name ``source`` and the key path."""
    with _in_file(source):
        return _parse(raw, source, default_name)


@contextmanager
def _in_file(source: str) -> Iterator[None]:
    try:
        yield
    except LprError as exc:
        text = str(exc)
        prefix = f"In {source}: "
        raise LprError(text if text.startswith(prefix) else prefix + text) from None


# ---------------------------------------------------------------------------- parsing
def _parse(raw: Any, source: str, default_name: str) -> StudySpec:
    table = _table(raw, "the study spec")
    _check_keys(table, TOP_KEYS, "")
    for key in ("data", "model", "find"):
        if key not in table:
            raise LprError(
                f"the table [{key}] is missing: every study needs [data], [model] "
                "and [find] (the base H_find)."
            )
    study = _table(table.get("study", {}), "study")
    _check_keys(study, STUDY_KEYS, "study")
    name = study.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad_value("study.name", name, "letters, digits, '_', '.', '-' (it names the "
                        "results folder)")
    title = _string(study.get("title", f"lprcausal study {name}"), "study.title")
    description = _string(study.get("description", ""), "study.description")
    seeds = _seeds(study.get("seeds", 1))
    data = DataConfig.from_dict(_table(table["data"], "data"), "data")
    if not is_known_dataset(data.name):
        raise LprError(
            f"data.name = {data.name!r} is not known: expected one of {', '.join(DATASETS)}, "
            "or a loader by import path ('package.module:load' or 'data.py:load')."
        )
    # user code by import path: relative files next to the study file, else the cwd
    base = Path(source).resolve().parent if Path(source).is_file() else None
    data = resolve_data(data, base)
    # the model name and widths are checked against the data by Study.check()
    model_table = dict(_table(table["model"], "model"))
    model_grid = model_table.pop("grid", None)
    model = resolve_model(ModelConfig.from_dict(model_table, "model"), base)
    models = _model_points(model_table, model_grid, base)
    prune_table = _table(table.get("prune", {}), "prune")
    prune = PruneConfig.from_dict(prune_table, "prune")
    if "rate" in prune_table and prune.method != "imp":
        raise LprError(
            f"prune.rate = {prune.rate!r} is given with method = {prune.method!r}, which "
            "ignores it: expected method = 'imp' (rate is the share of the remaining weights "
            "each IMP round prunes), or no rate."
        )
    find = _table(table["find"], "find")
    _check_keys(find, FIND_KEYS, "find")
    base = {k: v for k, v in find.items() if k not in ("grid", "points")}
    base_h = _train(base, {}, "find", written=base)
    h_find = _with_models(_points(find, base, "find"), models)
    evals = _table(table.get("eval", {}), "eval")
    _check_keys(evals, EVAL_KEYS, "eval")
    mode = evals.get("mode", "rewind")
    check_choice("eval.mode", mode, EVAL_MODES)
    h_eval = _eval_points(evals, base, base_h, h_find)
    transplant = None
    if "transplant" in table:
        transplant = _transplant(
            _table(table["transplant"], "transplant"), h_find, h_eval, prune, source
        )
    ref_find, ref_eval = _references(_table(table.get("stats", {}), "stats"), h_find, h_eval)
    return StudySpec(
        name=name,
        title=title,
        description=description,
        seeds=seeds,
        data=data,
        model=model,
        prune=prune,
        h_find=h_find,
        h_eval=h_eval,
        mode=mode,
        transplant=transplant,
        raw=raw,
        source=source,
        reference_h_find=ref_find,
        reference_h_eval=ref_eval,
    )


def _model_points(
    model_table: dict, grid: Any, base: Path | None
) -> tuple[tuple[str, ModelConfig], ...]:
    """(label, model) of each ``[model.grid]`` point; empty without a grid.

    The grid varies ``name`` and / or ``widths`` (a list of values each) over the rest of
    ``[model]``, e.g. ``widths = [[16, 16, 16], [64, 64, 64]]``: labels ``widths=16+16+16``,
    ``widths=64+64+64`` (``model=resnet20`` for names).
    """
    if grid is None:
        return ()
    grid = _table(grid, "model.grid")
    if not grid:
        raise LprError(
            "model.grid is empty: expected name and / or widths with a list of values, "
            "e.g. widths = [[16, 16, 16], [64, 64, 64]]."
        )
    _check_keys(grid, MODEL_GRID_KEYS, "model.grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            example = "[[16, 16, 16], [64, 64, 64]]" if key == "widths" else '["resnet20", "resnet32"]'
            raise LprError(
                f"model.grid.{key} = {values!r} is not valid: expected a non-empty list of "
                f"values, e.g. {key} = {example}."
            )
        if key in model_table:
            raise LprError(
                f"model.{key} and model.grid.{key} are both given: expected {key} in one "
                "place (the grid's values replace it)."
            )
    out, seen = [], {}
    for combo in itertools.product(*grid.values()):
        change = dict(zip(grid, combo, strict=True))
        label = ",".join(f"{MODEL_LABEL[k]}={fmt_value(v)}" for k, v in change.items())
        with _at_point("model.grid", label):
            model = resolve_model(ModelConfig.from_dict({**model_table, **change}, "model.grid"),
                                  base)
        if label in seen:
            raise LprError(f"model.grid repeats the point {label}: expected distinct values.")
        seen[label] = model
        out.append((label, model))
    return tuple(out)


def model_label(model: ModelConfig, other: ModelConfig) -> str:
    """The [model.grid] label of ``model`` by the fields it differs in from ``other``
    (``widths=16+8``, ``model=resnet20``); empty when they agree on those fields."""
    return ",".join(f"{MODEL_LABEL[k]}={fmt_value(getattr(model, k))}"
                    for k in MODEL_GRID_KEYS if getattr(model, k) != getattr(other, k))


def _with_models(
    h_find: tuple[HPoint, ...], models: tuple[tuple[str, ModelConfig], ...]
) -> tuple[HPoint, ...]:
    """Every H_find arm on every model of the grid (model first in the label, ``base``
    dropped): ``widths=16+16+16`` or ``widths=16+16+16,lr=0.1``."""
    if not models:
        return h_find
    return tuple(
        HPoint(m_label if p.label == "base" else f"{m_label},{p.label}", p.train, p.fields, model)
        for m_label, model in models
        for p in h_find
    )


def _references(
    stats: dict, h_find: tuple[HPoint, ...], h_eval: tuple[HPoint, ...]
) -> tuple[str | None, str | None]:
    """``[stats]``: the reference H_find and the reference (fixed) H_eval, by label."""
    _check_keys(stats, STATS_KEYS, "stats")
    ref_find = ref_eval = None
    if "reference_h_find" in stats:
        labels = [p.label for p in h_find]
        ref_find = _label(stats["reference_h_find"], labels, "stats.reference_h_find", "an H_find")
    if "reference_h_eval" in stats:
        fixed = [p.label for p in h_eval if not p.coupled]
        ref_eval = _label(
            stats["reference_h_eval"], fixed, "stats.reference_h_eval", "a fixed H_eval"
        )
    return ref_find, ref_eval


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise wrong_type(where, value, "a table of options")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(where, value, "a string")
    return value


def _check_keys(table: dict, valid: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in valid:
            path = f"{where}.{key}" if where else str(key)
            within = f"[{where}]" if where else "the top level"
            raise LprError(
                f"unknown key '{path}'.{did_you_mean(key, valid)} Valid keys of {within} are: "
                f"{', '.join(valid)}."
            )


MAX_SEEDS = 10_000  # replicates per study: beyond any real design, far below memory limits


def _seeds(value: Any) -> tuple[int, ...]:
    count = value if isinstance(value, int) else len(value) if isinstance(value, list) else 0
    if count > MAX_SEEDS:
        raise LprError(
            f"study.seeds asks for {count} replicates: expected at most {MAX_SEEDS}."
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise bad_value("study.seeds", value, "a number of replicates >= 1 or a list of "
                            "seed indices")
        return tuple(range(value))
    if not isinstance(value, list) or not value:
        raise bad_value("study.seeds", value, "a number of replicates (e.g. 3 for seeds 0, 1, "
                        "2) or a non-empty list of integers")
    for i, s in enumerate(value):
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise bad_value(f"study.seeds[{i}]", s, "an integer >= 0")
    if len(set(value)) != len(value):
        raise LprError(f"study.seeds = {value!r} repeats a seed: expected distinct seeds.")
    return tuple(value)


def _train(base: dict, change: dict, where: str, written: dict | None = None) -> TrainConfig:
    """``base`` with ``change`` applied (:meth:`TrainConfig.merge`); the fields the user
    wrote at ``where`` (``written``, default ``change``) must take effect."""
    train = TrainConfig.from_dict(TrainConfig.merge(base, change), where)
    _check_step_fields(train, change if written is None else written, where)
    return train


_STEP_FIELDS = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.name in ("milestones", "gamma")}


def _check_step_fields(train: TrainConfig, written: dict, where: str) -> None:
    """``milestones`` and ``gamma`` shape only ``schedule = "step"``: written for another
    schedule they would be ignored in training (and still change the run ids)."""
    if train.schedule == "step":
        return
    for key, default in _STEP_FIELDS.items():
        value = getattr(train, key)
        if key in written and value != default:
            shown = list(value) if isinstance(value, tuple) else value  # as written in TOML
            raise LprError(
                f"{where}.{key} = {shown!r} is given with schedule = {train.schedule!r}, "
                f"which ignores it: expected schedule = 'step' (milestones and gamma shape "
                f"only the step schedule), or no {key}."
            )


def fmt_value(value: Any) -> str:
    """A hyperparameter value as it appears in labels: ``0.03``, ``64``, ``true``, ``adam``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "+".join(fmt_value(v) for v in value) or "none"
    if value is None:
        return "none"
    return str(value)


def make_label(train: TrainConfig, fields: tuple[str, ...]) -> str:
    return ",".join(f"{f}={fmt_value(getattr(train, f))}" for f in fields)


def differing_fields(a: TrainConfig, b: TrainConfig) -> tuple[str, ...]:
    """The fields of H whose values differ between ``a`` and ``b``."""
    return tuple(f for f in TRAIN_FIELDS if getattr(a, f) != getattr(b, f))


def fixed_eval_label(
    h_eval: TrainConfig, h_find: TrainConfig, grid_fields: tuple[str, ...]
) -> tuple[str, tuple[str, ...]]:
    """(label, fields) of a fixed H_eval: the fields that tell the H_find apart, then
    those where it differs from H_find (``fixed`` when none)."""
    diff = differing_fields(h_eval, h_find)
    fields = grid_fields + tuple(f for f in diff if f not in grid_fields)
    return make_label(h_eval, fields) or "fixed", fields


def _points(table: dict, base: dict, where: str) -> tuple[HPoint, ...]:
    """The H arms of a ``[find]``-like table: its grid, its points, or the base alone."""
    grid, points = table.get("grid"), table.get("points")
    if grid is not None and points is not None:
        raise LprError(
            f"{where}.grid and {where}.points are both given: expected one of them "
            "(a grid is a Cartesian product; points are listed one by one)."
        )
    if grid is not None:
        out = _grid(_table(grid, f"{where}.grid"), base, where)
    elif points is not None:
        out = _listed(points, base, where)
    else:
        out = (HPoint("base", _train(base, {}, where, written=base), ()),)
    _check_unique(out, f"{where}.grid" if grid is not None else f"{where}.points")
    return out


def _grid(grid: dict, base: dict, where: str) -> tuple[HPoint, ...]:
    if not grid:
        raise LprError(
            f"{where}.grid is empty: expected at least one field with a list of "
            "values, e.g. lr = [0.01, 0.1]."
        )
    _check_keys(grid, TRAIN_FIELDS, f"{where}.grid")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise wrong_type(f"{where}.grid.{key}", values,
                             f"a list of values, e.g. {key} = [{fmt_value(values)}, ...]")
        if not values:
            raise LprError(
                f"{where}.grid.{key} = [] is empty: expected a non-empty list of values."
            )
    fields = tuple(grid)
    out = []
    for combo in itertools.product(*grid.values()):
        change = dict(zip(fields, combo, strict=True))
        text = ",".join(f"{k}={fmt_value(v)}" for k, v in change.items())
        with _at_point(f"{where}.grid", text):
            train = _train(base, change, f"{where}.grid")
        out.append(HPoint(make_label(train, fields), train, fields))
    return tuple(out)


def _listed(points: Any, base: dict, where: str) -> tuple[HPoint, ...]:
    if not isinstance(points, list) or not points:
        raise bad_value(f"{where}.points", points, f"a non-empty list of tables "
                        f"([[{where}.points]]), each a partial H with optional label")
    out = []
    for i, point in enumerate(points):
        path = f"{where}.points[{i}]"
        point = _table(point, path)
        _check_keys(point, (*TRAIN_FIELDS, "label"), path)
        change = {k: v for k, v in point.items() if k != "label"}
        fields = tuple(change)
        with _at_point(path, ""):
            train = _train(base, change, path)
        label = point.get("label")
        if label is None:
            label = make_label(train, fields) or "base"
        elif not isinstance(label, str) or not label.strip():
            raise bad_value(f"{path}.label", label, "a non-empty string")
        out.append(HPoint(label, train, fields))
    return tuple(out)


@contextmanager
def _at_point(where: str, text: str) -> Iterator[None]:
    try:
        yield
    except LprError as exc:
        at = f" at point {text}" if text else ""
        raise LprError(f"{where}{at}: {exc}") from None


def _check_unique(points: tuple[HPoint, ...], where: str) -> None:
    seen: dict[str, int] = {}
    for i, p in enumerate(points):
        if p.label in seen:
            raise LprError(
                f"{where} gives two points the same label {p.label!r} (points "
                f"{seen[p.label]} and {i}): expected distinct values (a repeated "
                "value, or two values that print alike), or distinct labels."
            )
        seen[p.label] = i


def _eval_points(
    table: dict, find_base: dict, find_h: TrainConfig, h_find: tuple[HPoint, ...]
) -> tuple[HPoint, ...]:
    # Coupled is the default only when no explicit H_eval is given.
    explicit = any(k in table for k in ("train", "grid", "points"))
    coupled = table.get("coupled", not explicit)
    if not isinstance(coupled, bool):
        raise wrong_type("eval.coupled", coupled, "true or false")
    out: list[HPoint] = [HPoint(COUPLED, None)] if coupled else []
    fixed = table.get("train")
    if fixed is not None:
        _check_keys(_table(fixed, "eval.train"), TRAIN_FIELDS, "eval.train")
        base_h = _train(find_base, fixed, "eval.train")
    if "grid" in table or "points" in table:
        if "label" in table:
            raise LprError(
                "eval.label names the single fixed H_eval: with eval.grid or "
                "eval.points, label the points themselves."
            )
        points = _points(table, base_h.to_dict() if fixed is not None else find_base, "eval")
        for i, p in enumerate(points):
            if p.label == COUPLED and "points" in table:
                _not_coupled(p.label, f"eval.points[{i}].label")
        out += points
    elif fixed is not None:
        label = table.get("label")
        if label is None:
            grid_fields = tuple(dict.fromkeys(f for p in h_find for f in p.fields))
            label, fields = fixed_eval_label(base_h, find_h, grid_fields)
        else:
            fields = ()
            if not isinstance(label, str) or not label.strip():
                raise bad_value("eval.label", label, "a non-empty string")
            _not_coupled(label, "eval.label")
        out.append(HPoint(label, base_h, fields))
    elif "label" in table:
        raise LprError(
            "eval.label is given without [eval.train]: expected a fixed H_eval "
            "table [eval.train] to label."
        )
    if not out:
        raise LprError(
            "[eval] defines no H_eval: expected coupled = true, a fixed H "
            "[eval.train], or a grid [eval.grid] / points [[eval.points]]."
        )
    _check_unique(tuple(out), "[eval]")
    return tuple(out)


def _not_coupled(label: str, where: str) -> None:
    """A fixed H_eval may not take the label of the coupled arm: results and stats read
    an h_eval labelled ``coupled`` as H_eval = each row's H_find."""
    if label == COUPLED:
        raise LprError(
            f"{where} = {COUPLED!r} names the coupled arm (H_eval = each row's H_find, "
            "`coupled = true`): expected another label for a fixed H_eval."
        )


def _transplant(
    table: dict,
    h_find: tuple[HPoint, ...],
    h_eval: tuple[HPoint, ...],
    prune: PruneConfig,
    source: str,
) -> TransplantPart:
    _check_keys(table, TRANSPLANT_KEYS, "transplant")
    labels = [p.label for p in h_find]
    if sum(k in table for k in ("pairs", "reference", "pairs_from")) != 1:
        raise LprError(
            "[transplant] needs exactly one of pairs (a list of [a, b] H_find "
            "labels), reference (one H_find label, paired with every other) and "
            "pairs_from (a rule choosing the pairs from an earlier study's results)."
        )
    picked: tuple = ()
    if "pairs_from" in table:
        pairs = ()  # chosen below, once h_eval and the sparsities are known
    elif "reference" in table:
        ref = _label(table["reference"], labels, "transplant.reference", "an H_find")
        pairs = tuple((ref, x) for x in labels if x != ref)
        if not pairs:
            raise LprError(
                f"transplant.reference = {ref!r} is the only H_find: expected a "
                "grid with at least two points to transplant between."
            )
    else:
        raw = table["pairs"]
        if not isinstance(raw, list) or not raw:
            raise bad_value("transplant.pairs", raw, "a non-empty list of [a, b] H_find "
                            'labels, e.g. [["lr=0.1", "lr=0.01"]]')
        out = []
        for i, pair in enumerate(raw):
            if not isinstance(pair, list) or len(pair) != 2:
                raise bad_value(f"transplant.pairs[{i}]", pair,
                                'two H_find labels [a, b], e.g. ["lr=0.1", "lr=0.01"]')
            a = _label(pair[0], labels, f"transplant.pairs[{i}][0]", "an H_find")
            b = _label(pair[1], labels, f"transplant.pairs[{i}][1]", "an H_find")
            if a == b:
                raise LprError(
                    f"transplant.pairs[{i}] = {pair!r} pairs a label with itself: "
                    "expected two different H_find labels."
                )
            if (a, b) in out:
                raise LprError(
                    f"transplant.pairs[{i}] = {pair!r} repeats an earlier pair: "
                    "expected each pair once."
                )
            out.append((a, b))
        pairs = tuple(out)
    fixed = [p.label for p in h_eval if not p.coupled]
    if "h_eval" in table:
        h = _label(table["h_eval"], fixed, "transplant.h_eval", "a fixed H_eval")
    elif len(fixed) == 1:
        h = fixed[0]
    else:
        what = (
            "there is none: add [eval.train]"
            if not fixed
            else f"there are {len(fixed)}: set transplant.h_eval to one of "
            f"{', '.join(map(repr, fixed))}"
        )
        raise LprError(
            f"[transplant] trains all four cells of a pair with one fixed H_eval, and {what}."
        )
    targets = tuple(dict.fromkeys(prune.sparsities))
    sparsities = _floats(table.get("sparsities", list(targets)), "transplant.sparsities")
    for i, s in enumerate(sparsities):
        if matching_level(targets, s) is None:
            raise LprError(
                f"transplant.sparsities[{i}] = {s!r} is not a target sparsity: "
                f"expected one of prune.sparsities ({', '.join(map(str, targets))})."
            )
    alphas = _floats(table.get("alphas", []), "transplant.alphas", allow_empty=True)
    for i, a in enumerate(alphas):
        if not 0 <= a <= 1:
            raise bad_value(f"transplant.alphas[{i}]", a, "0 <= alpha <= 1")
    controls = table.get("controls", [])
    if not isinstance(controls, list):
        raise wrong_type("transplant.controls", controls, f"a list of {', '.join(CONTROLS)}")
    for i, c in enumerate(controls):
        check_choice(f"transplant.controls[{i}]", c, CONTROLS)
    if len(set(controls)) != len(controls):
        raise LprError(f"transplant.controls = {controls!r} repeats a control.")
    match, layer_map = _match(table)
    if "pairs_from" in table:
        path, _rule, _per = parse_pairs_from(table["pairs_from"], source)
        picked = pick_pairs(path, h_find, h, sparsities)
        pairs = tuple((p.a, p.b) for p in picked)
    models = {p.label: p.model for p in h_find}
    if match != "name" and not any(models[a] != models[b] for a, b in pairs):
        given = "[transplant.layer_map]" if layer_map is not None else f"transplant.match = {match!r}"
        raise LprError(
            f"{given} is given, but no transplant pair trains two different models, so it "
            "would be ignored (a pair of one model takes the other's ratios layer by layer, "
            "by name): expected it only with a pair of two [model.grid] models."
        )
    return TransplantPart(
        pairs=pairs, h_eval=h, sparsities=sparsities, alphas=alphas, controls=tuple(controls),
        match=match, layer_map=layer_map, picked=picked,
    )


def _match(table: dict) -> tuple[str, str | None]:
    """``transplant.match`` and ``[transplant.layer_map]``: how a pair of two [model.grid]
    variants matches b's layers to a's (see lprcausal.pruning.matching)."""
    if "layer_map" in table:
        if "match" in table and table["match"] != "map":
            raise LprError(
                f"transplant.match = {table['match']!r} and [transplant.layer_map] are both "
                "given: expected one of them (the map lists every target layer itself)."
            )
        from lprcausal.pruning.matching import layer_map_json, parse_layer_map

        return "map", layer_map_json(parse_layer_map(table["layer_map"], "transplant.layer_map"))
    match = table.get("match", "name")
    if match not in MATCH_KEYS:
        raise LprError(
            f"transplant.match = {match!r} is not known: expected one of "
            f"{', '.join(map(repr, MATCH_KEYS))}, or a table [transplant.layer_map] of target "
            "layer = source layer or fixed ratio."
        )
    return match, None


def _label(value: Any, labels: list[str], where: str, what: str) -> str:
    if isinstance(value, str) and value in labels:
        return value
    near = get_close_matches(str(value), labels, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise LprError(
        f"{where} = {value!r} is not {what} label of this study.{hint} Expected "
        f"one of: {', '.join(map(repr, labels)) or 'none'}."
    )


def _floats(value: Any, where: str, allow_empty: bool = False) -> tuple[float, ...]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise bad_value(where, value, "a non-empty list of numbers")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise wrong_type(f"{where}[{i}]", v, "a number")
        out.append(float(v))
    if len(set(out)) != len(out):
        raise LprError(f"{where} = {value!r} repeats a value: expected distinct values.")
    return tuple(out)
