"""MNIST, FashionMNIST, CIFAR-10 and CIFAR-100 read from torchvision's on-disk layout.

The files are read by our own readers, whole-array at once (no per-item PIL):
IDX files with numpy, CIFAR pickles with an unpickler that can only rebuild numpy
arrays (see :mod:`lprcausal.data.safe_pickle`). torchvision is used only to
*download*, when asked; its dataset classes also verify md5 sums, which is why they
are not used for reading (and tiny test files would fail that check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lprcausal.data.dataset import Dataset, assemble, normalize_images
from lprcausal.data.idx import read_idx
from lprcausal.data.safe_pickle import load_numpy_pickle
from lprcausal.errors import LprError


@dataclass(frozen=True)
class ImageSetSpec:
    """Where a torchvision-format dataset lives under the root and how to read it."""

    name: str
    tv_class: str  # torchvision.datasets class that downloads it
    folder: str  # relative to the data root
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    kind: str  # "idx": (images, labels) pair; "cifar": pickled batches
    n_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label_key: str = ""  # key of the labels in a CIFAR batch


_MNIST_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_MNIST_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _mnist_layout(name: str, tv_class: str, mean: float, std: float) -> ImageSetSpec:
    """An MNIST-like set: the four IDX files under ``<tv_class>/raw``, 10 classes."""
    return ImageSetSpec(name, tv_class, f"{tv_class}/raw", _MNIST_TRAIN, _MNIST_TEST, "idx", 10,
                        (mean,), (std,))


SPECS: dict[str, ImageSetSpec] = {
    "mnist": _mnist_layout("mnist", "MNIST", 0.1307, 0.3081),
    "fashionmnist": _mnist_layout("fashionmnist", "FashionMNIST", 0.2860, 0.3530),
    "cifar10": ImageSetSpec(
        name="cifar10",
        tv_class="CIFAR10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        kind="cifar",
        n_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        label_key="labels",
    ),
    "cifar100": ImageSetSpec(
        name="cifar100",
        tv_class="CIFAR100",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        kind="cifar",
        n_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        label_key="fine_labels",
    ),
}


def load_image_dataset(
    name: str, *, root: str | os.PathLike | None, val_fraction: float, download: bool
) -> Dataset:
    """Read dataset ``name`` (a key of :data:`SPECS`) from ``root``.

    With ``download``, torchvision's dataset class first fetches (or verifies) the
    files under ``root``. Missing files are an :class:`LprError` naming
    ``--data-root``, the path and the expected files.
    """
    spec = SPECS[name]
    if root is None:
        raise LprError(
            f"dataset {name!r} is read from --data-root, which was not given: expected a "
            f"folder holding {_expected_list(spec)} (torchvision's on-disk layout). Pass "
            "--data-root DIR, and add --download to fetch the files into it."
        )
    root = Path(root).expanduser()
    if download:
        _download(spec, root)
    paths = _locate(spec, root)
    x_train, y_train = _read_part(spec, [paths[f] for f in spec.train_files])
    x_test, y_test = _read_part(spec, [paths[f] for f in spec.test_files])
    return assemble(
        name,
        normalize_images(x_train, spec.mean, spec.std),
        torch.from_numpy(y_train),
        normalize_images(x_test, spec.mean, spec.std),
        torch.from_numpy(y_test),
        spec.n_classes,
        val_fraction,
        mean=spec.mean,
        std=spec.std,
    )


def _expected_list(spec: ImageSetSpec) -> str:
    gz = " (or .gz)" if spec.kind == "idx" else ""
    files = ", ".join(f"{spec.folder}/{f}" for f in spec.train_files + spec.test_files)
    return files + gz


def _locate(spec: ImageSetSpec, root: Path) -> dict[str, Path]:
    """Map each expected file name to its path (IDX files may be gzip-compressed)."""
    if not root.is_dir():
        raise LprError(
            f"--data-root = {str(root)!r} does not exist or is not a folder; dataset "
            f"{spec.name!r} expects {_expected_list(spec)} under it. Pass --download to "
            "fetch them with torchvision, or point --data-root at the folder that holds them."
        )
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in spec.train_files + spec.test_files:
        plain = root / spec.folder / name
        candidates = [plain, plain.with_name(name + ".gz")] if spec.kind == "idx" else [plain]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(f"{spec.folder}/{name}")
        else:
            found[name] = path
    if missing:
        raise LprError(
            f"--data-root = {str(root)!r} does not hold the {spec.name!r} files: expected "
            f"{_expected_list(spec)} under it, missing {', '.join(missing)}. Pass --download "
            "to fetch them with torchvision, or point --data-root at the folder that holds them."
        )
    return found


def _download(spec: ImageSetSpec, root: Path) -> None:
    import torchvision.datasets  # lazy: only needed to download

    cls = getattr(torchvision.datasets, spec.tv_class)
    try:
        for train in (True, False):
            cls(root=str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:
        raise LprError(
            f"downloading dataset {spec.name!r} into --data-root = {str(root)!r} failed: "
            f"{err}. Check the network connection and that the folder is writable, or "
            "place the files there by hand."
        ) from None


def _read_part(spec: ImageSetSpec, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, *in_shape)`` and int64 labels ``(N,)`` from one split's files."""
    if spec.kind == "idx":
        images_path, labels_path = paths
        images, labels = read_idx(images_path), read_idx(labels_path)
        _check_shape(images, (len(images), 28, 28), images_path)
        _check_shape(labels, (len(images),), labels_path)
        images = images[:, None]  # (N, 28, 28) -> (N, 1, 28, 28)
        source = labels_path
    else:
        parts = [_read_cifar_batch(spec, p) for p in paths]
        images = np.concatenate([im for im, _ in parts])
        labels = np.concatenate([lab for _, lab in parts])
        source = paths[0]
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.n_classes):
        raise LprError(
            f"labels in {str(source)!r} range over [{labels.min()}, {labels.max()}]; dataset "
            f"{spec.name!r} expects labels in [0, {spec.n_classes - 1}]."
        )
    return images, labels


def _read_cifar_batch(spec: ImageSetSpec, path: Path) -> tuple[np.ndarray, np.ndarray]:
    what = f"{spec.name} batch"
    batch = load_numpy_pickle(path, what=what)
    if not isinstance(batch, dict):
        raise LprError(
            f"{what} file {str(path)!r} holds a {type(batch).__name__}, expected a dict."
        )
    # Python 2 pickles read with latin1 give str keys; Python 3 ones may hold bytes.
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    for key in ("data", spec.label_key):
        if key not in batch:
            raise LprError(f"{what} file {str(path)!r} has no {key!r} entry.")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise LprError(f"{what} file {str(path)!r}: 'data' must be a 2-D uint8 array.")
    _check_shape(data, (len(data), 3 * 32 * 32), path)
    try:
        labels = np.asarray(batch[spec.label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise LprError(f"{what} file {str(path)!r}: {spec.label_key!r} are not integers.") from None
    _check_shape(labels, (len(data),), path)
    # Rows hold the red, green and blue 32x32 planes in turn: channels-first already.
    return data.reshape(-1, 3, 32, 32), labels


def _check_shape(array: np.ndarray, expected: tuple[int, ...], path: Path) -> None:
    if array.shape != expected:
        raise LprError(f"{str(path)!r} holds an array of shape {array.shape}, expected {expected}.")
