"""Runs of a user's own loop give the result Datasets a study writes, and `lprcausal stats`
reads them: lpc.decoupled_runs (decoupled.nc) and lpc.transplant_runs (transplant.nc)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli as cli
from test_api_own_loop import load_example

import lprcausal as lpc
from lprcausal.errors import LprError
from lprcausal.pipeline import EvalRun, FindRun
from lprcausal.results.check import check_decoupled, check_transplant
from lprcausal.results.io import load_dataset
from lprcausal.stats.report import analyze_results
from lprcausal.store import RUN_FILE, RunStore


@pytest.fixture(scope="module")
def ex():
    return load_example()


@pytest.fixture(scope="module")
def hp(ex):
    return {**ex.HPARAMS, "iterations": 12}


def test_decoupled_runs_collect_the_grid_that_stats_reads(capsys, tmp_path, ex, hp):
    store, res = tmp_path / "runs", tmp_path / "res"
    slow = {**hp, "lr": 0.1}
    grid = dict(h_find={"lr=0.05": hp, "lr=0.1": slow}, h_eval={"lr=0.05": hp},
                seeds=(0, 1), store=store, results=res)
    ds = lpc.decoupled_runs(ex.build, ex.train, sparsities=[0.8], **grid)
    assert ds["acc"].dims == ("h_find", "h_eval", "seed", "sparsity")
    assert list(ds["h_find"].values) == ["lr=0.05", "lr=0.1"]
    assert list(ds["h_eval"].values) == ["coupled", "lr=0.05"]
    assert list(ds["seed"].values) == [0, 1] and list(ds["sparsity"].values) == [0.8]
    assert list(ds["lr"].values) == [0.05, 0.1]
    # the design: H_eval lr=0.05 is lr=0.05's own H (coupled), the decoupled arm of lr=0.1
    assert ds["is_coupled"].values.tolist() == [[True, True], [True, False]]
    assert list(ds["reference_h_find"].values) == ["", "lr=0.05"]
    assert ds.attrs["reference_h_eval"] == "lr=0.05"
    check_decoupled(ds)
    st = RunStore(store)
    for f, h_find in (("lr=0.05", hp), ("lr=0.1", slow)):
        for seed in (0, 1):
            find = FindRun(st, str(ds["find_run"].sel(h_find=f, seed=seed).item()))
            assert find.kind == "own-find" and find.spec.seed == seed
            lpr = ds["lpr"].sel(h_find=f, seed=seed, sparsity=0.8).values
            assert lpc.layerwise_ratios(find.mask(0.8)) == dict(
                zip(ds["layer"].values, lpr, strict=True))
            for e, h_eval in (("coupled", h_find), ("lr=0.05", hp)):
                cell = dict(h_find=f, h_eval=e, seed=seed, sparsity=0.8)
                ev = EvalRun(st, str(ds["eval_run"].sel(**cell).item()))
                assert ev.spec.find == find.id and ev.spec.seed == seed
                assert ev.spec.hparams == lpc.api.own_loop.hparams_json(h_eval)[1]
                assert float(ds["acc"].sel(**cell)) == ev.metrics["test_acc"]
    # the coupled cell of lr=0.05 and its fixed H_eval lr=0.05 are the same stored run
    same = ds["eval_run"].sel(h_find="lr=0.05")
    assert (same.sel(h_eval="coupled") == same.sel(h_eval="lr=0.05")).all()
    on_disk = load_dataset(res / "decoupled.nc")
    assert np.array_equal(on_disk["acc"].values, ds["acc"].values)
    # asking again reuses every run
    before = sorted(p.name for p in store.iterdir())
    again = lpc.decoupled_runs(ex.build, ex.train, sparsities=[0.8], **grid)
    assert sorted(p.name for p in store.iterdir()) == before
    assert np.array_equal(again["acc"].values, ds["acc"].values)
    out = cli(capsys, "stats", str(res), "--no-write")
    assert "decoupled_vs_coupled" in out and "H_eval lr=0.05" in out


def test_own_eval_runs_without_val_acc_or_diverged_still_collect(tmp_path, ex, hp, monkeypatch):
    # own-loop eval runs stored before final_val_acc / diverged were recorded
    grid = dict(h_find={"lr=0.05": hp}, h_eval={}, seeds=(0,), store=tmp_path / "runs",
                results=tmp_path / "res")
    ds = lpc.decoupled_runs(ex.build, ex.train, sparsities=[0.8], **grid)
    read_json = RunStore.read_json

    def old_metrics(self, run_id, name=RUN_FILE):
        out = read_json(self, run_id, name)
        if name == "metrics.json" and "final_val_acc" in out:  # an eval run's metrics
            del out["final_val_acc"], out["diverged"]
        return out

    monkeypatch.setattr(RunStore, "read_json", old_metrics)
    again = lpc.decoupled_runs(ex.build, ex.train, sparsities=[0.8], **grid)
    assert np.array_equal(again["acc"].values, ds["acc"].values)
    assert np.isnan(again["val_acc"].values).all() and not again["diverged"].values.any()


def test_transplant_runs_give_the_factorial_stats_reads(capsys, tmp_path, ex, hp):
    store, res = tmp_path / "runs", tmp_path / "res"
    slow = {**hp, "lr": 0.1}
    a = [lpc.find(ex.build, ex.train, [0.8], hparams=hp, seed=s, store=store) for s in (0, 1)]
    b = [lpc.find(ex.build, ex.train, [0.8], hparams=slow, seed=s, store=store) for s in (0, 1)]
    ds = lpc.transplant_runs(ex.build, ex.train, [r.id for r in reversed(a)],
                             [r.id for r in b], hparams=hp, alphas=(1.0,),
                             controls=("shuffle",), store=store, results=res)
    check_transplant(ds)
    assert list(ds["pair"].values) == ["lr=0.05->lr=0.1"]
    assert list(ds["seed"].values) == [0, 1] and list(ds["sparsity"].values) == [0.8]
    assert ds.attrs["h_eval"] == "lr=0.05" and ds.attrs["eval_mode"] == "rewind"
    st = RunStore(store)
    runs = {"a": a, "b": b}
    for seed in (0, 1):
        for w in "ab":
            for lp in "ab":
                cell = dict(pair=0, w_src=w, lpr_src=lp, seed=seed, sparsity=0.8)
                ev = EvalRun(st, str(ds["run_id"].isel(pair=0).sel(
                    w_src=w, lpr_src=lp, seed=seed).item()))
                weights, lpr = runs[w][seed], runs[lp][seed]
                # paired: every cell of a seed trains with that seed; mask = w's weights at l's LPR
                assert ev.spec.find == weights.id and ev.spec.seed == seed
                assert ev.spec.mask.kind == "transplant" and ev.spec.mask.lpr_from == lpr.id
                expected = lpc.transplant(lpr.mask(0.8), weights.prunable_weights(0.8))
                assert all(torch.equal(ev.mask()[n], expected[n]) for n in expected)
                assert float(ds["acc"].isel(pair=0).sel(**{k: v for k, v in cell.items()
                                                           if k != "pair"})) == \
                    ev.metrics["test_acc"]
            control = EvalRun(st, str(ds["run_id_control"].isel(pair=0).sel(
                control="shuffle", w_src=w, seed=seed).item()))
            assert lpc.layerwise_ratios(control.mask()) == lpc.layerwise_ratios(
                runs[w][seed].mask(0.8))
    # alpha = 1: a's weights at b's LPR, the same mask and seed as cell (a, b)
    assert (ds["acc_alpha"].sel(alpha=1.0) == ds["acc"].sel(w_src="a", lpr_src="b")).all()
    records = analyze_results(res).stats
    te = (records["family"] == "mediation_contrasts") & (records["estimand"] == "TE")
    y = ds["acc"].isel(pair=0, sparsity=0)
    assert int(te.sum()) == 1 and records["estimate"].where(te, drop=True).item() == \
        pytest.approx(float((y.sel(w_src="b", lpr_src="b")
                             - y.sel(w_src="a", lpr_src="a")).mean()), abs=1e-12)
    assert "mediation" in cli(capsys, "stats", str(res), "--no-write")
    # the engine's transplant cannot train them, and says which Python call can
    err = cli(capsys, "transplant", "--source", a[0].id, "--target", b[0].id, "--store",
              str(store), "--no-progress", code=2)
    assert "lprcausal.transplant_runs(" in err and "Traceback" not in err


def test_own_results_bad_inputs_are_clear_errors_and_store_nothing(tmp_path, ex, hp):
    store = tmp_path / "runs"

    def decoupled(**kw):
        return lpc.decoupled_runs(ex.build, ex.train, sparsities=[0.8], store=store,
                                  code_version="x", **kw)

    with pytest.raises(LprError, match="h_find label 'coupled' is not valid"):
        decoupled(h_find={"coupled": hp})
    with pytest.raises(LprError, match="reference_h_find = 'lr=1' is not an h_find label"):
        decoupled(h_find={"base": hp}, reference_h_find="lr=1")
    with pytest.raises(LprError, match=r"seeds = \(0, 0\) is not valid"):
        decoupled(h_find={"base": hp}, seeds=(0, 0))
    with pytest.raises(LprError, match="has no H_eval arm"):
        decoupled(h_find={"base": hp}, coupled=False)
    assert RunStore(store).run_ids() == []
    run = lpc.find(ex.build, ex.train, [0.8], hparams=hp, store=store)
    with pytest.raises(LprError, match="pair run .* with itself"):
        lpc.transplant_runs(ex.build, ex.train, run.id, run.id, store=store)
    other = lpc.find(ex.build, ex.train, [0.8], hparams=hp, seed=1, store=store)
    before = RunStore(store).run_ids()
    with pytest.raises(LprError, match="alpha = 2 is not valid"):
        lpc.transplant_runs(ex.build, ex.train, run.id, other.id, alphas=(2,), store=store)
    with pytest.raises(LprError, match="control = 'bogus' is not known"):
        lpc.transplant_runs(ex.build, ex.train, run.id, other.id, controls=("bogus",),
                            store=store)
    with pytest.raises(LprError, match="sparsity = 0.5 is not a level"):
        lpc.transplant_runs(ex.build, ex.train, run.id, other.id, [0.5], store=store)
    for repeat, message in [(dict(sparsities=[0.8, 0.8]), "sparsities: 0.8 is given twice"),
                            (dict(alphas=(0.5, 0.5)), "alphas: 0.5 is given twice"),
                            (dict(controls=("erk", "erk")), "controls: erk is given twice")]:
        with pytest.raises(LprError, match=message):
            lpc.transplant_runs(ex.build, ex.train, run.id, other.id, store=store, **repeat)
    assert RunStore(store).run_ids() == before
