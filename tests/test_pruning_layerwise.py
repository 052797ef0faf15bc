"""Largest-remainder counts, layerwise magnitude pruning and LPR transplants."""

from __future__ import annotations

import pytest
import torch

from lprcausal.errors import LprError
from lprcausal.pruning import (
    count_removed,
    global_magnitude_masks,
    layer_counts,
    layerwise_magnitude_masks,
    layerwise_ratios,
    transplant_masks,
)


def tie_heavy_params(seed: int = 0) -> dict[str, torch.Tensor]:
    """Small float tensors with values in -3..3: many ties, zeros and sign pairs."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv.weight": (2, 2, 3), "fc1.weight": (5, 4), "fc2.weight": (3,)}
    return {n: torch.randint(-3, 4, s, generator=g).float() for n, s in shapes.items()}


def assert_masks_equal(a, b):
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_layer_counts_gives_extra_units_to_largest_remainders():
    # 1.5 and 0.7: floors 1 + 0, total round(2.2) = 2, the spare unit goes to b (0.7 > 0.5).
    assert layer_counts({"a": 3, "b": 7}, {"a": 0.5, "b": 0.1}) == {"a": 1, "b": 1}
    # 0.3 * 10 = 3 and 0.66 * 5 = 3.3: floors 3 + 3, total round(6.3) = 6: no extra unit.
    assert layer_counts({"a": 10, "b": 5}, {"a": 0.3, "b": 0.66}) == {"a": 3, "b": 3}


def test_layer_counts_breaks_remainder_ties_by_layer_order():
    # Three targets of 2.5: total round(7.5) = 8, the two spare units go to a and b.
    ratios = {"a": 0.25, "b": 0.25, "c": 0.25}
    assert layer_counts({"a": 10, "b": 10, "c": 10}, ratios) == {"a": 3, "b": 3, "c": 2}
    assert layer_counts({"c": 10, "b": 10, "a": 10}, ratios) == {"c": 3, "b": 3, "a": 2}


def test_layer_counts_total_rounds_half_up():
    # Targets 0.5 each: total round(1.5) = 2 (halves up), so two layers get one each.
    assert layer_counts({"a": 1, "b": 1, "c": 1}, dict.fromkeys("abc", 0.5)) == {
        "a": 1,
        "b": 1,
        "c": 0,
    }


def test_layer_counts_recovers_exact_counts_despite_float_error():
    # (15 / 22) * 22 == 14.999999999999998 and (13 / 23) * 23 == 12.999999999999998.
    assert (15 / 22) * 22 != 15
    n = {"a": 22, "b": 23, "c": 29}
    ratios = {"a": 15 / 22, "b": 13 / 23, "c": 15 / 29}
    assert layer_counts(n, ratios) == {"a": 15, "b": 13, "c": 15}


def test_layer_counts_with_mismatched_names_raises_naming_them():
    with pytest.raises(LprError, match=r"ratios does not match.*\['b'\].*\['z'\]"):
        layer_counts({"a": 3, "b": 4}, {"a": 0.5, "z": 0.5})


def test_layerwise_magnitude_prunes_smallest_per_layer_with_ties_by_flat_index():
    params = {"a": torch.tensor([[2.0, -1.0], [1.0, 3.0]]), "b": torch.tensor([0.0, -5.0, 0.0])}
    masks = layerwise_magnitude_masks(params, {"a": 0.5, "b": 1 / 3})
    expected = {
        "a": torch.tensor([[True, False], [False, True]]),
        "b": torch.tensor([False, True, True]),
    }
    assert_masks_equal(masks, expected)
    # One removal from a: of the tied 1s, the earlier flat index goes.
    masks = layerwise_magnitude_masks(params, {"a": 0.25, "b": 0.0})
    assert torch.equal(masks["a"], torch.tensor([[True, False], [True, True]]))


def test_layerwise_magnitude_realizes_ratios_from_a_mask_exactly():
    params = {
        n: torch.randn(s, generator=torch.Generator().manual_seed(1))
        for n, s in {"a": (22,), "b": (23,), "c": (29,)}.items()
    }
    ratios = {"a": 15 / 22, "b": 13 / 23, "c": 15 / 29}
    masks = layerwise_magnitude_masks(params, ratios)
    assert count_removed(masks) == {"a": 15, "b": 13, "c": 15}
    assert layerwise_ratios(masks) == ratios


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_transplant_reproduces_the_global_mask_exactly(sparsity, seed):
    params = tie_heavy_params(seed)
    masks = global_magnitude_masks(params, sparsity)
    assert_masks_equal(transplant_masks(masks, params), masks)


@pytest.mark.parametrize("sparsity", [0.3, 0.6, 0.9])
def test_self_transplant_through_ratios_reproduces_the_global_mask(sparsity):
    params = tie_heavy_params(4)
    masks = global_magnitude_masks(params, sparsity)
    again = layerwise_magnitude_masks(params, layerwise_ratios(masks), allow_empty_layers=True)
    assert_masks_equal(again, masks)


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_transplant_onto_other_weights_keeps_source_lpr_exactly(sparsity):
    source = global_magnitude_masks(tie_heavy_params(0), sparsity)
    target = tie_heavy_params(1)
    moved = transplant_masks(source, target)
    assert count_removed(moved) == count_removed(source)
    assert layerwise_ratios(moved) == layerwise_ratios(source)
    # And it is magnitude pruning of the target: every removed |w| <= every kept |w|.
    for name, w in target.items():
        if 0 < int((~moved[name]).sum()) < w.numel():
            assert w[~moved[name]].abs().max() <= w[moved[name]].abs().min()


def test_transplant_with_mismatched_layers_raises_naming_them():
    source = global_magnitude_masks({"a": torch.randn(4), "b": torch.randn(3)}, 0.5)
    with pytest.raises(LprError, match=r"source mask does not match.*\['c'\].*\['b'\]"):
        transplant_masks(source, {"a": torch.randn(4), "c": torch.randn(3)})
    with pytest.raises(LprError, match=r"layer 'b' has shape \(3,\).*\(5,\)"):
        transplant_masks(source, {"a": torch.randn(4), "b": torch.randn(5)})


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_layerwise_ratio_outside_unit_interval_raises_naming_the_layer(bad):
    params = {"a": torch.randn(4), "b": torch.randn(4)}
    with pytest.raises(LprError, match=rf"ratio for layer 'b' = {bad!r}"):
        layerwise_magnitude_masks(params, {"a": 0.5, "b": bad})


def test_layer_rounded_to_empty_raises_naming_the_layer():
    # 0.9 of 2 weights: 1.8 -> floor 1, the spare unit of the total round(2.1) = 2 goes to b.
    params = {"a": torch.randn(3), "b": torch.randn(2)}
    with pytest.raises(LprError, match=r"layer 'b' = 0.9 would remove all 2"):
        layerwise_magnitude_masks(params, {"a": 0.1, "b": 0.9})


def test_allow_empty_layers_permits_a_fully_pruned_layer():
    params = {"a": torch.randn(3), "b": torch.randn(2)}
    masks = layerwise_magnitude_masks(params, {"a": 0.0, "b": 1.0}, allow_empty_layers=True)
    assert count_removed(masks) == {"a": 0, "b": 2}


def test_layerwise_ratios_with_mismatched_names_raise_naming_them():
    params = {"a": torch.randn(3), "b": torch.randn(2)}
    with pytest.raises(LprError, match=r"ratios does not match.*\['b'\].*\['bb'\]"):
        layerwise_magnitude_masks(params, {"a": 0.1, "bb": 0.5})
