"""Source text of user model files and dataset loaders that the tests write to disk."""

from __future__ import annotations

# A plugin model with what the engine must train through autograd: BatchNorm, LayerNorm,
# Dropout (when dropout > 0), GELU, a residual connection and multi-head attention.
PLUGIN_MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, in_shape, n_classes, dim, dropout):
        super().__init__()
        channels, length = in_shape
        self.embed = nn.Conv1d(channels, dim, kernel_size=5, stride=5)
        self.bn = nn.BatchNorm1d(dim)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        x = self.bn(self.embed(x)).transpose(1, 2)
        h = self.norm(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(x)
        return self.head(x.mean(1))


def build(in_shape, n_classes, dim=8, dropout=0.0):
    return Net(in_shape, n_classes, dim, dropout)
'''

# A tiny dataset loader: 8x8 RGB-like synthetic images whose class sets one channel's mean.
SYNTHETIC_LOADER = '''
import torch


def load(root, seed):
    g = torch.Generator().manual_seed(seed)
    def split(n):
        y = torch.arange(n) % {n_classes}
        x = torch.randn(n, 3, {size}, {size}, generator=g)
        x[:, 0] += y.view(-1, 1, 1).float()
        return x, y
    return split({n_train}), split({n_test}), {n_classes}
'''


def synthetic_loader(n_train: int = 64, n_test: int = 32, size: int = 8, n_classes: int = 4) -> str:
    return SYNTHETIC_LOADER.format(n_train=n_train, n_test=n_test, size=size, n_classes=n_classes)
