"""Masks for a user's model: thin adapters from ``nn.Module`` / mappings to :mod:`lprcausal.pruning`.

No pruning math lives here: each function resolves the weights (:func:`weights_of`) and
calls the pure function that the CLI and the engine use, so counts, tie-breaking and
errors are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lprcausal.api.weights import ModelOrParams, weights_of
from lprcausal.pruning import (
    Masks,
    allocate_ratios,
    interpolate_ratios,
    layerwise_ratios,
    random_masks,
    shuffle_masks,
    transplant_masks,
)
from lprcausal.pruning import global_magnitude_masks as _global
from lprcausal.pruning import layerwise_magnitude_masks as _layerwise
from lprcausal.pruning.masks import check_masks_match


def global_magnitude_masks(
    model_or_params: ModelOrParams, sparsity: float, prior: Mapping[str, torch.Tensor] | None = None
) -> Masks:
    """Remove exactly ``round(sparsity * N)`` smallest-magnitude weights across the prunable
    set (ties by layer order, then flat index). With ``prior`` (a mask) its removed weights
    stay removed (IMP); the prunable set is then the prior's names.

    >>> import torch, lprcausal as lpc
    >>> w = {"a": torch.tensor([3.0, -1.0, 2.0]), "b": torch.tensor([0.5, 4.0])}
    >>> m = lpc.global_magnitude_masks(w, 0.4)
    >>> m["a"].tolist(), m["b"].tolist()
    ([True, False, True], [False, True])
    """
    names = None if prior is None else list(prior)
    return _global(weights_of(model_or_params, names), sparsity, prior)


def layerwise_magnitude_masks(
    model_or_params: ModelOrParams,
    ratios: Mapping[str, float],
    *,
    allow_empty_layers: bool = False,
) -> Masks:
    """Prune each layer by magnitude at its own ratio (exact counts, exact total).

    >>> import torch, lprcausal as lpc
    >>> w = {"a": torch.tensor([3.0, -1.0, 2.0, 0.1]), "b": torch.tensor([0.5, 4.0])}
    >>> lpc.layerwise_ratios(lpc.layerwise_magnitude_masks(w, {"a": 0.5, "b": 0.5}))
    {'a': 0.5, 'b': 0.5}
    """
    return _layerwise(weights_of(model_or_params, list(ratios)), ratios,
                      allow_empty_layers=allow_empty_layers)


def transplant(source_masks: Mapping[str, torch.Tensor], target: ModelOrParams) -> Masks:
    """Prune ``target``'s weights layerwise by magnitude at the exact per-layer removal counts
    of ``source_masks`` (its LPR). Names and shapes must match."""
    return transplant_masks(source_masks, weights_of(target, list(source_masks)))


def shuffle(masks: Mapping[str, torch.Tensor], seed: int = 0) -> Masks:
    """Control: each layer's mask randomly permuted (same LPR, random positions)."""
    return shuffle_masks(masks, seed)


def random(masks: Mapping[str, torch.Tensor], seed: int = 0) -> Masks:
    """Control: fresh random positions removing exactly each layer's count of ``masks``."""
    check_masks_match(masks, masks)
    return random_masks(masks, layerwise_ratios(masks), seed)


def _allocated(scheme: str, model_or_params: ModelOrParams, sparsity: float, **kw) -> Masks:
    weights = weights_of(model_or_params)
    return _layerwise(weights, allocate_ratios(scheme, weights, sparsity, **kw))


def uniform(model_or_params: ModelOrParams, sparsity: float) -> Masks:
    """Control: every layer pruned by magnitude at ``sparsity`` (counts rounded so the
    total is exactly ``round(sparsity * N)``)."""
    return _allocated("uniform", model_or_params, sparsity)


def erk(model_or_params: ModelOrParams, sparsity: float, power_scale: float = 1.0) -> Masks:
    """Control: layerwise magnitude pruning at Erdos-Renyi-Kernel densities (Evci et al.)."""
    return _allocated("erk", model_or_params, sparsity, erk_power_scale=power_scale)


def lamp(model_or_params: ModelOrParams, sparsity: float) -> Masks:
    """Control: layerwise magnitude pruning at the LPR of LAMP scores (Lee et al. 2021)."""
    return _allocated("lamp", model_or_params, sparsity)


def interpolate(
    masks_a: Mapping[str, torch.Tensor],
    masks_b: Mapping[str, torch.Tensor],
    alpha: float,
    target: ModelOrParams,
) -> Masks:
    """Dose-response: ``target`` pruned layerwise at ``(1 - alpha) * LPR(a) + alpha * LPR(b)``
    (alpha 0 gives a's LPR, 1 gives b's, exactly)."""
    check_masks_match(masks_b, masks_b, what="masks_b")
    check_masks_match(masks_a, masks_b, what="masks_a")
    weights = weights_of(target, list(masks_a))
    check_masks_match(masks_a, weights, what="masks_a")
    ratios = interpolate_ratios(
        layerwise_ratios(masks_a), layerwise_ratios(masks_b), alpha,
        {n: w.numel() for n, w in weights.items()},
    )
    return _layerwise(weights, ratios, allow_empty_layers=True)
