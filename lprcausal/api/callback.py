"""What ``lprcausal.find`` / ``evaluate`` hand to the user's ``train`` function besides the model.

``train(model, hparams, masks, callback)`` calls ``callback.at_iteration(it)`` at the start
of every iteration (``it`` = optimizer steps taken so far; also once after the last one)
and ``callback.at_epoch(ep)`` at the start of every epoch (``ep`` = epochs done), so the
rewind point (``"100it"``, ``"1ep"``) is captured; ``"init"`` needs no call.

To train exactly as the built-in engine does (so that ``lprcausal.find`` and ``lprcausal
find`` give the same masks), the loop must draw its batches as the engine does:
:meth:`Callback.batch_indices` yields them. The engine's rule: a CPU
``torch.Generator`` seeded with ``callback.data_seed`` draws ``torch.randperm(n_train)``
at the start of every epoch; step ``s`` of the epoch trains on positions
``perm[s * B:(s + 1) * B]`` of the training split; the last partial batch is dropped.
(With augmentation the engine also draws crops from that generator: not reproduced here.)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from lprcausal.api.weights import unwrap
from lprcausal.config import parse_point
from lprcausal.errors import LprError


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
        """Training-set positions of each of ``steps`` batches, in the engine's order (see
        the module docstring).

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
