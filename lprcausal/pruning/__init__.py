"""Pruning math: masks, magnitude pruning (global and layerwise), LPR transplants,
allocation schemes and control masks.

All functions are pure: they take the prunable weights as a ``Mapping[str, Tensor]``
in network order (the order breaks ties), never modify inputs, and return masks
(``name -> bool tensor``, ``True`` = kept) on the weights' devices.
"""

from lprcausal.pruning.allocation import (
    SCHEMES,
    allocate_ratios,
    erk_densities,
    interpolate_ratios,
    lamp_scores,
)
from lprcausal.pruning.controls import random_masks, shuffle_masks
from lprcausal.pruning.layerwise import (
    layer_counts,
    layerwise_magnitude_masks,
    transplant_masks,
)
from lprcausal.pruning.masks import (
    Masks,
    apply_masks,
    check_masks_match,
    count_removed,
    global_magnitude_masks,
    layerwise_ratios,
    overall_sparsity,
    removal_count,
)

__all__ = [
    "SCHEMES",
    "Masks",
    "allocate_ratios",
    "apply_masks",
    "check_masks_match",
    "count_removed",
    "erk_densities",
    "global_magnitude_masks",
    "interpolate_ratios",
    "lamp_scores",
    "layer_counts",
    "layerwise_magnitude_masks",
    "layerwise_ratios",
    "overall_sparsity",
    "random_masks",
    "removal_count",
    "shuffle_masks",
    "transplant_masks",
]
