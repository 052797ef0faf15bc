"""Pruning math: masks, magnitude pruning (global and layerwise), LPR transplants,
allocation schemes, control masks and structured (unit) pruning.

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
from lprcausal.pruning.matching import (
    MATCH_RULES,
    cross_transplant_masks,
    matched_ratios,
    parse_layer_map,
    resnet_role,
    rounded_counts,
)
from lprcausal.pruning.structured import (
    UnitMasks,
    expand_unit_masks,
    global_unit_masks,
    layerwise_unit_masks,
    transplant_unit_masks,
    uniform_unit_fractions,
    unit_counts,
    unit_fractions,
    unit_lpr,
    unit_scores,
    unit_weight_masks,
)

__all__ = [
    "MATCH_RULES",
    "SCHEMES",
    "Masks",
    "UnitMasks",
    "allocate_ratios",
    "apply_masks",
    "check_masks_match",
    "count_removed",
    "cross_transplant_masks",
    "erk_densities",
    "expand_unit_masks",
    "global_magnitude_masks",
    "global_unit_masks",
    "interpolate_ratios",
    "lamp_scores",
    "layer_counts",
    "layerwise_magnitude_masks",
    "layerwise_ratios",
    "layerwise_unit_masks",
    "matched_ratios",
    "overall_sparsity",
    "parse_layer_map",
    "random_masks",
    "removal_count",
    "resnet_role",
    "rounded_counts",
    "shuffle_masks",
    "transplant_masks",
    "transplant_unit_masks",
    "uniform_unit_fractions",
    "unit_counts",
    "unit_fractions",
    "unit_lpr",
    "unit_scores",
    "unit_weight_masks",
]
