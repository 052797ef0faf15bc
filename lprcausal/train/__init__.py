"""Training: one engine that trains a list of runs, fusing compatible ones."""

from lprcausal.train.engine import EngineOptions, evaluate_states, pick_device, train_many
from lprcausal.train.jobs import TrainJob, TrainResult

__all__ = [
    "EngineOptions",
    "TrainJob",
    "TrainResult",
    "evaluate_states",
    "pick_device",
    "train_many",
]
