"""lprcausal.find / evaluate with a user's own loop: same masks as the engine, runs in the store."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import run_cli as cli

import lprcausal as lpc
from lprcausal.cli import main
from lprcausal.errors import LprError
from lprcausal.pipeline import FindRun
from lprcausal.store import RunStore

EXAMPLE = Path(__file__).resolve().parents[1] / "studies" / "own_loop.py"


def load_example():
    spec = importlib.util.spec_from_file_location("own_loop_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return load_example()




def engine_find(capsys, store, example, *extra) -> FindRun:
    hp = example.HPARAMS
    cli(capsys, "find", "--dataset", "mnist1d", "--n-samples", str(hp["n_samples"]),
        "--model", "mlp", "--widths", ",".join(map(str, example.WIDTHS)),
        "--lr", str(hp["lr"]), "--momentum", str(hp["momentum"]),
        "--batch-size", str(hp["batch_size"]), "--iterations", str(hp["iterations"]),
        "--sparsity", "0.5", "--sparsity", "0.8", "--seed", "0", "--name", "engine",
        "--no-progress", "--store", store, *extra)
    st = RunStore(store)
    return FindRun(st, st.resolve("engine"))


def assert_same_masks(a: FindRun, b: FindRun) -> None:
    assert a.levels == b.levels
    for s in a.levels:
        ma, mb = a.mask(s), b.mask(s)
        assert list(ma) == list(mb)
        for n in ma:
            assert torch.equal(ma[n], mb[n]), (s, n)


@pytest.mark.parametrize("prune", [
    {"method": "oneshot"},
    {"method": "imp", "rate": 0.5, "rewind": "10it"},
])
def test_own_loop_gives_the_engines_masks(capsys, tmp_path, example, prune):
    store = str(tmp_path / "runs")
    ours = lpc.find(example.build, example.train, [0.5, 0.8], hparams=example.HPARAMS, seed=0,
                    store=store, **prune)
    extra = []
    if prune["method"] == "imp":
        extra = ["--method", "imp", "--rate", "0.5", "--rewind", "10it"]
    theirs = engine_find(capsys, store, example, *extra)
    assert ours.kind == "own-find" and theirs.kind == "find"
    assert_same_masks(ours, theirs)
    assert ours.prunable == theirs.prunable and ours.layers == theirs.layers


def test_example_runs_appear_in_runs_list_and_lpr(capsys, tmp_path, example, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example.main("runs")
    capsys.readouterr()
    out = cli(capsys, "runs", "list", "--store", "runs")
    assert "own-oneshot" in out and "own-imp" in out
    assert out.count("own-eval") == 3
    out = cli(capsys, "lpr", "own-oneshot", "--sparsity", "0.8", "--compare", "own-imp",
              "--store", "runs")
    assert "hidden.0.weight" in out and "L1 to" in out
    try:
        main(["eval", "own-oneshot", "--store", "runs"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "trained by your own loop" in capsys.readouterr().err
    # asking again reuses every run: nothing is trained, ids are the same
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    example.main("runs")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == before


def test_identity_is_code_hparams_and_seed(tmp_path, example):
    store = str(tmp_path / "runs")
    hp = {**example.HPARAMS, "iterations": 8}
    kw = dict(hparams=hp, store=store, code_version="v1")
    a = lpc.find(example.build, example.train, [0.5], seed=0, **kw)
    assert lpc.find(example.build, example.train, [0.5], seed=0, **kw).id == a.id
    assert lpc.find(example.build, example.train, [0.5], seed=1, **kw).id != a.id
    assert lpc.find(example.build, example.train, [0.5], seed=0, hparams={**hp, "lr": 0.1},
                    store=store, code_version="v1").id != a.id
    assert lpc.find(example.build, example.train, [0.5], seed=0, hparams=hp, store=store,
                    code_version="v2").id != a.id


def test_missing_rewind_mark_is_a_clear_error_and_stores_nothing(tmp_path, example):
    def train_without_marks(model, hp, masks, callback):
        return 0.5

    store = tmp_path / "runs"
    with pytest.raises(LprError, match="never marked the rewind point rewind = '1ep'"):
        lpc.find(example.build, train_without_marks, [0.5], method="imp", rewind="1ep",
                 store=store, code_version="x")
    assert RunStore(store).run_ids() == []


def test_bad_inputs_are_clear_errors(tmp_path, example):
    store = tmp_path / "runs"
    with pytest.raises(LprError, match="sparsity = 1.0"):
        lpc.find(example.build, example.train, [1.0], store=store, code_version="x")
    with pytest.raises(LprError, match="hparams"):
        lpc.find(example.build, example.train, [0.5], hparams={"f": object()}, store=store,
                 code_version="x")
    with pytest.raises(LprError, match="expected an nn.Module"):
        lpc.find(lambda: 3, example.train, [0.5], store=store, code_version="x")
    assert RunStore(store).run_ids() == []


AUG_DATA = '''
import torch


def load(root, seed):
    g = torch.Generator().manual_seed(seed)
    def split(n):
        y = torch.arange(n) % 4
        x = torch.randn(n, 3, 8, 8, generator=g)
        x[:, 0] += y.view(-1, 1, 1).float()
        return x, y
    return split(48), split(16), 4
'''

AUG_NET = '''
from torch import nn


def build(in_shape, n_classes):
    c, h, w = in_shape
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * h * w, n_classes))
'''


def test_callback_batches_reproduce_the_engines_augmentation(capsys, tmp_path, monkeypatch):
    import torch.nn.functional as F

    from lprcausal.config import DataConfig
    from lprcausal.data import load_dataset
    from lprcausal.usercode import resolve_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.py").write_text(AUG_DATA)
    (tmp_path / "net.py").write_text(AUG_NET)
    spec = importlib.util.spec_from_file_location("aug_net", tmp_path / "net.py")
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    cfg = resolve_data(DataConfig(name="data.py:load"), tmp_path)
    d = load_dataset(cfg.name, val_fraction=cfg.val_fraction, code=cfg.code)
    # 43 training samples, 5 batches of 8 per epoch: 15 steps cross two epoch boundaries,
    # where the crops drawn from the generator change the next epoch's order
    assert d.n_train == 43
    hp = {"lr": 0.05, "batch_size": 8, "iterations": 15}

    def train_with(augment):
        def train(model, hp, masks, callback):
            opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=0.9)
            for it, (x, y) in enumerate(callback.batches(d.x_train, d.y_train, hp["batch_size"],
                                                         hp["iterations"], augment=augment)):
                callback.at_iteration(it)
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            callback.at_iteration(hp["iterations"])
        return train

    def build():
        return net.build((3, 8, 8), 4)

    store = str(tmp_path / "runs")
    ours = lpc.find(build, train_with(True), [0.5], hparams=hp, store=store, code_version="aug")
    plain = lpc.find(build, train_with(False), [0.5], hparams=hp, store=store,
                     code_version="plain")
    cli(capsys, "find", "--dataset", "data.py:load", "--model", "net.py:build", "--lr", "0.05",
        "--momentum", "0.9", "--batch-size", "8", "--iterations", "15", "--augment",
        "--sparsity", "0.5", "--name", "engine", "--no-progress", "--store", store)
    st = RunStore(store)
    engine = FindRun(st, st.resolve("engine"))
    assert_same_masks(ours, engine)
    # without the augmentation the loop trains on other batches: other masks
    assert any(not torch.equal(plain.mask(0.5)[n], engine.mask(0.5)[n])
               for n in engine.mask(0.5))


def test_callback_batches_without_augmentation_are_the_batch_indices():
    cb = lpc.Callback(None, seed=0, data_seed=11)
    x, y = torch.randn(23, 3, 4, 4), torch.arange(23)
    positions = list(cb.batch_indices(23, 5, 9))
    got = list(cb.batches(x, y, 5, 9))
    assert len(got) == 9
    for idx, (xb, yb) in zip(positions, got, strict=True):
        assert torch.equal(yb, idx) and torch.equal(xb, x[idx])
    with pytest.raises(LprError, match=r"augment = True needs images: x_train has shape \(23, 48\)"):
        next(cb.batches(x.view(23, -1), y, 5, 9, augment=True))
