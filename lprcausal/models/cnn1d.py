"""Small 1D CNN for (channels, length) signals, as in the MNIST-1D paper (Greydanus 2020).

Three ``Conv1d`` layers (kernel 5 then 3, 3; stride 2; padding 1; 25 channels) with
ReLU, then a linear classifier on the flattened features. On MNIST-1D (1, 40) the
lengths go 40 -> 19 -> 10 -> 5, so the classifier sees 25 * 5 = 125 features.
``widths`` sets the channels of each conv (its length sets the number of convs).
Layer names: ``convs.0``, ``convs.1``, ..., ``fc``.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from lprcausal.models.checks import in_shape_of, shape_error, widths_of

DEFAULT_WIDTHS = (25, 25, 25)
STRIDE = 2
PADDING = 1


def kernel_size(index: int) -> int:
    """Kernel of the ``index``-th conv: 5 for the first (the paper's stem), 3 after."""
    return 5 if index == 0 else 3


def out_length(length: int, kernel: int) -> int:
    """Output length of one conv with the module's stride and padding."""
    return (length + 2 * PADDING - kernel) // STRIDE + 1


class CNN1d(nn.Module):
    """[Conv1d -> ReLU] * len(channels) -> flatten -> Linear(n_classes)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], feat_len: int, n_classes: int):
        super().__init__()
        sizes = (in_channels, *channels)
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size(i), stride=STRIDE, padding=PADDING)
            for i, (a, b) in enumerate(pairwise(sizes))
        )
        self.fc = nn.Linear(channels[-1] * feat_len, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.fc(torch.flatten(x, 1))


def build(in_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] | None) -> CNN1d:
    """CNN1d for (C, L) inputs; errors if L is too short for the conv stack."""
    channels_in, length = in_shape_of("cnn1d", in_shape, 2, "(channels, length), e.g. (1, 40)")
    channels = widths_of(
        "cnn1d", widths, DEFAULT_WIDTHS, "the channels of each conv layer", exact_len=False
    )
    feat_len = length
    for i in range(len(channels)):
        feat_len = out_length(feat_len, kernel_size(i))
        if feat_len < 1:
            raise shape_error(
                "cnn1d",
                in_shape,
                f"a signal long enough for {len(channels)} stride-2 convs "
                f"(length {length} shrinks to nothing at conv {i + 1})",
            )
    return CNN1d(channels_in, channels, feat_len, n_classes)
