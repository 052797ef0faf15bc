"""LPR across networks: target counts, and the layer-matching rules (pure functions)."""

from __future__ import annotations

import pytest
import torch

from lprcausal.errors import LprError
from lprcausal.models import build_model
from lprcausal.models.prunable import default_prunable
from lprcausal.pruning import (
    count_removed,
    cross_transplant_masks,
    layerwise_ratios,
    matched_ratios,
    parse_layer_map,
    resnet_role,
    rounded_counts,
    transplant_masks,
)

MLP_NAMES = ["hidden.0.weight", "hidden.1.weight", "fc.weight"]


def mlp_params(widths: tuple[int, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights shaped like the zoo's MLP on (1, 40) inputs with 10 classes."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(widths[0], 40), (widths[1], widths[0]), (10, widths[1])]
    return {n: torch.randn(s, generator=gen) for n, s in zip(MLP_NAMES, shapes, strict=True)}


def mask_removing(params: dict[str, torch.Tensor], counts: dict[str, int]) -> dict:
    """A mask removing the first ``counts[name]`` entries of each layer (flat order)."""
    out = {}
    for name, w in params.items():
        keep = torch.ones(w.numel(), dtype=torch.bool)
        keep[: counts[name]] = False
        out[name] = keep.reshape(w.shape)
    return out


# ---------------------------------------------------------------------------- counts
def test_rounded_counts_round_halves_up_not_to_even():
    # Python's round gives 2 and 4 for 2.5 and 4.5 (to even); the rule here gives 3 and 5.
    assert rounded_counts({"x": 10}, {"x": 0.25}) == {"x": 3}
    assert rounded_counts({"x": 10}, {"x": 0.45}) == {"x": 5}
    assert rounded_counts({"x": 10}, {"x": 0.35}) == {"x": 4}
    assert rounded_counts({"x": 5}, {"x": 0.5}) == {"x": 3}
    assert rounded_counts({"x": 10}, {"x": 0.34}) == {"x": 3}


def test_rounded_counts_are_exact_despite_float_error():
    # 0.7 * 10 = 7.000000000000001 and 0.29 * 100 = 28.999999999999996 in float64
    assert rounded_counts({"x": 10, "y": 100}, {"x": 0.7, "y": 0.29}) == {"x": 7, "y": 29}
    assert rounded_counts({"x": 3}, {"x": 1 / 3}) == {"x": 1}


def test_rounded_counts_round_each_layer_on_its_own():
    # two halves: both round up, so the total is 2 more than the sum of the floors
    assert rounded_counts({"x": 5, "y": 5}, {"x": 0.5, "y": 0.5}) == {"x": 3, "y": 3}


@pytest.mark.parametrize(
    "widths,expected",
    [
        # source (16, 8): ratios 512/640 = 0.8, 64/128 = 0.5, 20/80 = 0.25
        ((16, 8), {"hidden.0.weight": 512, "hidden.1.weight": 64, "fc.weight": 20}),
        ((40, 20), {"hidden.0.weight": 1280, "hidden.1.weight": 400, "fc.weight": 50}),
        ((24, 12), {"hidden.0.weight": 768, "hidden.1.weight": 144, "fc.weight": 30}),
        # 0.25 * 50 = 12.5 -> 13 (halves up)
        ((10, 5), {"hidden.0.weight": 320, "hidden.1.weight": 25, "fc.weight": 13}),
        ((64, 7), {"hidden.0.weight": 2048, "hidden.1.weight": 224, "fc.weight": 18}),
    ],
)
def test_cross_transplant_removes_exact_counts_at_several_widths(widths, expected):
    source = mask_removing(mlp_params((16, 8)), {"hidden.0.weight": 512,
                                                  "hidden.1.weight": 64, "fc.weight": 20})
    target = mlp_params(widths, seed=1)
    masks = cross_transplant_masks(source, target)
    assert count_removed(masks) == expected
    for name, w in target.items():  # by magnitude: every removed weight <= every kept one
        removed, kept = w.abs()[~masks[name]], w.abs()[masks[name]]
        assert removed.max() <= kept.min()


def test_cross_transplant_on_the_same_shapes_equals_the_exact_transplant():
    params = mlp_params((16, 8))
    source = mask_removing(params, {"hidden.0.weight": 333, "hidden.1.weight": 77,
                                    "fc.weight": 41})
    target = mlp_params((16, 8), seed=3)
    cross = cross_transplant_masks(source, target)
    exact = transplant_masks(source, target)
    assert all(torch.equal(cross[n], exact[n]) for n in exact)


def test_a_source_layer_removed_entirely_is_removed_entirely_on_the_target():
    source = mask_removing(mlp_params((16, 8)), {"hidden.0.weight": 0,
                                                  "hidden.1.weight": 128, "fc.weight": 0})
    masks = cross_transplant_masks(source, mlp_params((40, 20)))
    assert count_removed(masks) == {"hidden.0.weight": 0, "hidden.1.weight": 800, "fc.weight": 0}


# ---------------------------------------------------------------------------- name / position
def test_match_by_name_keeps_each_ratio_in_target_order():
    out = matched_ratios({"a": 0.1, "b": 0.2}, ["b", "a"])
    assert out == {"b": 0.2, "a": 0.1} and list(out) == ["b", "a"]


def test_match_by_name_lists_the_unmatched_layers_of_both_sides():
    with pytest.raises(LprError) as err:
        matched_ratios({"fc1.weight": 0.5, "fc2.weight": 0.5}, ["fc1.weight", "head.weight"])
    text = str(err.value)
    assert "'head.weight'" in text and "have no source layer" in text
    assert "'fc2.weight'" in text and "match no target layer" in text
    assert "position" in text  # says what to use instead


def test_match_by_position_pairs_the_kth_layers():
    out = matched_ratios({"x.weight": 0.1, "y.weight": 0.2, "z.weight": 0.3},
                         MLP_NAMES, "position")
    assert out == {"hidden.0.weight": 0.1, "hidden.1.weight": 0.2, "fc.weight": 0.3}


def test_match_by_position_needs_equal_counts():
    with pytest.raises(LprError, match=r"the source has 2 .* the target 3"):
        matched_ratios({"x.weight": 0.1, "y.weight": 0.2}, MLP_NAMES, "position")


# ---------------------------------------------------------------------------- ResNet stages
def resnet_names(name: str) -> list[str]:
    return default_prunable(build_model(name, (3, 32, 32), 10))


def source_resnet20_ratios() -> dict[str, float]:
    """Distinct ratios per layer: conv1 0.1 s + 0.01 j, conv2 0.1 s + 0.02 j + 0.05."""
    out = {}
    for name in resnet_names("resnet20"):
        if name == "conv1.weight":
            out[name] = 0.5
        elif name == "fc.weight":
            out[name] = 0.2
        else:
            stage, block, role = name.split(".")[:3]
            s, j = int(stage[-1]), int(block)
            if role == "shortcut":
                out[name] = 0.3 + 0.1 * s
            elif role == "conv1":
                out[name] = 0.1 * s + 0.01 * j
            else:
                out[name] = 0.1 * s + 0.02 * j + 0.05
    return out


# By hand: over blocks j = 0, 1, 2 the conv1 mean is 0.1 s + 0.01, the conv2 mean
# 0.1 s + 0.07; stages 2 and 3 have one shortcut each (0.5, 0.6).
HAND = {
    ("stem", "conv"): 0.5,
    ("head", "fc"): 0.2,
    ("stage1", "conv1"): 0.11, ("stage1", "conv2"): 0.17,
    ("stage2", "conv1"): 0.21, ("stage2", "conv2"): 0.27, ("stage2", "shortcut"): 0.5,
    ("stage3", "conv1"): 0.31, ("stage3", "conv2"): 0.37, ("stage3", "shortcut"): 0.6,
}


def test_resnet_roles_follow_the_zoo_names():
    assert resnet_role("conv1.weight") == ("stem", "conv")
    assert resnet_role("layer2.0.conv1.weight") == ("stage2", "conv1")
    assert resnet_role("layer3.4.conv2.weight") == ("stage3", "conv2")
    assert resnet_role("layer2.0.shortcut.conv.weight") == ("stage2", "shortcut")
    assert resnet_role("fc.weight") == ("head", "fc")
    assert resnet_role("hidden.0.weight") is None


def test_match_by_stage_resnet20_to_resnet32_takes_hand_computed_means():
    target = resnet_names("resnet32")
    out = matched_ratios(source_resnet20_ratios(), target, "stage")
    assert list(out) == target and len(target) == 34
    for name in target:
        assert out[name] == pytest.approx(HAND[resnet_role(name)], abs=1e-12), name
    assert out["layer3.4.conv1.weight"] == pytest.approx(0.31)
    assert out["layer2.0.shortcut.conv.weight"] == pytest.approx(0.5)


def test_match_by_stage_counts_on_resnet32_weights():
    model = build_model("resnet32", (3, 32, 32), 10)
    params = dict(model.named_parameters())
    target = {n: params[n].detach() for n in resnet_names("resnet32")}
    source_names = resnet_names("resnet20")
    model20 = dict(build_model("resnet20", (3, 32, 32), 10).named_parameters())
    sizes20 = {n: model20[n].numel() for n in source_names}
    ratios = source_resnet20_ratios()
    # realizable source ratios: counts rounded, then re-read from the mask
    source = mask_removing({n: model20[n].detach() for n in source_names},
                           rounded_counts(sizes20, ratios))
    masks = cross_transplant_masks(source, target, "stage")
    got = count_removed(masks)
    mean = matched_ratios(layerwise_ratios(source), list(target), "stage")
    # stage-2 conv1 of ResNet-20 removes 922 of 4608 (0.2), 1935 of 9216 (0.21 * 9216 =
    # 1935.36) and 2028 of 9216 (2027.52): mean ratio 0.2100333, so layer2.0.conv1 of
    # ResNet-32 (4608 weights) loses round(967.83) = 968 and layer2.4.conv1 (9216) 1936.
    assert got["layer2.0.conv1.weight"] == 968
    assert got["layer2.4.conv1.weight"] == 1936
    assert got["fc.weight"] == 128  # 0.2 of 640 exactly
    assert got["conv1.weight"] == 216  # 0.5 of 432 exactly
    assert got == rounded_counts({n: w.numel() for n, w in target.items()}, mean)


def test_match_by_stage_refuses_networks_that_are_not_resnets():
    with pytest.raises(LprError, match=r"match = 'stage' needs CIFAR ResNet layer names"):
        matched_ratios(dict.fromkeys(MLP_NAMES, 0.5), MLP_NAMES, "stage")


def test_match_by_stage_lists_groups_the_source_lacks():
    source = {n: r for n, r in source_resnet20_ratios().items() if "shortcut" not in n}
    with pytest.raises(LprError) as err:
        matched_ratios(source, resnet_names("resnet32"), "stage")
    assert "'layer2.0.shortcut.conv.weight'" in str(err.value)
    assert "have no source layer" in str(err.value)


# ---------------------------------------------------------------------------- layer map
def test_layer_map_takes_source_names_and_fixed_ratios():
    source = {"a.weight": 0.3, "b.weight": 0.6}
    layer_map = {"hidden": {"0": {"weight": "b.weight"}}, "hidden.1.weight": "a.weight",
                 "fc.weight": 0.25}
    out = matched_ratios(source, MLP_NAMES, "map", parse_layer_map(layer_map))
    assert out == {"hidden.0.weight": 0.6, "hidden.1.weight": 0.3, "fc.weight": 0.25}


def test_layer_map_lists_target_layers_without_an_entry():
    with pytest.raises(LprError, match=r"'fc.weight'.*no entry in the layer map"):
        matched_ratios({"a.weight": 0.3}, MLP_NAMES, "map",
                       {"hidden.0.weight": "a.weight", "hidden.1.weight": 0.1})


@pytest.mark.parametrize(
    "layer_map,message",
    [
        ({"nope.weight": 0.1}, r"target layer\(s\) \['nope.weight'\] that the target"),
        ({"fc.weight": "nope.weight"}, r"source layer\(s\) \['nope.weight'\] that the source"),
        ({"fc.weight": 1.5}, r"'fc.weight' = 1.5 is not valid: expected a number in \[0, 1\)"),
        ({"fc.weight": True}, r"'fc.weight' = True is not valid"),
        ({}, r"layer map is empty"),
    ],
)
def test_bad_layer_maps_are_clear_errors(layer_map, message):
    with pytest.raises(LprError, match=message):
        matched_ratios({"a.weight": 0.3}, MLP_NAMES, "map", layer_map)


def test_unknown_rule_and_a_map_without_match_map_are_errors():
    with pytest.raises(LprError, match=r"match = 'depth' is not known"):
        matched_ratios({"a": 0.1}, ["a"], "depth")
    with pytest.raises(LprError, match=r"expected a layer map exactly with match = 'map'"):
        matched_ratios({"a": 0.1}, ["a"], "name", {"a": "a"})
