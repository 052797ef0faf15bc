"""Transplant factorial on real find runs: exact LPR, diagonal identity, paired contrasts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_DATA, tiny_find, tiny_train

from lprcausal.config import ModelConfig, PruneConfig
from lprcausal.models import build_model, prunable_names
from lprcausal.pipeline import EvalRun, FindRun, ensure_finds
from lprcausal.pruning import global_magnitude_masks, layerwise_ratios, transplant_masks
from lprcausal.stats import transplant_contrasts
from lprcausal.study.one_pair import run_design
from lprcausal.study.transplant_design import TransplantDesign, cell_spec


def _pairs(ctx, prune=None, seeds=(0, 1)):
    prune = prune or PruneConfig(sparsities=(0.8,))
    a = ensure_finds(ctx, [tiny_find(train=tiny_train(lr=0.05), prune=prune, seed=s)
                           for s in seeds])
    b = ensure_finds(ctx, [tiny_find(train=tiny_train(lr=0.01), prune=prune, seed=s)
                           for s in seeds])
    return tuple(zip(a, b, strict=True))


def _counts(mask):
    return {k: int((~v).sum()) for k, v in mask.items()}


@pytest.mark.parametrize("method", ["oneshot", "imp"])
def test_transplanted_cells_have_the_source_lpr_exactly(ctx, method):
    prune = PruneConfig(method=method, rate=0.6, sparsities=(0.8,))
    pairs = _pairs(ctx, prune, seeds=(0,))
    design = TransplantDesign(pairs=pairs, sparsities=(0.8,), train=tiny_train())
    ds = run_design(ctx, design)
    a, b = (FindRun(ctx.store, r) for r in pairs[0])
    for w, lp in ((0, 1), (1, 0)):
        cell = EvalRun(ctx.store, str(ds["run_id"].values[0, w, lp, 0, 0]))
        source = (a, b)[lp].mask(0.8)
        assert _counts(cell.mask()) == _counts(source)  # per layer, hence total too


def test_diagonal_cells_reproduce_the_one_shot_masks(ctx):
    pairs = _pairs(ctx, seeds=(0,))
    design = TransplantDesign(pairs=pairs, sparsities=(0.8,), train=tiny_train())
    ds = run_design(ctx, design)
    for w in (0, 1):
        cell = EvalRun(ctx.store, str(ds["run_id"].values[0, w, w, 0, 0]))
        own = FindRun(ctx.store, pairs[0][w]).mask(0.8)
        assert all(torch.equal(cell.mask()[k], own[k]) for k in own)


def test_contrast_identities_hold_per_seed(ctx):
    pairs = _pairs(ctx)
    design = TransplantDesign(pairs=pairs, sparsities=(0.8,), train=tiny_train())
    ds = run_design(ctx, design)
    Y = ds["acc"].values[0, :, :, :, 0]
    c = transplant_contrasts(Y)
    np.testing.assert_allclose(c["TE"], c["NIE_b"] + c["NDE_a"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(c["TE"], c["NIE_a"] + c["NDE_b"], rtol=0, atol=1e-12)
    assert list(ds["seed"].values) == [0, 1]


def test_cells_of_one_replicate_share_the_eval_seed(ctx):
    pairs = _pairs(ctx, seeds=(0,))
    design = TransplantDesign(pairs=pairs, sparsities=(0.8,), train=tiny_train(),
                              eval_seeds=(7,))
    specs = [cell_spec(design, pairs[0], w, lp, 0.8, 7) for w in (0, 1) for lp in (0, 1)]
    assert {s.seed for s in specs} == {7}


@pytest.mark.parametrize("name,shape", [
    ("mlp", (1, 40)), ("cnn1d", (1, 40)), ("lenet5", (1, 28, 28)), ("resnet8", (3, 32, 32)),
    ("vgg11", (3, 32, 32)),
])
def test_self_transplant_identity_for_every_model_family(name, shape):
    torch.manual_seed(0)
    net = build_model(name, shape, 10)
    names = prunable_names(net)
    params = {n: net.state_dict()[n] for n in names}
    mask = global_magnitude_masks(params, 0.7)
    again = transplant_masks(mask, params)
    assert all(torch.equal(mask[k], again[k]) for k in mask)
    torch.manual_seed(1)
    other = {n: torch.randn_like(p) for n, p in params.items()}
    moved = transplant_masks(mask, other)
    assert layerwise_ratios(moved) == layerwise_ratios(mask)


def test_transplant_on_a_conv_model_end_to_end(ctx):
    model = ModelConfig(name="cnn1d", widths=(4, 4, 4))
    prune = PruneConfig(sparsities=(0.5,))
    a = ensure_finds(ctx, [tiny_find(model=model, prune=prune, train=tiny_train(lr=0.05))])
    b = ensure_finds(ctx, [tiny_find(model=model, prune=prune, train=tiny_train(lr=0.02))])
    design = TransplantDesign(pairs=((a[0], b[0]),), sparsities=(0.5,), train=tiny_train(),
                              alphas=(0.5,), controls=("uniform", "erk", "random"))
    ds = run_design(ctx, design)
    assert np.isfinite(ds["acc"].values).all()
    assert ds["acc_control"].shape == (1, 3, 2, 1, 1)
    assert TINY_DATA.name == "mnist1d"
