"""``load_dataset``: one entry point for every supported dataset, with input checks."""

from __future__ import annotations

import math
import numbers
import os

from lprcausal.config import CodeRef
from lprcausal.data.dataset import Dataset
from lprcausal.data.folder import load_folder
from lprcausal.data.mnist1d import load_mnist1d
from lprcausal.data.torchvision_sets import load_image_dataset
from lprcausal.errors import LprError, bad_value

DATASETS: tuple[str, ...] = ("mnist1d", "mnist", "fashionmnist", "cifar10", "cifar100", "folder")


def is_known_dataset(name: str) -> bool:
    """A built-in dataset name, or user code by import path (``module:load``)."""
    return name in DATASETS or (isinstance(name, str) and ":" in name)


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    n_samples: int | None = None,
    val_fraction: float = 0.1,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    code: CodeRef | None = None,
) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) as whole tensors on the CPU.

    - ``val_fraction`` in [0, 1): share of the training set held out as validation
      (a fixed split, the same for every run); the test set is untouched.
    - ``mnist1d`` is generated locally (never downloaded) and cached as ``.npz`` under
      ``cache_dir`` (default ``$LPRCAUSAL_CACHE`` or ``~/.cache/lprcausal``);
      ``n_samples`` sets how many samples are generated (train and test together,
      rounded down to a multiple of 10). ``root`` and ``download`` are ignored for it.
    - the other datasets are read from ``root`` in torchvision's on-disk layout;
      ``download=True`` first fetches them there with torchvision.

    - ``folder`` reads ``root/train`` and ``root/test`` in ImageFolder layout, resized
      to ``image_size`` (see :mod:`lprcausal.data.folder`).
    - ``module:load`` / ``file.py:load`` is a user loader (see :mod:`lprcausal.data.user`),
      checked against ``code`` (its recorded identity) when given.

    Bad arguments and missing files raise :class:`LprError`.
    """
    if not is_known_dataset(name):
        raise bad_value(
            "dataset", name,
            f"one of {', '.join(DATASETS)}, or your own loader by import path "
            "('package.module:load' or 'data.py:load')",
        )
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, numbers.Real)
        or not math.isfinite(val_fraction)
        or not 0 <= val_fraction < 1
    ):
        raise bad_value("val_fraction", val_fraction, "a number in [0, 1)")
    if name == "mnist1d":
        if n_samples is not None and (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, numbers.Integral)
            or n_samples < 10
        ):
            raise bad_value("n_samples", n_samples, "an integer >= 10 (one sample per class)")
        n_samples = None if n_samples is None else int(n_samples)
        data = load_mnist1d(
            n_samples=n_samples, val_fraction=float(val_fraction), cache_dir=cache_dir
        )
    else:
        if n_samples is not None:
            raise LprError(
                f"n_samples = {n_samples!r} is only valid for dataset 'mnist1d' (it sets how "
                f"many samples are generated); dataset {name!r} is read whole from disk, so "
                "leave n_samples unset."
            )
        if name == "folder":
            data = load_folder(root, val_fraction=float(val_fraction), image_size=image_size)
        elif ":" in name:
            from lprcausal.data.user import load_user_dataset

            data = load_user_dataset(name, code, root=root, val_fraction=float(val_fraction))
        else:
            data = load_image_dataset(
                name, root=root, val_fraction=float(val_fraction), download=download
            )
    if data.n_train == 0:
        raise LprError(
            f"val_fraction = {val_fraction!r} leaves no training samples in dataset {name!r} "
            f"({len(data.y_val)} samples all go to validation); expected a smaller fraction."
        )
    return data
