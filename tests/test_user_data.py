"""Datasets by import path and the built-in ``folder`` dataset (ImageFolder layout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_user_models import listing, run
from user_code import synthetic_loader

from lprcausal.config import DataConfig
from lprcausal.data import load_dataset
from lprcausal.data.dataset import holdout_split
from lprcausal.errors import LprError
from lprcausal.study import Study
from lprcausal.train import EngineOptions
from lprcausal.usercode import resolve_data


def write_folder(root, counts: dict[str, dict[str, int]], size=(6, 5)) -> dict:
    """PNG files root/<split>/<class>/<i>.png; class c's pixels are all (10c, 20c, 30c) + i."""
    values = {}
    for split, classes in counts.items():
        for c, name in enumerate(sorted(classes)):
            (root / split / name).mkdir(parents=True)
            for i in range(classes[name]):
                rgb = np.array([10 * c + i, 20 * c + i, 30 * c + i], dtype=np.uint8)
                Image.fromarray(np.broadcast_to(rgb, (*size, 3)).copy()).save(
                    root / split / name / f"{i}.png")
                values[(split, name, i)] = rgb
    return values


def test_folder_dataset_resizes_and_normalizes_with_training_statistics(tmp_path):
    values = write_folder(tmp_path, {"train": {"cat": 5, "dog": 5}, "test": {"cat": 2, "dog": 1}})
    data = load_dataset("folder", root=tmp_path, val_fraction=0.2, image_size=4)
    assert data.in_shape == (3, 4, 4) and data.n_classes == 2
    assert (data.n_train, len(data.y_val), len(data.y_test)) == (8, 2, 3)
    assert data.y_test.tolist() == [0, 0, 1]
    # statistics of the training part only (validation images held out first)
    train_idx, _ = holdout_split(10, 0.2)
    order = [("train", "cat", i) for i in range(5)] + [("train", "dog", i) for i in range(5)]
    raw = np.stack([values[order[k]] for k in train_idx]).astype(np.float64) / 255
    mean, std = raw.mean(0), raw.std(0)  # constant images: pixel statistics = image ones
    np.testing.assert_allclose(data.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(data.std, std, rtol=1e-4)
    x = data.x_train  # constant images: every pixel is its image's normalized colour
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    expected = (values[("test", "dog", 0)] / 255 - mean) / std
    np.testing.assert_allclose(data.x_test[2, :, 0, 0].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_folder_dataset_errors_name_the_folder(tmp_path):
    with pytest.raises(LprError, match="--data-root, which was not given"):
        load_dataset("folder", root=None)
    write_folder(tmp_path, {"train": {"a": 1, "b": 1}, "test": {"a": 1, "c": 1}})
    with pytest.raises(LprError, match=r"has class folders \['a', 'c'\]"):
        load_dataset("folder", root=tmp_path)
    with pytest.raises(LprError, match="only with name = 'folder'"):
        DataConfig(name="mnist1d", image_size=8)


def test_user_loader_returns_tensors_or_map_style_datasets(tmp_path):
    (tmp_path / "data.py").write_text(synthetic_loader(n_train=20, n_test=8) + '''

class Items(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def as_items(root, seed):
    train, test, n = load(root, seed)
    return Items(*train), Items(*test), n
''')
    by_tensors = resolve_data(DataConfig(name="data.py:load", val_fraction=0.25), tmp_path)
    by_items = resolve_data(DataConfig(name="data.py:as_items", val_fraction=0.25), tmp_path)
    assert by_tensors.code.sha256 == by_items.code.sha256 and by_tensors.code.file
    a = load_dataset(by_tensors.name, val_fraction=0.25, code=by_tensors.code)
    b = load_dataset(by_items.name, val_fraction=0.25, code=by_items.code)
    assert a.in_shape == (3, 8, 8) and a.n_classes == 4 and a.n_train == 15
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, part), getattr(b, part))


BAD_LOADERS = {
    "lengths": ("return (torch.zeros(4, 3), torch.zeros(3, dtype=torch.long)), "
                "(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)), 2",
                "4 inputs (shape (4, 3)) but 3 labels"),
    "labels": ("return (torch.zeros(4, 3), torch.tensor([0, 1, 2, 5])), "
               "(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)), 3",
               "labels range over [0, 5]: expected labels in [0, 3)"),
    "nonfinite": ("return (torch.full((4, 3), float('nan')), torch.zeros(4, dtype=torch.long)), "
                  "(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)), 2",
                  "12 input values are NaN or infinite"),
    "raises": ("raise OSError('no such archive')",
               "the loader raised OSError: no such archive"),
    "pair": ("return 1, 2", "returned a tuple of 2: expected a tuple (train, test, n_classes)"),
}


@pytest.mark.parametrize("kind", list(BAD_LOADERS))
def test_bad_loader_output_is_a_clear_error_and_nothing_is_stored(capsys, tmp_path,
                                                                 monkeypatch, kind):
    body, message = BAD_LOADERS[kind]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(f"import torch\n\n\ndef load(root, seed):\n    {body}\n")
    before = listing(tmp_path)
    err = run(capsys, "find", "--dataset", "bad.py:load", "--iterations", "2", "--no-progress",
              "--store", str(tmp_path / "runs"), code=2)
    assert message in err
    assert "Traceback" not in err and err.startswith("Error: ") and err.count("\n") == 1
    assert listing(tmp_path) == before


def test_cli_find_on_a_folder_dataset(capsys, tmp_path):
    write_folder(tmp_path / "imgs", {"train": {"a": 12, "b": 12}, "test": {"a": 3, "b": 3}})
    out = run(capsys, "find", "--dataset", "folder", "--data-root", str(tmp_path / "imgs"),
              "--image-size", "4", "--widths", "8", "--batch-size", "8", "--iterations", "3",
              "--sparsity", "0.5", "--no-progress", "--store", str(tmp_path / "runs"))
    assert "mlp on folder" in out


def _folder_study(root, store) -> Study:
    spec = {"study": {"name": "f", "seeds": 1}, "data": {"name": "folder", "image_size": 4},
            "model": {"name": "mlp", "widths": [8]}, "prune": {"sparsities": [0.5]},
            "find": {"batch_size": 8, "iterations": 2}}
    return Study(spec, store=store, results=store.parent / "results", data_root=root,
                 engine=EngineOptions(progress=False))


def test_folder_runs_on_other_images_are_other_runs(tmp_path):
    """The run id of a 'folder' dataset includes its images: before, two data roots gave
    one run id, and a study on the second reused the runs trained on the first."""
    counts = {"train": {"a": 12, "b": 12}, "test": {"a": 3, "b": 3}}
    write_folder(tmp_path / "one", counts)
    write_folder(tmp_path / "two", counts)
    Image.new("RGB", (6, 5), (200, 0, 0)).save(tmp_path / "two" / "train" / "a" / "0.png")
    store = tmp_path / "runs"
    first = _folder_study(tmp_path / "one", store)
    assert first.run().trained == 2
    second = _folder_study(tmp_path / "two", store)
    assert set(second.graph.run_ids()).isdisjoint(first.graph.run_ids())
    assert second.run().trained == 2
    assert _folder_study(tmp_path / "one", store).run().trained == 0  # same images: cached
    # a stored run's images changed on disk: its data is refused, not silently swapped
    spec = next(iter(first.graph.finds.values()))
    Image.new("RGB", (6, 5), (0, 200, 0)).save(tmp_path / "one" / "test" / "b" / "1.png")
    with pytest.raises(LprError, match=r"dataset 'folder' under --data-root .* is not the "
                                       r"one its runs were made with"):
        _folder_study(tmp_path / "one", store).ctx.dataset(spec.data)
