"""Write a synthetic CIFAR-10 in torchvision's on-disk layout, for checks without downloads.

    python benchmarks/synthetic_cifar10.py DATA_ROOT [--n-train 5000] [--n-test 1000]

creates ``DATA_ROOT/cifar-10-batches-py/`` with ``data_batch_1`` ... ``data_batch_5`` and
``test_batch`` (pickled dicts of uint8 ``data`` rows and ``labels``, as torchvision
unpacks them), so ``--data-root DATA_ROOT`` with dataset ``cifar10`` reads it like the
real one. The images are learnable but not trivially: each class has its own faint
colour pattern (4 x 4 blocks around mid-grey), and every image is that pattern plus
strong per-pixel noise, so a ResNet learns well above chance within a few epochs while
runs still differ in what they get wrong (enough to see that training, pruning,
statistics and bf16 autocast work; nothing about CIFAR-10 accuracy).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

N_CLASSES = 10
SIGNAL = 6.0  # largest deviation of a class pattern from grey, in pixel levels
NOISE = 50.0  # standard deviation of the per-pixel noise, in pixel levels


def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images ``(n, 3, 32, 32)`` and their labels."""
    pattern_rng = np.random.default_rng(12345)  # the class patterns are the same every call
    coarse = 128 + pattern_rng.uniform(-SIGNAL, SIGNAL, size=(N_CLASSES, 3, 4, 4))
    patterns = coarse.repeat(8, axis=2).repeat(8, axis=3)  # 4x4 blocks of 8x8 pixels
    labels = rng.integers(0, N_CLASSES, size=n)
    noise = rng.normal(0, NOISE, size=(n, 3, 32, 32))
    images = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    batch = {"data": images.reshape(len(images), -1), "labels": [int(v) for v in labels]}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(batch, f, protocol=3)
    tmp.replace(path)


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, labels = synthetic_images(n_train, rng)
    bounds = np.linspace(0, n_train, 6).astype(int)
    for i in range(5):
        part = slice(bounds[i], bounds[i + 1])
        write_batch(folder / f"data_batch_{i + 1}", images[part], labels[part])
    write_batch(folder / "test_batch", *synthetic_images(n_test, rng))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the --data-root to write into")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    args = parser.parse_args()
    folder = write_cifar10(args.root, args.n_train, args.n_test)
    print(f"wrote {args.n_train} training and {args.n_test} test images to {folder}")


if __name__ == "__main__":
    main()
