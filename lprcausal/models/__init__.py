"""Model zoo: MLP, 1D CNN, LeNet-5, CIFAR ResNet-(6n+2), CIFAR VGG; prunable-set helpers."""

from lprcausal.models.prunable import layer_table, prunable_names, prunable_parameters
from lprcausal.models.registry import MODELS, build_model, build_network

__all__ = [
    "MODELS",
    "build_model",
    "build_network",
    "layer_table",
    "prunable_names",
    "prunable_parameters",
]
