"""Layerwise magnitude pruning at given per-layer ratios, and LPR transplants.

Per-layer removal counts come from largest-remainder rounding (:func:`layer_counts`),
so the realized LPR equals the target exactly whenever the target is realizable
(``count / n`` per layer) and the total count is exact in every case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from lprcausal.errors import LprError
from lprcausal.pruning._checks import (
    check_count,
    check_fraction,
    check_no_nan,
    check_same_names,
)
from lprcausal.pruning._rounding import floor_snapped, round_half_up, snap
from lprcausal.pruning.masks import (
    Masks,
    check_masks_match,
    count_removed,
    prune_lowest,
)

_EMPTY_HINT = " (pass allow_empty_layers=True to allow removing a whole layer)"


def largest_remainder(targets: Sequence[float], sizes: Sequence[int], total: int) -> list[int]:
    """Integer counts near real ``targets`` (each within ``[0, size]``) summing to ``total``.

    Each count is ``floor(target)`` or one more; the extra units go to the largest
    fractional remainders, ties (to 1e-9) broken by position, earlier first. (If the
    floors already exceed ``total``, units come off the smallest remainders instead.)
    Targets are snapped first (see ``_rounding``) so float error cannot change a count.
    """
    snapped = [snap(float(t)) for t in targets]
    counts = [min(max(floor_snapped(t), 0), n) for t, n in zip(snapped, sizes, strict=True)]
    remainders = [round(t - c, 9) for t, c in zip(snapped, counts, strict=True)]
    missing = total - sum(counts)
    idx = range(len(counts))
    if missing >= 0:
        # Only float error in a caller's targets can need a layer without a remainder.
        order = sorted((i for i in idx if counts[i] < sizes[i]), key=lambda i: (-remainders[i], i))
        step = 1
    else:
        order = sorted((i for i in idx if counts[i] > 0), key=lambda i: (remainders[i], i))
        step = -1
    if abs(missing) > len(order):
        raise RuntimeError(f"cannot distribute {total} removals over layers of sizes {sizes}")
    for i in order[: abs(missing)]:
        counts[i] += step
    return counts


def layer_counts(n_params: Mapping[str, int], ratios: Mapping[str, float]) -> dict[str, int]:
    """Per-layer removal counts for ``ratios`` (fractions in [0, 1]) of ``n_params`` weights.

    Largest-remainder rounding: layer ``i`` gets ``floor(r_i * n_i)`` or one more, and the
    total is ``round(sum_i r_i * n_i)`` (halves up). Remainder ties go by layer order
    (the order of ``n_params``). Ratios taken from a real mask (``count / n``) give back
    exactly those counts despite float error. Result is keyed in ``n_params`` order.
    """
    check_same_names(ratios, n_params, "ratios", "the layers of n_params")
    names = list(n_params)
    sizes = [check_count(f"n_params[{name!r}]", n_params[name]) for name in names]
    rs = [
        check_fraction(f"ratio for layer {name!r}", ratios[name], allow_one=True) for name in names
    ]
    targets = [snap(r * n) for r, n in zip(rs, sizes, strict=True)]
    total = round_half_up(math.fsum(targets))
    return dict(zip(names, largest_remainder(targets, sizes, total), strict=True))


def magnitude_masks_at_counts(
    params: Mapping[str, torch.Tensor], counts: Mapping[str, int]
) -> Masks:
    """Remove exactly ``counts[name]`` smallest-``abs`` weights of each tensor (ties by
    flat index, earlier first). Counts are trusted: callers validate them."""
    return {
        name: prune_lowest({name: w.detach().abs()}, counts[name])[name]
        for name, w in params.items()
    }


def layerwise_magnitude_masks(
    params: Mapping[str, torch.Tensor],
    ratios: Mapping[str, float],
    *,
    allow_empty_layers: bool = False,
) -> Masks:
    """Prune each tensor by magnitude at its own ratio (counts from :func:`layer_counts`).

    ``ratios`` must have exactly the names of ``params``, each in [0, 1) ([0, 1] with
    ``allow_empty_layers``). Unless ``allow_empty_layers``, a layer whose rounded count
    would remove all its weights raises :class:`LprError` naming the layer.
    """
    check_same_names(ratios, params, "ratios", "the prunable weights")
    for name in params:
        check_fraction(
            f"ratio for layer {name!r}",
            ratios[name],
            allow_one=allow_empty_layers,
            hint="" if allow_empty_layers else _EMPTY_HINT,
        )
    check_no_nan(params)
    counts = layer_counts({name: w.numel() for name, w in params.items()}, ratios)
    if not allow_empty_layers:
        for name, w in params.items():
            if w.numel() and counts[name] == w.numel():
                raise LprError(
                    f"ratio for layer {name!r} = {ratios[name]!r} would remove all "
                    f"{w.numel()} of its weights after rounding: expected at least one "
                    f"weight kept{_EMPTY_HINT}."
                )
    return magnitude_masks_at_counts(params, counts)


def transplant_masks(
    source_masks: Mapping[str, torch.Tensor], target_params: Mapping[str, torch.Tensor]
) -> Masks:
    """Transplant the LPR of ``source_masks`` onto ``target_params``.

    Layerwise magnitude pruning of the target at the source's exact per-layer removal
    counts (a layer the source removed entirely is removed entirely). Names and shapes
    must match, else :class:`LprError` naming the first mismatching layer(s).
    Transplanting a global magnitude mask (made without a prior) onto the weights it
    came from gives that mask back.
    """
    check_masks_match(source_masks, target_params, what="source mask")
    check_no_nan(target_params)
    return magnitude_masks_at_counts(target_params, count_removed(source_masks))
