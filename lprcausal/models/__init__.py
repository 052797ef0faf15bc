"""Model zoo: MLP, 1D CNN, LeNet-5, CIFAR ResNet-(6n+2), CIFAR VGG; prunable-set helpers."""

from lprcausal.models.prunable import layer_table, prunable_names, prunable_parameters
from lprcausal.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model", "layer_table", "prunable_names", "prunable_parameters"]
