"""The find phase: train dense with H_find, prune to every level (one-shot or IMP).

One-shot: train once, then a global magnitude mask at each target sparsity.
IMP: train, prune to the next level globally (earlier pruned weights stay pruned),
rewind to the rewind point, retrain with the mask, and repeat up to the largest level;
the mask at every level is stored together with the weights it was pruned from.
Runs of one call are trained together, round by round, so the engine can fuse them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from lprcausal.config import FindSpec, derive_seed, point_to_step
from lprcausal.errors import LprError
from lprcausal.models import build_model, layer_table
from lprcausal.pipeline.context import Context, initial_state, prunable_set
from lprcausal.pipeline.ensure import ensure_runs
from lprcausal.pipeline.runs import join_levels, level_key
from lprcausal.provenance import provenance
from lprcausal.pruning import apply_masks, global_magnitude_masks, layerwise_ratios
from lprcausal.train import TrainJob, evaluate_states, pick_device, train_many


def ensure_finds(ctx: Context, specs: Sequence[FindSpec]) -> list[str]:
    """Run ids of these find specs, training the ones the store lacks."""
    for spec in specs:
        check_find(ctx, spec)
    return ensure_runs(ctx.store, specs, lambda s, ids, done: _compute(ctx, s, ids, done))


def check_find(ctx: Context, spec: FindSpec) -> None:
    """Reject a spec before any training: rewind point past the end, batch too large, ..."""
    data = ctx.dataset(spec.data)
    spe = spec.train.steps_per_epoch(data.n_train)
    total = spec.train.total_steps(data.n_train)
    rewind = point_to_step(spec.prune.rewind, spe, "rewind")
    if rewind > total:
        raise LprError(
            f"rewind = {spec.prune.rewind!r} is step {rewind}, beyond the training length of "
            f"H_find ({total} steps): expected a point between 'init' and '{total}it'."
        )
    build_model(spec.model.name, data.in_shape, data.n_classes, widths=spec.model.widths)
    if not prunable_set(spec.model, data, spec.prune.exclude_first, spec.prune.exclude_last):
        raise LprError(
            "exclude_first and exclude_last leave no prunable layer in model "
            f"{spec.model.name!r}: expected at least one prunable layer."
        )


class _Pending:
    """Book-keeping for one find run while its rounds train."""

    def __init__(self, ctx: Context, spec: FindSpec, run_id: str):
        self.spec, self.id = spec, run_id
        self.data = ctx.dataset(spec.data)
        self.names = prunable_set(
            spec.model, self.data, spec.prune.exclude_first, spec.prune.exclude_last
        )
        self.spe = spec.train.steps_per_epoch(self.data.n_train)
        self.rewind_step = point_to_step(spec.prune.rewind, self.spe, "rewind")
        self.levels = spec.prune.levels()
        self.init = initial_state(spec.model, self.data, spec.seed)
        self.rounds: list[dict] = []
        self.masks: dict[float, dict] = {}
        self.sources: dict[float, dict] = {}
        self.find_acc: dict[float, float] = {}
        self.rewind_state = None
        self.final_state = None
        self.t0 = time.perf_counter()

    def job(self, mask=None) -> TrainJob:
        capture = (self.rewind_step,) if mask is None else ()
        start = self.init if mask is None else self.rewind_state
        return TrainJob(
            model=self.spec.model,
            train=self.spec.train,
            init_state=start,
            data_seed=derive_seed(self.spec.seed, "find-data"),
            mask=mask,
            capture_steps=capture,
            label=f"find {self.id[:8]} r{len(self.rounds)}",
        )

    def absorb(self, result) -> TrainJob | None:
        """Take one round's result; return the next round's job (None when done)."""
        self.rounds.append(result.metrics())
        params = {n: result.state[n] for n in self.names}
        if len(self.rounds) == 1:
            self.rewind_state = result.snapshots[self.rewind_step]
            self.final_state = result.state
        if self.spec.prune.method == "oneshot":
            for s in self.levels:
                self.masks[s] = global_magnitude_masks(params, s)
                self.sources[s] = result.state
                self.find_acc[s] = result.test_acc
            return None
        level = self.levels[len(self.masks)]
        prior = self.masks[self.levels[len(self.masks) - 1]] if self.masks else None
        self.masks[level] = global_magnitude_masks(params, level, prior=prior)
        self.sources[level] = result.state
        self.find_acc[level] = result.test_acc
        if len(self.masks) == len(self.levels):
            return None
        return self.job(self.masks[level])


def _compute(ctx: Context, specs: list[FindSpec], ids: list[str], done: Callable) -> None:
    pending = [_Pending(ctx, s, i) for s, i in zip(specs, ids, strict=True)]
    by_data: dict = defaultdict(list)
    for k, p in enumerate(pending):
        by_data[p.spec.data].append(k)
    for members in by_data.values():
        data = pending[members[0]].data
        active = {k: pending[k].job() for k in members}
        while active:
            keys = list(active)
            results = train_many([active[k] for k in keys], data, ctx.engine)
            active = {}
            for k, res in zip(keys, results, strict=True):
                nxt = pending[k].absorb(res)
                if nxt is None:
                    _write(ctx, pending[k])
                    done(ids.index(pending[k].id))
                else:
                    active[k] = nxt


def _write(ctx: Context, p: _Pending) -> None:
    spec, data = p.spec, p.data
    masked = [
        {**p.sources[s], **apply_masks({n: p.sources[s][n] for n in p.names}, p.masks[s])}
        for s in p.levels
    ]
    pruned_acc = evaluate_states(spec.model, masked, data, "test", ctx.engine.device)
    net = build_model(spec.model.name, data.in_shape, data.n_classes, widths=spec.model.widths)
    metrics = {
        "levels": p.levels,
        "find_acc": {level_key(s): p.find_acc[s] for s in p.levels},
        "pruned_acc": {level_key(s): a for s, a in zip(p.levels, pruned_acc, strict=True)},
        "lpr": {level_key(s): layerwise_ratios(p.masks[s]) for s in p.levels},
        "dense_test_acc": p.rounds[0]["test_acc"],
        "rounds": p.rounds,
        "diverged": any(r["diverged"] for r in p.rounds),
        "rewind_step": p.rewind_step,
        "steps_per_epoch": p.spe,
    }
    record = {
        "id": p.id,
        "kind": "find",
        "spec": spec.to_dict(),
        "prunable": p.names,
        "layers": layer_table(net, p.names),
        "provenance": provenance(pick_device(ctx.engine.device), time.perf_counter() - p.t0),
    }
    with ctx.store.new_run(p.id) as w:
        w.json("run.json", record)
        w.json("metrics.json", metrics)
        w.tensors("weights_rewind.safetensors", p.rewind_state)
        w.tensors("weights_final.safetensors", p.final_state)
        w.tensors("masks.safetensors", join_levels(p.masks))
        if spec.prune.method == "imp":
            w.tensors("weights_levels.safetensors", join_levels(p.sources))
