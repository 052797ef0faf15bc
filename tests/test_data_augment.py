"""CIFAR crop + flip augmentation: parameters and the vectorized application."""

from __future__ import annotations

import pytest
import torch

from lprcausal.data import apply_crop_flip, crop_flip_params


def naive_crop_flip(x, dy, dx, flip, pad):
    """Reference: pad, crop and flip one sample at a time."""
    n, c, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=x.dtype)
        padded[:, pad : pad + h, pad : pad + w] = x[i]
        crop = padded[:, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


@pytest.mark.parametrize("pad", [0, 1, 4])
def test_apply_crop_flip_matches_a_per_sample_loop(pad):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 5, 7, generator=gen)  # non-square, to catch row/column mix-ups
    dy, dx, flip = crop_flip_params(16, gen, pad=pad)
    expected = naive_crop_flip(x, dy, dx, flip, pad)
    assert torch.equal(apply_crop_flip(x, dy, dx, flip, pad=pad), expected)


def test_apply_crop_flip_hand_computed_corner_crop():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]).repeat(2, 1, 1, 1)
    dy, dx = torch.tensor([0, 0]), torch.tensor([0, 2])
    flip = torch.tensor([False, True])
    out = apply_crop_flip(x, dy, dx, flip, pad=1)
    # padded = [[0,0,0,0], [0,1,2,0], [0,3,4,0], [0,0,0,0]]
    # sample 0: top-left 2x2 window; sample 1: top-right window [[0,0],[2,0]], mirrored
    assert out[0, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]
    assert out[1, 0].tolist() == [[0.0, 0.0], [0.0, 2.0]]


def test_centre_crop_without_flip_is_the_identity():
    x = torch.randn(4, 3, 6, 6)
    centre = torch.full((4,), 4)
    assert torch.equal(apply_crop_flip(x, centre, centre, torch.zeros(4, dtype=torch.bool)), x)


def test_crop_flip_params_types_shapes_and_ranges():
    dy, dx, flip = crop_flip_params(2000, torch.Generator().manual_seed(1), pad=4)
    assert dy.dtype == dx.dtype == torch.int64 and flip.dtype == torch.bool
    assert dy.shape == dx.shape == flip.shape == (2000,)
    assert set(dy.tolist()) == set(range(9)) and set(dx.tolist()) == set(range(9))
    assert set(flip.tolist()) == {False, True}


def test_crop_flip_params_are_determined_by_the_generator_state():
    first = crop_flip_params(50, torch.Generator().manual_seed(3))
    second = crop_flip_params(50, torch.Generator().manual_seed(3))
    other = crop_flip_params(50, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_apply_crop_flip_keeps_dtype_and_device():
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64, device="meta")
    dy, dx, flip = crop_flip_params(3, torch.Generator().manual_seed(0), pad=2)
    out = apply_crop_flip(x, dy, dx, flip, pad=2)
    assert out.device.type == "meta" and out.dtype == torch.float64 and out.shape == x.shape


def test_apply_crop_flip_refuses_mismatched_parameters():
    x = torch.zeros(3, 1, 4, 4)
    dy, dx, flip = crop_flip_params(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"dy must have shape \(3,\)"):
        apply_crop_flip(x, dy, dx, flip)
