"""The mask an eval run trains with, built from its :class:`MaskSpec`.

All masks are magnitude-based on the trained weights the find run pruned at this
sparsity (its "source" weights), except the controls: ``shuffle`` and ``random`` keep
the find run's own LPR with random positions.

Structured find runs (``prune.structure = "unit"``) get unit masks instead, expanded
to weight masks (the LPR the run reports) plus the masks of the other parameters the
removed units own (biases, BatchNorm), which the engine keeps at zero too:
``own`` (the stored unit masks), ``transplant`` (the target's units pruned layerwise by
unit score at the source's exact per-layer unit counts), ``interp`` (at interpolated
unit fractions), ``uniform`` (the same unit fraction in every unit layer, exact total),
``shuffle`` / ``random`` (random units at the own per-layer unit counts). Both runs of a
transplant must be structured; ``erk`` and ``lamp`` are weight allocations only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lprcausal.config import EvalSpec, derive_seed
from lprcausal.errors import LprError
from lprcausal.pipeline.runs import FindRun
from lprcausal.pruning import (
    allocate_ratios,
    interpolate_ratios,
    layerwise_magnitude_masks,
    layerwise_ratios,
    random_masks,
    shuffle_masks,
    transplant_masks,
)
from lprcausal.pruning.structured import (
    layerwise_unit_masks,
    transplant_unit_masks,
    uniform_unit_fractions,
    unit_counts,
    unit_fractions,
    unit_weight_masks,
)

UNIT_KINDS = ("own", "transplant", "interp", "uniform", "shuffle", "random")
"""Mask kinds defined for structured (unit) find runs."""


@dataclass
class EvalMasks:
    """An eval run's masks: ``weights`` over the prunable set (stored, summarized as
    LPR), ``train`` = what the engine enforces (``weights`` plus, for structured runs,
    the removed units' biases / BatchNorm), ``units`` (structured runs only)."""

    weights: dict[str, torch.Tensor]
    train: dict[str, torch.Tensor]
    units: dict[str, torch.Tensor] | None = None


def check_same_layers(a: FindRun, b: FindRun) -> None:
    """Both runs must prune the same named tensors with the same shapes."""
    la = [(x["name"], tuple(x["shape"])) for x in a.layers]
    lb = [(x["name"], tuple(x["shape"])) for x in b.layers]
    if la == lb:
        return
    for i in range(max(len(la), len(lb))):
        xa = la[i] if i < len(la) else None
        xb = lb[i] if i < len(lb) else None
        if xa != xb:
            raise LprError(
                f"Runs {a.id} and {b.id} do not have the same prunable layers: layer {i} is "
                f"{_fmt(xa)} in {a.id} but {_fmt(xb)} in {b.id}. Expected two find runs of "
                "the same architecture and prunable set (model, widths, exclude_first/last)."
            )


def _fmt(layer) -> str:
    return "absent" if layer is None else f"{layer[0]} {list(layer[1])}"


def eval_masks(store, spec: EvalSpec, find: FindRun) -> EvalMasks:
    """The masks of eval run ``spec`` on the weights of ``find`` (see module docstring)."""
    if not find.structured:
        weights = eval_mask(store, spec, find)
        return EvalMasks(weights, weights)
    units = _unit_mask(store, spec, find)
    shapes = {x["name"]: tuple(x["shape"]) for x in find.layers}
    weights, others = unit_weight_masks(units, find.unit_layers(), shapes)
    return EvalMasks(weights, {**weights, **others}, units)


def eval_mask(store, spec: EvalSpec, find: FindRun) -> dict[str, torch.Tensor]:
    """The weight mask of eval run ``spec`` (over the prunable set of ``find``)."""
    if find.structured:
        return eval_masks(store, spec, find).weights
    s, m = spec.sparsity, spec.mask
    if m.kind == "own":
        return find.mask(s)
    weights = find.prunable_weights(s)
    if m.kind == "transplant":
        source = _other(store, m.lpr_from, find, "lpr_from")
        return transplant_masks(source.mask(s), weights)
    if m.kind == "interp":
        a = _other(store, m.lpr_from, find, "lpr_from")
        b = _other(store, m.lpr_to, find, "lpr_to")
        if m.alpha is None:
            raise LprError("mask kind 'interp' needs alpha: expected a value in [0, 1].")
        n_params = {n: w.numel() for n, w in weights.items()}
        ratios = interpolate_ratios(
            layerwise_ratios(a.mask(s)), layerwise_ratios(b.mask(s)), m.alpha, n_params
        )
        return layerwise_magnitude_masks(weights, ratios)
    if m.kind in ("uniform", "erk", "lamp"):
        return layerwise_magnitude_masks(weights, allocate_ratios(m.kind, weights, s))
    own = find.mask(s)
    if m.kind == "shuffle":
        return shuffle_masks(own, derive_seed(m.seed, "shuffle"))
    if m.kind == "random":
        return random_masks(weights, layerwise_ratios(own), derive_seed(m.seed, "random"))
    raise LprError(f"mask kind = {m.kind!r} is not known.")


def _other(store, run_id: str | None, find: FindRun, field: str) -> FindRun:
    if not run_id:
        raise LprError(f"{field} is missing: expected the find run whose LPR is used.")
    other = FindRun(store, run_id, field)
    check_same_layers(other, find)
    check_same_structure(other, find)
    return other


def check_same_structure(a: FindRun, b: FindRun) -> None:
    """Both runs prune weights, or both prune units: their levels mean the same thing."""
    if a.spec.prune.structure != b.spec.prune.structure:
        raise LprError(
            f"Runs {a.id} and {b.id} prune different structures (prune.structure = "
            f"{a.spec.prune.structure!r} vs {b.spec.prune.structure!r}): a sparsity level "
            "counts weights in one and units in the other. Expected two find runs with "
            "the same structure."
        )


def check_mask_kind(find: FindRun, kind: str) -> None:
    """Raise if mask ``kind`` is not defined for ``find``'s structure (erk/lamp on units)."""
    if find.structured and kind not in UNIT_KINDS:
        raise LprError(
            f"mask kind = {kind!r} is not defined for structured find run {find.id} "
            f"(prune.structure = 'unit'): expected one of {', '.join(UNIT_KINDS)}."
        )


def _unit_mask(store, spec: EvalSpec, find: FindRun) -> dict[str, torch.Tensor]:
    """Unit masks of an eval run on a structured find run (layerwise by unit score)."""
    s, m = spec.sparsity, spec.mask
    check_mask_kind(find, m.kind)
    layers = find.unit_layers()
    if m.kind == "own":
        return find.unit_mask(s)
    weights = find.prunable_weights(s)
    unit_weights = {layer.weight: weights[layer.weight] for layer in layers}
    n_units = {layer.weight: layer.n_units for layer in layers}
    norm = find.spec.prune.unit_norm
    if m.kind == "transplant":
        source = _other(store, m.lpr_from, find, "lpr_from")
        return transplant_unit_masks(source.unit_mask(s), unit_weights, norm)
    if m.kind == "interp":
        a = _other(store, m.lpr_from, find, "lpr_from")
        b = _other(store, m.lpr_to, find, "lpr_to")
        if m.alpha is None:
            raise LprError("mask kind 'interp' needs alpha: expected a value in [0, 1].")
        fractions = interpolate_ratios(
            unit_fractions(a.unit_mask(s)), unit_fractions(b.unit_mask(s)), m.alpha, n_units
        )
        return layerwise_unit_masks(unit_weights, unit_counts(n_units, fractions), norm)
    if m.kind == "uniform":
        fractions = uniform_unit_fractions(n_units, s)
        return layerwise_unit_masks(unit_weights, unit_counts(n_units, fractions), norm)
    own = find.unit_mask(s)
    if m.kind == "shuffle":
        return shuffle_masks(own, derive_seed(m.seed, "shuffle"))
    return random_masks(
        {n: (k,) for n, k in n_units.items()}, unit_fractions(own), derive_seed(m.seed, "random")
    )
