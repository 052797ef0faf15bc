"""Structured (unit) pruning math: unit scores, unit masks, counts and expansion.

A *unit mask* is a dict ``layer weight name -> 1-D bool tensor`` with one entry per
output unit of that layer (conv output channel, linear output neuron), ``True`` =
unit kept. Layers are passed as their weights (``name -> tensor``, units along dim 0)
in network order, which breaks ties. Which layers have prunable units and which other
parameters each unit owns is the model family's coupling rule
(:mod:`lprcausal.models.units`); :func:`expand_unit_masks` turns unit masks into
ordinary parameter masks with it.

Scores: the L1 (or L2) norm of each unit's weights (its row of the weight tensor).
With ``normalize`` each score is divided by the mean score of its layer, which makes
layers of different fan-in comparable in the global ranking (raw row norms grow with
fan-in, so without it global ranking prunes small-fan-in layers first). A layer whose
scores are all 0 keeps them 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from lprcausal.errors import LprError, bad_value
from lprcausal.models.units import UnitLayer
from lprcausal.pruning._checks import (
    check_count,
    check_fraction,
    check_no_nan,
    check_same_names,
    format_names,
)
from lprcausal.pruning.layerwise import largest_remainder, layer_counts
from lprcausal.pruning.masks import Masks, count_removed, prune_lowest, removal_count

UnitMasks = dict[str, torch.Tensor]
"""``layer weight name -> 1-D bool tensor`` (one entry per output unit; True = kept)."""

NORMS = ("l1", "l2")


def unit_scores(
    weights: Mapping[str, torch.Tensor], norm: str = "l1", normalize: bool = False
) -> dict[str, torch.Tensor]:
    """Float64 score per unit: the ``norm`` of each row (dim 0) of each weight.

    With ``normalize`` the scores of a layer are divided by their mean (see module
    docstring). Raises :class:`LprError` for an unknown norm or NaN weights.
    """
    if norm not in NORMS:
        raise bad_value("unit_norm", norm, f"one of {format_names(NORMS)}")
    check_no_nan(weights)
    out = {}
    for name, w in weights.items():
        rows = w.detach().reshape(w.shape[0], -1).to(torch.float64)
        score = rows.abs().sum(1) if norm == "l1" else rows.square().sum(1).sqrt()
        if normalize:
            mean = score.mean()
            score = score / mean if bool(mean > 0) else score
        out[name] = score
    return out


def _n_units(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    return {name: int(w.shape[0]) for name, w in weights.items()}


def global_unit_masks(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    norm: str = "l1",
    normalize: bool = False,
) -> UnitMasks:
    """Remove exactly ``removal_count(sparsity, U)`` of the ``U`` units, lowest score first.

    Units are ranked globally across layers by :func:`unit_scores`; ties go by position
    (layer order, then unit index; earlier pruned first). The top-ranked unit of each
    layer (the one the ranking would remove last) is exempt, so every layer keeps at
    least one unit. A sparsity that would need to remove every unit of some layer
    raises :class:`LprError` naming the layer(s) the ranking would empty.
    """
    s = check_fraction("sparsity", sparsity)
    scores = unit_scores(weights, norm, normalize)
    names = list(scores)
    if not names:
        return {}
    n_units = _n_units(weights)
    total = sum(n_units.values())
    k = removal_count(s, total)
    most = total - len(names)
    if k > most:
        plain = prune_lowest(scores, k)
        emptied = [n for n in names if not bool(plain[n].any())]
        raise LprError(
            f"sparsity = {sparsity!r} removes {k} of {total} units, which would remove every "
            f"unit of layer(s) {format_names(emptied)}: expected a sparsity that keeps at "
            f"least one unit in each of the {len(names)} unit layers (at most {most} units "
            f"removed, i.e. sparsity <= {most / total:.6g})."
        )
    device = scores[names[0]].device
    flat = torch.cat([scores[n].to(device) for n in names])
    protected = torch.zeros(flat.numel(), dtype=torch.bool, device=device)
    start = 0
    for n in names:
        top = torch.argsort(scores[n], stable=True)[-1]
        protected[start + int(top)] = True
        start += n_units[n]
    # Two stable sorts: by score (ties by position), then protected units moved last.
    order = torch.argsort(flat, stable=True)
    order = order[torch.argsort(protected[order].to(torch.int8), stable=True)]
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=device)
    keep[order[:k]] = False
    parts = torch.split(keep, [n_units[n] for n in names])
    return {n: p.to(weights[n].device).clone() for n, p in zip(names, parts, strict=True)}


def _check_not_emptied(n_units: Mapping[str, int], counts: Mapping[str, int], what: str) -> None:
    for name, n in n_units.items():
        if n and counts[name] >= n:
            raise LprError(
                f"{what} for layer {name!r} would remove all {n} of its units: expected at "
                "least one unit kept in every layer."
            )


def unit_counts(n_units: Mapping[str, int], fractions: Mapping[str, float]) -> dict[str, int]:
    """Units to remove per layer for per-layer ``fractions`` (largest remainder, as
    :func:`~lprcausal.pruning.layer_counts`: exact for fractions taken from unit masks,
    total ``round(sum f_i * n_i)``). Raises :class:`LprError` if a layer would be emptied."""
    counts = layer_counts(n_units, fractions)
    _check_not_emptied(n_units, counts, "unit fraction")
    return counts


def uniform_unit_fractions(n_units: Mapping[str, int], sparsity: float) -> dict[str, float]:
    """The same unit fraction ``sparsity`` in every layer, realized as ``count / n`` with
    counts (largest remainder) summing to ``removal_count(sparsity, U)`` exactly.
    Raises :class:`LprError` if a layer would lose every unit."""
    s = check_fraction("sparsity", sparsity)
    names = list(n_units)
    sizes = [int(n_units[n]) for n in names]
    counts = largest_remainder([s * n for n in sizes], sizes, removal_count(s, sum(sizes)))
    by_name = dict(zip(names, counts, strict=True))
    _check_not_emptied(n_units, by_name, f"uniform sparsity = {sparsity!r}")
    return {n: c / size if size else 0.0 for n, c, size in zip(names, counts, sizes, strict=True)}


def layerwise_unit_masks(
    weights: Mapping[str, torch.Tensor], counts: Mapping[str, int], norm: str = "l1"
) -> UnitMasks:
    """Remove exactly ``counts[name]`` lowest-scoring units of each layer (ties by unit
    index, earlier first). Normalizing is irrelevant within one layer, so not an option.
    Raises :class:`LprError` for names that differ from ``weights`` or a layer emptied."""
    check_same_names(counts, weights, "unit counts", "the unit layers")
    checked = {n: check_count(f"unit count for layer {n!r}", counts[n]) for n in weights}
    _check_not_emptied(_n_units(weights), checked, "unit count")
    scores = unit_scores(weights, norm)
    return {
        n: prune_lowest({n: scores[n]}, checked[n])[n].to(w.device) for n, w in weights.items()
    }


def check_unit_masks(
    unit_masks: Mapping[str, torch.Tensor], n_units: Mapping[str, int], what: str = "unit mask"
) -> None:
    """Raise :class:`LprError` unless ``unit_masks`` has exactly the names of ``n_units``,
    each a 1-D bool tensor of that many units."""
    check_same_names(unit_masks, n_units, what, "the unit layers")
    for name, n in n_units.items():
        m = unit_masks[name]
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or tuple(m.shape) != (n,):
            got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise LprError(
                f"{what} for layer {name!r} is {got}: expected a 1-D bool tensor of its "
                f"{n} units (True = unit kept)."
            )


def transplant_unit_masks(
    source: Mapping[str, torch.Tensor],
    target_weights: Mapping[str, torch.Tensor],
    norm: str = "l1",
) -> UnitMasks:
    """Prune the target's units layerwise at the source's exact per-layer unit counts
    (lowest :func:`unit_scores` first). Names and unit counts must match."""
    check_unit_masks(source, _n_units(target_weights), "source unit mask")
    return layerwise_unit_masks(target_weights, count_removed(source), norm)


def expand_unit_masks(unit_masks: Mapping[str, torch.Tensor], layers: Sequence[UnitLayer]) -> Masks:
    """Parameter masks (``param name -> bool tensor``) of everything the units own.

    For each layer, the unit mask is repeated ``group`` times along each slice's
    ``dim`` and broadcast to the parameter's shape; a parameter touched by several
    layers (a weight's rows by its own units, its columns by the previous layer's)
    gets the AND. Parameters no unit owns are absent. Returned on the unit masks' device.
    """
    check_unit_masks(unit_masks, {layer.weight: layer.n_units for layer in layers})
    out: Masks = {}
    for layer in layers:
        keep = unit_masks[layer.weight]
        for sl in layer.slices:
            vec = keep.repeat_interleave(sl.group)
            if vec.numel() != sl.shape[sl.dim]:
                raise LprError(
                    f"unit layer {layer.weight!r} owns {vec.numel()} entries of {sl.param!r} "
                    f"along dim {sl.dim}, but that parameter has shape {list(sl.shape)}: "
                    "expected the coupling of the same architecture."
                )
            view = [1] * len(sl.shape)
            view[sl.dim] = -1
            m = vec.reshape(view).expand(sl.shape)
            out[sl.param] = out[sl.param] & m if sl.param in out else m.clone()
    return out


def unit_fractions(unit_masks: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of each layer's units removed, keyed by name (the unit LPR)."""
    removed = count_removed(unit_masks)
    return {n: removed[n] / m.numel() if m.numel() else 0.0 for n, m in unit_masks.items()}


def unit_lpr(unit_masks: Mapping[str, torch.Tensor], prunable: Sequence[str]) -> dict[str, float]:
    """Unit fraction removed for every prunable weight name (0.0 for a layer without
    prunable units, e.g. the classifier); the parameter fraction is the weight LPR of
    the expanded mask (:func:`~lprcausal.pruning.layerwise_ratios`)."""
    fractions = unit_fractions(unit_masks)
    return {name: fractions.get(name, 0.0) for name in prunable}


def unit_weight_masks(
    unit_masks: Mapping[str, torch.Tensor],
    layers: Sequence[UnitLayer],
    prunable: Mapping[str, Sequence[int]],
) -> tuple[Masks, Masks]:
    """Split the expanded unit masks into (weight masks, other masks).

    ``prunable`` maps the prunable weight names to their shapes. The weight masks have
    exactly those names (all True where no unit owns an entry): the masks stored and
    summarized as LPR. The other masks cover every owned parameter outside the
    prunable set (biases, BatchNorm parameters, a consumer weight left dense by
    ``exclude_last``): they too must stay zero in training, so the engine gets both.
    """
    expanded = expand_unit_masks(unit_masks, layers)
    device = next(iter(unit_masks.values())).device if unit_masks else torch.device("cpu")
    weights = {
        name: expanded[name]
        if name in expanded
        else torch.ones(tuple(shape), dtype=torch.bool, device=device)
        for name, shape in prunable.items()
    }
    others = {name: m for name, m in expanded.items() if name not in prunable}
    return weights, others
