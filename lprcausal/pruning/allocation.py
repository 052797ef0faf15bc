"""Allocation schemes: rules that turn a target sparsity into layerwise pruning ratios.

Every scheme returns ratios that are exactly realizable (``count / n`` per layer, with
the counts summing to ``removal_count(sparsity, N)``), so
``layerwise_magnitude_masks(params, allocate_ratios(...), allow_empty_layers=True)`` hits
the total exactly (a scheme may give a layer ratio 1, e.g. uniform on a one-weight layer
at high sparsity, or LAMP/global at extreme sparsity).
``interpolate_ratios`` mixes two LPRs for dose-response studies.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch

from lprcausal.errors import LprError, bad_value
from lprcausal.pruning._checks import (
    check_fraction,
    check_no_nan,
    check_same_names,
    format_names,
)
from lprcausal.pruning.layerwise import largest_remainder, layer_counts
from lprcausal.pruning.masks import (
    global_magnitude_masks,
    layerwise_ratios,
    prune_lowest,
    removal_count,
)

SCHEMES = ("global", "uniform", "erk", "lamp")
"""Names accepted by :func:`allocate_ratios`."""

# Keyword options each scheme accepts (all optional).
_SCHEME_OPTIONS: dict[str, tuple[str, ...]] = {"erk": ("erk_power_scale",)}


def lamp_scores(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LAMP scores (Lee et al. 2021), float64 tensors of each weight's shape.

    Within a layer, sort weights ascending by ``|w|`` (ties by flat index); then
    ``score_u = w_u**2 / sum_{v >= u} w_v**2``. A score whose denominator is 0 (only
    zero weights from ``u`` on) is 0. The largest weight of each layer scores 1.
    """
    check_no_nan(params)
    scores = {}
    for name, w in params.items():
        flat = w.detach().reshape(-1).to(torch.float64)
        order = torch.argsort(flat.abs(), stable=True)
        sq_sorted = (flat * flat)[order]
        suffix = sq_sorted.flip(0).cumsum(0).flip(0)
        score_sorted = torch.where(suffix > 0, sq_sorted / suffix, 0.0)
        score = torch.empty_like(flat)
        score[order] = score_sorted
        scores[name] = score.reshape(w.shape)
    return scores


def erk_densities(
    shapes: Mapping[str, tuple[int, ...]], density: float, power_scale: float = 1.0
) -> dict[str, float]:
    """ERK densities (Evci et al. 2020) whose weighted mean is ``density``.

    Layer ``l`` gets density ``eps * (sum(shape) / prod(shape)) ** power_scale``, with
    ``eps`` solved so the kept total is ``density * N``. As in RigL's implementation,
    while the largest density exceeds 1 those layers are made dense and ``eps`` solved
    again over the rest. Returns real (unrounded) densities in [0, 1].
    """
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    # An empty tensor has nothing to prune; treating it as dense keeps it out of eps.
    raw = {n: (sum(s) / sizes[n]) ** power_scale for n, s in shapes.items() if sizes[n]}
    dense = {n for n in shapes if not sizes[n]}
    eps = 0.0
    while True:
        free = [n for n in raw if n not in dense]
        if not free:
            break
        rhs = sum(sizes[n] * density for n in free) - sum(sizes[n] * (1 - density) for n in dense)
        eps = rhs / sum(raw[n] * sizes[n] for n in free)
        max_raw = max(raw[n] for n in free)
        if max_raw * eps <= 1.0:
            break
        dense |= {n for n in free if raw[n] == max_raw}
    # Clamp: float error can push a density a hair outside [0, 1].
    return {n: 1.0 if n in dense else min(max(eps * raw[n], 0.0), 1.0) for n in shapes}


def _check_options(scheme: str, kw: Mapping[str, object]) -> None:
    allowed = _SCHEME_OPTIONS.get(scheme, ())
    unknown = [k for k in kw if k not in allowed]
    if unknown:
        raise LprError(
            f"options {format_names(unknown)} are not valid for allocation scheme "
            f"{scheme!r}: expected only {format_names(allowed)}."
        )


def _realize(
    params: Mapping[str, torch.Tensor], removed: Mapping[str, float], k: int
) -> dict[str, float]:
    """Ratios ``count / n`` for real per-layer removal targets, counts summing to ``k``."""
    names = list(params)
    sizes = [params[n].numel() for n in names]
    counts = largest_remainder([removed[n] for n in names], sizes, k)
    return {n: c / s if s else 0.0 for n, c, s in zip(names, counts, sizes, strict=True)}


def allocate_ratios(
    scheme: str, params: Mapping[str, torch.Tensor], sparsity: float, **kw: object
) -> dict[str, float]:
    """Layerwise pruning ratios for ``params`` at overall ``sparsity`` under ``scheme``.

    - ``global``: the LPR of :func:`global_magnitude_masks` on these weights.
    - ``uniform``: every layer at ``sparsity`` (counts rounded so the total is exact).
    - ``erk``: Erdos-Renyi-Kernel densities (:func:`erk_densities`); option
      ``erk_power_scale`` (default 1.0; 0 gives uniform).
    - ``lamp``: prune globally by :func:`lamp_scores` (ties by global position).

    Returned ratios are ``count / n`` with counts summing to
    ``removal_count(sparsity, N)``. Unknown scheme or option: :class:`LprError`.
    """
    if scheme not in SCHEMES:
        raise bad_value("scheme", scheme, f"one of {format_names(SCHEMES)}")
    _check_options(scheme, kw)
    s = check_fraction("sparsity", sparsity)
    k = removal_count(s, sum(w.numel() for w in params.values()))
    if scheme == "global":
        return layerwise_ratios(global_magnitude_masks(params, s))
    if scheme == "lamp":
        return layerwise_ratios(prune_lowest(lamp_scores(params), k))
    if scheme == "uniform":
        return _realize(params, {n: s * w.numel() for n, w in params.items()}, k)
    power = kw.get("erk_power_scale", 1.0)
    if isinstance(power, bool) or not isinstance(power, numbers.Real) or not 0 <= power < math.inf:
        raise bad_value("erk_power_scale", power, "a finite number >= 0")
    shapes = {n: tuple(w.shape) for n, w in params.items()}
    densities = erk_densities(shapes, 1.0 - s, float(power))
    return _realize(params, {n: (1.0 - densities[n]) * w.numel() for n, w in params.items()}, k)


def interpolate_ratios(
    lpr_a: Mapping[str, float],
    lpr_b: Mapping[str, float],
    alpha: float,
    n_params: Mapping[str, int],
) -> dict[str, float]:
    """The LPR ``(1 - alpha) * a + alpha * b``, realized per layer by :func:`layer_counts`.

    The total count is ``round(sum_i r_i * n_i)``, so two LPRs with equal total sparsity
    interpolate at that same sparsity exactly; ``alpha`` 0 and 1 give back ``a`` and ``b``
    exactly when they are realizable (e.g. taken from masks). Names must match
    ``n_params``; ``alpha`` must lie in [0, 1]. Result is keyed in ``n_params`` order.
    """
    check_same_names(lpr_a, n_params, "lpr_a", "the layers of n_params")
    check_same_names(lpr_b, n_params, "lpr_b", "the layers of n_params")
    t = check_fraction("alpha", alpha, allow_one=True)
    for name in n_params:
        check_fraction(f"lpr_a[{name!r}]", lpr_a[name], allow_one=True)
        check_fraction(f"lpr_b[{name!r}]", lpr_b[name], allow_one=True)
    mixed = {n: (1.0 - t) * float(lpr_a[n]) + t * float(lpr_b[n]) for n in n_params}
    counts = layer_counts(n_params, mixed)
    return {n: c / n_params[n] if n_params[n] else 0.0 for n, c in counts.items()}
