"""Masks, their summaries, and global magnitude pruning (exact counts, ties, prior)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save

from lprcausal.errors import LprError
from lprcausal.pruning import (
    apply_masks,
    check_masks_match,
    count_removed,
    global_magnitude_masks,
    layerwise_ratios,
    overall_sparsity,
    removal_count,
)


def tie_heavy_params(seed: int = 0) -> dict[str, torch.Tensor]:
    """Small float tensors with values in -3..3: many ties, zeros and sign pairs."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv.weight": (2, 2, 3), "fc1.weight": (5, 4), "fc2.weight": (3,)}
    return {n: torch.randint(-3, 4, s, generator=g).float() for n, s in shapes.items()}


def reference_global_masks(params, k, prior=None):
    """Brute force: sort (prior-pruned first, |w|, layer index, flat index); drop first k."""
    entries = []
    for li, (name, w) in enumerate(params.items()):
        for j, v in enumerate(w.reshape(-1).tolist()):
            kept_before = prior is None or bool(prior[name].reshape(-1)[j])
            entries.append((int(kept_before), abs(v), li, j, name))
    entries.sort()
    keep = {name: [True] * w.numel() for name, w in params.items()}
    for *_, j, name in entries[:k]:
        keep[name][j] = False
    return {n: torch.tensor(keep[n]).reshape(w.shape) for n, w in params.items()}


def assert_masks_equal(a, b):
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == torch.bool
        assert torch.equal(a[name], b[name]), name


def test_count_removed_ratios_and_sparsity_of_a_hand_made_mask():
    masks = {
        "a": torch.tensor([[True, False], [False, True]]),
        "b": torch.tensor([True, True, True]),
    }
    assert count_removed(masks) == {"a": 2, "b": 0}
    assert layerwise_ratios(masks) == {"a": 0.5, "b": 0.0}
    assert overall_sparsity(masks) == 2 / 7


def test_apply_masks_zeroes_removed_entries_and_leaves_inputs_alone():
    w = {"a": torch.tensor([1.5, -2.0, math.inf])}
    m = {"a": torch.tensor([True, False, False])}
    out = apply_masks(w, m)
    assert torch.equal(out["a"], torch.tensor([1.5, 0.0, 0.0]))
    assert torch.equal(w["a"], torch.tensor([1.5, -2.0, math.inf]))


def test_check_masks_match_names_missing_and_unexpected_layers():
    params = {"a": torch.zeros(2), "b": torch.zeros(3)}
    with pytest.raises(LprError, match=r"mask does not match.*missing names \['b'\].*'c'"):
        check_masks_match({"a": torch.ones(2, dtype=torch.bool), "c": torch.ones(3)}, params)


def test_check_masks_match_names_layer_with_wrong_shape():
    params = {"a": torch.zeros(2), "b": torch.zeros(3)}
    masks = {"a": torch.ones(2, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)}
    with pytest.raises(LprError, match=r"layer 'b' has shape \(4,\).*\(3,\)"):
        check_masks_match(masks, params)


def test_check_masks_match_rejects_non_bool_masks():
    params = {"a": torch.zeros(2)}
    with pytest.raises(LprError, match=r"layer 'a'.*bool"):
        check_masks_match({"a": torch.ones(2)}, params)


@pytest.mark.parametrize(
    ("sparsity", "n", "expected"),
    [(0.0, 7, 0), (0.3, 10, 3), (0.5, 5, 3), (0.25, 10, 3), (0.29, 50, 15), (0.999, 10, 10)],
)
def test_removal_count_rounds_half_up_after_float_guard(sparsity, n, expected):
    # 0.5 * 5 = 2.5 and 0.25 * 10 = 2.5 go up (banker's rounding would give 2);
    # 0.29 * 50 is 14.499999999999998 in floats but means 14.5, so it also goes up.
    assert removal_count(sparsity, n) == expected


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 0.5, 0.77, 0.95])
@pytest.mark.parametrize("seed", [0, 1])
def test_global_magnitude_matches_brute_force_with_ties(sparsity, seed):
    params = tie_heavy_params(seed)
    n_total = sum(w.numel() for w in params.values())
    k = removal_count(sparsity, n_total)
    masks = global_magnitude_masks(params, sparsity)
    assert sum(count_removed(masks).values()) == k
    assert_masks_equal(masks, reference_global_masks(params, k))


def test_global_magnitude_breaks_ties_by_layer_then_flat_index():
    params = {"a": torch.tensor([1.0, -1.0]), "b": torch.tensor([-1.0, 1.0])}
    assert_masks_equal(
        global_magnitude_masks(params, 0.25),
        {"a": torch.tensor([False, True]), "b": torch.tensor([True, True])},
    )
    assert_masks_equal(
        global_magnitude_masks(params, 0.75),
        {"a": torch.tensor([False, False]), "b": torch.tensor([False, True])},
    )


def test_global_magnitude_rounds_half_count_up():
    params = {"a": torch.tensor([5.0, 4.0, 3.0]), "b": torch.tensor([2.0, 1.0])}
    masks = global_magnitude_masks(params, 0.5)  # 2.5 weights -> 3 removed
    assert_masks_equal(masks, {"a": torch.tensor([True, True, False]), "b": torch.zeros(2) > 0})


def test_global_magnitude_at_zero_sparsity_keeps_everything():
    masks = global_magnitude_masks(tie_heavy_params(), 0.0)
    assert all(bool(m.all()) for m in masks.values())


def test_global_magnitude_leaves_inputs_unchanged():
    params = tie_heavy_params()
    copies = {n: w.clone() for n, w in params.items()}
    global_magnitude_masks(params, 0.5)
    assert all(torch.equal(params[n], copies[n]) for n in params)


def test_global_magnitude_masks_do_not_share_storage():
    # safetensors refuses tensors that share memory; masks must be saveable as they are.
    masks = global_magnitude_masks(tie_heavy_params(), 0.5)
    assert isinstance(save(masks), bytes)


@pytest.mark.parametrize("sparsity", [0.4, 0.6, 0.9])
def test_global_magnitude_with_prior_is_nested_counted_and_matches_brute_force(sparsity):
    params = tie_heavy_params(3)
    g = torch.Generator().manual_seed(7)
    # A random prior (not a magnitude one), so nesting is not automatic.
    prior = {n: torch.rand(w.shape, generator=g) > 0.3 for n, w in params.items()}
    n_total = sum(w.numel() for w in params.values())
    k = removal_count(sparsity, n_total)
    assert sum(count_removed(prior).values()) <= k
    masks = global_magnitude_masks(params, sparsity, prior=prior)
    assert all(not bool((masks[n] & ~prior[n]).any()) for n in params)
    assert sum(count_removed(masks).values()) == k
    assert_masks_equal(masks, reference_global_masks(params, k, prior))


def test_prior_removing_more_than_target_raises():
    params = {"a": torch.arange(10.0)}
    prior = {"a": torch.arange(10) >= 5}
    with pytest.raises(LprError, match=r"prior already removes 5 of 10 weights.*3"):
        global_magnitude_masks(params, 0.3, prior=prior)


def test_prior_with_mismatched_names_raises_naming_them():
    params = {"a": torch.ones(3), "b": torch.ones(2)}
    prior = {"a": torch.ones(3, dtype=torch.bool), "x": torch.ones(2, dtype=torch.bool)}
    with pytest.raises(LprError, match=r"prior does not match.*\['b'\].*\['x'\]"):
        global_magnitude_masks(params, 0.5, prior=prior)


@pytest.mark.parametrize("bad", [-0.1, 1.0, math.nan, "0.5", True])
def test_sparsity_outside_unit_interval_raises_naming_sparsity(bad):
    with pytest.raises(LprError, match=r"sparsity = .* expected a number in \[0, 1\)"):
        global_magnitude_masks(tie_heavy_params(), bad)


def test_nan_weights_raise_naming_the_layer():
    params = {"a": torch.ones(3), "b": torch.tensor([1.0, math.nan])}
    with pytest.raises(LprError, match=r"layer 'b' contain NaN"):
        global_magnitude_masks(params, 0.5)
