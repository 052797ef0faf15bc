"""Datasets as whole tensors: MNIST-1D (generated locally) and torchvision-format image sets.

Public API: :class:`Dataset`, :data:`DATASETS`, :func:`load_dataset`, and the CIFAR
augmentation pair :func:`crop_flip_params` / :func:`apply_crop_flip`.
"""

from lprcausal.data.augment import apply_crop_flip, crop_flip_params
from lprcausal.data.dataset import Dataset
from lprcausal.data.load import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "apply_crop_flip", "crop_flip_params", "load_dataset"]
