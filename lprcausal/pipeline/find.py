"""The find phase: train dense with H_find, prune to every level (one-shot or IMP).

One-shot: train once, then a global magnitude mask at each target sparsity.
IMP: train, prune to the next level globally (earlier pruned weights stay pruned),
rewind to the rewind point, retrain with the mask, and repeat up to the largest level;
the mask at every level is stored together with the weights it was pruned from.
Structured (``prune.structure = "unit"``, one-shot): global unit masks at each level,
stored as ``unit_masks.safetensors`` beside their expansion to weight masks
(``masks.safetensors``, the unit's rows and its consumer's input columns removed), with
the unit LPR and the compacted model's parameter and FLOP counts in the metrics.
Runs of one call are trained together, round by round, so the engine can fuse them.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from lprcausal.compact import compaction_summary
from lprcausal.config import FindSpec, derive_seed, level_key, point_to_step
from lprcausal.errors import LprError
from lprcausal.models import build_network, layer_table
from lprcausal.models.units import layers_to_json, prunable_unit_layers, total_units
from lprcausal.models.user import check_output
from lprcausal.pipeline.context import Context, initial_state, prunable_set
from lprcausal.pipeline.ensure import ensure_runs
from lprcausal.pipeline.runs import join_levels
from lprcausal.provenance import provenance
from lprcausal.pruning import (
    apply_masks,
    global_magnitude_masks,
    global_unit_masks,
    layerwise_ratios,
    removal_count,
    unit_lpr,
    unit_weight_masks,
)
from lprcausal.train import TrainJob, evaluate_states, pick_device, train_many
from lprcausal.usercode import resolve_find


def ensure_finds(ctx: Context, specs: Sequence[FindSpec]) -> list[str]:
    """Run ids of these find specs, training the ones the store lacks.

    User code (a model or dataset by import path) not yet identified is identified here,
    relative to the working directory, and so are the images of dataset 'folder'
    (:meth:`Context.identify`); the ids are those of the identified specs.
    """
    specs = [resolve_find(s) for s in specs]
    specs = [s if (d := ctx.identify(s.data)) == s.data else replace(s, data=d) for s in specs]
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
    with torch.random.fork_rng(devices=[]):
        net = build_network(spec.model, data.in_shape, data.n_classes)
    if spec.model.is_user:
        check_output(net, spec.model.name, data.in_shape, data.n_classes)
    names = prunable_set(spec.model, data, spec.prune)
    if not names:
        raise LprError(
            "exclude_first and exclude_last leave no prunable layer in model "
            f"{spec.model.name!r}: expected at least one prunable layer."
        )
    if spec.prune.structure == "unit":
        _check_units(spec, net, names)


def _check_units(spec: FindSpec, net: torch.nn.Module, names: list[str]) -> None:
    """A structured spec needs a coupling rule and levels that leave a unit per layer."""
    layers = prunable_unit_layers(net, names)

    total, most = total_units(layers), total_units(layers) - len(layers)
    for s in spec.prune.levels():
        if removal_count(s, total) > most:
            raise LprError(
                f"sparsity = {s!r} removes {removal_count(s, total)} of the {total} units of "
                f"model {spec.model.name!r}, which would remove every unit of at least one "
                f"of its {len(layers)} unit layers ({', '.join(x.weight for x in layers)}): "
                f"expected sparsity <= {most / total:.6g}, so each layer keeps a unit."
            )


class _Pending:
    """Book-keeping for one find run while its rounds train."""

    def __init__(self, ctx: Context, spec: FindSpec, run_id: str):
        self.spec, self.id = spec, run_id
        self.data = ctx.dataset(spec.data)
        self.names = prunable_set(spec.model, self.data, spec.prune)
        self.spe = spec.train.steps_per_epoch(self.data.n_train)
        self.rewind_step = point_to_step(spec.prune.rewind, self.spe, "rewind")
        self.levels = spec.prune.levels()
        self.init = initial_state(spec.model, self.data, spec.seed)
        self.rounds: list[dict] = []
        self.executions: list[dict] = []
        self.masks: dict[float, dict] = {}
        self.sources: dict[float, dict] = {}
        self.find_acc: dict[float, float] = {}
        self.rewind_state = None
        self.final_state = None
        self.units = None  # structured runs: unit layers, unit masks and other masks per level
        self.unit_masks: dict[float, dict] = {}
        self.other_masks: dict[float, dict] = {}
        if spec.prune.structure == "unit":
            net = build_network(spec.model, self.data.in_shape, self.data.n_classes)
            self.units = prunable_unit_layers(net, self.names)
            self.shapes = {n: tuple(net.state_dict()[n].shape) for n in self.names}
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
        self.executions.append(result.execution())
        params = {n: result.state[n] for n in self.names}
        if result.diverged:
            # NaN/inf weights rank nothing. The run is still stored whole (flagged diverged,
            # NaN accuracy) so a study carries on; its masks are ranked with non-finite
            # weights as 0 and no further IMP round is trained.
            params = {n: torch.nan_to_num(p, nan=0.0, posinf=0.0, neginf=0.0)
                      for n, p in params.items()}
        if len(self.rounds) == 1:
            self.rewind_state = result.snapshots[self.rewind_step]
            self.final_state = result.state
        if self.units is not None:
            prune = self.spec.prune
            weights = {layer.weight: params[layer.weight] for layer in self.units}
            for s in self.levels:
                units = global_unit_masks(weights, s, prune.unit_norm, prune.unit_normalize)
                self.unit_masks[s] = units
                self.masks[s], self.other_masks[s] = unit_weight_masks(
                    units, self.units, self.shapes
                )
                self.sources[s] = result.state
                self.find_acc[s] = result.test_acc
            return None
        if self.spec.prune.method == "oneshot":
            for s in self.levels:
                self.masks[s] = global_magnitude_masks(params, s)
                self.sources[s] = result.state
                self.find_acc[s] = result.test_acc
            return None
        while True:
            level = self.levels[len(self.masks)]
            prior = self.masks[self.levels[len(self.masks) - 1]] if self.masks else None
            self.masks[level] = global_magnitude_masks(params, level, prior=prior)
            self.sources[level] = result.state
            self.find_acc[level] = result.test_acc
            if len(self.masks) == len(self.levels):
                return None
            if not result.diverged:
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
    masked = []
    for s in p.levels:
        # structured: biases and BatchNorm of removed units are zeroed too
        full = {**p.masks[s], **p.other_masks.get(s, {})}
        masked.append({**p.sources[s], **apply_masks({n: p.sources[s][n] for n in full}, full)})
    pruned_acc = evaluate_states(spec.model, masked, data, "test", ctx.engine.device)
    with torch.random.fork_rng(devices=[]):
        net = build_network(spec.model, data.in_shape, data.n_classes)
    metrics = {
        "levels": p.levels,
        "find_acc": {level_key(s): p.find_acc[s] for s in p.levels},
        # weights that diverged give no meaningful accuracy, pruned or not
        "pruned_acc": {
            level_key(s): a if math.isfinite(p.find_acc[s]) else math.nan
            for s, a in zip(p.levels, pruned_acc, strict=True)
        },
        "lpr": {level_key(s): layerwise_ratios(p.masks[s]) for s in p.levels},
        "dense_test_acc": p.rounds[0]["test_acc"],
        "rounds": p.rounds,
        "diverged": any(r["diverged"] for r in p.rounds),
        "rewind_step": p.rewind_step,
        "steps_per_epoch": p.spe,
    }
    if p.units is not None:
        metrics["unit_lpr"] = {level_key(s): unit_lpr(p.unit_masks[s], p.names) for s in p.levels}
        metrics["compact"] = {}
        for s in p.levels:
            net.load_state_dict(p.sources[s])
            metrics["compact"][level_key(s)] = compaction_summary(
                net, p.unit_masks[s], data.in_shape, p.units
            )
    record = {
        "id": p.id,
        "kind": "find",
        "spec": spec.to_dict(),
        "prunable": p.names,
        "layers": layer_table(net, p.names),
        **(_structure_record(p) if p.units is not None else {}),
        "provenance": provenance(
            pick_device(ctx.engine.device),
            time.perf_counter() - p.t0,
            {"rounds": p.executions},
        ),
    }
    with ctx.store.new_run(p.id) as w:
        w.json("run.json", record)
        w.json("metrics.json", metrics)
        w.tensors("weights_rewind.safetensors", p.rewind_state)
        w.tensors("weights_final.safetensors", p.final_state)
        w.tensors("masks.safetensors", join_levels(p.masks))
        if p.units is not None:
            w.tensors("unit_masks.safetensors", join_levels(p.unit_masks))
        if spec.prune.method == "imp":
            w.tensors("weights_levels.safetensors", join_levels(p.sources))


def _structure_record(p: _Pending) -> dict:
    """What a structured run adds to run.json: its unit layers (coupling) and the model's
    input shape and classes, so the model can be rebuilt (and compacted) without data."""
    return {
        "units": layers_to_json(p.units),
        "in_shape": list(p.data.in_shape),
        "n_classes": p.data.n_classes,
    }
