"""The command line end to end: find, eval, lpr, runs, transplant, and bad input."""

from __future__ import annotations

import os

import pytest
from conftest import run_cli as run

from lprcausal.results.io import load_dataset

TINY = ["--n-samples", "600", "--widths", "24,12", "--batch-size", "32", "--iterations", "24",
        "--no-progress"]




def listing(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if ".locks" not in p.parts)


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "runs")


def test_find_then_eval_prints_accuracies_and_lpr_table(capsys, store):
    out = run(capsys, "find", *TINY, "--lr", "0.05", "--sparsity", "0.8", "--name", "a",
              "--store", store)
    assert "find accuracy (dense, test)" in out and "pruned_acc" in out
    out = run(capsys, "eval", "a", "--lr", "0.1", "--batch-size", "32", "--iterations", "24",
              "--no-progress", "--store", store)
    assert "hidden.0.weight" in out and "total" in out and "eval_test_acc" in out
    assert "LPR" in out


def test_lpr_runs_list_and_show(capsys, store):
    run(capsys, "find", *TINY, "--sparsity", "0.5", "--name", "a", "--store", store)
    out = run(capsys, "lpr", "a", "--store", store)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["total"][-1] == "0.5000"
    out = run(capsys, "runs", "list", "--store", store)
    assert "find" in out and " a " in out
    out = run(capsys, "runs", "show", "a", "--store", store)
    assert 'lr = 0.1' in out and "torch_version" in out and "prunable set (3 tensors)" in out


def test_lpr_compare_and_against(capsys, store):
    run(capsys, "find", *TINY, "--sparsity", "0.8", "--name", "a", "--store", store)
    run(capsys, "find", *TINY, "--sparsity", "0.8", "--lr", "0.01", "--name", "b",
        "--store", store)
    out = run(capsys, "lpr", "a", "--compare", "b", "--against", "erk", "--against", "uniform",
              "--store", store)
    assert "erk" in out and "uniform" in out and "L1 to" in out


def test_find_with_several_seeds_names_each(capsys, store):
    out = run(capsys, "find", *TINY, "--sparsity", "0.5", "--seed", "0", "--seed", "1",
              "--name", "grp", "--store", store)
    assert "(grp-seed0)" in out and "(grp-seed1)" in out


def test_transplant_writes_factorial_and_prints_contrasts(capsys, store, tmp_path):
    for lr, name in (("0.05", "a"), ("0.01", "b")):
        run(capsys, "find", *TINY, "--lr", lr, "--sparsity", "0.8", "--seed", "0", "--seed", "1",
            "--name", name, "--store", store)
    out_nc = tmp_path / "t.nc"
    out = run(capsys, "transplant", "--source", "a-*", "--target", "b-*", "--batch-size", "32",
              "--iterations", "24", "--alpha", "0", "--alpha", "1", "--control", "shuffle",
              "--no-progress", "--out", str(out_nc), "--store", store)
    for word in ("TE", "NIE_a", "NIE_b", "NDE_a", "NDE_b", "INT", "weights \\ LPR"):
        assert word in out
    ds = load_dataset(out_nc)
    assert ds["acc"].dims == ("pair", "w_src", "lpr_src", "seed", "sparsity")
    assert ds["acc"].shape == (1, 2, 2, 2, 1)
    # labelled as a study labels its H_find grid, whatever the run names
    assert list(ds["pair"].values) == ["lr=0.05->lr=0.01"] and ds.attrs["h_eval"] == "lr=0.1"
    # dose-response ends reproduce the factorial cells of weights a
    assert (ds["acc_alpha"].sel(alpha=0.0) == ds["acc"].sel(w_src="a", lpr_src="a")).all()
    assert (ds["acc_alpha"].sel(alpha=1.0) == ds["acc"].sel(w_src="a", lpr_src="b")).all()
    assert ds["acc_control"].shape == (1, 1, 2, 2, 1)


# ---------------------------------------------------------------- bad input
BAD = [
    (["find", "--model", "transformer"], "model = 'transformer'"),
    (["find", "--dataset", "imagenet"], "imagenet"),
    (["find", "--sparsity", "1.0"], "sparsity = 1.0"),
    (["find", "--sparsity", "-0.1"], "sparsity = -0.1"),
    (["find", "--lr", "0"], "lr = 0.0"),
    (["find", "--lr", "-1"], "lr = -1.0"),
    (["find", "--batch-size", "100000"], "batch_size = 100000 is larger than the training set"),
    (["find", "--dataset", "mnist", "--data-root", "/nonexistent-root"], "--data-root"),
    (["find", "--rewind", "10000it"], "beyond the training length"),
    (["eval", "nosuchrun"], "RUN = 'nosuchrun' is not a run"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_paragraph_without_traceback(capsys, store, tmp_path, args, message):
    extra = ["--n-samples", "600"] if args[0] == "find" and "--dataset" not in args else []
    before = listing(tmp_path)
    err = run(capsys, *args, *extra, "--no-progress", "--store", store, code=2)
    assert message in err
    assert "Traceback" not in err
    assert err.startswith("Error: ") and err.count("\n") == 1
    assert listing(tmp_path) == before


def test_unknown_and_ambiguous_run_references_are_refused(capsys, store):
    run(capsys, "find", *TINY, "--sparsity", "0.5", "--store", store)
    for fake in ("abcd000000000001", "abcd000000000002"):
        os.makedirs(os.path.join(store, fake))
    err = run(capsys, "lpr", "abcd", "--store", store, code=2)
    assert "run = 'abcd' is ambiguous: it is a prefix of 2 runs" in err
    err = run(capsys, "lpr", "ffff", "--store", store, code=2)
    assert "run = 'ffff' is not a run in store" in err


def test_transplant_between_architectures_names_the_unmatched_layer(capsys, store):
    # other widths are matched by name (tests/test_transplant_cross.py); another depth is not
    run(capsys, "find", *TINY, "--sparsity", "0.5", "--name", "a", "--store", store)
    run(capsys, "find", "--n-samples", "600", "--widths", "24,16,8", "--batch-size", "32",
        "--iterations", "24", "--no-progress", "--sparsity", "0.5", "--name", "b",
        "--store", store)
    before = sorted(os.listdir(store))
    err = run(capsys, "transplant", "--source", "a", "--target", "b", "--no-progress",
              "--store", store, code=2)
    assert "target layer(s) ['hidden.2.weight'] have no source layer" in err
    assert sorted(os.listdir(store)) == before


def test_transplant_bad_sparsity_alpha_and_eval_source(capsys, store):
    run(capsys, "find", *TINY, "--sparsity", "0.5", "--name", "a", "--store", store)
    run(capsys, "find", *TINY, "--lr", "0.01", "--sparsity", "0.5", "--name", "b",
        "--store", store)
    err = run(capsys, "transplant", "--source", "a", "--target", "b", "--sparsity", "0.9",
              "--store", store, code=2)
    assert "sparsity = 0.9 is not a level" in err and "0.5" in err
    err = run(capsys, "transplant", "--source", "a", "--target", "b", "--alpha", "1.5",
              "--store", store, code=2)
    assert "alpha = 1.5" in err
    # a repeated alpha or control: refused before training, not a traceback after it
    before = sorted(os.listdir(store))
    for flag, value in (("--alpha", "0.5"), ("--control", "erk"), ("--sparsity", "0.5")):
        err = run(capsys, "transplant", "--source", "a", "--target", "b", flag, value, flag,
                  value, "--store", store, code=2)
        assert f"{flag} {value} is given twice" in err, flag
    assert sorted(os.listdir(store)) == before
    run(capsys, "eval", "a", "--batch-size", "32", "--iterations", "24", "--no-progress",
        "--name", "ev", "--store", store)
    err = run(capsys, "transplant", "--source", "ev", "--target", "b", "--store", store, code=2)
    assert "is an eval run: expected a find run" in err
