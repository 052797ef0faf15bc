"""The ``folder`` dataset: images in torchvision's ``ImageFolder`` layout.

Under ``--data-root``: ``train/<class>/<image>`` and ``test/<class>/<image>``, one
folder per class (classes are the sorted folder names of ``train/``; ``test/`` may hold
a subset of them). Every image is read with Pillow, converted to RGB and resized to
``image_size`` x ``image_size`` (bilinear). Inputs are normalized per channel with the
mean and standard deviation of the *training* part (after the validation hold-out),
so nothing about validation or test samples enters the training inputs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from lprcausal.data.dataset import Dataset, assemble, holdout_split
from lprcausal.errors import LprError

DEFAULT_IMAGE_SIZE = 32
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def load_folder(
    root: str | os.PathLike | None, *, val_fraction: float, image_size: int | None = None
) -> Dataset:
    """Read ``root/train`` and ``root/test`` (see the module docstring) as a Dataset."""
    size = DEFAULT_IMAGE_SIZE if image_size is None else int(image_size)
    if root is None:
        raise LprError(
            "dataset 'folder' is read from --data-root, which was not given: expected a "
            "folder with train/<class>/*.png and test/<class>/*.png (ImageFolder layout)."
        )
    root = Path(root).expanduser()
    classes = _classes(root / "train")
    x_train, y_train = _read_split(root / "train", classes, size)
    x_test, y_test = _read_split(root / "test", classes, size, allow_subset=True)
    train_idx, _ = holdout_split(len(y_train), val_fraction)
    fit = x_train[torch.from_numpy(train_idx)] if len(train_idx) else x_train
    mean = fit.mean(dim=(0, 2, 3))
    # over every training pixel (population form); a constant channel stays finite
    std = fit.std(dim=(0, 2, 3), correction=0).clamp_min(1e-6)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)

    return assemble(
        "folder", norm(x_train), y_train, norm(x_test), y_test, len(classes), val_fraction,
        mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
    )


def folder_digest(root: str | os.PathLike) -> str:
    """SHA-256 over the image files the loader reads under ``root`` (train/ and test/):
    each file's path relative to ``root`` and its bytes. It identifies the data of runs
    on dataset 'folder', whose name alone says nothing about the images."""
    root = Path(root).expanduser()
    h = hashlib.sha256()
    for split in ("train", "test"):
        folder = root / split
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        for name in classes:
            for path in sorted(p for p in (folder / name).glob("*")
                               if p.suffix.lower() in IMAGE_SUFFIXES):
                h.update(f"{split}/{name}/{path.name}".encode() + b"\0")
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _classes(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise LprError(
            f"--data-root: the folder {str(folder)!r} does not exist: dataset 'folder' "
            "expects train/<class>/<image> and test/<class>/<image> under --data-root."
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise LprError(
            f"--data-root: {str(folder)!r} holds no class folders: expected one folder per "
            "class, each holding that class's images."
        )
    return classes


def _read_split(
    folder: Path, classes: list[str], size: int, allow_subset: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    present = _classes(folder)
    unknown = sorted(set(present) - set(classes))
    if unknown or (not allow_subset and present != classes):
        raise LprError(
            f"--data-root: {str(folder)!r} has class folders {present}: expected those of "
            f"train/ ({classes})."
        )
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        ) if (folder / name).is_dir() else []
        for path in files:
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (OSError, UnidentifiedImageError) as exc:
                raise LprError(
                    f"--data-root: the image {str(path)!r} cannot be read ({exc}): expected "
                    "an image file."
                ) from None
            labels.append(label)
    if not images:
        raise LprError(
            f"--data-root: {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}): "
            "expected at least one per split."
        )
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(), torch.tensor(labels, dtype=torch.int64)
