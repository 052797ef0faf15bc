"""MNIST / FashionMNIST / CIFAR readers on tiny files written in torchvision's layout."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lprcausal.data import load_dataset
from lprcausal.data.dataset import holdout_split
from lprcausal.data.safe_pickle import load_numpy_pickle
from lprcausal.errors import LprError

N_TRAIN, N_TEST = 12, 5
CONSTANTS = {  # the standard per-channel normalization of each dataset
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


# --- writers for each on-disk format ------------------------------------------------


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


class Py2StylePickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, like the original CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes_as_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_py2_str


def write_cifar_batch(
    path: Path, pixels: np.ndarray, labels: np.ndarray, label_key: str, *, py2: bool
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {
        "batch_label": "training batch 1 of 5",
        "data": pixels.reshape(len(pixels), -1),
        label_key: [int(v) for v in labels],
        "filenames": [f"img_{i}.png" for i in range(len(pixels))],
    }
    if py2:  # keys as py2 str, numpy 1.x module path, protocol 2: what torchvision downloads
        batch = {k.encode(): v for k, v in batch.items()}
        with open(path, "wb") as f:
            Py2StylePickler(f, protocol=2).dump(batch)
        raw = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        path.write_bytes(raw)
    else:
        with open(path, "wb") as f:
            pickle.dump(batch, f, protocol=3)


def write_dataset(name: str, root: Path) -> dict[str, np.ndarray]:
    """Write random tiny train/test files for ``name`` under ``root``; return what was written."""
    rng = np.random.default_rng(0)
    shape, n_classes = ((1, 28, 28), 10) if "mnist" in name else ((3, 32, 32), 10)
    if name == "cifar100":
        n_classes = 100
    data = {
        "x_train": rng.integers(0, 256, (N_TRAIN, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, n_classes, N_TRAIN),
        "x_test": rng.integers(0, 256, (N_TEST, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, n_classes, N_TEST),
    }
    if name in ("mnist", "fashionmnist"):
        folder = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        gz = name == "fashionmnist"  # cover both the plain and the compressed files
        for split, prefix in (("train", "train"), ("test", "t10k")):
            write_idx(folder / f"{prefix}-images-idx3-ubyte", data[f"x_{split}"][:, 0], gz=gz)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte", data[f"y_{split}"], gz=gz)
    elif name == "cifar10":
        folder = root / "cifar-10-batches-py"
        bounds = [0, 3, 6, 8, 10, 12]  # the 12 training images over 5 batches
        for i in range(5):
            part = slice(bounds[i], bounds[i + 1])
            write_cifar_batch(
                folder / f"data_batch_{i + 1}",
                data["x_train"][part],
                data["y_train"][part],
                "labels",
                py2=True,
            )
        write_cifar_batch(folder / "test_batch", data["x_test"], data["y_test"], "labels", py2=True)
    else:
        folder = root / "cifar-100-python"
        write_cifar_batch(
            folder / "train", data["x_train"], data["y_train"], "fine_labels", py2=False
        )
        write_cifar_batch(folder / "test", data["x_test"], data["y_test"], "fine_labels", py2=False)
    return data


def unnormalize(x: torch.Tensor, name: str) -> np.ndarray:
    mean, std = (torch.tensor(c).view(1, -1, 1, 1) for c in CONSTANTS[name])
    return ((x * std + mean) * 255).round().to(torch.uint8).numpy()


# --- readers -------------------------------------------------------------------------

IMAGE_SETS = ["mnist", "fashionmnist", "cifar10", "cifar100"]


@pytest.mark.parametrize("name", IMAGE_SETS)
def test_reader_round_trips_pixels_and_labels(tmp_path, name):
    written = write_dataset(name, tmp_path)
    data = load_dataset(name, root=tmp_path, val_fraction=0.25)
    train_idx, val_idx = holdout_split(N_TRAIN, 0.25)
    np.testing.assert_array_equal(unnormalize(data.x_train, name), written["x_train"][train_idx])
    np.testing.assert_array_equal(unnormalize(data.x_val, name), written["x_train"][val_idx])
    np.testing.assert_array_equal(unnormalize(data.x_test, name), written["x_test"])
    np.testing.assert_array_equal(data.y_train.numpy(), written["y_train"][train_idx])
    np.testing.assert_array_equal(data.y_val.numpy(), written["y_train"][val_idx])
    np.testing.assert_array_equal(data.y_test.numpy(), written["y_test"])


@pytest.mark.parametrize("name", IMAGE_SETS)
def test_reader_shapes_dtypes_and_split_sizes(tmp_path, name):
    write_dataset(name, tmp_path)
    data = load_dataset(name, root=tmp_path, val_fraction=0.25)
    in_shape = (1, 28, 28) if "mnist" in name else (3, 32, 32)
    assert data.name == name
    assert data.in_shape == in_shape
    assert data.n_classes == (100 if name == "cifar100" else 10)
    assert data.x_train.shape == (9, *in_shape) and data.y_train.shape == (9,)
    assert data.x_val.shape == (3, *in_shape) and data.y_val.shape == (3,)
    assert data.x_test.shape == (N_TEST, *in_shape) and data.y_test.shape == (N_TEST,)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert (data.mean, data.std) == CONSTANTS[name]


def test_reader_normalizes_like_torchvision_to_tensor_then_normalize(tmp_path):
    written = write_dataset("cifar10", tmp_path)
    data = load_dataset("cifar10", root=tmp_path, val_fraction=0.0)
    pixel = written["x_train"][0, 2, 5, 7]  # blue channel
    expected = (torch.tensor(pixel, dtype=torch.float32) / 255 - 0.4465) / 0.2616
    assert data.x_train[0, 2, 5, 7].item() == expected.item()


def test_plain_idx_file_is_preferred_over_gz(tmp_path):
    written = write_dataset("mnist", tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-labels-idx1-ubyte", (written["y_test"] + 1) % 10, gz=True)
    data = load_dataset("mnist", root=tmp_path)
    np.testing.assert_array_equal(data.y_test.numpy(), written["y_test"])


# --- missing or bad files ------------------------------------------------------------


def test_missing_root_names_data_root_and_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(LprError) as err:
        load_dataset("cifar10", root=missing)
    message = str(err.value)
    assert "--data-root" in message and str(missing) in message
    assert "cifar-10-batches-py/data_batch_1" in message and "--download" in message


def test_missing_file_names_data_root_the_path_and_the_missing_file(tmp_path):
    write_dataset("mnist", tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(LprError) as err:
        load_dataset("mnist", root=tmp_path)
    message = str(err.value)
    assert "--data-root" in message and str(tmp_path) in message and "--download" in message
    assert "missing MNIST/raw/t10k-labels-idx1-ubyte." in message


def test_no_root_names_data_root(tmp_path):
    with pytest.raises(LprError, match="--data-root"):
        load_dataset("fashionmnist")


def test_idx_with_wrong_size_is_refused_naming_the_file(tmp_path):
    write_dataset("mnist", tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(LprError, match=r"train-images-idx3-ubyte.*malformed.*data bytes"):
        load_dataset("mnist", root=tmp_path)


def test_idx_with_bad_magic_is_refused(tmp_path):
    write_dataset("mnist", tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x01" + path.read_bytes()[1:])
    with pytest.raises(LprError, match="magic"):
        load_dataset("mnist", root=tmp_path)


def test_labels_out_of_range_are_refused(tmp_path):
    written = write_dataset("mnist", tmp_path)
    labels = written["y_test"].copy()
    labels[0] = 10
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(LprError, match=r"labels .* \[0, 9\]"):
        load_dataset("mnist", root=tmp_path)


def test_image_and_label_counts_must_match(tmp_path):
    written = write_dataset("mnist", tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", written["y_test"][:-1])
    with pytest.raises(LprError, match=r"shape \(4,\), expected \(5,\)"):
        load_dataset("mnist", root=tmp_path)


# --- untrusted pickles ---------------------------------------------------------------


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_calling_os_system_is_refused_and_not_executed(tmp_path):
    write_dataset("cifar10", tmp_path)
    marker = tmp_path / "executed"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _RunsShell(marker), "labels": []}, protocol=2))
    with pytest.raises(LprError, match=r"data_batch_1.*refusing to load global (posix|nt)\.system"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_only_unpickler_reads_arrays_at_every_protocol(tmp_path, protocol):
    array = np.arange(600, dtype=np.uint8).reshape(2, 300)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": array, "labels": [1, 2]}, protocol=protocol))
    loaded = load_numpy_pickle(path, what="test")
    np.testing.assert_array_equal(loaded["data"], array)
    assert loaded["labels"] == [1, 2]


def test_truncated_pickle_is_an_lpr_error(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.zeros(3)}, protocol=3)[:-5])
    with pytest.raises(LprError, match="not a valid numpy-only pickle"):
        load_numpy_pickle(path, what="test")


def test_cifar_batch_without_its_label_key_is_refused(tmp_path):
    write_dataset("cifar100", tmp_path)
    path = tmp_path / "cifar-100-python" / "test"
    pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}, path.open("wb"))
    with pytest.raises(LprError, match="no 'fine_labels' entry"):
        load_dataset("cifar100", root=tmp_path)


# --- download ------------------------------------------------------------------------


def test_download_delegates_to_torchvision_then_reads(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeMNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            if not (Path(root) / "MNIST").exists():
                write_dataset("mnist", Path(root))

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    data = load_dataset("mnist", root=tmp_path, download=True)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert data.n_train + len(data.y_val) == N_TRAIN


def test_failed_download_is_an_lpr_error(tmp_path, monkeypatch):
    import torchvision.datasets

    class OfflineCIFAR10:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("Error downloading cifar-10-python.tar.gz")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    with pytest.raises(LprError, match=r"downloading dataset 'cifar10' into --data-root"):
        load_dataset("cifar10", root=tmp_path, download=True)
