"""Running studies: caching, results on disk, divergence, kill-and-resume, two processes,
Dask (LocalCluster and an unreachable scheduler) and the command line."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import xarray as xr
from test_study_spec import spec_dict

from lprcausal.cli import main
from lprcausal.config import spec_hash
from lprcausal.errors import LprError
from lprcausal.pipeline import EvalRun, FindRun
from lprcausal.results.io import load_dataset, save_dataset
from lprcausal.stats.decoupling import decoupled_design
from lprcausal.store import RunStore
from lprcausal.study import Study
from lprcausal.study.collect import PROVENANCE_ATTRS, collect
from lprcausal.study.transplant_design import alpha_spec, cell_spec
from lprcausal.train import EngineOptions

QUIET = EngineOptions(progress=False)
N_RUNS = 4 + 16 + 24  # finds; decoupled evals; transplant cells + alphas (see test_study_graph)


@pytest.fixture(scope="module", autouse=True)
def mnist1d_cache(data_cache):
    """The session's MNIST-1D cache, also for module-scoped fixtures and subprocesses."""
    old = os.environ.get("LPRCAUSAL_CACHE")
    os.environ["LPRCAUSAL_CACHE"] = str(data_cache)
    yield
    if old is None:
        os.environ.pop("LPRCAUSAL_CACHE")
    else:
        os.environ["LPRCAUSAL_CACHE"] = old


def make(root: Path, spec: dict | None = None, results: str = "results") -> Study:
    return Study(
        spec or spec_dict(),
        store=root / "store",
        results=root / results,
        engine=QUIET,
        source="tiny.toml",
    )


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The tiny study, run once: (study, summary of the first run)."""
    study = make(tmp_path_factory.mktemp("done"))
    return study, study.run()


def manifests(store: Path) -> dict[str, tuple[int, int]]:
    """Run id -> (inode, mtime) of its manifest: any rewrite of a run changes it."""
    out = {}
    for run_id in RunStore(store).run_ids():
        st = (store / run_id / "manifest.json").stat()
        out[run_id] = (st.st_ino, st.st_mtime_ns)
    return out


def assert_runs_intact(store: Path, study: Study) -> None:
    """Every run of the study reads back (checksums verified) as the spec it was made for."""
    st = RunStore(store)
    for run_id in study.graph.run_ids():
        kind = FindRun if run_id in study.graph.finds else EvalRun
        assert kind(st, run_id).spec == study.graph.spec_of(run_id)


# ---------------------------------------------------------------------------- caching
def test_first_run_trains_every_run_and_writes_the_results(done):
    study, summary = done
    assert (summary.n_runs, summary.trained, summary.cached) == (N_RUNS, N_RUNS, 0)
    assert sorted(p.name for p in study.results_dir.iterdir()) == [
        "decoupled.nc",
        "study.json",
        "transplant.nc",
    ]
    assert str(study.results_dir) in str(summary)


def test_second_run_trains_nothing_and_rewrites_no_run(done):
    study, _ = done
    before = manifests(study.ctx.store.root)
    summary = study.run()
    assert (summary.trained, summary.cached) == (0, N_RUNS)
    assert manifests(study.ctx.store.root) == before


def test_changed_spec_trains_only_the_new_runs(done, tmp_path):
    study, _ = done
    spec = spec_dict()
    spec["find"]["grid"]["lr"] = [0.03, 0.1, 0.3]
    bigger = Study(spec, store=study.ctx.store.root, results=tmp_path, engine=QUIET)
    summary = bigger.run()
    # new: 2 find runs (lr=0.3 x 2 seeds) and their 2 h_eval x 2 seeds x 2 sparsities evals
    assert summary.trained == 2 + 8
    assert summary.cached == N_RUNS


def test_a_spec_without_transplant_leaves_no_stale_transplant_file(done, tmp_path):
    """Dropping [transplant] from a spec must not leave the old transplant.nc beside the
    new decoupled.nc: `lprcausal stats` reads whichever files the folder holds and would
    test the old design's transplants as this study's."""
    study, _ = done
    shutil.copytree(study.results_dir, tmp_path / study.name)
    plain = Study(spec_dict(transplant=None), store=study.ctx.store.root, results=tmp_path,
                  engine=QUIET)
    summary = plain.run()
    assert summary.trained == 0
    assert sorted(p.name for p in plain.results_dir.iterdir()) == ["decoupled.nc", "study.json"]
    assert plain.collect().keys() == {"decoupled", "study"}
    assert sorted(p.name for p in plain.results_dir.iterdir()) == ["decoupled.nc", "study.json"]


def test_stats_written_from_results_go_when_the_results_change(done, tmp_path):
    """stats.nc / anova.nc / dose_fit.nc describe the results they came from: a study that
    collects the same results again keeps them, one whose results change removes them
    (`lprcausal figures` would otherwise draw the old tests over the new numbers)."""
    from lprcausal.results.schema import DERIVED_FILES
    from lprcausal.stats.report import analyze_results, write_stats

    study, _ = done
    shutil.copytree(study.results_dir, tmp_path / study.name)
    same = Study(spec_dict(), store=study.ctx.store.root, results=tmp_path, engine=QUIET,
                 source="tiny.toml")
    write_stats(same.results_dir, analyze_results(same.results_dir))
    assert {p.name for p in same.results_dir.iterdir()} >= set(DERIVED_FILES)
    assert same.run().trained == 0  # collected again: same numbers, other timestamps
    assert {p.name for p in same.results_dir.iterdir()} >= set(DERIVED_FILES)
    fewer = Study(spec_dict(transplant=None), store=study.ctx.store.root, results=tmp_path,
                  engine=QUIET)
    assert fewer.run().trained == 0  # other results: the transplant is gone
    assert not {p.name for p in fewer.results_dir.iterdir()} & set(DERIVED_FILES)


# ---------------------------------------------------------------------------- results
def test_saved_datasets_read_back_identical(done, tmp_path):
    study, _ = done
    in_memory, _ = collect(study.graph, study.ctx.store)
    for name, ds in in_memory.items():
        back = load_dataset(save_dataset(ds, tmp_path / f"{name}.nc"))
        xr.testing.assert_identical(back, ds)
        assert ds.sizes and all(
            ds[v].dtype == back[v].dtype for v in ds.data_vars if ds[v].dtype.kind in "fib"
        )


def test_decoupled_dataset_is_indexed_by_the_design(done):
    study, _ = done
    ds = study.results()["decoupled"]
    assert ds.acc.dims == ("h_find", "h_eval", "seed", "sparsity")
    assert list(ds.h_find.values) == ["lr=0.03", "lr=0.1"]
    assert list(ds.h_eval.values) == ["coupled", "lr=0.05"]
    assert ds.lr.dims == ("h_find",) and list(ds.lr.values) == [0.03, 0.1]
    assert np.isnan(ds.eval_lr.values[0]) and ds.eval_lr.values[1] == 0.05
    assert ds.lpr.dims == ("h_find", "seed", "sparsity", "layer")
    assert list(ds.n_params.values) == [8 * 40, 10 * 8]  # mlp [8] on 40-sample signals
    assert ds.acc.attrs["units"] == "1" and ds.acc.attrs["long_name"]
    assert "MultiIndex" not in repr(ds.indexes)


def test_decoupled_values_are_the_stored_run_metrics(done):
    study, _ = done
    ds = study.results()["decoupled"]
    cell = ds.sel(h_find="lr=0.1", h_eval="coupled", seed=1, sparsity=0.8)
    run = EvalRun(study.ctx.store, str(cell.eval_run.values))
    assert run.spec.train.lr == 0.1 and run.spec.sparsity == 0.8 and run.spec.seed == 1
    assert float(cell.acc) == run.metrics["test_acc"]
    assert float(cell.val_acc) == run.metrics["final_val_acc"]
    find = FindRun(study.ctx.store, str(ds.find_run.sel(h_find="lr=0.1", seed=1).values))
    assert float(cell.find_acc) == find.metrics["find_acc"]["0.8"]


def test_lpr_realizes_the_target_sparsity(done):
    ds = done[0].results()["decoupled"]
    removed = (ds.lpr * ds.n_params).sum("layer")
    total = int(ds.n_params.sum())
    expected = np.round(ds.sparsity * total)
    np.testing.assert_array_equal(
        np.round(removed.values), np.broadcast_to(expected.values, removed.shape)
    )


def test_results_carry_spec_and_provenance(done):
    study, _ = done
    ds = study.results()["decoupled"]
    assert json.loads(ds.attrs["spec"]) == spec_dict()
    assert ds.attrs["source"].startswith("lprcausal 0.1.0")
    assert "lprcausal study" in ds.attrs["history"]
    assert ds.attrs["n_diverged"] == 0
    record = json.loads((study.results_dir / "study.json").read_text())
    assert len(record["runs"]["find"]) == 4 and record["runs"]["find"][0]["id"] in (
        study.graph.finds
    )


def test_declared_reference_arms_reach_the_statistics(done, tmp_path):
    study, _ = done
    # Without [stats], no H_find has the fixed H_eval's lr (0.05): collect notes its choice.
    guessed = decoupled_design(load_dataset(study.results_dir / "decoupled.nc"))
    assert any("no reference H_find declared" in w for w in guessed.warnings)
    spec = spec_dict(stats={"reference_h_find": "lr=0.1", "reference_h_eval": "lr=0.05"})
    declared = Study(spec, store=study.ctx.store.root, results=tmp_path, engine=QUIET)
    assert declared.run().trained == 0  # [stats] changes no run
    ds = load_dataset(declared.results_dir / "decoupled.nc")
    assert ds["reference_h_find"].sel(h_eval="lr=0.05").item() == "lr=0.1"
    assert ds.attrs["reference_h_eval"] == "lr=0.05"
    design = decoupled_design(ds)
    assert design.reference == {"lr=0.05": "lr=0.1"}
    assert design.lpr_reference == "lr=0.1"
    assert design.warnings == ()


def test_transplant_dataset_has_a_pair_dimension(done):
    study, _ = done
    ts = study.results()["transplant"]
    assert ts.acc.dims == ("pair", "w_src", "lpr_src", "seed", "sparsity")
    assert list(ts.pair.values) == ["lr=0.1->lr=0.03"]
    assert (str(ts.a.values[0]), str(ts.b.values[0])) == ("lr=0.1", "lr=0.03")
    assert ts.acc_alpha.dims == ("pair", "alpha", "seed", "sparsity")
    design = study.graph.designs["lr=0.1->lr=0.03"]
    pair = design.pairs[1]
    cross = EvalRun(study.ctx.store, spec_hash(cell_spec(design, pair, 1, 0, 0.5, 1)))
    assert (
        float(ts.acc.sel(pair="lr=0.1->lr=0.03", w_src="b", lpr_src="a", seed=1, sparsity=0.5))
        == cross.metrics["test_acc"]
    )
    dose = EvalRun(study.ctx.store, spec_hash(alpha_spec(design, pair, 1.0, 0.8, 1)))
    assert (
        float(ts.acc_alpha.sel(alpha=1.0, seed=1, sparsity=0.8).squeeze())
        == (dose.metrics["test_acc"])
    )


def test_lprcausal_transplant_writes_the_dataset_of_the_same_pair_in_a_study(done, tmp_path):
    study, _ = done
    finds = study.graph.find_ids
    out = tmp_path / "one_pair.nc"
    args = ["transplant", "--store", str(study.ctx.store.root), "--no-progress"]
    args += [x for s in (0, 1) for x in ("--source", finds[("lr=0.1", s)])]
    args += [x for s in (0, 1) for x in ("--target", finds[("lr=0.03", s)])]
    args += ["--sparsity", "0.5", "--sparsity", "0.8", "--alpha", "0", "--alpha", "1"]
    args += ["--lr", "0.05", "--batch-size", "50", "--iterations", "10", "--out", str(out)]
    main(args)
    cli, studied = load_dataset(out), study.results()["transplant"]
    for ds in (cli, studied):  # how and when each was made
        for name in PROVENANCE_ATTRS:
            ds.attrs.pop(name, None)
    assert cli.identical(studied)
    assert cli.attrs["h_eval"] == "lr=0.05" and list(cli["pair"].values) == ["lr=0.1->lr=0.03"]


# ---------------------------------------------------------------------------- divergence
def test_diverged_eval_runs_are_recorded_and_the_study_finishes(tmp_path):
    spec = spec_dict(eval={"coupled": False, "grid": {"lr": [0.05, 1e6]}}, transplant=None)
    summary = make(tmp_path, spec).run()
    ds = make(tmp_path, spec).results()["decoupled"]
    bad = ds.sel(h_eval="lr=1000000.0")
    assert bad.diverged.all() and np.isnan(bad.acc).all() and np.isnan(bad.val_acc).all()
    good = ds.sel(h_eval="lr=0.05")
    assert not good.diverged.any() and np.isfinite(good.acc).all()
    assert ds.attrs["n_diverged"] == 2 * 2 * 2 == summary.diverged


def test_diverged_find_runs_are_recorded_and_their_evals_are_nan(tmp_path):
    spec = spec_dict(
        find={"lr": 0.1, "batch_size": 50, "iterations": 10, "grid": {"lr": [0.1, 1e6]}},
        transplant=None,
    )
    summary = make(tmp_path, spec).run()
    ds = make(tmp_path, spec).results()["decoupled"]
    bad = ds.sel(h_find="lr=1000000.0")
    assert bad.find_diverged.all() and np.isnan(bad.find_acc).all() and np.isnan(bad.lpr).all()
    assert bad.diverged.all() and np.isnan(bad.acc).all()
    assert np.isfinite(ds.acc.sel(h_find="lr=0.1")).all()
    assert ds.attrs["n_diverged_find"] == 2
    assert summary.diverged == 2 and summary.skipped == 2 * 2 * 2  # 2 h_eval x 2 s x 2 seeds
    for run_id in bad.find_run.values.ravel():  # the stored metrics say NaN too
        metrics = FindRun(RunStore(tmp_path / "store"), str(run_id)).metrics
        assert all(math.isnan(v) for v in metrics["pruned_acc"].values())
        assert all(math.isnan(v) for v in metrics["find_acc"].values())


# ---------------------------------------------------------------------------- robustness
def cli_process(spec_path: Path, store: Path, results: Path) -> subprocess.Popen:
    code = "from lprcausal.cli import main; main()"
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "study",
            "run",
            str(spec_path),
            "--store",
            str(store),
            "--results",
            str(results),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_killed_study_resumes_without_recomputing_finished_runs(tmp_path):
    # Coupled evals (10 steps) train in one group, then the fixed-H_eval ones (150 steps):
    # the study is killed once the first group is stored, while the second trains.
    spec = spec_dict(eval={"coupled": True, "train": {"lr": 0.05, "iterations": 150}})
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(spec))
    store = tmp_path / "store"
    first = 4 + 8  # find runs, coupled evals
    proc = cli_process(path, store, tmp_path / "results")
    deadline = time.monotonic() + 120
    while len(RunStore(store).run_ids()) < first and proc.poll() is None:
        assert time.monotonic() < deadline, "the study did not start"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0]
    before = manifests(store)
    assert first <= len(before) < N_RUNS, f"the study was not killed mid-way:\n{output}"
    study = Study.from_toml(path, store=store, results=tmp_path / "results", engine=QUIET)
    summary = study.run()
    assert summary.trained == N_RUNS - len(before)
    after = manifests(store)
    assert {k: after[k] for k in before} == before
    assert len(after) == N_RUNS
    assert_runs_intact(store, study)


def test_two_processes_on_one_store_both_finish_with_intact_runs(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(spec_dict()))
    store = tmp_path / "store"
    procs = [cli_process(path, store, tmp_path / f"results{k}") for k in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    st = RunStore(store)
    assert len(st.run_ids()) == N_RUNS
    study = Study.from_toml(path, store=store, results=tmp_path / "results0", engine=QUIET)
    assert_runs_intact(store, study)
    a, b = (load_dataset(tmp_path / f"results{k}" / "t" / "decoupled.nc") for k in (0, 1))
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert study.run().trained == 0


# ---------------------------------------------------------------------------- dask
def test_local_cluster_runs_the_study(tmp_path):
    study = make(tmp_path)
    summary = study.run("dask", workers=1, processes=False)
    assert (summary.trained, summary.cached) == (N_RUNS, 0)
    assert np.isfinite(study.results()["decoupled"].acc).all()
    assert make(tmp_path).run().trained == 0  # the in-process executor finds it all


def test_a_dask_task_is_shared_only_by_the_same_runs_into_the_same_store(tmp_path):
    # Keys named the run ids alone: two studies on one scheduler with other stores would
    # share a task, and only one store would receive the runs.
    from lprcausal.study.executor import _task_key

    ids = ["b" * 64, "a" * 64]
    key = _task_key("find", ids, str(tmp_path / "store"))
    assert key == _task_key("find", ids[::-1], str(tmp_path / "x" / ".." / "store"))
    assert key != _task_key("find", ids, str(tmp_path / "other"))
    assert key != _task_key("eval", ids, str(tmp_path / "store"))
    assert key != _task_key("find", ids[:1], str(tmp_path / "store"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_workers_without_a_local_cluster_to_size_are_refused(tmp_path):
    """--workers sizes the LocalCluster of executor 'dask'; elsewhere it was ignored."""
    study = make(tmp_path)
    with pytest.raises(LprError, match="workers = 2 is given with executor = 'local'"):
        study.run("local", workers=2)
    with pytest.raises(LprError, match="workers = 2 is given with scheduler = 'tcp://"):
        study.run("dask", scheduler=f"tcp://127.0.0.1:{_closed_port()}", workers=2)
    assert not (tmp_path / "store").exists()


def test_unreachable_scheduler_is_a_clear_error_and_touches_no_store(tmp_path):
    address = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(LprError, match=f"scheduler = '{address}' is not reachable"):
        make(tmp_path).run("dask", scheduler=address, connect_timeout=0.5)
    assert not (tmp_path / "store").exists()


def test_collect_before_run_names_the_missing_runs(tmp_path):
    with pytest.raises(LprError, match=f"{N_RUNS} of the {N_RUNS} runs of study 't'"):
        make(tmp_path).collect()
    assert not (tmp_path / "results").exists()


def test_unknown_model_fails_before_anything_is_stored(tmp_path):
    with pytest.raises(LprError, match="model"):
        make(tmp_path, spec_dict(model={"name": "resnet7"})).run()
    assert not (tmp_path / "store").exists()


def test_an_eval_warmup_longer_than_training_fails_before_the_find_runs_train(tmp_path):
    """Known only with the data (epochs vs iterations): it used to stop the study after
    every find run had trained, without naming the H_eval."""
    spec = spec_dict(eval={"coupled": True, "train": {"lr": 0.05, "warmup": "5ep"}})
    with pytest.raises(LprError, match=r"In tiny.toml: H_eval 'lr=0.05,warmup=5ep': "
                                       r"warmup = '5ep' is longer than training \(10it\)"):
        make(tmp_path, spec).run()
    assert RunStore(tmp_path / "store").run_ids() == []


# ---------------------------------------------------------------------------- CLI
def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_plan_prints_graph_size_and_work(done, tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(spec_dict()))
    code, out, _ = run_cli(["study", "plan", str(path), "--store", str(tmp_path / "s")], capsys)
    assert code == 0
    assert "find runs:      4  cached      0  to train      4  optimizer steps 40" in out
    assert f"total:     {N_RUNS:6d}" in out


def test_cli_plan_reports_the_group_size_the_cache_budget_allows(tmp_path, capsys, monkeypatch):
    import torch

    import lprcausal.train.budget as budget

    monkeypatch.setattr(budget, "CPU_CACHE_BYTES", 1)  # no more members than threads
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        path = tmp_path / "tiny.toml"
        path.write_text(tomli_w.dumps(spec_dict()))
        store = str(tmp_path / "s")
        code, out, _ = run_cli(["study", "plan", str(path), "--store", store], capsys)
        assert code == 0 and "training: fused, K=2 (on cpu)" in out  # 4 finds: 2 groups of 2
        code, out, _ = run_cli(["study", "plan", str(path), "--store", store,
                                "--max-members", "3"], capsys)
        assert code == 0 and "training: fused, K=2 (on cpu)" in out  # balanced: 2 + 2
        code, out, _ = run_cli(["study", "plan", str(path), "--store", store,
                                "--max-members", "8"], capsys)
        assert code == 0 and "training: fused, K=4 (on cpu)" in out  # asked for: no cache cap
    finally:
        torch.set_num_threads(threads)


def test_cli_run_on_a_finished_study_ends_with_a_summary_line(done, tmp_path, capsys):
    study, _ = done
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(spec_dict()))
    code, out, _ = run_cli(
        [
            "study",
            "run",
            str(path),
            "--store",
            str(study.ctx.store.root),
            "--results",
            str(tmp_path / "res"),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"study t: {N_RUNS} runs (0 trained, {N_RUNS} cached)")
    assert str(tmp_path / "res" / "t") in last


def test_cli_run_without_bars_writes_plain_progress_lines(tmp_path, capsys, monkeypatch):
    import lprcausal.study.progress as progress

    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)  # a line whenever runs finished
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(spec_dict(transplant=None)))
    code, out, err = run_cli(["study", "run", str(path), "--store", str(tmp_path / "s"),
                              "--results", str(tmp_path / "res"), "--no-progress"], capsys)
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.startswith("study t: ")]
    assert lines and lines[-1].startswith("study t: 20/20 runs, 100% of steps, ")
    assert all(re.fullmatch(r"study t: \d+/20 runs, \d+% of steps, \d+s(, about .* left)?", ln)
               for ln in lines)


def test_cli_bad_spec_exits_2_with_one_message(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(spec_dict(find={"lrr": 0.1})))
    code, out, err = run_cli(["study", "run", str(path), "--store", str(tmp_path / "s")], capsys)
    assert code == 2
    assert err.startswith(f"Error: In {path}: unknown key 'find.lrr'")
    assert "Traceback" not in err and not (tmp_path / "s").exists()


def test_structured_study_reports_unit_lpr(tmp_path):
    prune = {"sparsities": [0.5, 0.8], "structure": "unit"}
    spec = spec_dict(prune=prune, eval={"coupled": True}, transplant=None)
    study = make(tmp_path, spec)
    study.run()
    ds = study.results()["decoupled"]
    assert ds.unit_lpr.dims == ("h_find", "seed", "sparsity", "layer")
    # mlp [8]: the 8 hidden neurons are the only units; the classifier has none
    assert (ds.unit_lpr.sel(layer="fc.weight") == 0).all()
    hidden = ds.unit_lpr.sel(layer="hidden.0.weight")
    np.testing.assert_array_equal(hidden.sel(sparsity=0.5), 4 / 8)
    np.testing.assert_array_equal(hidden.sel(sparsity=0.8), 6 / 8)
    # compacted: 40 inputs -> h kept neurons -> 10 classes, against 40 -> 8 -> 10 (418)
    for s, h in ((0.5, 4), (0.8, 2)):
        want = (40 * h + h + h * 10 + 10) / 418
        np.testing.assert_allclose(ds.params_kept.sel(sparsity=s), want, rtol=1e-12)
    assert ((ds.flops_kept > 0) & (ds.flops_kept < 1)).all()
    assert (ds.flops_kept.sel(sparsity=0.8) < ds.flops_kept.sel(sparsity=0.5)).all()


def test_unstructured_study_has_no_unit_lpr(done):
    ds = done[0].results()["decoupled"]
    assert not {"unit_lpr", "params_kept", "flops_kept"} & set(ds.data_vars)
