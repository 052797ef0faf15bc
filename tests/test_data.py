"""Datasets: MNIST-1D generation and cache, the validation split, argument checks."""

from __future__ import annotations

import math
import random

import mnist1d.data
import numpy as np
import pytest
import torch

from lprcausal.data import DATASETS, Dataset, load_dataset
from lprcausal.data.dataset import holdout_split
from lprcausal.data.mnist1d import cache_path, generation_args
from lprcausal.errors import LprError

N = 500  # MNIST-1D samples: 400 train + 100 test with the package's 0.8 split


@pytest.fixture
def make_dataset_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls to the package's generator (still generating the real data)."""
    calls: list[int] = []
    real = mnist1d.data.make_dataset

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mnist1d.data, "make_dataset", counting)
    return calls


def _mnist1d(cache_dir, val_fraction: float = 0.1) -> Dataset:
    return load_dataset("mnist1d", n_samples=N, val_fraction=val_fraction, cache_dir=cache_dir)


def test_datasets_lists_the_supported_names():
    assert DATASETS == ("mnist1d", "mnist", "fashionmnist", "cifar10", "cifar100", "folder")


def test_mnist1d_shapes_and_dtypes(tmp_path):
    data = _mnist1d(tmp_path)
    assert data.name == "mnist1d"
    assert data.in_shape == (1, 40)
    assert data.n_classes == 10
    assert data.x_train.shape == (360, 1, 40)
    assert data.x_val.shape == (40, 1, 40)
    assert data.x_test.shape == (100, 1, 40)
    assert data.n_train == 360
    for x, y in [
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
    ]:
        assert x.dtype == torch.float32
        assert y.dtype == torch.int64
        assert len(x) == len(y)
    assert set(data.y_train.tolist()) == set(range(10))


def test_mnist1d_is_deterministic_across_fresh_generations(tmp_path):
    first = _mnist1d(tmp_path / "a")
    second = _mnist1d(tmp_path / "b")
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field


def test_mnist1d_second_load_reuses_the_cache(tmp_path, make_dataset_calls):
    first = _mnist1d(tmp_path)
    assert len(make_dataset_calls) == 1
    assert cache_path(generation_args(N), tmp_path).is_file()
    second = _mnist1d(tmp_path)
    assert len(make_dataset_calls) == 1
    assert torch.equal(first.x_train, second.x_train)


def test_mnist1d_cache_key_depends_on_n_samples(tmp_path):
    assert cache_path(generation_args(500), tmp_path) != cache_path(generation_args(600), tmp_path)


def test_mnist1d_cache_dir_defaults_to_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("LPRCAUSAL_CACHE", str(tmp_path))
    load_dataset("mnist1d", n_samples=N)
    assert cache_path(generation_args(N), tmp_path).is_file()


def test_mnist1d_unreadable_cache_is_regenerated(tmp_path, make_dataset_calls):
    reference = _mnist1d(tmp_path / "ref")
    path = cache_path(generation_args(N), tmp_path)
    path.write_bytes(b"not an npz file")
    data = _mnist1d(tmp_path)
    assert len(make_dataset_calls) == 2
    assert torch.equal(data.x_train, reference.x_train)
    np.load(path, allow_pickle=False).close()  # rewritten as a valid cache file


def test_mnist1d_cache_edited_after_writing_is_regenerated_not_used(tmp_path, make_dataset_calls):
    reference = _mnist1d(tmp_path)
    path = cache_path(generation_args(N), tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["y"] = np.zeros_like(arrays["y"])  # valid file, every label 0, old checksum
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="does not match its checksum"):
        data = _mnist1d(tmp_path)
    assert len(make_dataset_calls) == 2
    assert torch.equal(data.y_train, reference.y_train) and data.y_train.unique().numel() == 10


def test_mnist1d_leaves_global_random_state_alone(tmp_path):
    np.random.seed(7)
    random.seed(7)
    expected = (np.random.rand(), random.random())
    np.random.seed(7)
    random.seed(7)
    _mnist1d(tmp_path)  # generates: the package reseeds the global generators
    assert (np.random.rand(), random.random()) == expected


def test_mnist1d_validation_is_held_out_of_the_training_set(tmp_path):
    full = _mnist1d(tmp_path, val_fraction=0.0)
    data = _mnist1d(tmp_path, val_fraction=0.1)
    train_idx, val_idx = holdout_split(400, 0.1)
    assert torch.equal(data.x_train, full.x_train[torch.from_numpy(train_idx)])
    assert torch.equal(data.y_val, full.y_train[torch.from_numpy(val_idx)])
    assert torch.equal(data.x_val, full.x_train[torch.from_numpy(val_idx)])
    assert torch.equal(data.x_test, full.x_test)


def test_mnist1d_zero_val_fraction_gives_empty_validation_tensors(tmp_path):
    data = _mnist1d(tmp_path, val_fraction=0.0)
    assert data.x_val.shape == (0, 1, 40)
    assert data.y_val.shape == (0,)
    assert data.n_train == 400


def test_mnist1d_is_standardized_with_train_statistics(tmp_path):
    data = _mnist1d(tmp_path, val_fraction=0.0)
    x = data.x_train.double()
    assert abs(x.mean().item()) < 1e-6
    assert abs(x.std(correction=0).item() - 1) < 1e-6
    assert len(data.mean) == len(data.std) == 1


def test_holdout_split_partitions_the_indices():
    train_idx, val_idx = holdout_split(1000, 0.1)
    assert len(val_idx) == 100
    assert len(train_idx) == 900
    assert sorted(set(train_idx) | set(val_idx)) == list(range(1000))
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(val_idx) > 0)


def test_holdout_split_rounds_the_validation_size():
    assert len(holdout_split(45, 0.1)[1]) == round(4.5)  # 4: round half to even
    assert len(holdout_split(47, 0.1)[1]) == 5


def test_holdout_split_is_pinned():
    # The split defines which samples a run trains on; it must never drift.
    train_idx, val_idx = holdout_split(10, 0.3)
    assert val_idx.tolist() == [0, 1, 3]
    assert train_idx.tolist() == [2, 4, 5, 6, 7, 8, 9]


def test_dataset_to_moves_every_tensor():
    t = torch.zeros(2, 1, 3)
    y = torch.zeros(2, dtype=torch.int64)
    data = Dataset("toy", t, y, t[:0], y[:0], t, y, (1, 3), 2)
    moved = data.to("meta")
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert getattr(moved, field).device.type == "meta", field
    assert moved.name == "toy" and moved.in_shape == (1, 3) and moved.n_classes == 2
    assert data.x_train.device.type == "cpu"  # the original is unchanged


def test_unknown_dataset_is_refused():
    with pytest.raises(LprError, match=r"dataset = 'imagenet'.*mnist1d, mnist, fashionmnist"):
        load_dataset("imagenet")


@pytest.mark.parametrize("val_fraction", [-0.1, 1.0, 1.5, math.nan, True])
def test_val_fraction_outside_zero_one_is_refused(tmp_path, val_fraction):
    with pytest.raises(LprError, match="val_fraction"):
        load_dataset("mnist1d", n_samples=N, val_fraction=val_fraction, cache_dir=tmp_path)


def test_val_fraction_that_leaves_no_training_sample_is_refused(tmp_path):
    with pytest.raises(LprError, match="no training samples"):
        load_dataset("mnist1d", n_samples=10, val_fraction=0.95, cache_dir=tmp_path)


def test_n_samples_is_refused_for_datasets_read_from_disk(tmp_path):
    with pytest.raises(LprError, match=r"n_samples = 100 .*mnist1d"):
        load_dataset("mnist", root=tmp_path, n_samples=100)


@pytest.mark.parametrize("n_samples", [0, 9, 2.5, "500"])
def test_mnist1d_n_samples_must_be_an_integer_of_at_least_ten(tmp_path, n_samples):
    with pytest.raises(LprError, match="n_samples"):
        load_dataset("mnist1d", n_samples=n_samples, cache_dir=tmp_path)
