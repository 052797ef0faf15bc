"""CIFAR-style augmentation: random crop after zero padding, then random horizontal flip.

Split in two so runs stay reproducible and device-independent: the random
parameters are drawn on the CPU from a caller-owned generator
(:func:`crop_flip_params`), and applying them (:func:`apply_crop_flip`) is a pure,
vectorized function that runs wherever the images are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip_params(
    n: int, generator: torch.Generator, pad: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw crop offsets and flips for ``n`` images from a CPU ``generator``.

    Returns int64 ``dy``, ``dx`` in ``[0, 2 * pad]`` (top-left corner of the crop in
    the padded image) and bool ``flip``, each of shape ``(n,)``. Drawn in that
    order, so the same generator state always gives the same parameters.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.randint(0, 2, (n,), generator=generator).bool()
    return dy, dx, flip


def apply_crop_flip(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = 4
) -> torch.Tensor:
    """Crop and flip a batch ``x`` of shape ``(N, C, H, W)`` with given parameters.

    Sample ``i`` becomes ``x_pad[i, :, dy[i]:dy[i]+H, dx[i]:dx[i]+W]``, mirrored
    left-right when ``flip[i]``, where ``x_pad`` is ``x`` with ``pad`` zeros on
    every side. Returns a new tensor of ``x``'s shape, dtype and device.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    for name, param in (("dy", dy), ("dx", dx), ("flip", flip)):
        if param.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {tuple(param.shape)}")
    dy, dx, flip = dy.to(x.device), dx.to(x.device), flip.to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    width = w + 2 * pad
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    # Flat index into each padded (H+2p)*(W+2p) plane, shared by all channels.
    index = (rows[:, :, None] * width + cols[:, None, :]).reshape(n, 1, h * w)
    out = padded.reshape(n, c, -1).gather(2, index.expand(n, c, h * w))
    return out.reshape(n, c, h, w)
