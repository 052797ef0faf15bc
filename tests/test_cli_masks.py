"""Masks as files on the command line: export, import, and transplant onto a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import run_cli as run

import lprcausal as lpc
from lprcausal.errors import LprError
from lprcausal.models import build_model
from lprcausal.pipeline import FindRun
from lprcausal.results.check import check_transplant
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


def test_transplant_onto_a_checkpoint_with_eval_writes_the_transplant_dataset(
        capsys, store, tmp_path, monkeypatch):
    import lprcausal.api.checkpoint_transplant as ct

    checkpoint(tmp_path)
    trained = []  # each eval run's metrics, in the order the jobs were made
    real = ct.train_many

    def recording(jobs, ds, engine):
        results = list(real(jobs, ds, engine))
        trained.extend((job.mask, r.metrics()) for job, r in zip(jobs, results, strict=True))
        return results

    monkeypatch.setattr(ct, "train_many", recording)
    out = tmp_path / "res.nc"
    text = run(capsys, "transplant", "--source", "a", "--target", str(tmp_path / "ck.pt"),
               "--model", "mlp", *MODEL, "--n-samples", "600", "--sparsity", "0.5",
               "--sparsity", "0.8", "--eval", "--batch-size", "32", "--iterations", "8",
               "--eval-seed", "0", "--eval-seed", "1", "--no-progress", "--out", str(out),
               "--store", store)
    ds = xr.load_dataset(out)
    check_transplant(ds)  # the ordinary transplant schema: one pair, design checkpoint
    assert "result_kind" not in ds.attrs
    assert ds["acc"].dims == ("pair", "w_src", "lpr_src", "seed", "sparsity")
    assert ds["acc"].shape == (1, 2, 2, 2, 2)
    assert list(ds["design"].values) == ["checkpoint"] and list(ds["match"].values) == ["name"]
    assert list(ds["pair"].values) == ["a->ck.pt"]
    assert ds.attrs["source_run"] == RunStore(store).resolve("a")
    assert ds.attrs["eval_mode"] == "finetune"
    # the cells of weights a are absent: NaN, not diverged
    assert np.isnan(ds["acc"].sel(w_src="a").values).all()
    assert not ds["diverged"].sel(w_src="a").values.any()
    # each cell of weights b is exactly its eval run's accuracy: jobs run seed, level, LPR
    assert len(trained) == 2 * 2 * 2
    st = RunStore(store)
    source = FindRun(st, st.resolve("a"))
    k = 0
    for i in range(2):
        for j, s in enumerate((0.5, 0.8)):
            for lp in ("a", "b"):
                mask, m = trained[k]
                k += 1
                cell = ds.sel(w_src="b", lpr_src=lp).isel(pair=0, seed=i, sparsity=j)
                assert float(cell["acc"]) == m["test_acc"]
                assert float(cell["val_acc"]) == m["final_val_acc"]
                assert float(cell["mask_sparsity"]) == lpc.overall_sparsity(mask)
                if lp == "a":
                    assert lpc.layerwise_ratios(mask) == lpc.layerwise_ratios(source.mask(s))
    assert "estimand: NIE_b" in text and "checkpoint pair" in text
    # `lprcausal stats` reads it as any transplant.nc: NIE_b, and why the rest is absent
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "transplant.nc").write_bytes(out.read_bytes())
    text = run(capsys, "stats", str(folder))
    flat = " ".join(text.split())
    assert "estimand: NIE_b" in text
    assert "only NIE_b and the control contrasts are tested" in flat
    assert "b is a checkpoint from outside the store" in flat
    assert "TE" not in [line.split()[0] for line in text.splitlines() if line.strip()]
    stats = xr.load_dataset(folder / "stats.nc")
    med = stats["estimand"].values.astype(str)[stats["family"].values.astype(str) == "mediation"]
    assert list(med) == ["NIE_b"]
    text = run(capsys, "figures", str(folder), "--out", str(tmp_path / "fig"))
    for name in ("transplant_interaction", "transplant_effects"):
        assert (tmp_path / "fig" / f"{name}.png").is_file(), text
    assert "only NIE_b is drawn" in " ".join(text.split())


def test_checkpoint_transplant_with_dose_response_and_controls(capsys, store, tmp_path,
                                                               monkeypatch):
    import lprcausal.api.checkpoint_transplant as ct

    state = checkpoint(tmp_path)
    trained = []
    real = ct.train_many

    def recording(jobs, ds, engine):
        results = list(real(jobs, ds, engine))
        trained.extend((job.mask, job.data_seed, r.metrics())
                       for job, r in zip(jobs, results, strict=True))
        return results

    monkeypatch.setattr(ct, "train_many", recording)
    out = tmp_path / "res.nc"
    text = run(capsys, "transplant", "--source", "a", "--target", str(tmp_path / "ck.pt"),
               "--model", "mlp", *MODEL, "--n-samples", "600", "--sparsity", "0.8", "--eval",
               "--alpha", "0", "--alpha", "0.5", "--alpha", "1", "--control", "shuffle",
               "--control", "erk", "--batch-size", "32", "--iterations", "8",
               "--eval-seed", "0", "--eval-seed", "1", "--no-progress", "--out", str(out),
               "--store", store)
    ds = xr.load_dataset(out)
    check_transplant(ds)
    assert ds["acc_alpha"].dims == ("pair", "alpha", "seed", "sparsity")
    assert list(ds["alpha"].values) == [0.0, 0.5, 1.0]
    assert ds["acc_control"].dims == ("pair", "control", "w_src", "seed", "sparsity")
    assert list(ds["control"].values.astype(str)) == ["shuffle", "erk"]
    assert np.isnan(ds["acc_control"].sel(w_src="a").values).all()
    # per seed: 2 cells, 3 alphas, 2 controls, all on the checkpoint's data order
    assert len(trained) == 2 * (2 + 3 + 2)
    st = RunStore(store)
    lpr_a = lpc.layerwise_ratios(FindRun(st, st.resolve("a")).mask(0.8))
    weights = {n: state[n] for n in lpr_a}
    lpr_b = lpc.layerwise_ratios(lpc.global_magnitude_masks(weights, 0.8))
    for i in range(2):
        block = trained[7 * i : 7 * (i + 1)]
        assert len({seed for _, seed, _ in block}) == 1  # paired: one data order per seed
        (t_mask, _, _), (own, _, _) = block[0], block[1]
        alphas, controls = block[2:5], block[5:7]
        # alpha 0 and 1 are the two LPR cells' masks exactly; 0.5 lies between
        assert all(torch.equal(alphas[0][0][n], t_mask[n]) for n in t_mask)
        assert all(torch.equal(alphas[2][0][n], own[n]) for n in own)
        mid = lpc.layerwise_ratios(alphas[1][0])
        for n in lpr_a:
            assert min(lpr_a[n], lpr_b[n]) - 0.01 <= mid[n] <= max(lpr_a[n], lpr_b[n]) + 0.01
        for k, (mask, _, m) in enumerate(alphas):
            cell = ds.isel(pair=0, alpha=k, seed=i, sparsity=0)
            assert float(cell["acc_alpha"]) == m["test_acc"]
            assert float(cell["mask_sparsity_alpha"]) == lpc.overall_sparsity(mask)
        shuffle, erk = controls[0][0], controls[1][0]
        assert lpc.layerwise_ratios(shuffle) == lpr_b  # own counts, other positions
        assert not all(torch.equal(shuffle[n], own[n]) for n in own)
        assert lpc.overall_sparsity(erk) == pytest.approx(0.8, abs=1e-3)
        for k, (_, _, m) in enumerate(controls):
            cell = ds.sel(w_src="b").isel(pair=0, control=k, seed=i, sparsity=0)
            assert float(cell["acc_control"]) == m["test_acc"]
    assert "alpha" in text and "control" in text
    # stats: the dose-response and the control contrasts of b's weights
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "transplant.nc").write_bytes(out.read_bytes())
    run(capsys, "stats", str(folder))
    families = set(xr.load_dataset(folder / "stats.nc")["family"].values.astype(str))
    assert {"mediation", "control_contrasts"} <= families
    assert any(f.startswith("dose") for f in families), families


def test_checkpoint_dose_and_controls_need_eval_and_valid_values(capsys, store, tmp_path):
    checkpoint(tmp_path)
    base = ["transplant", "--source", "a", "--target", str(tmp_path / "ck.pt"), "--model", "mlp",
            *MODEL, "--n-samples", "600", "--store", store, "--masks-out",
            str(tmp_path / "m.safetensors")]
    err = run(capsys, *base, "--alpha", "0.5", code=2)
    assert "need --eval" in " ".join(err.split())
    err = run(capsys, *base, "--eval", "--alpha", "1.5", code=2)
    assert "--alpha" in err and "1.5" in err and "0 <= alpha <= 1" in err
    # a repeated seed would count one replicate twice in every test (n inflated)
    for flag, value in (("--alpha", "0.5"), ("--control", "erk"), ("--eval-seed", "0"),
                        ("--sparsity", "0.8")):
        err = run(capsys, *base, "--eval", flag, value, flag, value, code=2)
        assert f"{flag} {value} is given twice" in err, flag
    assert not (tmp_path / "m.safetensors").exists()  # refused before anything was written


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


def test_checkpoint_transplant_refuses_store_to_store_options_it_would_ignore(capsys, store,
                                                                          tmp_path):
    # the checkpoint's cells always fine-tune the checkpoint's weights by name: --mode,
    # --match, --layer-map and --allow-self would be accepted and silently not applied
    checkpoint(tmp_path)
    masks = tmp_path / "m.safetensors"
    base = ["transplant", "--source", "a", "--target", str(tmp_path / "ck.pt"), "--model", "mlp",
            *MODEL, "--n-samples", "600", "--sparsity", "0.8", "--store", store,
            "--masks-out", str(masks)]
    for extra, named in ((["--eval", "--mode", "reinit"], "--mode reinit"),
                         (["--mode", "rewind"], "--mode rewind"),
                         (["--match", "position"], "--match position"),
                         (["--allow-self"], "--allow-self")):
        err = run(capsys, *base, *extra, code=2)
        assert named in err and "checkpoint" in err, extra
        assert not masks.exists()  # refused before anything was written
    run(capsys, *base)  # without them: the masks are written
    assert masks.exists()


def test_checkpoint_options_without_model_are_refused_not_ignored(capsys, store, tmp_path):
    out = tmp_path / "m.safetensors"
    base = ["transplant", "--source", "a", "--target", "a", "--allow-self", "--store", store]
    for extra, named in ((["--masks-out", str(out)], "--masks-out"), (["--eval"], "--eval"),
                         (["--widths", "24,12"], "--widths"), (["--n-samples", "600"],
                                                                "--n-samples")):
        err = run(capsys, *base, *extra, code=2)
        assert named in err and "without --model" in err, extra
    assert not out.exists()


def test_checkpoint_eval_options_without_eval_are_refused_not_ignored(capsys, store, tmp_path):
    # without --eval nothing trains: H_eval, seeds and the results file would go unused
    checkpoint(tmp_path)
    masks = tmp_path / "m.safetensors"
    base = ["transplant", "--source", "a", "--target", str(tmp_path / "ck.pt"), "--model", "mlp",
            *MODEL, "--n-samples", "600", "--sparsity", "0.8", "--store", store,
            "--masks-out", str(masks)]
    for extra, named in ((["--lr", "0.01"], "--lr"), (["--eval-seed", "3"], "--eval-seed"),
                         (["--out", str(tmp_path / "r.nc")], "--out"),
                         (["--iterations", "5", "--alpha", "0.5"], "--iterations, --alpha")):
        err = run(capsys, *base, *extra, code=2)
        assert named in err and "need --eval" in " ".join(err.split()), extra
    assert not masks.exists()


def test_check_transplant_names_a_bad_design_and_cells_a_design_lacks():
    from lprcausal.results.build import transplant_dataset

    cells = {"acc": np.full((1, 2, 2, 1, 1), np.nan)}
    cells["acc"][0, 1] = 0.5
    ds = transplant_dataset([("a", "ck.pt")], [0], [0.8], cells, designs=["checkpoint"])
    check_transplant(ds)
    with pytest.raises(LprError, match=r"design = \['weights'\]: expected one of \['factorial', "
                                       r"'cross_architecture', 'checkpoint'\] per pair"):
        check_transplant(ds.assign_coords(design=("pair", ["weights"])))
    ds["acc"][0, 0, 1, 0, 0] = 0.4
    with pytest.raises(LprError, match=r"pair 'a->ck.pt' has design 'checkpoint' but accuracies "
                                       r"in cells of weights \['a'\]: expected NaN"):
        check_transplant(ds)


def test_import_of_a_file_without_masks_is_refused(capsys, tmp_path):
    from safetensors.torch import save_file

    empty = tmp_path / "empty.safetensors"
    save_file({}, str(empty))
    path = str(tmp_path / "runs")
    err = run(capsys, "masks", "import", str(empty), "--model", "mlp", *MODEL, "--n-samples",
              "600", "--name", "e", "--store", path, code=2)
    assert "holds no masks" in err and "Traceback" not in err
    assert RunStore(path).run_ids() == []
