"""Masks as files on the command line: export, import, and transplant onto a checkpoint."""

from __future__ import annotations

import pytest
import torch
import xarray as xr
from conftest import run_cli as run

import lprcausal as lpc
from lprcausal.errors import LprError
from lprcausal.models import build_model
from lprcausal.pipeline import FindRun
from lprcausal.results.check import check_checkpoint_transplant, check_transplant
from lprcausal.store import RunStore

TINY = ["--n-samples", "600", "--batch-size", "32", "--iterations", "24", "--no-progress"]
MODEL = ["--widths", "24,12"]




@pytest.fixture
def store(tmp_path, capsys):
    path = str(tmp_path / "runs")
    run(capsys, "find", *TINY, *MODEL, "--sparsity", "0.5", "--sparsity", "0.8", "--name", "a",
        "--store", path)
    return path


def checkpoint(tmp_path, widths=(24, 12)) -> dict:
    torch.manual_seed(3)
    state = build_model("mlp", (1, 40), 10, widths=widths).state_dict()
    torch.save(state, tmp_path / "ck.pt")
    return state


def test_export_then_import_gives_the_same_masks_and_compares(capsys, store, tmp_path):
    out = tmp_path / "m.safetensors"
    run(capsys, "masks", "export", "a", "--sparsity", "0.8", "--out", str(out), "--store", store)
    st = RunStore(store)
    original = FindRun(st, st.resolve("a")).mask(0.8)
    meta = lpc.mask_metadata(out)
    assert meta["source_run"] == st.resolve("a") and meta["method"] == "oneshot"
    assert meta["names"] == list(original)
    run(capsys, "masks", "import", str(out), "--model", "mlp", *MODEL, "--n-samples", "600",
        "--sparsity", "0.8", "--name", "x", "--store", store)
    imported = FindRun(st, st.resolve("x"))
    assert imported.kind == "import" and imported.levels == [0.8]
    assert all(torch.equal(imported.mask(0.8)[n], original[n]) for n in original)
    text = run(capsys, "lpr", "a", "--sparsity", "0.8", "--compare", "x", "--store", store)
    l1_row = [line for line in text.splitlines() if line.startswith("L1 to")][0]
    assert l1_row.split()[-2:] == ["0.0000", "0.0000"]
    text = run(capsys, "eval", "x", "--sparsity", "0.8", "--batch-size", "32", "--iterations",
               "8", "--no-progress", "--store", store)
    assert "eval_test_acc" in text


def test_import_rejects_masks_that_do_not_fit(capsys, store, tmp_path):
    bad = tmp_path / "bad.safetensors"
    lpc.save_masks(bad, {"hidden.0.weight": torch.ones(5, 40, dtype=torch.bool),
                         "nope.weight": torch.ones(2, dtype=torch.bool)})
    err = run(capsys, "masks", "import", str(bad), "--model", "mlp", *MODEL, "--n-samples", "600",
              "--name", "y", "--store", store, code=2)
    assert "names not in the model ['nope.weight']" in err
    assert "hidden.0.weight [5, 40] vs [24, 40]" in err and "Traceback" not in err
    good = tmp_path / "m.safetensors"
    run(capsys, "masks", "export", "a", "--sparsity", "0.5", "--out", str(good), "--store", store)
    err = run(capsys, "masks", "import", str(good), "--model", "mlp", *MODEL, "--n-samples",
              "600", "--sparsity", "0.8", "--name", "y", "--store", store, code=2)
    assert "--sparsity = 0.8 does not match the masks file" in err
    err = run(capsys, "masks", "export", "a", "--out", str(good), "--store", store, code=2)
    assert "--sparsity is missing" in err


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_transplant_onto_a_checkpoint_writes_masks_at_the_source_lpr(capsys, store, tmp_path,
                                                                     fmt):
    state = checkpoint(tmp_path)
    target = tmp_path / f"ck.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(target))
    masks_out = tmp_path / "t.safetensors"
    run(capsys, "transplant", "--source", "a", "--target", str(target), "--model", "mlp",
        *MODEL, "--n-samples", "600", "--sparsity", "0.8", "--masks-out", str(masks_out),
        "--store", store)
    st = RunStore(store)
    source = FindRun(st, st.resolve("a")).mask(0.8)
    got = lpc.load_masks(masks_out)
    assert lpc.layerwise_ratios(got) == lpc.layerwise_ratios(source)
    expected = lpc.transplant(source, {n: state[n] for n in source})
    assert all(torch.equal(got[n], expected[n]) for n in source)
    assert lpc.mask_metadata(masks_out)["source_run"] == st.resolve("a")


def test_transplant_onto_a_checkpoint_with_eval_writes_the_dataset(capsys, store, tmp_path):
    checkpoint(tmp_path)
    out = tmp_path / "res.nc"
    run(capsys, "transplant", "--source", "a", "--target", str(tmp_path / "ck.pt"), "--model",
        "mlp", *MODEL, "--n-samples", "600", "--sparsity", "0.8", "--eval", "--batch-size",
        "32", "--iterations", "8", "--eval-seed", "0", "--eval-seed", "1", "--no-progress",
        "--out", str(out), "--store", store)
    ds = xr.load_dataset(out)
    assert ds["acc"].dims == ("w_src", "lpr_src", "seed", "sparsity")
    assert ds["acc"].shape == (1, 2, 2, 1)
    assert bool(ds["acc"].notnull().all()) and bool(ds["val_acc"].notnull().all())
    assert list(ds["w_src"].values) == ["b"] and list(ds["lpr_src"].values) == ["a", "b"]
    assert ds.attrs["result_kind"] == "checkpoint_transplant"
    assert ds.attrs["a_label"] == RunStore(store).resolve("a")
    check_checkpoint_transplant(ds)  # the contract's own kind, validated as such
    # not a 2x2 transplant: stats refuses it as transplant.nc and says what it is
    with pytest.raises(LprError, match="checkpoint transplant .* only NIE_b"):
        check_transplant(ds)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "transplant.nc").write_bytes(out.read_bytes())
    err = run(capsys, "stats", str(folder), code=2)
    assert "result_kind = 'checkpoint_transplant'" in err and "Traceback" not in err


def test_check_checkpoint_transplant_names_what_is_wrong():
    ds = xr.Dataset({"acc": (("w_src", "lpr_src", "seed", "sparsity"), [[[[0.5]], [[0.6]]]])},
                    coords={"w_src": ["b"], "lpr_src": ["a", "b"], "seed": [0],
                            "sparsity": [0.8]})
    with pytest.raises(LprError, match="result_kind = None: expected 'checkpoint_transplant'"):
        check_checkpoint_transplant(ds)
    ds.attrs["result_kind"] = "checkpoint_transplant"
    check_checkpoint_transplant(ds)
    with pytest.raises(LprError, match=r"coordinate 'w_src' = \['a'\]: expected \['b'\]"):
        check_checkpoint_transplant(ds.assign_coords(w_src=["a"]))


def test_transplant_checkpoint_bad_inputs(capsys, store, tmp_path):
    checkpoint(tmp_path)
    base = ["transplant", "--source", "a", "--model", "mlp", *MODEL, "--n-samples", "600",
            "--store", store]
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickle.pt")
    err = run(capsys, *base, "--target", str(tmp_path / "pickle.pt"), code=2)
    assert "weights_only=True" in err and "never loads a pickle unsafely" in err
    torch.save([1, 2], tmp_path / "list.pt")
    err = run(capsys, *base, "--target", str(tmp_path / "list.pt"), code=2)
    assert "holds a list: expected a state dict" in err
    err = run(capsys, "transplant", "--source", "a", "--target", str(tmp_path / "ck.pt"),
              "--model", "mlp", "--n-samples", "600", "--store", store, code=2)
    assert "does not fit model 'mlp'" in err and "hidden.0.weight [24, 40] vs [300, 40]" in err
    err = run(capsys, *base, "--target", str(tmp_path / "absent.pt"), code=2)
    assert "does not exist" in err
