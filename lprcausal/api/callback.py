"""What ``lprcausal.find`` / ``evaluate`` hand to the user's ``train`` function besides the model.

``train(model, hparams, masks, callback)`` calls ``callback.at_iteration(it)`` at the start
of every iteration (``it`` = optimizer steps taken so far; also once after the last one)
and ``callback.at_epoch(ep)`` at the start of every epoch (``ep`` = epochs done), so the
rewind point (``"100it"``, ``"1ep"``) is captured; ``"init"`` needs no call.

To train exactly as the built-in engine does (so that ``lprcausal.find`` and ``lprcausal
find`` give the same masks), the loop must draw its batches as the engine does:
:meth:`Callback.batches` yields them (inputs and labels, augmented when asked), and
:meth:`Callback.batch_indices` yields their positions for a run without augmentation.
The engine's rule: a CPU ``torch.Generator`` seeded with ``callback.data_seed`` draws
``torch.randperm(n_train)`` at the start of every epoch and then, with augmentation
(``augment = true``: a random crop after 4 px zero padding, and a horizontal flip), one
crop offset and flip per training sample (:func:`lprcausal.data.crop_flip_params`);
step ``s`` of the epoch trains on positions ``perm[s * B:(s + 1) * B]`` of the training
split, cropped and flipped (:func:`lprcausal.data.apply_crop_flip`); the last partial
batch is dropped. Because the crops come from the same generator, the order of every
epoch after the first depends on whether augmentation is on: ``batch_indices`` gives the
order without it, ``batches(..., augment=True)`` the engine's batches with it. Other
randomness of your loop (dropout, your own augmentation) is yours to seed; what the
engine does not do, these calls do not reproduce.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import torch
from torch import nn

from lprcausal.api.weights import unwrap
from lprcausal.config import parse_point
from lprcausal.errors import LprError
from lprcausal.train.batches import MemberBatches


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's full state_dict (parameters and buffers)."""
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}


class Callback:
    """Passed to the user's ``train``: marks the rewind point and knows the run's seeds.

    ``seed``: the run's replicate seed. ``data_seed``: the seed of its data order (the
    engine derives the same one for the same replicate and phase).
    """

    def __init__(self, model: nn.Module, seed: int, data_seed: int, rewind: str | None = None):
        self.seed = seed
        self.data_seed = data_seed
        self._model = model
        self._point: tuple[int, str] | None = None
        if rewind is not None and rewind.strip() != "init":
            self._point = parse_point(rewind, "rewind")
        self.rewind = rewind
        self.rewind_state: dict[str, torch.Tensor] | None = None
        self.iterations_seen = 0

    @property
    def wants_rewind(self) -> bool:
        """True while this call of ``train`` must mark a rewind point it has not reached."""
        return self._point is not None and self.rewind_state is None

    def at_iteration(self, it: int) -> None:
        """Call at the start of iteration ``it`` (``it`` steps done), and once after the end."""
        self.iterations_seen = max(self.iterations_seen, int(it))
        if self.wants_rewind and self._point == (int(it), "it"):
            self.rewind_state = state_copy(self._model)

    def at_epoch(self, ep: int) -> None:
        """Call at the start of epoch ``ep`` (``ep`` epochs done), and once after the end."""
        if self.wants_rewind and self._point == (int(ep), "ep"):
            self.rewind_state = state_copy(self._model)

    def batch_indices(self, n_train: int, batch_size: int, steps: int) -> Iterator[torch.Tensor]:
        """Training-set positions of each of ``steps`` batches, in the engine's order for a
        run without augmentation (see the module docstring; with it, use :meth:`batches`).

        >>> from lprcausal.api.callback import Callback
        >>> cb = Callback(None, seed=0, data_seed=7)
        >>> [len(ix) for ix in cb.batch_indices(10, 4, 3)]
        [4, 4, 4]
        """
        if batch_size < 1 or batch_size > n_train:
            raise LprError(
                f"batch_size = {batch_size!r} is not valid: expected 1 <= batch_size <= "
                f"n_train = {n_train}."
            )
        gen = torch.Generator().manual_seed(int(self.data_seed))
        per_epoch = n_train // batch_size
        order = torch.empty(0, dtype=torch.long)
        for step in range(steps):
            s = step % per_epoch
            if s == 0:
                order = torch.randperm(n_train, generator=gen)[: per_epoch * batch_size]
            yield order[s * batch_size : (s + 1) * batch_size]

    def batches(
        self, x_train: torch.Tensor, y_train: torch.Tensor, batch_size: int, steps: int,
        augment: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``steps`` batches ``(x, y)`` of the training split, drawn exactly as the engine
        draws them (see the module docstring): with ``augment``, each image is cropped and
        flipped as the engine's ``augment = true`` does (``x_train`` of shape ``(N, C, H,
        W)``). Batches are on ``x_train``'s device and new tensors (safe to keep).

        >>> import torch
        >>> from lprcausal.api.callback import Callback
        >>> cb = Callback(None, seed=0, data_seed=7)
        >>> x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
        >>> [bool((xb[:, 0] == yb).all()) for xb, yb in cb.batches(x, y, 4, 3)]
        [True, True, True]
        """
        n_train = len(x_train)
        if len(y_train) != n_train:
            raise LprError(
                f"x_train has {n_train} samples but y_train has {len(y_train)}: expected one "
                "label per input."
            )
        if batch_size < 1 or batch_size > n_train:
            raise LprError(
                f"batch_size = {batch_size!r} is not valid: expected 1 <= batch_size <= "
                f"n_train = {n_train}."
            )
        if augment and x_train.dim() != 4:
            raise LprError(
                f"augment = True needs images: x_train has shape {tuple(x_train.shape)}, "
                "expected (N, C, H, W) (the engine's crop and flip are defined for images)."
            )
        # The engine's own sampler, for one member: the same generator draws, in the same order.
        data = SimpleNamespace(x_train=x_train, y_train=y_train, n_train=n_train)
        sampler = MemberBatches([self.data_seed], data, batch_size, augment)
        for step in range(steps):
            s = step % sampler.steps_per_epoch
            if s == 0:
                sampler.new_epoch()
            x, y = sampler.batch(s)
            yield x[0].clone(), y[0].clone()  # the sampler reuses its buffers
