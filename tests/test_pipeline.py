"""Find and eval end to end on a tiny MNIST-1D MLP: counts, masks, rewind, caching."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import TINY_MODEL, tiny_find, tiny_train

from lprcausal.config import EvalSpec, MaskSpec, PruneConfig, spec_hash
from lprcausal.errors import LprError
from lprcausal.pipeline import Context, EvalRun, FindRun, ensure_evals, ensure_finds
from lprcausal.pipeline.context import initial_state
from lprcausal.pruning import removal_count
from lprcausal.train import EngineOptions, TrainJob, train_many


def _n_prunable(run: FindRun) -> int:
    return sum(int(layer["n_params"]) for layer in run.layers)


def test_oneshot_find_removes_exact_counts(ctx):
    [run_id] = ensure_finds(ctx, [tiny_find()])
    run = FindRun(ctx.store, run_id)
    n = _n_prunable(run)
    assert run.levels == [0.5, 0.8]
    for s in run.levels:
        removed = sum(int((~m).sum()) for m in run.mask(s).values())
        assert removed == removal_count(s, n)
    assert run.prunable == ["hidden.0.weight", "hidden.1.weight", "fc.weight"]


def test_imp_reaches_every_level_exactly_with_nested_masks(ctx):
    spec = tiny_find(prune=PruneConfig(method="imp", rate=0.5, sparsities=(0.8,)))
    [run_id] = ensure_finds(ctx, [spec])
    run = FindRun(ctx.store, run_id)
    n = _n_prunable(run)
    assert run.levels == [0.5, 0.75, 0.8]
    previous = None
    for s in run.levels:
        mask = run.mask(s)
        assert sum(int((~m).sum()) for m in mask.values()) == removal_count(s, n)
        if previous is not None:  # once pruned, always pruned
            assert all(bool((mask[k] <= previous[k]).all()) for k in mask)
        previous = mask
    assert len(run.metrics["rounds"]) == 3  # dense + two retrainings


def test_prunable_set_options_leave_layers_dense(ctx):
    spec = tiny_find(prune=PruneConfig(sparsities=(0.5,), exclude_first=True, exclude_last=True))
    [run_id] = ensure_finds(ctx, [spec])
    run = FindRun(ctx.store, run_id)
    assert run.prunable == ["hidden.1.weight"]
    assert run.record["prunable"] == ["hidden.1.weight"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_pruned_weights_stay_exactly_zero_through_training(ctx, optimizer):
    [find_id] = ensure_finds(ctx, [tiny_find()])
    h = tiny_train(optimizer=optimizer, lr=0.01, weight_decay=0.05, momentum=0.9)
    [eval_id] = ensure_evals(ctx, [EvalSpec(find=find_id, sparsity=0.8, train=h)])
    run = EvalRun(ctx.store, eval_id)
    weights = ctx.store.read_tensors(eval_id, "weights_final.safetensors")
    mask = run.mask()
    for name, m in mask.items():
        assert bool((weights[name][~m] == 0).all())
        assert bool((weights[name][m] != 0).all())  # survivors did train
    n = sum(int(layer["n_params"]) for layer in run.layers)
    assert run.metrics["sparsity"] == removal_count(0.8, n) / n


def test_rewind_point_is_the_exact_state_at_that_step(ctx):
    spec = tiny_find(prune=PruneConfig(sparsities=(0.5,), rewind="5it"))
    [run_id] = ensure_finds(ctx, [spec])
    rewind = FindRun(ctx.store, run_id).rewind_state()
    # the same run stopped after 5 iterations ends where the rewind point was taken
    short = tiny_find(train=tiny_train(iterations=5), prune=PruneConfig(sparsities=(0.5,)))
    [short_id] = ensure_finds(ctx, [short])
    final = FindRun(ctx.store, short_id).final_state()
    assert rewind.keys() == final.keys()
    for k in rewind:
        assert torch.equal(rewind[k], final[k]), k


def test_rewind_to_init_is_the_initialization(ctx):
    spec = tiny_find()
    [run_id] = ensure_finds(ctx, [spec])
    init = initial_state(TINY_MODEL, ctx.dataset(spec.data), spec.seed)
    rewind = FindRun(ctx.store, run_id).rewind_state()
    assert all(torch.equal(init[k], rewind[k]) for k in init)


def test_rewind_beyond_training_is_refused_before_training(ctx):
    spec = tiny_find(prune=PruneConfig(sparsities=(0.5,), rewind="100ep"))
    with pytest.raises(LprError, match=r"rewind = '100ep' is step .* beyond the training length"):
        ensure_finds(ctx, [spec])
    assert ctx.store.run_ids() == []


def test_same_request_reuses_the_stored_run(ctx, monkeypatch):
    spec = tiny_find()
    [first] = ensure_finds(ctx, [spec])
    calls = []
    import lprcausal.pipeline.find as find_mod

    monkeypatch.setattr(find_mod, "train_many", lambda *a, **k: calls.append(1))
    assert ensure_finds(ctx, [spec]) == [first]
    assert calls == []


def test_same_command_twice_gives_bit_identical_weights(tmp_path, data_cache):
    states = []
    for i in range(2):
        c = Context.at(tmp_path / f"store{i}", cache_dir=data_cache,
                       engine=EngineOptions(progress=False, device="cpu"))
        [run_id] = ensure_finds(c, [tiny_find()])
        [ev] = ensure_evals(c, [EvalSpec(find=run_id, sparsity=0.8, train=tiny_train())])
        states.append(c.store.read_tensors(ev, "weights_final.safetensors"))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_replicates_share_init_across_h_find_and_differ_across_seeds(ctx):
    data = ctx.dataset(tiny_find().data)
    a = initial_state(TINY_MODEL, data, 0)
    b = initial_state(TINY_MODEL, data, 0)
    c = initial_state(TINY_MODEL, data, 1)
    assert torch.equal(a["fc.weight"], b["fc.weight"])
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_eval_modes_start_from_different_weights(ctx):
    [find_id] = ensure_finds(ctx, [tiny_find()])
    specs = [EvalSpec(find=find_id, sparsity=0.5, train=tiny_train(), mode=m)
             for m in ("rewind", "finetune", "reinit")]
    ids = ensure_evals(ctx, specs)
    assert len(set(ids)) == 3
    finals = [ctx.store.read_tensors(i, "weights_final.safetensors")["fc.weight"] for i in ids]
    assert not torch.equal(finals[0], finals[1]) and not torch.equal(finals[0], finals[2])
    # every mode trains with the same mask
    masks = [EvalRun(ctx.store, i).mask() for i in ids]
    assert all(torch.equal(masks[0][k], m[k]) for m in masks for k in m)


def test_eval_records_final_epoch_test_accuracy_and_val_history(ctx):
    [find_id] = ensure_finds(ctx, [tiny_find()])
    h = tiny_train(iterations=None, epochs=2)
    [ev] = ensure_evals(ctx, [EvalSpec(find=find_id, sparsity=0.5, train=h)])
    m = EvalRun(ctx.store, ev).metrics
    assert len(m["val_acc"]) == 2 and len(m["train_loss"]) == 2
    assert m["final_val_acc"] == m["val_acc"][-1]
    assert 0 <= m["test_acc"] <= 1


def test_control_masks_keep_the_lpr(ctx):
    [find_id] = ensure_finds(ctx, [tiny_find()])
    own, shuffled = ensure_evals(ctx, [
        EvalSpec(find=find_id, sparsity=0.8, train=tiny_train()),
        EvalSpec(find=find_id, sparsity=0.8, train=tiny_train(), mask=MaskSpec(kind="shuffle")),
    ])
    a, b = EvalRun(ctx.store, own), EvalRun(ctx.store, shuffled)
    assert a.metrics["lpr"] == b.metrics["lpr"]
    assert not all(torch.equal(a.mask()[k], b.mask()[k]) for k in a.mask())


def test_sparsity_the_find_run_lacks_lists_the_levels(ctx):
    [find_id] = ensure_finds(ctx, [tiny_find()])
    with pytest.raises(LprError, match=r"sparsity = 0.7 is not a level .* sparsities 0.5, 0.8"):
        ensure_evals(ctx, [EvalSpec(find=find_id, sparsity=0.7, train=tiny_train())])


def test_batch_larger_than_train_set_is_refused(ctx):
    spec = tiny_find(train=tiny_train(batch_size=100_000))
    with pytest.raises(LprError, match=r"batch_size = 100000 is larger than the training set"):
        ensure_finds(ctx, [spec])


def test_mask_with_foreign_names_is_refused(ctx):
    spec = tiny_find()
    data = ctx.dataset(spec.data)
    init = initial_state(TINY_MODEL, data, 0)
    job = TrainJob(model=TINY_MODEL, train=tiny_train(), init_state=init, data_seed=0,
                   mask={"conv9.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(LprError, match=r"conv9.weight"):
        train_many([job], data, EngineOptions(progress=False, device="cpu"))


def test_truncated_run_is_reported_not_used(ctx):
    [run_id] = ensure_finds(ctx, [tiny_find()])
    path = ctx.store.run_dir(run_id) / "masks.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    fresh = Context.at(ctx.store.root, engine=ctx.engine)
    with pytest.raises(LprError, match=r"is damaged: it has a file 'masks.safetensors' that does not match"):
        FindRun(fresh.store, run_id).mask(0.5)


def test_hand_edited_config_is_reported(ctx):
    [run_id] = ensure_finds(ctx, [tiny_find()])
    path = ctx.store.run_dir(run_id) / "run.json"
    path.write_text(path.read_text().replace('"lr": 0.05', '"lr": 0.5'))
    fresh = Context.at(ctx.store.root)
    with pytest.raises(LprError, match=r"'run.json' that does not match its checksum"):
        FindRun(fresh.store, run_id)


def test_killed_writer_leaves_no_run(ctx):
    spec = tiny_find()
    run_id = spec_hash(spec)
    with pytest.raises(RuntimeError):
        with ctx.store.new_run(run_id) as w:
            w.json("run.json", {"kind": "find"})
            raise RuntimeError("killed")
    assert not ctx.store.exists(run_id)
    assert not ctx.store.run_dir(run_id).exists()
    shutil.rmtree(ctx.store.root / ".tmp", ignore_errors=True)


def test_interp_and_controls_keep_a_layer_the_lpr_empties():
    """A source mask that empties a layer (global pruning may) interpolates at alpha 0 to
    that mask's LPR exactly, as its transplant does; an allocation that empties a layer
    (uniform on a one-weight layer) gives its exact total instead of an error."""
    from lprcausal.pipeline.masks import control_mask, interpolated_mask
    from lprcausal.pruning import count_removed, global_magnitude_masks, layerwise_ratios

    torch.manual_seed(0)
    weights = {"a": torch.randn(4, 3) * 0.01, "b": torch.randn(6, 3)}
    source = global_magnitude_masks(weights, 0.6)
    assert count_removed(source)["a"] == 12
    other = {n: torch.ones_like(m) for n, m in source.items()}
    other["b"][:, :] = False
    other["b"][0, :2] = True
    lpr_a, lpr_b = layerwise_ratios(source), layerwise_ratios(other)
    for alpha, want in ((0.0, source), (1.0, other)):
        got = interpolated_mask(weights, lpr_a, lpr_b, alpha)
        assert count_removed(got) == count_removed(want)
    tiny = {"a": torch.randn(1), "b": torch.randn(10)}
    mask = control_mask("uniform", tiny, None, 0.9, 0)
    assert sum(count_removed(mask).values()) == removal_count(0.9, 11)
