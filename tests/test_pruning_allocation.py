"""Allocation schemes (global, uniform, ERK, LAMP) and LPR interpolation."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from lprcausal.errors import LprError
from lprcausal.pruning import (
    SCHEMES,
    allocate_ratios,
    count_removed,
    erk_densities,
    global_magnitude_masks,
    interpolate_ratios,
    lamp_scores,
    layerwise_magnitude_masks,
    layerwise_ratios,
    removal_count,
)


def small_model_params(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny conv (2 out, 1 in, 3x3: 18 weights) then linears 8->4 (32) and 4->2 (8)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv.weight": (2, 1, 3, 3), "fc1.weight": (4, 8), "fc2.weight": (2, 4)}
    return {n: torch.randn(s, generator=g) for n, s in shapes.items()}


def shapes_of(params):
    return {n: tuple(w.shape) for n, w in params.items()}


# ERK raw densities (sum of dims / prod of dims) of small_model_params:
# conv (2+1+3+3)/18 = 1/2, fc1 (4+8)/32 = 3/8, fc2 (2+4)/8 = 3/4; N = 58.


def test_erk_densities_without_dense_layers_match_hand_values():
    # sparsity 0.5: 29 kept = eps * (1/2*18 + 3/8*32 + 3/4*8) = 27 eps, eps = 29/27.
    d = erk_densities(shapes_of(small_model_params()), 0.5)
    expected = {"conv.weight": 29 / 54, "fc1.weight": 29 / 72, "fc2.weight": 29 / 36}
    assert d == pytest.approx(expected, abs=1e-12)


def test_erk_densities_make_overfull_layers_dense_and_resolve():
    # sparsity 0.2: eps = 46.4/27 puts fc2 at 1.29 > 1, so fc2 is dense; then
    # 50*0.8 - 8*0.2 = 38.4 = eps * (9 + 12), eps = 64/35: conv 32/35, fc1 24/35.
    d = erk_densities(shapes_of(small_model_params()), 0.8)
    expected = {"conv.weight": 32 / 35, "fc1.weight": 24 / 35, "fc2.weight": 1.0}
    assert d == pytest.approx(expected, abs=1e-12)


def test_erk_densities_iterate_until_no_layer_is_overfull():
    # sparsity 0.05: fc2 goes dense, then conv (0.5 * 47.1/21 > 1); then
    # 32*0.95 - 26*0.05 = 29.1 = eps * 12, so fc1 keeps 29.1 of 32.
    d = erk_densities(shapes_of(small_model_params()), 0.95)
    expected = {"conv.weight": 1.0, "fc1.weight": 29.1 / 32, "fc2.weight": 1.0}
    assert d == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("sparsity", "counts"),
    [
        # removed 18-9*29/27 = 8.33, 32-12*29/27 = 19.11, 8-6*29/27 = 1.56: total 29,
        # floors 8+19+1 = 28, the spare unit to fc2 (largest remainder 0.56).
        (0.5, {"conv.weight": 8, "fc1.weight": 19, "fc2.weight": 2}),
        # removed 18*3/35 = 1.54, 32*11/35 = 10.06, 0: total round(11.6) = 12 -> conv +1.
        (0.2, {"conv.weight": 2, "fc1.weight": 10, "fc2.weight": 0}),
        (0.05, {"conv.weight": 0, "fc1.weight": 3, "fc2.weight": 0}),
    ],
)
def test_erk_ratios_are_realized_hand_counts(sparsity, counts):
    params = small_model_params()
    ratios = allocate_ratios("erk", params, sparsity)
    assert ratios == {n: c / params[n].numel() for n, c in counts.items()}


def test_erk_power_scale_zero_is_uniform():
    params = small_model_params()
    erk0 = allocate_ratios("erk", params, 0.5, erk_power_scale=0.0)
    assert erk0 == allocate_ratios("uniform", params, 0.5)


def lamp_params():
    return {"a": torch.tensor([[1.0, 2.0, 3.0]]), "b": torch.tensor([[2.0, 1.0], [1.0, 2.0]])}


def test_lamp_scores_match_hand_values():
    # a sorted: 1, 2, 3 -> 1/(1+4+9), 4/(4+9), 9/9.
    # b sorted (ties by flat index): b[1]=1, b[2]=1, b[0]=2, b[3]=2 -> 1/10, 1/9, 4/8, 4/4.
    s = lamp_scores(lamp_params())
    assert s["a"].dtype == torch.float64
    assert s["a"].tolist() == [[1 / 14, 4 / 13, 1.0]]
    assert s["b"].tolist() == [[0.5, 0.1], [1 / 9, 1.0]]


def test_lamp_scores_match_independent_formula_on_random_weights():
    params = small_model_params(5)
    scores = lamp_scores(params)
    for name, w in params.items():
        values = w.reshape(-1).tolist()
        order = sorted(range(len(values)), key=lambda i: (abs(values[i]), i))
        expected = [0.0] * len(values)
        for rank, i in enumerate(order):
            tail = [Fraction(values[j]) ** 2 for j in order[rank:]]
            expected[i] = float(Fraction(values[i]) ** 2 / sum(tail))
        assert scores[name].reshape(-1).tolist() == pytest.approx(expected, rel=1e-12)


def test_lamp_ratios_prune_by_score_with_ties_by_global_position():
    # Scores ascending: a0 1/14, b1 1/10, b2 1/9, a1 4/13, b0 1/2, then a2 and b3 tie at 1.
    # Sparsity 0.5 of 7 -> 4 removed; 0.8 -> 6 removed, a2 before b3 by position.
    assert allocate_ratios("lamp", lamp_params(), 0.5) == {"a": 2 / 3, "b": 2 / 4}
    assert allocate_ratios("lamp", lamp_params(), 0.8) == {"a": 1.0, "b": 3 / 4}
    # Global magnitude differs here: it removes the three 1s and three 2s.
    assert allocate_ratios("global", lamp_params(), 0.8) == {"a": 2 / 3, "b": 1.0}


def test_uniform_ratios_round_counts_so_the_total_is_exact():
    params = {n: torch.randn(10) for n in ("a", "b", "c")}
    # 2.5 per layer, total round(7.5) = 8: the spare units go to a and b by layer order.
    assert allocate_ratios("uniform", params, 0.25) == {"a": 0.3, "b": 0.3, "c": 0.2}


def test_global_scheme_is_the_lpr_of_global_magnitude_pruning():
    params = small_model_params(2)
    expected = layerwise_ratios(global_magnitude_masks(params, 0.7))
    assert allocate_ratios("global", params, 0.7) == expected


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sparsity", [0.0, 0.13, 0.5, 0.9])
def test_every_scheme_realizes_the_exact_total_count(scheme, sparsity):
    params = small_model_params(3)
    ratios = allocate_ratios(scheme, params, sparsity)
    masks = layerwise_magnitude_masks(params, ratios, allow_empty_layers=True)
    assert layerwise_ratios(masks) == ratios
    assert sum(count_removed(masks).values()) == removal_count(sparsity, 58)


def test_unknown_scheme_raises_listing_the_schemes():
    with pytest.raises(LprError, match=r"scheme = 'erdos'.*'global', 'uniform', 'erk', 'lamp'"):
        allocate_ratios("erdos", small_model_params(), 0.5)


def test_unknown_scheme_option_raises_naming_it():
    with pytest.raises(LprError, match=r"\['power'\] are not valid for allocation scheme 'erk'"):
        allocate_ratios("erk", small_model_params(), 0.5, power=2.0)


def test_allocation_sparsity_out_of_range_raises_naming_sparsity():
    with pytest.raises(LprError, match=r"sparsity = 1.0"):
        allocate_ratios("uniform", small_model_params(), 1.0)


N_PARAMS = {"a": 3, "b": 3, "c": 4}
LPR_A = {"a": 1 / 3, "b": 2 / 3, "c": 0.5}
LPR_B = {"a": 2 / 3, "b": 1 / 3, "c": 0.5}


def test_interpolation_endpoints_reproduce_the_sources_exactly():
    assert interpolate_ratios(LPR_A, LPR_B, 0.0, N_PARAMS) == LPR_A
    assert interpolate_ratios(LPR_A, LPR_B, 1.0, N_PARAMS) == LPR_B


def test_interpolation_midpoint_keeps_the_total_exact():
    # Targets 1.5, 1.5, 2 of total 5: the spare unit goes to a by layer order.
    mid = interpolate_ratios(LPR_A, LPR_B, 0.5, N_PARAMS)
    assert mid == {"a": 2 / 3, "b": 1 / 3, "c": 0.5}


@pytest.mark.parametrize("alpha", [0.1, 0.25, 0.5, 0.77])
def test_interpolation_between_real_masks_keeps_their_common_sparsity(alpha):
    a = global_magnitude_masks(small_model_params(0), 0.6)
    b = global_magnitude_masks(small_model_params(1), 0.6)
    n = {name: m.numel() for name, m in a.items()}
    mixed = interpolate_ratios(layerwise_ratios(a), layerwise_ratios(b), alpha, n)
    masks = layerwise_magnitude_masks(small_model_params(2), mixed, allow_empty_layers=True)
    assert sum(count_removed(masks).values()) == sum(count_removed(a).values())


def test_interpolation_alpha_outside_unit_interval_raises_naming_alpha():
    with pytest.raises(LprError, match=r"alpha = 1.5 .*\[0, 1\]"):
        interpolate_ratios(LPR_A, LPR_B, 1.5, N_PARAMS)


def test_interpolation_with_mismatched_names_raises_naming_them():
    lpr_b = {"a": 0.5, "b": 0.5, "d": 0.5}
    with pytest.raises(LprError, match=r"lpr_b does not match.*\['c'\].*\['d'\]"):
        interpolate_ratios(LPR_A, lpr_b, 0.5, N_PARAMS)
