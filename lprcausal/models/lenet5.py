"""LeNet-5 with ReLU and max pooling, for 28x28 or 32x32 images with any channel count.

conv 6@5x5 -> pool 2 -> conv 16@5x5 -> pool 2 -> fc 120 -> fc 84 -> fc n_classes.
28x28 inputs get padding 2 on the first conv so both sizes reach the classic
16 x 5 x 5 = 400 features. ``widths`` overrides (conv1, conv2, fc1, fc2).
Layer names: ``conv1``, ``conv2``, ``fc1``, ``fc2``, ``fc``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lprcausal.models.checks import in_shape_of, shape_error, widths_of

DEFAULT_WIDTHS = (6, 16, 120, 84)
FEAT_SIDE = 5  # spatial side after conv-pool-conv-pool from a 32x32 (or padded 28x28) input
PADDING_FOR_SIDE = {28: 2, 32: 0}


class LeNet5(nn.Module):
    """conv-pool-conv-pool-fc-fc-fc with ReLU."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], padding: int, n_classes: int):
        super().__init__()
        c1, c2, f1, f2 = widths
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=padding)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * FEAT_SIDE * FEAT_SIDE, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc = nn.Linear(f2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc(x)


def build(in_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] | None) -> LeNet5:
    """LeNet5 for (C, 28, 28) or (C, 32, 32) inputs."""
    expected = "(channels, 28, 28) or (channels, 32, 32)"
    channels, height, width = in_shape_of("lenet5", in_shape, 3, expected)
    if height != width or height not in PADDING_FOR_SIDE:
        raise shape_error("lenet5", in_shape, expected)
    sizes = widths_of("lenet5", widths, DEFAULT_WIDTHS, "conv1, conv2, fc1, fc2 widths")
    return LeNet5(channels, sizes, PADDING_FOR_SIDE[height], n_classes)
