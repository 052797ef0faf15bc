"""The store trusts only what it wrote: damaged runs are found, moved aside and recomputed."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat

import pytest
import xarray as xr
from conftest import tiny_find
from test_cli import TINY, run

from lprcausal.errors import LprError
from lprcausal.pipeline import Context, FindRun, ensure_finds
from lprcausal.results.io import load_dataset, save_dataset
from lprcausal.store import RunStore


def _stored(ctx) -> tuple[str, bytes]:
    [run_id] = ensure_finds(ctx, [tiny_find()])
    return run_id, (ctx.store.run_dir(run_id) / "weights_final.safetensors").read_bytes()


def _fresh(ctx) -> Context:
    return Context.at(ctx.store.root, cache_dir=ctx.cache_dir, engine=ctx.engine)


def test_a_file_the_manifest_does_not_list_makes_the_run_damaged(ctx):
    run_id, _ = _stored(ctx)
    folder = ctx.store.run_dir(run_id)
    shutil.copy(folder / "weights_final.safetensors", folder / "weights_levels.safetensors")
    store = RunStore(ctx.store.root)
    assert not store.exists(run_id)
    assert "weights_levels.safetensors" in store.damage(run_id)
    with pytest.raises(LprError, match=r"manifest does not list \(weights_levels"):
        FindRun(store, run_id)


def test_an_emptied_manifest_with_edited_metrics_is_not_trusted(ctx):
    run_id, _ = _stored(ctx)
    folder = ctx.store.run_dir(run_id)
    (folder / "manifest.json").write_text("{}")
    (folder / "metrics.json").write_text((folder / "metrics.json").read_text().replace("0.", "0.9"))
    assert not RunStore(ctx.store.root).exists(run_id)


def test_a_run_copied_under_another_id_is_damaged(ctx):
    run_id, _ = _stored(ctx)
    other = "0123456789abcdef"
    shutil.copytree(ctx.store.run_dir(run_id), ctx.store.root / other)
    store = RunStore(ctx.store.root)
    assert store.exists(run_id)
    assert not store.exists(other)
    assert f"hashes to {run_id}" in store.damage(other)


def test_a_deleted_manifest_is_quarantined_and_recomputed_with_one_line(ctx, caplog):
    run_id, weights = _stored(ctx)
    (ctx.store.run_dir(run_id) / "manifest.json").unlink()
    fresh = _fresh(ctx)
    with caplog.at_level(logging.WARNING, logger="lprcausal.store"):
        for _ in range(2):  # recomputed once, then cached
            assert ensure_finds(fresh, [tiny_find()]) == [run_id]
    [line] = caplog.messages
    assert run_id in line and "has no readable manifest.json" in line and "computed again" in line
    assert fresh.store.exists(run_id)
    assert (fresh.store.run_dir(run_id) / "weights_final.safetensors").read_bytes() == weights
    [kept] = (ctx.store.root / ".quarantine").iterdir()  # moved aside, never deleted
    assert kept.name.startswith(run_id) and (kept / "run.json").is_file()


def test_runs_list_and_verify_report_a_damaged_run_without_failing(capsys, ctx):
    run_id, _ = _stored(ctx)
    path = ctx.store.run_dir(run_id) / "metrics.json"
    path.write_text(path.read_text() + " ")
    store = str(ctx.store.root)
    out = run(capsys, "runs", "list", "--store", store)
    assert run_id in out and "damaged" in out
    out = run(capsys, "runs", "verify", "--store", store, "--dry-run")
    assert "1 runs in" in out and "0 valid, 1 damaged" in out and "metrics.json" in out
    assert ctx.store.run_dir(run_id).is_dir()
    out = run(capsys, "runs", "verify", "--store", store)
    assert "moved to .quarantine/" in out and not ctx.store.run_dir(run_id).exists()


def test_verify_retrains_a_sample_alone_and_finds_no_difference_on_the_cpu(capsys, ctx):
    ensure_finds(ctx, [tiny_find(seed=0), tiny_find(seed=1)])  # trained fused, K = 2
    out = run(capsys, "runs", "verify", "--store", str(ctx.store.root), "--retrain", "1",
              "--device", "cpu", "--no-progress")
    assert "2 runs in" in out and "2 valid, 0 damaged" in out
    row = next(line for line in out.splitlines() if " find " in line).split()
    assert row[2:4] == ["0", "0"] and row[-1] == "2"  # |dw|, |d acc|, ..., seeds


def test_a_name_never_leads_outside_the_store(ctx, tmp_path):
    run_id, _ = _stored(ctx)
    outside = tmp_path / "elsewhere"
    shutil.copytree(ctx.store.run_dir(run_id), outside / run_id)
    names = ctx.store.root / "names"
    names.mkdir(exist_ok=True)
    (names / "evil").write_text(f"../../elsewhere/{run_id}\n")
    store = RunStore(ctx.store.root)
    assert "evil" not in store.names()
    with pytest.raises(LprError, match=r"run = 'evil' is not a run in store"):
        store.resolve("evil")


def test_stale_temp_entries_of_dead_processes_are_removed_and_live_ones_kept(ctx):
    store = ctx.store
    tmp = store.root / ".tmp"
    tmp.mkdir(parents=True)
    from lprcausal.store import _host_tag

    dead_pid = 2**22 + 12345  # above Linux's default pid_max: no such process
    dead = tmp / f"0123456789abcdef-{_host_tag()}-{dead_pid}-abcd1234"
    live = tmp / f"0123456789abcdef-{_host_tag()}-{os.getpid()}-abcd1234"
    foreign = tmp / f"0123456789abcdef-otherhost-{dead_pid}-abcd1234"
    for folder in (dead, live, foreign):
        folder.mkdir()
    names = store.root / "names"
    names.mkdir()
    dead_name = names / f".x.{_host_tag()}-{dead_pid}-q1w2.tmp"
    dead_name.write_text("")
    assert sorted(store.remove_stale_temp()) == sorted([dead, dead_name])
    assert live.is_dir() and foreign.is_dir()


def test_a_store_path_that_is_a_file_is_refused(capsys, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    err = run(capsys, "runs", "list", "--store", str(path), code=2)
    assert "store = " in err and "is a file: expected a folder" in err
    assert "Traceback" not in err


def test_run_files_and_results_get_the_users_umask(ctx, tmp_path):
    old = os.umask(0o022)
    try:
        run_id, _ = _stored(ctx)
        ctx.store.set_name("n", run_id)
        files = [*ctx.store.run_dir(run_id).iterdir(), ctx.store.root / "names" / "n"]
        files.append(save_dataset(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "r.nc"))
    finally:
        os.umask(old)
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {f.name: oct(0o644) for f in files}


def test_a_malformed_tensor_file_with_a_matching_manifest_is_an_error_not_a_traceback(ctx):
    run_id, _ = _stored(ctx)
    folder = ctx.store.run_dir(run_id)
    (folder / "masks.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    manifest = json.loads((folder / "manifest.json").read_text())
    from lprcausal.store import _sha256

    manifest["masks.safetensors"] = _sha256(folder / "masks.safetensors")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LprError, match=r"'masks.safetensors' that is not a valid safetensors"):
        FindRun(RunStore(ctx.store.root), run_id).mask(0.5)


def test_the_same_run_is_bitwise_the_same_alone_with_a_second_seed_and_unfused(capsys, tmp_path):
    # The example (tiny): a 1D CNN found with seed 0, with seeds 0 and 1, and unfused.
    # Bit for bit is the CPU's promise (on CUDA a group changes float rounding).
    args = ["find", *TINY, "--model", "cnn1d", "--widths", "25,25,25", "--batch-size", "100",
            "--lr", "0.01", "--momentum", "0.9", "--sparsity", "0.8", "--device", "cpu"]
    stores = [tmp_path / s for s in ("alone", "pair", "nofuse")]
    run(capsys, *args, "--seed", "0", "--store", str(stores[0]))
    run(capsys, *args, "--seed", "0", "--seed", "1", "--store", str(stores[1]))
    run(capsys, *args, "--seed", "0", "--seed", "1", "--no-fuse", "--store", str(stores[2]))
    [run_id] = RunStore(stores[0]).run_ids()
    contents = []
    for root in stores:
        folder = root / run_id
        contents.append({p.name: p.read_bytes() for p in folder.iterdir() if p.name != "run.json"
                         and p.name != "manifest.json"})
    assert contents[0] == contents[1] == contents[2]
    assert set(contents[0]) >= {"metrics.json", "weights_final.safetensors", "masks.safetensors"}


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_run_write_is_one_error_and_leaves_nothing_half_written(ctx, monkeypatch):
    import lprcausal.store as store_module

    monkeypatch.setattr(store_module, "save_file", _disk_full)
    with pytest.raises(LprError, match=r"Cannot write run [0-9a-f]{16} .*No space left on dev"):
        ensure_finds(ctx, [tiny_find()])
    assert ctx.store.run_ids() == [] and list((ctx.store.root / ".tmp").iterdir()) == []


def test_a_full_disk_at_results_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_dataset(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "r.nc")
    monkeypatch.setattr(xr.Dataset, "to_netcdf", _disk_full)
    with pytest.raises(LprError, match=r"Cannot write results to .*No space left on device"):
        save_dataset(xr.Dataset({"a": ("x", [2.0])}), path)
    assert float(load_dataset(path)["a"][0]) == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["r.nc"]


def test_study_plan_counts_a_damaged_run_as_to_train(ctx):
    from test_study_spec import spec_dict

    from lprcausal.study import Study

    study = Study(spec_dict(), ctx=ctx)
    [first, *_] = study.graph.finds
    ensure_finds(ctx, [study.graph.spec_of(first)])
    assert study.plan().missing_find == len(study.graph.finds) - 1
    (ctx.store.run_dir(first) / "manifest.json").write_text("{}")
    assert Study(spec_dict(), ctx=_fresh(ctx)).plan().missing_find == len(study.graph.finds)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 16 KiB tmpfs (skipped where this process may not mount one)."""
    import subprocess

    root = tmp_path / "small"
    root.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(root)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield root
    subprocess.run(["umount", str(root)], capture_output=True)


def test_a_really_full_disk_stops_find_with_one_error_and_no_half_written_run(capsys, tiny_tmpfs):
    store = tiny_tmpfs / "runs"
    err = run(capsys, "find", *TINY, "--sparsity", "0.5", "--store", str(store), code=2)
    assert "No space left on device" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3
    assert RunStore(store).run_ids() == []
    assert not (store / ".tmp").exists() or list((store / ".tmp").iterdir()) == []
