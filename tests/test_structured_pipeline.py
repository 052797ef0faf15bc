"""Structured find, eval and transplant end to end: unit masks, zeroing through training,
both LPR forms in the metrics, exact transplants and controls, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_find, tiny_train

from lprcausal.config import (
    DataConfig,
    EvalSpec,
    FindSpec,
    MaskSpec,
    ModelConfig,
    PruneConfig,
)
from lprcausal.data import Dataset
from lprcausal.errors import LprError
from lprcausal.pipeline import EvalRun, FindRun, ensure_evals, ensure_finds
from lprcausal.pruning import expand_unit_masks, layerwise_ratios, removal_count, unit_fractions
from lprcausal.study.one_pair import run_design
from lprcausal.study.transplant_design import TransplantDesign

UNIT = PruneConfig(sparsities=(0.5, 0.8), structure="unit")


def _unit_counts(units: dict[str, torch.Tensor]) -> dict[str, int]:
    return {k: int((~v).sum()) for k, v in units.items()}


def test_structured_find_removes_exactly_round_s_times_u_units(ctx):
    [run_id] = ensure_finds(ctx, [tiny_find(prune=UNIT)])
    run = FindRun(ctx.store, run_id)
    assert [u.weight for u in run.unit_layers()] == ["hidden.0.weight", "hidden.1.weight"]
    for s in run.levels:
        units = run.unit_mask(s)
        assert sum(_unit_counts(units).values()) == removal_count(s, 24 + 12)
        assert all(bool(m.any()) for m in units.values())


def test_structured_find_stores_expanded_weight_masks_and_both_lpr_forms(ctx):
    [run_id] = ensure_finds(ctx, [tiny_find(prune=UNIT)])
    run = FindRun(ctx.store, run_id)
    units = run.unit_mask(0.8)
    expanded = expand_unit_masks(units, run.unit_layers())
    mask = run.mask(0.8)
    assert sorted(mask) == sorted(run.prunable)
    assert all(torch.equal(mask[n], expanded[n]) for n in mask)
    assert run.metrics["lpr"]["0.8"] == layerwise_ratios(mask)
    assert run.metrics["unit_lpr"]["0.8"] == {**unit_fractions(units), "fc.weight": 0.0}
    compact = run.metrics["compact"]["0.8"]
    assert compact["params_compact"] < compact["params_dense"]


def test_structured_options_give_a_new_run_and_weight_defaults_keep_their_hash(ctx):
    l1, l2 = ensure_finds(
        ctx, [tiny_find(prune=UNIT), tiny_find(prune=UNIT.replace(unit_norm="l2"))]
    )
    assert l1 != l2
    with pytest.raises(LprError, match="apply only to structured pruning"):
        PruneConfig(unit_normalize=True)
    with pytest.raises(LprError, match="structured \\(unit\\) pruning is one-shot"):
        PruneConfig(structure="unit", method="imp")


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=gen), torch.randint(0, 4, (n,), generator=gen)


@pytest.fixture
def image_data(ctx) -> DataConfig:
    """A tiny random 3x8x8 image dataset registered in the context (nothing on disk)."""
    cfg = DataConfig(name="random-images")
    (xt, yt), (xv, yv), (xs, ys) = _images(64, 0), _images(16, 1), _images(16, 2)
    ctx._datasets[cfg] = Dataset("random-images", xt, yt, xv, yv, xs, ys, (3, 8, 8), 4)
    return cfg


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_removed_units_batchnorm_and_consumer_inputs_stay_zero_through_training(
    ctx, image_data, optimizer
):
    spec = FindSpec(
        data=image_data,
        model=ModelConfig(name="resnet8", widths=(4, 6, 8)),
        prune=PruneConfig(sparsities=(0.5,), structure="unit"),
        train=tiny_train(iterations=6),
    )
    [find_id] = ensure_finds(ctx, [spec])
    h = tiny_train(optimizer=optimizer, lr=0.01, weight_decay=0.05, iterations=6)
    [eval_id] = ensure_evals(ctx, [EvalSpec(find=find_id, sparsity=0.5, train=h)])
    find, ev = FindRun(ctx.store, find_id), EvalRun(ctx.store, eval_id)
    units = find.unit_mask(0.5)
    weights = ctx.store.read_tensors(eval_id, "weights_final.safetensors")
    for name, m in expand_unit_masks(units, find.unit_layers()).items():
        assert bool((weights[name][~m] == 0).all()), name
    gone = ~units["layer2.0.conv1.weight"]
    assert bool(gone.any())
    assert bool((weights["layer2.0.bn1.weight"][~gone] != 0).all())  # kept units trained
    assert sorted(ev.mask()) == sorted(find.prunable)  # stored mask: prunable weights only
    assert ev.metrics["lpr"] == layerwise_ratios(find.mask(0.5))
    assert ev.metrics["unit_lpr"] == find.metrics["unit_lpr"]["0.5"]


def _pairs(ctx, prune=UNIT):
    a = ensure_finds(ctx, [tiny_find(train=tiny_train(lr=0.05), prune=prune)])
    b = ensure_finds(ctx, [tiny_find(train=tiny_train(lr=0.01), prune=prune)])
    return ((a[0], b[0]),)


def test_structured_transplant_cells_have_the_source_unit_counts_exactly(ctx):
    pairs = _pairs(ctx)
    design = TransplantDesign(
        pairs=pairs, sparsities=(0.8,), train=tiny_train(), controls=("random", "uniform")
    )
    ds = run_design(ctx, design)
    assert json.loads(ds.attrs["prune"])["structure"] == "unit"
    runs = [FindRun(ctx.store, r) for r in pairs[0]]
    for w in (0, 1):
        for lp in (0, 1):
            cell = EvalRun(ctx.store, str(ds["run_id"].values[0, w, lp, 0, 0]))
            assert _unit_counts(cell.unit_mask()) == _unit_counts(runs[lp].unit_mask(0.8))
        diagonal = EvalRun(ctx.store, str(ds["run_id"].values[0, w, w, 0, 0])).unit_mask()
        own = runs[w].unit_mask(0.8)
        assert all(torch.equal(diagonal[k], own[k]) for k in own)


def test_structured_controls_keep_or_spread_the_unit_counts(ctx):
    [(a, _)] = _pairs(ctx)
    own = FindRun(ctx.store, a).unit_mask(0.8)
    specs = [
        EvalSpec(find=a, sparsity=0.8, train=tiny_train(), mask=MaskSpec(kind=k))
        for k in ("random", "shuffle", "uniform")
    ]
    random, shuffle, uniform = (EvalRun(ctx.store, i).unit_mask() for i in ensure_evals(ctx, specs))
    assert _unit_counts(random) == _unit_counts(own) == _unit_counts(shuffle)
    # uniform: 29 of 36 units; targets 24 * 0.8 = 19.2 and 12 * 0.8 = 9.6 -> 19 and 10
    assert _unit_counts(uniform) == {"hidden.0.weight": 19, "hidden.1.weight": 10}


def test_weight_allocations_are_refused_on_structured_runs(ctx):
    pairs = _pairs(ctx)
    design = TransplantDesign(pairs=pairs, sparsities=(0.8,), train=tiny_train(), controls=("erk",))
    with pytest.raises(LprError, match="mask kind = 'erk' is not defined for structured"):
        run_design(ctx, design)


def test_transplant_between_weight_and_unit_runs_is_refused(ctx):
    [a] = ensure_finds(ctx, [tiny_find(prune=UNIT)])
    [b] = ensure_finds(ctx, [tiny_find(prune=PruneConfig(sparsities=(0.5, 0.8)))])
    design = TransplantDesign(pairs=((a, b),), sparsities=(0.8,), train=tiny_train())
    with pytest.raises(LprError, match="prune different structures"):
        run_design(ctx, design)


def test_a_sparsity_emptying_a_layer_is_refused_before_training(ctx):
    spec = tiny_find(
        model=ModelConfig(name="mlp", widths=(3, 1)),
        prune=PruneConfig(sparsities=(0.7,), structure="unit"),
    )
    with pytest.raises(LprError, match="sparsity = 0.7 removes 3 of the 4 units.*<= 0.5"):
        ensure_finds(ctx, [spec])
    assert ctx.store.run_ids() == []


def test_consumer_left_dense_by_exclude_last_still_loses_the_removed_inputs(ctx):
    prune = PruneConfig(sparsities=(0.5,), structure="unit", exclude_last=True)
    [find_id] = ensure_finds(ctx, [tiny_find(prune=prune)])
    [eval_id] = ensure_evals(ctx, [EvalSpec(find=find_id, sparsity=0.5, train=tiny_train())])
    find = FindRun(ctx.store, find_id)
    gone = ~find.unit_mask(0.5)["hidden.1.weight"]
    assert bool(gone.any()) and "fc.weight" not in find.mask(0.5)
    weights = ctx.store.read_tensors(eval_id, "weights_final.safetensors")
    assert bool((weights["fc.weight"][:, gone] == 0).all())
    assert bool((weights["fc.weight"][:, ~gone] != 0).all())
