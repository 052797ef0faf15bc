"""A torchvision model through the user-model door: find, eval and transplant of
torchvision.models:resnet18 (num_classes 10) on 32x32 synthetic images; transplant onto
it is exact per layer."""

from __future__ import annotations

import torch
from test_user_models import run
from user_code import synthetic_loader

from lprcausal.pipeline import EvalRun, FindRun
from lprcausal.pruning import layerwise_ratios
from lprcausal.results.io import load_dataset
from lprcausal.store import RunStore

FAST = ["--batch-size", "8", "--iterations", "2", "--no-progress"]


def test_resnet18_find_eval_and_transplant(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images.py").write_text(synthetic_loader(n_train=20, n_test=8, size=32,
                                                         n_classes=10))
    store = str(tmp_path / "runs")
    out = run(capsys, "find", "--model", "torchvision.models:resnet18", "--dataset",
              "images.py:load", "--val-fraction", "0", "--sparsity", "0.8", "--seed", "0",
              "--seed", "1", "--lr", "0.01", "--name", "r18", *FAST, "--store", store)
    assert "torchvision.models:resnet18 on images.py:load" in out
    st = RunStore(store)
    a, b = (FindRun(st, st.resolve(f"r18-seed{s}")) for s in (0, 1))
    assert a.spec.model.code.package == "torchvision"
    assert a.spec.model.code.file.endswith("resnet.py")
    assert a.prunable[0] == "conv1.weight" and a.prunable[-1] == "fc.weight"
    assert len(a.prunable) == 21  # 20 convolutions (3 of them 1x1 downsamples) + fc
    assert tuple(a.layers[-1]["shape"]) == (10, 512)
    show = run(capsys, "runs", "show", "r18-seed0", "--store", store)
    assert "model code: torchvision.models:resnet18, package torchvision " in show

    out = run(capsys, "eval", "r18-seed0", "--sparsity", "0.8", *FAST, "--store", store)
    assert "layer1.0.conv1.weight" in out

    nc = tmp_path / "t.nc"
    run(capsys, "transplant", "--source", "r18-seed0", "--target", "r18-seed1",
        "--sparsity", "0.8", *FAST, "--out", str(nc), "--store", store)
    ds = load_dataset(nc)
    assert ds.acc.sizes["w_src"] == 2 and ds.acc.sizes["lpr_src"] == 2
    # weights of b pruned at the LPR of a: a's ratio in every layer, exactly
    target_lpr = layerwise_ratios(a.mask(0.8))
    crossed = [EvalRun(st, i) for i in st.run_ids()
               if st.read_json(i).get("kind") == "eval"
               and EvalRun(st, i).spec.mask.kind == "transplant"
               and EvalRun(st, i).spec.find == b.id]
    assert crossed
    mask = crossed[0].mask()
    assert layerwise_ratios(mask) == target_lpr
    weights = b.prunable_weights(0.8)
    for name, keep in mask.items():  # within each layer, the largest weights of b survive
        kept, removed = weights[name][keep].abs(), weights[name][~keep].abs()
        if len(kept) and len(removed):
            assert kept.min() >= removed.max(), name
    assert torch.isfinite(torch.tensor(ds.acc.values)).all()
