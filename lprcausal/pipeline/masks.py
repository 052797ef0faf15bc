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

Across architectures (weight pruning only): when the run whose LPR a ``transplant`` or
``interp`` mask borrows has other prunable layers (or the mask names a match rule other
than ``name``), its ratios are first matched onto these weights' layers
(:mod:`lprcausal.pruning.matching`, rule ``MaskSpec.match``) and each layer loses exactly
``round_half_up(ratio * n)`` weights by magnitude.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from lprcausal.config import CONTROLS, EvalSpec, MaskSpec, derive_seed
from lprcausal.errors import LprError
from lprcausal.pipeline.runs import FindRun
from lprcausal.pruning import (
    allocate_ratios,
    cross_transplant_masks,
    interpolate_ratios,
    layerwise_magnitude_masks,
    layerwise_ratios,
    matched_ratios,
    random_masks,
    rounded_counts,
    shuffle_masks,
    transplant_masks,
)
from lprcausal.pruning.layerwise import magnitude_masks_at_counts
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
        source = _other(store, m.lpr_from, find, "lpr_from", cross_ok=True)
        if not is_cross(source, find, m):
            return transplant_masks(source.mask(s), weights)
        return cross_transplant_masks(source.mask(s), weights, m.match, layer_map_of(m))
    if m.kind == "interp":
        a = _other(store, m.lpr_from, find, "lpr_from", cross_ok=True)
        b = _other(store, m.lpr_to, find, "lpr_to", cross_ok=True)
        if m.alpha is None:
            raise LprError("mask kind 'interp' needs alpha: expected a value in [0, 1].")
        if not (is_cross(a, find, m) or is_cross(b, find, m)):
            return interpolated_mask(weights, layerwise_ratios(a.mask(s)),
                                     layerwise_ratios(b.mask(s)), m.alpha)
        n_params = {n: w.numel() for n, w in weights.items()}
        # Across architectures each end is first matched onto these weights' layers; the
        # mix is then rounded layer by layer, as a transplant is (alpha 0 and 1 give the
        # two transplant cells exactly).
        ra, rb = (lpr_on(run, find, s, m) for run in (a, b))
        mixed = {n: (1.0 - m.alpha) * ra[n] + m.alpha * rb[n] for n in weights}
        return magnitude_masks_at_counts(weights, rounded_counts(n_params, mixed))
    if m.kind in CONTROLS:
        own = find.mask(s) if m.kind in ("shuffle", "random") else None
        return control_mask(m.kind, weights, own, s, m.seed)
    raise LprError(f"mask kind = {m.kind!r} is not known.")


def control_mask(kind: str, weights: dict[str, torch.Tensor], own: dict | None, sparsity: float,
                 seed: int) -> dict[str, torch.Tensor]:
    """A control mask on ``weights`` at ``sparsity``, with no other run's LPR in it:
    ``uniform`` / ``erk`` / ``lamp`` allocate the ratios and prune each layer by magnitude;
    ``shuffle`` / ``random`` keep ``own`` (the weights' own mask) per-layer counts at random
    positions, drawn from ``seed``."""
    if kind in ("uniform", "erk", "lamp"):
        # The allocation's counts are exact and may empty a layer (as global pruning may).
        ratios = allocate_ratios(kind, weights, sparsity)
        return layerwise_magnitude_masks(weights, ratios, allow_empty_layers=True)
    if own is None:
        raise ValueError(f"control {kind!r} needs the weights' own mask")
    if kind == "shuffle":
        return shuffle_masks(own, derive_seed(seed, "shuffle"))
    if kind == "random":
        return random_masks(weights, layerwise_ratios(own), derive_seed(seed, "random"))
    raise LprError(f"control = {kind!r} is not known: expected one of {', '.join(CONTROLS)}.")


def interpolated_mask(weights: dict[str, torch.Tensor], lpr_a: dict[str, float],
                      lpr_b: dict[str, float], alpha: float) -> dict[str, torch.Tensor]:
    """``weights`` pruned by magnitude per layer at the LPR ``(1 - alpha) * a + alpha * b``.

    A layer is emptied only where an end empties it (as a transplant of that end would)."""
    n_params = {n: w.numel() for n, w in weights.items()}
    ratios = interpolate_ratios(lpr_a, lpr_b, alpha, n_params)
    return layerwise_magnitude_masks(weights, ratios, allow_empty_layers=True)


def _other(store, run_id: str | None, find: FindRun, field: str, cross_ok: bool = False
           ) -> FindRun:
    """The find run ``run_id`` whose LPR is used; with ``cross_ok`` (weight pruning) it
    may have other layers, else it must have the layers of ``find``."""
    if not run_id:
        raise LprError(f"{field} is missing: expected the find run whose LPR is used.")
    other = FindRun(store, run_id, field)
    check_same_structure(other, find)
    if not (cross_ok and not find.structured):
        check_same_layers(other, find)
    return other


def same_layers(a: FindRun, b: FindRun) -> bool:
    """Both runs prune the same named tensors with the same shapes, in the same order."""
    return [(x["name"], tuple(x["shape"])) for x in a.layers] == [
        (x["name"], tuple(x["shape"])) for x in b.layers
    ]


def is_cross(other: FindRun, find: FindRun, m: MaskSpec) -> bool:
    """True when ``other``'s LPR reaches ``find``'s weights across architectures: another
    run whose layers differ, or for which the mask names a match rule other than by name.
    A run's own LPR is never matched (an interpolation's end at the weights' own run)."""
    return other.id != find.id and (m.match != "name" or not same_layers(other, find))


def layer_map_of(m: MaskSpec) -> dict | None:
    return json.loads(m.layer_map) if m.layer_map is not None else None


def lpr_on(other: FindRun, find: FindRun, s: float, m: MaskSpec) -> dict[str, float]:
    """The LPR of ``other`` at level ``s`` as ratios of ``find``'s prunable layers
    (matched by ``m.match``; the identity when the layers are the same)."""
    ratios = layerwise_ratios(other.mask(s))
    if not is_cross(other, find, m):
        return ratios
    return matched_ratios(ratios, find.prunable, m.match, layer_map_of(m))


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
