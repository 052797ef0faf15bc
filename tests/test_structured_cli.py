"""The command line with --structure unit: find, lpr (both LPR forms, compaction),
eval, transplant, and bad input."""

from __future__ import annotations

import pytest
from test_cli import TINY, run


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "runs")


def _find(capsys, store, name, *extra):
    return run(
        capsys,
        "find",
        *TINY,
        "--structure",
        "unit",
        "--sparsity",
        "0.5",
        "--name",
        name,
        *extra,
        "--store",
        store,
    )


def test_structured_find_prints_the_compacted_sizes(capsys, store):
    out = _find(capsys, store, "u")
    assert "params kept" in out and "FLOPs kept" in out


def test_lpr_of_a_structured_run_shows_unit_and_parameter_fractions(capsys, store):
    _find(capsys, store, "u", "--unit-norm", "l2", "--unit-normalize")
    out = run(capsys, "lpr", "u", "--store", store)
    assert "LPR (params)" in out and "unit LPR" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["total"][-3:] == ["36", "18", "0.5000"]  # 18 of the 36 hidden units removed
    assert rows["fc.weight"][-3:] == ["-", "-", "-"]
    assert "compacted model: params 1414 ->" in out


def test_eval_and_transplant_accept_structured_runs(capsys, store, tmp_path):
    _find(capsys, store, "a")
    _find(capsys, store, "b", "--lr", "0.01")
    h = ["--batch-size", "32", "--iterations", "24", "--no-progress"]
    out = run(capsys, "eval", "a", "--mask", "uniform", *h, "--store", store)
    assert "unit LPR" in out
    out = run(
        capsys,
        "transplant",
        "--source",
        "a",
        "--target",
        "b",
        "--control",
        "random",
        *h,
        "--out",
        str(tmp_path / "t.nc"),
        "--store",
        store,
    )
    assert "sparsity 0.5" in out


def test_weight_allocation_on_a_structured_run_is_one_paragraph(capsys, store):
    _find(capsys, store, "a")
    err = run(capsys, "eval", "a", "--mask", "erk", "--no-progress", "--store", store, code=2)
    assert err.startswith("Error: mask kind = 'erk' is not defined for structured find run")
    assert err.count("\n") == 1


def test_structured_imp_is_refused(capsys, store):
    err = run(
        capsys, "find", *TINY, "--structure", "unit", "--method", "imp", "--store", store, code=2
    )
    assert "structured (unit) pruning is one-shot" in err


def test_exported_compact_model_computes_what_the_masked_eval_run_computes(capsys, store, tmp_path):
    import torch

    from lprcausal.compact import count_params, load_compact
    from lprcausal.models import build_model
    from lprcausal.store import RunStore

    _find(capsys, store, "a")
    run(
        capsys,
        "eval",
        "a",
        "--batch-size",
        "32",
        "--iterations",
        "24",
        "--no-progress",
        "--name",
        "e",
        "--store",
        store,
    )
    path = tmp_path / "small.safetensors"
    out = run(capsys, "lpr", "e", "--export-compact", str(path), "--store", store)
    assert "compact model written to" in out
    small = load_compact(path)
    st = RunStore(store)
    full = build_model("mlp", (1, 40), 10, widths=(24, 12))
    full.load_state_dict(st.read_tensors(st.resolve("e"), "weights_final.safetensors"))
    x = torch.randn(7, 1, 40)
    torch.testing.assert_close(small(x), full.eval()(x), rtol=1e-5, atol=1e-6)
    assert count_params(small) < count_params(full)


def test_export_of_a_weight_pruning_run_is_refused(capsys, store, tmp_path):
    run(capsys, "find", *TINY, "--sparsity", "0.5", "--name", "w", "--store", store)
    err = run(
        capsys,
        "lpr",
        "w",
        "--export-compact",
        str(tmp_path / "x.safetensors"),
        "--store",
        store,
        code=2,
    )
    assert "needs a structured run" in err
