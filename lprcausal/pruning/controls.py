"""Control masks: same per-layer counts as a real mask, positions chosen at random.

They separate "how many weights each layer keeps" (the LPR) from "which ones". Random
numbers come from one CPU ``torch.Generator`` seeded with ``seed`` and consumed layer
by layer in mapping order, so the same seed gives the same masks on any device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from lprcausal.pruning._checks import check_same_names, check_seed
from lprcausal.pruning.layerwise import layer_counts
from lprcausal.pruning.masks import Masks, check_masks_match


def shuffle_masks(masks: Mapping[str, torch.Tensor], seed: int) -> Masks:
    """Each layer's mask with its entries randomly permuted: the same number of weights
    removed per layer (exactly), at random positions. Returned on each mask's device."""
    # The masks checked against themselves: every entry must be a bool tensor.
    check_masks_match(masks, masks)
    gen = torch.Generator().manual_seed(check_seed(seed))
    out = {}
    for name, m in masks.items():
        flat = m.detach().reshape(-1).cpu()
        perm = torch.randperm(flat.numel(), generator=gen)
        out[name] = flat[perm].reshape(m.shape).to(m.device)
    return out


def random_masks(
    shapes_or_params: Mapping[str, torch.Tensor | Sequence[int]],
    ratios: Mapping[str, float],
    seed: int,
) -> Masks:
    """Masks removing exactly ``layer_counts`` of ``ratios`` per layer at random positions.

    ``shapes_or_params`` maps names to tensors (mask made on the tensor's device) or to
    shapes (mask on CPU). ``ratios`` must have the same names, each in [0, 1].
    """
    check_same_names(ratios, shapes_or_params, "ratios", "the layers given")
    shapes, devices = {}, {}
    for name, x in shapes_or_params.items():
        is_tensor = isinstance(x, torch.Tensor)
        shapes[name] = torch.Size(x.shape if is_tensor else x)
        devices[name] = x.device if is_tensor else torch.device("cpu")
    counts = layer_counts({n: s.numel() for n, s in shapes.items()}, ratios)
    gen = torch.Generator().manual_seed(check_seed(seed))
    out = {}
    for name, shape in shapes.items():
        keep = torch.ones(shape.numel(), dtype=torch.bool)
        keep[torch.randperm(shape.numel(), generator=gen)[: counts[name]]] = False
        out[name] = keep.reshape(shape).to(devices[name])
    return out
