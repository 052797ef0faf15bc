"""Structured (unit) pruning math: scores, exact unit counts with ties, layerwise
counts, transplants, expansion to parameter masks and the two forms of the LPR."""

from __future__ import annotations

import pytest
import torch

from lprcausal.errors import LprError
from lprcausal.models import build_model
from lprcausal.models.units import unit_layers
from lprcausal.pruning import (
    expand_unit_masks,
    global_unit_masks,
    layerwise_ratios,
    layerwise_unit_masks,
    transplant_unit_masks,
    uniform_unit_fractions,
    unit_counts,
    unit_fractions,
    unit_lpr,
    unit_scores,
    unit_weight_masks,
)


def _rows(*norms: float, width: int = 2) -> torch.Tensor:
    """A weight whose row i has L1 norm norms[i] (spread evenly over ``width`` inputs)."""
    return torch.tensor([[n / width] * width for n in norms])


def _kept(masks: dict[str, torch.Tensor]) -> dict[str, list[bool]]:
    return {k: v.tolist() for k, v in masks.items()}


def test_unit_scores_are_row_l1_or_l2_norms():
    w = torch.tensor([[3.0, -4.0], [-6.0, 0.0]])
    assert unit_scores({"a": w}, "l1")["a"].tolist() == [7.0, 6.0]
    assert unit_scores({"a": w}, "l2")["a"].tolist() == [5.0, 6.0]


def test_unit_scores_of_conv_filters_cover_all_their_weights():
    w = torch.ones(2, 3, 5)  # 2 filters of 3 channels x 5 taps
    w[1] *= -2
    assert unit_scores({"c": w})["c"].tolist() == [15.0, 30.0]


def test_normalized_scores_divide_by_the_layer_mean():
    scores = unit_scores({"a": _rows(1, 2, 3), "b": _rows(10, 40)}, normalize=True)
    assert scores["a"].tolist() == pytest.approx([0.5, 1.0, 1.5])
    assert scores["b"].tolist() == pytest.approx([0.4, 1.6])


def test_normalizing_changes_which_unit_the_global_ranking_removes():
    weights = {"a": _rows(1, 2, 3), "b": _rows(10, 40)}
    # 0.2 of 5 units = 1 unit: smallest raw norm is a[0], smallest normalized is b[0]
    assert _kept(global_unit_masks(weights, 0.2)) == {"a": [False, True, True], "b": [True, True]}
    assert _kept(global_unit_masks(weights, 0.2, normalize=True)) == {
        "a": [True, True, True],
        "b": [False, True],
    }


def test_l2_ranking_can_differ_from_l1():
    weights = {"a": torch.tensor([[3.0, 4.0], [6.0, 0.0], [9.0, 9.0]])}
    assert _kept(global_unit_masks(weights, 0.34, "l1"))["a"] == [True, False, True]
    assert _kept(global_unit_masks(weights, 0.34, "l2"))["a"] == [False, True, True]


def test_global_unit_pruning_removes_the_lowest_units_across_layers():
    weights = {"a": _rows(1, 5, 3), "b": _rows(2, 4)}
    # 0.4 of 5 units = 2: the two lowest norms are a[0] = 1 and b[0] = 2
    assert _kept(global_unit_masks(weights, 0.4)) == {"a": [False, True, True], "b": [False, True]}


@pytest.mark.parametrize("sparsity,removed", [(0.0, 0), (0.1, 1), (0.3, 3), (0.5, 5), (0.7, 7)])
def test_global_unit_pruning_removes_exactly_round_s_times_u(sparsity, removed):
    torch.manual_seed(0)
    weights = {"a": torch.randn(4, 3), "b": torch.randn(6, 2)}  # U = 10
    masks = global_unit_masks(weights, sparsity)
    assert sum(int((~m).sum()) for m in masks.values()) == removed


def test_tied_units_are_removed_by_position_and_each_layer_keeps_its_last():
    weights = {"a": torch.ones(3, 2), "b": torch.ones(2, 2)}  # all scores tie
    # 0.6 of 5 = 3 units; ranking order a0 a1 [a2 kept] b0 [b1 kept]
    assert _kept(global_unit_masks(weights, 0.6)) == {"a": [False, False, True], "b": [False, True]}


def test_each_layer_keeps_its_strongest_unit_when_the_ranking_would_empty_it():
    weights = {"a": _rows(0.1, 0.2), "b": _rows(5, 6, 7, 8)}
    # 0.5 of 6 = 3: plain ranking would take a0, a1, b0; a1 is exempt so b1 goes instead
    assert _kept(global_unit_masks(weights, 0.5)) == {
        "a": [False, True],
        "b": [False, False, True, True],
    }


def test_sparsity_that_would_empty_a_layer_is_refused_naming_it():
    weights = {"small": _rows(0.1), "big": _rows(5, 6, 7, 8)}
    # 0.8 of 5 = 4 units, but two layers keeping one unit each allow only 3
    with pytest.raises(LprError, match=r"every unit of layer\(s\) \['small'\].*sparsity <= 0.6"):
        global_unit_masks(weights, 0.8)


def test_unknown_unit_norm_is_refused():
    with pytest.raises(LprError, match="unit_norm = 'l3'"):
        unit_scores({"a": torch.ones(2, 2)}, "l3")


def test_uniform_unit_fractions_are_exact_with_ties_to_earlier_layers():
    # 0.5 of 8 units = 4; targets 1.5 and 2.5 tie on remainder: the earlier layer rounds up
    assert uniform_unit_fractions({"a": 3, "b": 5}, 0.5) == {"a": 2 / 3, "b": 2 / 5}


def test_uniform_fraction_that_empties_a_layer_is_refused_naming_it():
    with pytest.raises(LprError, match="layer 'a' would remove all 1 of its units"):
        uniform_unit_fractions({"a": 1, "b": 9}, 0.5)


def test_unit_counts_refuse_to_empty_a_layer():
    assert unit_counts({"a": 4, "b": 2}, {"a": 0.5, "b": 0.5}) == {"a": 2, "b": 1}
    with pytest.raises(LprError, match="layer 'b' would remove all 2 of its units"):
        unit_counts({"a": 4, "b": 2}, {"a": 0.0, "b": 1.0})


def test_layerwise_unit_pruning_removes_the_lowest_units_of_each_layer():
    weights = {"a": _rows(3, 1, 2), "b": _rows(1, 1, 1)}
    masks = layerwise_unit_masks(weights, {"a": 2, "b": 1})
    assert _kept(masks) == {"a": [True, False, False], "b": [False, True, True]}


def test_transplant_gives_the_target_the_source_unit_counts_exactly():
    source = {"a": torch.tensor([False, True, True]), "b": torch.tensor([False, False, True, True])}
    torch.manual_seed(1)
    target = {"a": torch.randn(3, 4), "b": torch.randn(4, 4)}
    masks = transplant_unit_masks(source, target)
    assert {k: int((~m).sum()) for k, m in masks.items()} == {"a": 1, "b": 2}
    assert unit_fractions(masks) == unit_fractions(source)


def test_transplant_of_a_global_unit_mask_onto_its_own_weights_gives_it_back():
    torch.manual_seed(2)
    weights = {"a": torch.randn(5, 3), "b": torch.randn(7, 2), "c": torch.randn(3, 4)}
    for normalize in (False, True):
        own = global_unit_masks(weights, 0.6, "l2", normalize)
        assert _kept(transplant_unit_masks(own, weights, "l2")) == _kept(own)


def test_transplant_with_mismatched_unit_counts_is_refused():
    source = {"a": torch.tensor([True, False])}
    with pytest.raises(LprError, match="source unit mask for layer 'a'"):
        transplant_unit_masks(source, {"a": torch.ones(3, 2)})


def _small_mlp():
    """MLP 4 -> 3 -> 2 -> 2 with hand-set row norms 1, 5, 3 (hidden.0) and 2, 4 (hidden.1)."""
    net = build_model("mlp", (4,), 2, widths=(3, 2))
    with torch.no_grad():
        net.hidden[0].weight.copy_(_rows(1, 5, 3, width=4))
        net.hidden[1].weight.copy_(_rows(2, 4, width=3))
    return net


def test_structured_lpr_in_units_and_in_parameters_on_a_hand_computed_mlp():
    net = _small_mlp()
    layers = unit_layers(net)
    weights = {layer.weight: net.state_dict()[layer.weight] for layer in layers}
    units = global_unit_masks(weights, 0.4)  # 2 of 5 units: hidden.0 unit 0, hidden.1 unit 0
    prunable = {n: tuple(p.shape) for n, p in net.named_parameters() if n.endswith("weight")}
    masks, _ = unit_weight_masks(units, layers, prunable)
    assert unit_lpr(units, list(prunable)) == {
        "hidden.0.weight": 1 / 3,
        "hidden.1.weight": 1 / 2,
        "fc.weight": 0.0,
    }
    # hidden.0: row 0 = 4 of 12; hidden.1: row 0 (3) + column 0 (2) - overlap (1) = 4 of 6;
    # fc: column 0 = 2 of 4
    assert layerwise_ratios(masks) == {
        "hidden.0.weight": 4 / 12,
        "hidden.1.weight": 4 / 6,
        "fc.weight": 2 / 4,
    }


def test_expansion_zeroes_rows_bias_and_the_consumer_columns():
    net = _small_mlp()
    units = {
        "hidden.0.weight": torch.tensor([True, False, True]),
        "hidden.1.weight": torch.tensor([True, True]),
    }
    masks = expand_unit_masks(units, unit_layers(net))
    assert sorted(masks) == [
        "fc.weight",
        "hidden.0.bias",
        "hidden.0.weight",
        "hidden.1.bias",
        "hidden.1.weight",
    ]
    assert masks["hidden.0.bias"].tolist() == [True, False, True]
    assert masks["hidden.0.weight"].tolist() == [[True] * 4, [False] * 4, [True] * 4]
    assert masks["hidden.1.weight"].tolist() == [[True, False, True]] * 2
    assert bool(masks["fc.weight"].all())


def test_expansion_into_a_flattened_classifier_takes_a_group_per_channel():
    net = build_model("cnn1d", (1, 12), 10, widths=(2, 3))  # length 12 -> 5 -> 3, fc reads 3x3
    units = {
        "convs.0.weight": torch.tensor([True, True]),
        "convs.1.weight": torch.tensor([True, False, True]),
    }
    masks = expand_unit_masks(units, unit_layers(net))
    assert masks["fc.weight"][0].tolist() == [True] * 3 + [False] * 3 + [True] * 3
    assert masks["convs.1.bias"].tolist() == [True, False, True]
    assert not bool(masks["convs.1.weight"][1].any())


def test_expansion_in_a_resnet_zeroes_batchnorm_and_leaves_the_residual_stream():
    net = build_model("resnet8", (3, 8, 8), 10, widths=(4, 4, 4))
    layers = unit_layers(net)
    units = {layer.weight: torch.ones(layer.n_units, dtype=torch.bool) for layer in layers}
    units["layer2.0.conv1.weight"] = torch.tensor([True, False, True, True])
    masks = expand_unit_masks(units, layers)
    assert masks["layer2.0.bn1.weight"].tolist() == [True, False, True, True]
    assert masks["layer2.0.bn1.bias"].tolist() == [True, False, True, True]
    assert not bool(masks["layer2.0.conv2.weight"][:, 1].any())
    assert bool(masks["layer2.0.conv2.weight"][:, [0, 2, 3]].all())
    assert "layer2.0.bn2.weight" not in masks and "conv1.weight" not in masks


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_layerwise_unit_masks_refuses_a_count_that_is_not_a_whole_number(bad):
    weights = {"a": torch.randn(4, 3), "b": torch.randn(3, 2)}
    with pytest.raises(LprError, match=r"unit count for layer 'a' = .* non-negative integer"):
        layerwise_unit_masks(weights, {"a": bad, "b": 0})
