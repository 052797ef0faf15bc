"""Fully connected network (LeNet-300-100 by default).

Flattens each sample, applies ``Linear + ReLU`` per hidden width, then a linear
classifier. Layer names: ``hidden.0``, ``hidden.1``, ..., ``fc``.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from lprcausal.models.checks import positive_ints, shape_error, widths_of

DEFAULT_WIDTHS = (300, 100)


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU] * len(hidden) -> Linear(n_classes)."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], n_classes: int):
        super().__init__()
        sizes = (in_features, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.fc = nn.Linear(sizes[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.fc(x)


def build(in_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] | None) -> MLP:
    """MLP for samples of any shape (flattened); ``widths`` are the hidden sizes."""
    expected = "a non-empty tuple of positive integers, e.g. (1, 28, 28)"
    shape = positive_ints("in_shape", in_shape, f"a per-sample shape for model 'mlp': {expected}")
    if len(shape) == 0:
        raise shape_error("mlp", in_shape, expected)
    hidden = widths_of("mlp", widths, DEFAULT_WIDTHS, "the hidden layer sizes", exact_len=False)
    return MLP(math.prod(shape), hidden, n_classes)
