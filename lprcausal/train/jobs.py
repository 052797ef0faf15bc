"""What the training engine is asked to do and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lprcausal.config import ModelConfig, TrainConfig


@dataclass
class TrainJob:
    """One training run: start from ``init_state``, keep ``mask`` enforced, train with ``train``.

    ``init_state`` is a full ``state_dict`` (parameters and buffers). ``mask`` maps
    prunable parameter names to bool tensors (True = kept); pruned weights are zeroed
    before the first step and stay exactly zero. ``data_seed`` fixes the order of the
    training samples (and their augmentation); runs that share it see the same batches.
    ``capture_steps`` are optimizer steps at which to keep a copy of the state (taken
    before that step's update; 0 is the starting state), e.g. the rewind point.
    """

    model: ModelConfig
    train: TrainConfig
    init_state: dict[str, torch.Tensor]
    data_seed: int
    mask: dict[str, torch.Tensor] | None = None
    capture_steps: tuple[int, ...] = ()
    label: str = ""


@dataclass
class TrainResult:
    """The outcome of one :class:`TrainJob`; tensors are on the CPU.

    ``train_loss`` and ``val_acc`` have one entry per epoch (for iteration-based runs,
    per block of ``steps_per_epoch`` steps, plus the final partial block). ``test_acc``
    is the final-epoch test accuracy, never a selected one. A run whose loss became
    NaN or infinite is ``diverged`` and reports NaN accuracies. How it was computed
    (group size, time, whether its numbers are bitwise those of the run alone) is kept
    apart from what it computed: see :meth:`metrics` and :meth:`execution`.
    """

    state: dict[str, torch.Tensor]
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    test_acc: float = float("nan")
    diverged: bool = False
    steps: int = 0
    seconds: float = 0.0
    group_size: int = 1
    bitwise_as_alone: bool = False

    def metrics(self) -> dict:
        return {
            "train_loss": self.train_loss,
            "val_acc": self.val_acc,
            "test_acc": self.test_acc,
            "final_val_acc": self.val_acc[-1] if self.val_acc else float("nan"),
            "diverged": self.diverged,
            "steps": self.steps,
        }

    def execution(self) -> dict:
        """How this result was computed: nothing here may change what :meth:`metrics` holds
        when ``bitwise_as_alone`` (the CPU); elsewhere the group changes float rounding."""
        return {
            "fused_members": self.group_size,
            "train_seconds": self.seconds,
            "bitwise_as_alone": self.bitwise_as_alone,
        }
