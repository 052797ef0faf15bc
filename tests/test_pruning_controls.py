"""Control masks: shuffled and random masks at exact per-layer counts."""

from __future__ import annotations

import pytest
import torch

from lprcausal.errors import LprError
from lprcausal.pruning import (
    count_removed,
    global_magnitude_masks,
    layerwise_ratios,
    random_masks,
    shuffle_masks,
)


def params():
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "fc.weight": torch.randn(10, 20)}


def test_shuffle_keeps_every_layer_count_exactly():
    masks = global_magnitude_masks(params(), 0.7)
    shuffled = shuffle_masks(masks, seed=0)
    assert count_removed(shuffled) == count_removed(masks)
    assert layerwise_ratios(shuffled) == layerwise_ratios(masks)
    assert all(m.dtype == torch.bool and m.shape == masks[n].shape for n, m in shuffled.items())


def test_shuffle_moves_the_kept_positions():
    masks = global_magnitude_masks(params(), 0.7)
    shuffled = shuffle_masks(masks, seed=0)
    assert all(not torch.equal(shuffled[n], masks[n]) for n in masks)


def test_shuffle_is_reproducible_from_the_seed():
    masks = global_magnitude_masks(params(), 0.5)
    a, b, c = shuffle_masks(masks, 3), shuffle_masks(masks, 3), shuffle_masks(masks, 4)
    assert all(torch.equal(a[n], b[n]) for n in masks)
    assert not all(torch.equal(a[n], c[n]) for n in masks)


def test_random_masks_remove_exact_layer_counts():
    # 0.35 * 108 = 37.8 and 0.5 * 200 = 100: total round(137.8) = 138, spare unit to conv.
    masks = random_masks(params(), {"conv.weight": 0.35, "fc.weight": 0.5}, seed=1)
    assert count_removed(masks) == {"conv.weight": 38, "fc.weight": 100}


def test_random_masks_accept_shapes_and_match_tensor_input():
    ratios = {"conv.weight": 0.35, "fc.weight": 0.5}
    shapes = {"conv.weight": (4, 3, 3, 3), "fc.weight": (10, 20)}
    from_shapes = random_masks(shapes, ratios, seed=1)
    from_tensors = random_masks(params(), ratios, seed=1)
    assert all(torch.equal(from_shapes[n], from_tensors[n]) for n in shapes)
    assert from_shapes["conv.weight"].shape == (4, 3, 3, 3)


def test_random_masks_are_reproducible_from_the_seed():
    ratios = {"conv.weight": 0.35, "fc.weight": 0.5}
    a, b, c = (random_masks(params(), ratios, s) for s in (5, 5, 6))
    assert all(torch.equal(a[n], b[n]) for n in ratios)
    assert not all(torch.equal(a[n], c[n]) for n in ratios)


def test_random_masks_with_mismatched_names_raise_naming_them():
    with pytest.raises(LprError, match=r"ratios does not match.*\['fc.weight'\].*\['fc'\]"):
        random_masks(params(), {"conv.weight": 0.5, "fc": 0.5}, seed=0)


@pytest.mark.parametrize("bad", [-1, 1.5, "7", True])
def test_bad_seed_raises_naming_seed(bad):
    masks = global_magnitude_masks(params(), 0.5)
    with pytest.raises(LprError, match=r"seed = "):
        shuffle_masks(masks, bad)
