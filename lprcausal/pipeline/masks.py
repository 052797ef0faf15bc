"""The mask an eval run trains with, built from its :class:`MaskSpec`.

All masks are magnitude-based on the trained weights the find run pruned at this
sparsity (its "source" weights), except the controls: ``shuffle`` and ``random`` keep
the find run's own LPR with random positions.
"""

from __future__ import annotations

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


def eval_mask(store, spec: EvalSpec, find: FindRun) -> dict[str, torch.Tensor]:
    s, m = spec.sparsity, spec.mask
    weights = find.prunable_weights(s)
    if m.kind == "own":
        return find.mask(s)
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
    return other
