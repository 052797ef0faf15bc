"""Masks, their summaries (counts, LPR, sparsity) and global magnitude pruning.

A mask is a dict ``param_name -> bool tensor`` of the param's shape, ``True`` = kept.
The prunable weights are passed as a ``Mapping[str, Tensor]`` in network order; that
order is the canonical layer order used to break ties. Nothing here modifies its
inputs, and every mask is returned on the device of the weight it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lprcausal.errors import LprError
from lprcausal.pruning._checks import (
    check_count,
    check_fraction,
    check_no_nan,
    check_same_names,
)
from lprcausal.pruning._rounding import round_half_up

Masks = dict[str, torch.Tensor]
"""``param_name -> bool tensor`` of the param's shape; ``True`` = weight kept."""


def count_removed(masks: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Number of weights each mask removes (its ``False`` entries), keyed by name."""
    return {name: int(m.numel() - int(torch.count_nonzero(m))) for name, m in masks.items()}


def layerwise_ratios(masks: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The LPR of ``masks``: fraction of each tensor removed, keyed by name (0.0 if empty)."""
    removed = count_removed(masks)
    return {name: removed[name] / m.numel() if m.numel() else 0.0 for name, m in masks.items()}


def overall_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of all masked weights removed (over the whole prunable set)."""
    total = sum(m.numel() for m in masks.values())
    return sum(count_removed(masks).values()) / total if total else 0.0


def check_masks_match(
    masks: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor], what: str = "mask"
) -> None:
    """Raise :class:`LprError` unless ``masks`` has exactly the names of ``params``, each a
    bool tensor of the same shape; ``what`` names the masks in the message."""
    check_same_names(masks, params, what, "the prunable weights")
    for name, w in params.items():
        m = masks[name]
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            kind = m.dtype if isinstance(m, torch.Tensor) else type(m).__name__
            raise LprError(
                f"{what} for layer {name!r} has type {kind}: expected a bool tensor "
                "(True = weight kept)."
            )
        if m.shape != w.shape:
            raise LprError(
                f"{what} for layer {name!r} has shape {tuple(m.shape)}: expected the "
                f"weight's shape {tuple(w.shape)}."
            )


def apply_masks(
    params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """New tensors ``w * mask``: removed entries are exactly 0 (even where ``w`` is inf/NaN)."""
    check_masks_match(masks, params)
    return {name: w.masked_fill(~masks[name].to(w.device), 0) for name, w in params.items()}


def removal_count(sparsity: float, n_total: int) -> int:
    """Exact number of weights removed at ``sparsity`` out of ``n_total``: ``round(s * N)``
    with halves rounded up (see ``_rounding``), e.g. 0.5 of 5 weights -> 3."""
    s = check_fraction("sparsity", sparsity)
    return round_half_up(s * check_count("n_total", n_total))


def prune_lowest(scores: Mapping[str, torch.Tensor], k: int) -> Masks:
    """Masks removing the ``k`` lowest scores across all tensors of ``scores``.

    Ties are broken by global position (mapping order, then flat index; earlier first)
    thanks to a stable sort, so the result is deterministic and removes exactly ``k``.
    """
    names = list(scores)
    if not names:
        return {}
    device = scores[names[0]].device
    flat = torch.cat([scores[n].detach().reshape(-1).to(device) for n in names])
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=device)
    if k > 0:
        keep[torch.argsort(flat, stable=True)[:k]] = False
    sizes = [scores[n].numel() for n in names]
    # clone: slices of one buffer share storage, which e.g. safetensors refuses to save.
    return {
        n: part.reshape(scores[n].shape).to(scores[n].device).clone()
        for n, part in zip(names, torch.split(keep, sizes), strict=True)
    }


def global_magnitude_masks(
    params: Mapping[str, torch.Tensor],
    sparsity: float,
    prior: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Global magnitude pruning: remove exactly ``removal_count(sparsity, N)`` weights.

    The weights with smallest ``abs(w)`` across all of ``params`` are removed; ties go
    by global position (layer order, then flat index; earlier position pruned first).
    With ``prior`` (a mask), its removed weights stay removed and count toward the
    total, so the result is nested in ``prior`` (as in iterative magnitude pruning).
    Raises :class:`LprError` for sparsity outside [0, 1), a prior that does not match
    ``params`` or that already removes more than the target, and NaN weights.
    """
    check_fraction("sparsity", sparsity)
    if prior is not None:
        check_masks_match(prior, params, what="prior")
    check_no_nan(params)
    n_total = sum(w.numel() for w in params.values())
    k = removal_count(sparsity, n_total)
    scores = {name: w.detach().abs() for name, w in params.items()}
    if prior is not None:
        n_prior = sum(count_removed(prior).values())
        if n_prior > k:
            raise LprError(
                f"prior already removes {n_prior} of {n_total} weights, more than the "
                f"{k} that sparsity = {sparsity!r} removes: expected a sparsity at least "
                f"{n_prior / n_total:.6g} (the prior's own)."
            )
        # -1 sorts below every magnitude, so prior-pruned weights are taken first.
        scores = {n: s.masked_fill(~prior[n].to(s.device), -1) for n, s in scores.items()}
    return prune_lowest(scores, k)
