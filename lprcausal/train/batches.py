"""Per-member mini-batches: each run's own sample order and augmentation, on the device.

Member k draws from its own CPU generator ``torch.Generator().manual_seed(data_seed_k)``.
Each epoch it draws ``torch.randperm(n, generator=g)`` and then, with augmentation,
``crop_flip_params(n, g)`` (one crop/flip per training sample, indexed like the
samples). Step s of the epoch trains on ``perm[s * B : (s + 1) * B]``; the last
partial batch is dropped. A run therefore sees the same batches alone or fused.
"""

from __future__ import annotations

import torch

from lprcausal.data import Dataset, apply_crop_flip, crop_flip_params


class MemberBatches:
    """Batches ``x`` ``[K, B, *in_shape]`` and ``y`` ``[K, B]`` for K members."""

    def __init__(self, data_seeds: list[int], data: Dataset, batch_size: int, augment: bool):
        self.data = data
        self.B = batch_size
        self.augment = augment
        self.n = data.n_train
        self.steps_per_epoch = self.n // batch_size
        self.gens = [torch.Generator().manual_seed(int(s)) for s in data_seeds]
        self.device = data.x_train.device
        self.order: torch.Tensor | None = None
        self.crop: list[torch.Tensor] = []
        # Gathered into buffers allocated once: a batch is consumed before the next is drawn.
        K, x = len(data_seeds), data.x_train
        self._x = x.new_empty(K * batch_size, *x.shape[1:])
        self._y = data.y_train.new_empty(K * batch_size)

    def new_epoch(self) -> None:
        """Draw every member's order (and augmentation) for the next epoch."""
        used = self.steps_per_epoch * self.B
        perms, params = [], []
        for g in self.gens:
            perms.append(torch.randperm(self.n, generator=g)[:used])
            if self.augment:
                params.append(crop_flip_params(self.n, g))
        self.order = torch.stack(perms).to(self.device)
        if self.augment:
            self.crop = [torch.stack(p).to(self.device) for p in zip(*params, strict=True)]

    def batch(self, step_in_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of every member at ``step_in_epoch`` of the current epoch."""
        idx = self.order[:, step_in_epoch * self.B : (step_in_epoch + 1) * self.B]
        K, B = idx.shape
        flat_idx = idx.reshape(-1)
        x = torch.index_select(self.data.x_train, 0, flat_idx, out=self._x)
        y = torch.index_select(self.data.y_train, 0, flat_idx, out=self._y)
        if self.augment:
            dy, dx, flip = (torch.gather(p, 1, idx).reshape(-1) for p in self.crop)
            x = apply_crop_flip(x, dy, dx, flip)
        return x.view(K, B, *x.shape[1:]), y.view(K, B)
