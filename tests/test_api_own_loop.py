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
