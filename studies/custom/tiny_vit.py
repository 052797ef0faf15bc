"""A tiny vision transformer for 1D signals (MNIST-1D: 40 samples -> 8 patches of 5).

lprcausal calls ``build(in_shape, n_classes, **kwargs)`` (see ``[model.kwargs]`` in
``tiny_vit_mnist1d.toml``). The network: a patch-embedding convolution (kernel =
stride = ``patch``), a learned position embedding, ``depth`` pre-norm transformer blocks
(LayerNorm -> multi-head self-attention -> residual; LayerNorm -> Linear -> GELU ->
Linear -> residual), a final LayerNorm, mean pooling over tokens and a linear head.

Prunable by default: the patch conv, the attention projections (``in_proj_weight``,
``out_proj.weight``), the MLP linears and the head; the position embedding, norms and
biases stay dense.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self, channels: int, length: int, n_classes: int, patch: int, dim: int,
                 depth: int, heads: int, mlp_ratio: int):
        super().__init__()
        if length % patch:
            raise ValueError(f"patch = {patch} does not divide the signal length {length}")
        self.embed = nn.Conv1d(channels, dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, length // patch, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).transpose(1, 2) + self.pos  # (B, tokens, dim)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(1))


def build(in_shape, n_classes, patch=5, dim=32, depth=2, heads=4, mlp_ratio=2):
    """``in_shape`` = (channels, length), e.g. (1, 40) for MNIST-1D."""
    channels, length = in_shape
    return TinyViT(channels, length, n_classes, patch, dim, depth, heads, mlp_ratio)
