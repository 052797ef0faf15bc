"""CIFAR ResNet-(6n+2) (He et al. 2016, section 4.2) with projection shortcuts.

3x3 conv 16 + BN + ReLU, then three stages of n basic blocks (16, 32, 64 channels;
stride 2 at the first block of stages 2 and 3), global average pool, linear.
Every conv is bias-free and followed by BatchNorm. Where a block changes shape the
shortcut is a 1x1 conv + BN (option B, as in OpenLTH); elsewhere it is the identity.

Layer names: ``conv1``, ``layer{1,2,3}.{j}.conv1`` / ``.conv2`` / ``.shortcut.conv``,
``fc``. Registration order equals forward order: within a block the main path
(conv1, bn1, conv2, bn2) comes first and the shortcut last, and ``forward``
evaluates the shortcut after the main path, so ``prunable_names`` lists a block's
projection conv after its conv2.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from lprcausal.errors import bad_value
from lprcausal.models.checks import in_shape_of, widths_of

DEFAULT_WIDTHS = (16, 32, 64)
NAME = re.compile(r"resnet(\d+)")


def blocks_per_stage(name: str) -> int | None:
    """n for a name 'resnet<6n+2>' with n >= 1, else None."""
    match = NAME.fullmatch(name)
    if match is None:
        return None
    depth = int(match.group(1))
    if depth < 8 or (depth - 2) % 6 != 0:
        return None
    return (depth - 2) // 6


class Projection(nn.Module):
    """1x1 conv + BN shortcut used where a block changes resolution or width."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        changes_shape = stride != 1 or c_in != c_out
        self.shortcut = Projection(c_in, c_out, stride) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem, three stages of ``n`` basic blocks, global average pool, linear."""

    def __init__(self, in_channels: int, n: int, widths: tuple[int, ...], n_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        c_in = widths[0]
        stages = []
        for stage, c_out in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if stage > 0 and j == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean(dim=(2, 3)))


def build(
    name: str, in_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] | None
) -> ResNet:
    """ResNet for (C, H, W) images; ``name`` is 'resnet<6n+2>', e.g. 'resnet20'."""
    n = blocks_per_stage(name)
    if n is None:
        raise bad_value(
            "model", name, "resnet<D> with D = 6n+2 and n >= 1 (resnet8, resnet14, ...)"
        )
    channels, _, _ = in_shape_of(name, in_shape, 3, "(channels, height, width), e.g. (3, 32, 32)")
    sizes = widths_of(name, widths, DEFAULT_WIDTHS, "the 3 stage widths")
    return ResNet(channels, n, sizes, n_classes)
