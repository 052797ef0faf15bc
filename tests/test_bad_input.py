"""Bad values are refused before any training, each with one message and no traceback."""

from __future__ import annotations

import math
import shutil

import pytest
import tomli_w
from conftest import tiny_find
from test_cli import TINY, run
from test_study_spec import spec_dict

import lprcausal.cli.study as study_cli
from lprcausal.config import TrainConfig
from lprcausal.errors import LprError
from lprcausal.pipeline import ensure_finds
from lprcausal.store import RunStore
from lprcausal.study import Study
from lprcausal.train import EngineOptions


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("weight_decay", math.nan, "expected a finite value >= 0"),
        ("weight_decay", math.inf, "expected a finite value >= 0"),
        ("eps", 0.0, "expected a finite value > 0"),
        ("beta1", 1.5, "expected 0 <= beta1 < 1"),
        ("beta2", 1.0, "expected 0 <= beta2 < 1"),
        ("beta1", -0.1, "expected 0 <= beta1 < 1"),
    ],
)
def test_optimizer_values_outside_their_range_are_refused(field, value, expected):
    with pytest.raises(LprError, match=rf"^{field} = .* is not valid: {expected}"):
        TrainConfig(**{field: value})


def test_a_warmup_longer_than_training_is_refused_in_its_own_units():
    with pytest.raises(LprError, match=r"warmup = '30it' is longer than training \(20it\)"):
        TrainConfig(iterations=20, epochs=None, warmup="30it")
    with pytest.raises(LprError, match=r"warmup = '3ep' is longer than training \(2ep\)"):
        TrainConfig(epochs=2, warmup="3ep")
    assert TrainConfig(iterations=20, epochs=None, warmup="20it").warmup == "20it"


def test_a_warmup_in_other_units_is_refused_before_training(ctx):
    # 600 samples -> 540 train / 32 = 16 steps per epoch: 2 epochs are 32 steps < 40.
    spec = tiny_find(train=TrainConfig(lr=0.05, batch_size=32, epochs=2, warmup="40it"))
    with pytest.raises(LprError, match=r"warmup = '40it' is longer than training \(2ep\)"):
        ensure_finds(ctx, [spec])
    assert RunStore(ctx.store.root).run_ids() == []


@pytest.mark.parametrize("members", [0, -3])
def test_max_members_below_one_is_refused(members):
    with pytest.raises(LprError, match=rf"max_members = {members} is not valid"):
        EngineOptions(max_members=members)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--device", "tpu"], "device = 'tpu' is not a device"),
        (["--max-members", "0"], "max_members = 0 is not valid"),
        (["--weight-decay", "nan"], "weight_decay = nan is not valid"),
        (["--eps", "0"], "eps = 0.0 is not valid"),
        (["--beta1", "1.5", "--optimizer", "adam"], "beta1 = 1.5 is not valid"),
        (["--name", "x" * 300], "is 300 characters long: expected at most 200"),
        (["--name", "../up"], "name = '../up' is not valid"),
    ],
)
def test_cli_refuses_bad_values_before_training(capsys, tmp_path, args, expected):
    store = tmp_path / "runs"
    err = run(capsys, "find", *TINY, "--store", str(store), *args, code=2)
    assert expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert RunStore(store).run_ids() == []


def test_a_toml_that_is_not_utf8_is_one_error(capsys, tmp_path):
    path = tmp_path / "h.toml"
    path.write_bytes(b"[train]\nlr = 0.1 # \xff\xfe\n")
    err = run(capsys, "find", *TINY, "--config", str(path), "--store", str(tmp_path / "r"),
              code=2)
    assert "is not UTF-8 text" in err and "Traceback" not in err


def test_transplanting_a_run_onto_itself_needs_allow_self(capsys, tmp_path):
    store = str(tmp_path / "runs")
    run(capsys, "find", *TINY, "--sparsity", "0.8", "--name", "a", "--store", store)
    err = run(capsys, "transplant", "--source", "a", "--target", "a", "--store", store, code=2)
    assert "pair run" in err and "with itself" in err and "--allow-self" in err


def test_a_huge_seed_count_is_refused_without_allocating_it(tmp_path):
    with pytest.raises(LprError, match=r"study.seeds asks for 100000000 replicates"):
        Study(spec_dict(study={"name": "t", "seeds": 100_000_000}), store=tmp_path / "s")


def test_a_plan_above_the_size_limit_asks_for_yes(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(study_cli, "MAX_PLAN_RUNS", 3)
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(spec_dict()))
    err = run(capsys, "study", "run", str(path), "--store", str(tmp_path / "s"), code=2)
    assert "more than 3 runs" in err and "pass --yes" in err
    assert RunStore(tmp_path / "s").run_ids() == []


def test_a_summary_counts_only_what_this_process_trained(tmp_path, monkeypatch):
    import lprcausal.study.api as api

    study = Study(spec_dict(), store=tmp_path / "s", results=tmp_path / "r",
                  engine=EngineOptions(progress=False))
    real = api.run_local

    def another_process_trains_it(graph, ctx, skip):
        # a second store object on the same folder stands for another process
        other = type(ctx)(store=RunStore(ctx.store.root), engine=ctx.engine,
                          cache_dir=ctx.cache_dir)
        return real(graph, other, skip)

    monkeypatch.setattr(api, "run_local", another_process_trains_it)
    summary = study.run()
    assert (summary.trained, summary.cached) == (0, 0)
    assert summary.elsewhere == summary.n_runs > 0
    assert f"(0 trained, 0 cached, {summary.n_runs} trained by another process)" in str(summary)
    shutil.rmtree(tmp_path / "r")
