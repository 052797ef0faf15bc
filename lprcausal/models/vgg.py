"""CIFAR VGG-11 / VGG-16 with BatchNorm (as in OpenLTH's cifar_vgg).

Five stages of conv3x3 + BN + ReLU blocks, each stage ending in a 2x2 max pool,
then one ``Linear(512, n_classes)``. On 32x32 inputs the five pools leave 1x1, so
the spatial mean before the classifier is the identity there; it lets larger
images work too. Convs are bias-free because BatchNorm's shift makes a bias
redundant. ``widths`` overrides the 5 stage widths (default 64, 128, 256, 512, 512).
Layer names: ``features.{i}.conv`` (i counts pools too), ``fc``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lprcausal.models.checks import in_shape_of, shape_error, widths_of

DEFAULT_WIDTHS = (64, 128, 256, 512, 512)
CONVS_PER_STAGE = {"vgg11": (1, 1, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3)}
MIN_SIDE = 2 ** len(DEFAULT_WIDTHS)  # five halvings must leave at least one pixel


class ConvBN(nn.Module):
    """conv3x3 (padding 1) -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    """features (ConvBN and MaxPool2d) -> spatial mean -> Linear(n_classes)."""

    def __init__(
        self, in_channels: int, convs: tuple[int, ...], widths: tuple[int, ...], n_classes: int
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for n_convs, c_out in zip(convs, widths, strict=True):
            for _ in range(n_convs):
                layers.append(ConvBN(c_in, c_out))
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def build(
    name: str, in_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] | None
) -> VGG:
    """VGG for (C, H, W) images with H, W >= 32; ``name`` is 'vgg11' or 'vgg16'."""
    expected = f"(channels, height, width) with height, width >= {MIN_SIDE}, e.g. (3, 32, 32)"
    channels, height, width = in_shape_of(name, in_shape, 3, expected)
    if min(height, width) < MIN_SIDE:
        raise shape_error(name, in_shape, expected)
    sizes = widths_of(name, widths, DEFAULT_WIDTHS, "the 5 stage widths")
    return VGG(channels, CONVS_PER_STAGE[name], sizes, n_classes)
