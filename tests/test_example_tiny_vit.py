"""The bundled tiny-ViT example (studies/custom) runs end to end: study run, stats and
figures, on a shortened copy of its spec (the model file is found next to the spec)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_user_models import run

from lprcausal.config import load_toml
from lprcausal.study import Study
from lprcausal.train import EngineOptions

SPEC = Path(__file__).resolve().parents[1] / "studies" / "custom" / "tiny_vit_mnist1d.toml"


@pytest.mark.slow
def test_tiny_vit_example_study_runs_with_stats_and_figures(capsys, tmp_path, data_cache):
    raw = load_toml(SPEC)
    assert raw["model"]["name"] == "tiny_vit.py:build"
    raw["study"]["seeds"] = 2
    raw["data"]["n_samples"] = 600
    raw["find"] = {**raw["find"], "epochs": 1, "batch_size": 50}
    raw["prune"]["sparsities"] = [0.8]
    study = Study(raw, source=str(SPEC), store=tmp_path / "runs", results=tmp_path / "results",
                  cache_dir=data_cache, engine=EngineOptions(progress=False, device="cpu"))
    assert study.spec.model.code.file == str(SPEC.parent / "tiny_vit.py")
    plan = str(study.plan())
    assert "training: fused, K=4 (on cpu)" in plan  # 2 H_find x 2 seeds
    summary = study.run()
    assert (summary.trained, summary.diverged) == (2 * 2 + 2 * 2 * 2, 0)
    folder = tmp_path / "results" / "tiny_vit_mnist1d"
    out = run(capsys, "stats", str(folder))
    assert "decoupled_vs_coupled" in out
    run(capsys, "figures", str(folder), "--out", str(tmp_path / "figs"), "--format", "png")
    assert (tmp_path / "figs" / "accuracy_vs_sparsity.png").is_file()
