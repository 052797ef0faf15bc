"""Deterministic weight initialization shared by every model family.

Kaiming normal (fan_in, ReLU gain) for conv and linear weights, zero biases, and
BatchNorm scale 1 / shift 0. Draws come from torch's global generator in module
registration order, so ``torch.manual_seed(s)`` followed by the same build gives
bit-identical weights.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Linear)


def init_weights(model: nn.Module) -> nn.Module:
    """Re-initialize ``model``'s parameters in place (see module docstring); return it."""
    for module in model.modules():
        if isinstance(module, WEIGHTED):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
