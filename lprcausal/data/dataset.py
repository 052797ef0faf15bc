"""The in-memory dataset every training run consumes, and how it is built.

Small datasets live on the device as whole tensors (no DataLoader): a
:class:`Dataset` holds normalized float32 inputs and int64 labels for the train,
validation and test parts. The validation part is a fixed held-out slice of the
original training set (see :func:`holdout_split`), so selecting anything on it
never touches the test set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Seed of the validation split. Fixed on purpose: the split is part of what the
# data *is*, so it must not change with a run's seed (paired arms see the same
# training samples) nor between runs of a study.
SPLIT_SEED = 20_240_601


@dataclass
class Dataset:
    """A whole dataset as tensors.

    Inputs (``x_*``) are float32, normalized, shaped ``(N, *in_shape)``; labels
    (``y_*``) are int64 in ``[0, n_classes)``. ``mean``/``std`` record the
    per-channel constants the inputs were normalized with (``x = (raw - mean) / std``,
    raw pixels in [0, 1] for image datasets), so the raw values can be recovered.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    in_shape: tuple[int, ...]
    n_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if len(x) != len(y):
                raise ValueError(f"x_{part} has {len(x)} samples but y_{part} has {len(y)}")

    @property
    def n_train(self) -> int:
        """Number of training samples (validation samples excluded)."""
        return len(self.y_train)

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on ``device`` (tensors already there are shared)."""
        moved = {
            f"{kind}_{part}": getattr(self, f"{kind}_{part}").to(device)
            for kind in ("x", "y")
            for part in ("train", "val", "test")
        }
        return dataclasses.replace(self, **moved)


def holdout_split(n: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train indices, validation indices).

    The validation part has ``round(val_fraction * n)`` indices chosen by a
    permutation from the fixed :data:`SPLIT_SEED`; both parts are returned sorted,
    so with ``val_fraction == 0`` the training set keeps its original order.
    """
    n_val = round(val_fraction * n)
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def normalize_images(
    pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` -> float32 ``(pixels / 255 - mean) / std`` per channel.

    Same arithmetic, in the same float32 precision, as torchvision's
    ``ToTensor()`` followed by ``Normalize(mean, std)``, but on the whole array at once.
    """
    # np.require copies only read-only or non-contiguous input (torch needs writable memory).
    x = torch.from_numpy(np.require(pixels, np.uint8, ["C", "W"])).to(torch.float32).div_(255)
    shape = (1, len(mean), 1, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(shape)
    s = torch.tensor(std, dtype=torch.float32).view(shape)
    return x.sub_(m).div_(s)


def assemble(
    name: str,
    x_train_full: torch.Tensor,
    y_train_full: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    val_fraction: float,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Dataset:
    """Build a :class:`Dataset`, holding a validation split out of the full training set."""
    train_idx, val_idx = holdout_split(len(y_train_full), val_fraction)
    train_idx_t, val_idx_t = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    return Dataset(
        name=name,
        x_train=x_train_full[train_idx_t].contiguous(),
        y_train=y_train_full[train_idx_t].contiguous(),
        x_val=x_train_full[val_idx_t].contiguous(),
        y_val=y_train_full[val_idx_t].contiguous(),
        x_test=x_test.contiguous(),
        y_test=y_test.contiguous(),
        in_shape=tuple(x_train_full.shape[1:]),
        n_classes=n_classes,
        mean=mean,
        std=std,
    )
