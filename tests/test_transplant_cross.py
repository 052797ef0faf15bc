"""Transplants across architectures: the CLI, exact target counts, the reduced design,
and stats / figures on it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli, tiny_find, tiny_train
from user_code import synthetic_loader

from lprcausal.config import DataConfig, FindSpec, ModelConfig, PruneConfig
from lprcausal.pipeline import EvalRun, FindRun, ensure_finds
from lprcausal.pruning import count_removed, layerwise_ratios, matched_ratios, rounded_counts
from lprcausal.results.io import load_dataset, save_dataset
from lprcausal.results.schema import CROSS

PRUNE = PruneConfig(sparsities=(0.8,))
NARROW = ModelConfig(name="mlp", widths=(16, 8))
WIDE = ModelConfig(name="mlp", widths=(40, 20))
TRAIN = ["--iterations", "12", "--batch-size", "32", "--lr", "0.05"]


def finds(ctx, model, seeds=(0, 1), lr=0.05):
    return ensure_finds(ctx, [tiny_find(model=model, prune=PRUNE, seed=s,
                                        train=tiny_train(lr=lr)) for s in seeds])


def transplant(capsys, ctx, tmp_path, sources, targets, *extra, code=0):
    args = ["transplant", "--store", str(ctx.store.root), "--no-progress", "--device", "cpu"]
    for s in sources:
        args += ["--source", s]
    for t in targets:
        args += ["--target", t]
    return run_cli(capsys, *args, *TRAIN, "--out", str(tmp_path / "t.nc"), *extra, code=code)


def test_narrow_to_wide_mlp_cells_have_exact_counts_and_the_reduced_design(ctx, capsys, tmp_path):
    a_ids, b_ids = finds(ctx, NARROW), finds(ctx, WIDE, lr=0.01)
    out = transplant(capsys, ctx, tmp_path, a_ids, b_ids, "--alpha", "0", "--alpha", "1",
                     "--control", "shuffle")
    ds = load_dataset(tmp_path / "t.nc")
    assert list(ds["design"].values) == [CROSS] and list(ds["match"].values) == ["name"]
    # the cells of weights a are absent: NaN, not diverged, no run
    assert np.isnan(ds["acc"].sel(w_src="a").values).all()
    assert not ds["diverged"].sel(w_src="a").values.any()
    assert set(ds["run_id"].sel(w_src="a").values.ravel()) == {""}
    assert np.isnan(ds["acc_control"].sel(w_src="a").values).all()
    assert np.isfinite(ds["acc"].sel(w_src="b").values).all()
    for i, (a_id, b_id) in enumerate(zip(a_ids, b_ids, strict=True)):
        a, b = FindRun(ctx.store, a_id), FindRun(ctx.store, b_id)
        sizes = {x["name"]: int(x["n_params"]) for x in b.layers}
        expected = rounded_counts(sizes, layerwise_ratios(a.mask(0.8)))
        cell = EvalRun(ctx.store, str(ds["run_id"].sel(w_src="b", lpr_src="a").values[0, i, 0]))
        assert count_removed(cell.mask()) == expected
        # the dose-response ends are the two cells exactly
        for alpha, lp in ((0.0, "a"), (1.0, "b")):
            end = EvalRun(ctx.store, str(ds["run_id_alpha"].sel(alpha=alpha).values[0, i, 0]))
            cell = EvalRun(ctx.store, str(ds["run_id"].sel(w_src="b", lpr_src=lp).values[0, i, 0]))
            assert count_removed(end.mask()) == count_removed(cell.mask())
        realized = sum(expected.values()) / sum(sizes.values())
        assert ds["mask_sparsity"].sel(w_src="b", lpr_src="a").values[0, i, 0] == pytest.approx(
            realized, abs=1e-12)
    assert list(ds["pair"].values) == ["widths=16+8,lr=0.05->widths=40+20,lr=0.01"]
    assert "source a, its own mask" in out and "weights b, LPR a" in out
    assert "only NIE_b and the control contrasts" in " ".join(out.split())  # wrapped text
    assert "Y(b,a) - shuffle(b)" in out


def test_position_match_between_an_mlp_and_a_1d_cnn(ctx, capsys, tmp_path):
    [a_id] = finds(ctx, ModelConfig(name="mlp", widths=(16, 8, 8)), seeds=(0,))
    [b_id] = finds(ctx, ModelConfig(name="cnn1d", widths=(4, 4, 4)), seeds=(0,))
    transplant(capsys, ctx, tmp_path, [a_id], [b_id], "--match", "position",
               "--alpha", "0", "--alpha", "1")
    ds = load_dataset(tmp_path / "t.nc")
    a, b = FindRun(ctx.store, a_id), FindRun(ctx.store, b_id)
    ratios = list(layerwise_ratios(a.mask(0.8)).values())
    sizes = {x["name"]: int(x["n_params"]) for x in b.layers}
    expected = rounded_counts(sizes, dict(zip(sizes, ratios, strict=True)))
    cell = EvalRun(ctx.store, str(ds["run_id"].sel(w_src="b", lpr_src="a").values[0, 0, 0]))
    assert count_removed(cell.mask()) == expected
    assert list(ds["match"].values) == ["position"]
    # the dose-response ends are the two cells: b's own LPR is not matched again
    for alpha, lp in ((0.0, "a"), (1.0, "b")):
        end = EvalRun(ctx.store, str(ds["run_id_alpha"].sel(alpha=alpha).values[0, 0, 0]))
        cell = EvalRun(ctx.store, str(ds["run_id"].sel(w_src="b", lpr_src=lp).values[0, 0, 0]))
        assert count_removed(end.mask()) == count_removed(cell.mask())


def test_unmatched_layers_are_a_clear_error_without_traceback(ctx, capsys, tmp_path):
    [a_id] = finds(ctx, NARROW, seeds=(0,))
    [b_id] = finds(ctx, ModelConfig(name="mlp", widths=(16, 8, 8)), seeds=(0,))
    err = transplant(capsys, ctx, tmp_path, [a_id], [b_id], code=2)
    assert "Traceback" not in err
    assert "target layer(s) ['hidden.2.weight'] have no source layer" in err
    err = transplant(capsys, ctx, tmp_path, [a_id], [b_id], "--match", "position", code=2)
    assert "the source has 3" in err and "the target 4" in err and "Traceback" not in err
    err = transplant(capsys, ctx, tmp_path, [a_id], [b_id], "--match", "stage", code=2)
    assert "match = 'stage' needs CIFAR ResNet layer names" in err
    assert not (tmp_path / "t.nc").exists()


def test_layer_map_file_with_names_and_a_fixed_ratio(ctx, capsys, tmp_path):
    [a_id] = finds(ctx, NARROW, seeds=(0,))
    [b_id] = finds(ctx, ModelConfig(name="mlp", widths=(16, 8, 8)), seeds=(0,))
    (tmp_path / "map.toml").write_text(
        'hidden.0.weight = "hidden.0.weight"\nhidden.1.weight = "hidden.1.weight"\n'
        '"hidden.2.weight" = 0.25\nfc.weight = "fc.weight"\n')
    transplant(capsys, ctx, tmp_path, [a_id], [b_id], "--layer-map", str(tmp_path / "map.toml"),
               "--alpha", "1")
    ds = load_dataset(tmp_path / "t.nc")
    cell = EvalRun(ctx.store, str(ds["run_id"].sel(w_src="b", lpr_src="a").values[0, 0, 0]))
    assert count_removed(cell.mask())["hidden.2.weight"] == 16  # 0.25 of 8 x 8
    assert list(ds["match"].values) == ["map"]
    # alpha 1 is b's own LPR: the map applies to a's LPR only
    own = EvalRun(ctx.store, str(ds["run_id"].sel(w_src="b", lpr_src="b").values[0, 0, 0]))
    end = EvalRun(ctx.store, str(ds["run_id_alpha"].sel(alpha=1.0).values[0, 0, 0]))
    assert count_removed(end.mask()) == count_removed(own.mask())
    (tmp_path / "bad.toml").write_text('"hidden.0.weight" = "hidden.0.weight"\n')
    err = transplant(capsys, ctx, tmp_path, [a_id], [b_id], "--layer-map",
                     str(tmp_path / "bad.toml"), code=2)
    assert "no entry in the layer map" in err and "'hidden.1.weight'" in err


def test_stats_and_figures_handle_the_reduced_design(ctx, capsys, tmp_path):
    a_ids, b_ids = finds(ctx, NARROW), finds(ctx, WIDE, lr=0.01)
    transplant(capsys, ctx, tmp_path, a_ids, b_ids, "--alpha", "0", "--alpha", "0.5",
               "--alpha", "1", "--control", "erk")
    results = tmp_path / "results"
    save_dataset(load_dataset(tmp_path / "t.nc"), results / "transplant.nc")
    out = run_cli(capsys, "stats", str(results))
    assert "estimand: NIE_b" in out and "cross-architecture" in out
    assert "TE" not in [line.split()[0] for line in out.splitlines() if line.strip()]
    stats = load_dataset(results / "stats.nc")
    med = stats.isel(record=np.flatnonzero(stats["family"].values.astype(str)
                                           == "mediation_contrasts"))
    assert set(med["estimand"].values.astype(str)) == {"NIE_b"}
    out = run_cli(capsys, "figures", str(results), "--out", str(tmp_path / "fig"))
    for name in ("transplant_interaction", "transplant_effects", "dose_response", "controls"):
        assert (tmp_path / "fig" / f"{name}.png").is_file(), out
    assert "only NIE_b is drawn" in out and "a and b are different architectures" in out


def test_stage_match_resnet8_to_resnet14_on_the_command_line(ctx, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.py").write_text(synthetic_loader(n_train=40, n_test=8))
    data = DataConfig(name="data.py:load", val_fraction=0.0)
    train = tiny_train(batch_size=8, iterations=4)
    [a_id], [b_id] = (ensure_finds(ctx, [FindSpec(
        data=data, model=ModelConfig(name=name, widths=(4, 6, 8)), prune=PRUNE, train=train)])
        for name in ("resnet8", "resnet14"))
    args = ["transplant", "--store", str(ctx.store.root), "--no-progress", "--device", "cpu",
            "--source", a_id, "--target", b_id, "--match", "stage", "--batch-size", "8",
            "--iterations", "2", "--out", str(tmp_path / "t.nc")]
    run_cli(capsys, *args)
    ds = load_dataset(tmp_path / "t.nc")
    a, b = FindRun(ctx.store, a_id), FindRun(ctx.store, b_id)
    sizes = {x["name"]: int(x["n_params"]) for x in b.layers}
    ratios = layerwise_ratios(a.mask(0.8))
    cell = EvalRun(ctx.store, str(ds["run_id"].sel(w_src="b", lpr_src="a").values[0, 0, 0]))
    got = count_removed(cell.mask())
    assert got == rounded_counts(sizes, matched_ratios(ratios, list(sizes), "stage"))
    # one block per stage in ResNet-8: both blocks of a ResNet-14 stage take its ratio
    assert got["layer2.1.conv1.weight"] == rounded_counts(
        {"x": 6 * 6 * 9}, {"x": ratios["layer2.0.conv1.weight"]})["x"]
    assert list(ds["match"].values) == ["stage"]
