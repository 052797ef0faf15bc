"""The eval phase: a mask on a find run's weights, retrained with H_eval.

Starting weights by mode: ``rewind`` (the find run's rewind point), ``finetune``
(the trained weights the mask was pruned from) or ``reinit`` (a fresh random
initialization, a control). Eval runs of one call train together (fused).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from lprcausal.config import EvalSpec, derive_seed
from lprcausal.pipeline.context import Context, initial_state
from lprcausal.pipeline.ensure import ensure_runs
from lprcausal.pipeline.masks import check_mask_kind, eval_masks
from lprcausal.pipeline.runs import FindRun
from lprcausal.provenance import provenance
from lprcausal.pruning import layerwise_ratios, overall_sparsity, unit_lpr
from lprcausal.train import TrainJob, pick_device, train_many


def ensure_evals(ctx: Context, specs: Sequence[EvalSpec]) -> list[str]:
    """Run ids of these eval specs, training the ones the store lacks."""
    for spec in specs:
        find = FindRun(ctx.store, spec.find, "find")
        find.require_engine("evaluate")
        find.level(spec.sparsity)
        check_mask_kind(find, spec.mask.kind)
        data = ctx.dataset(find.spec.data)
        spec.train.steps_per_epoch(data.n_train)
    return ensure_runs(ctx.store, specs, lambda s, ids, done: _compute(ctx, s, ids, done))


def _start_state(ctx: Context, spec: EvalSpec, find: FindRun, data):
    if spec.mode == "rewind":
        return find.rewind_state()
    if spec.mode == "finetune":
        return find.source_state(spec.sparsity)
    return initial_state(find.spec.model, data, spec.seed, role="reinit")


def _compute(ctx: Context, specs: list[EvalSpec], ids: list[str], done: Callable) -> None:
    prepared = []
    for spec, run_id in zip(specs, ids, strict=True):
        t0 = time.perf_counter()
        find = FindRun(ctx.store, spec.find, "find")
        data = ctx.dataset(find.spec.data)
        masks = eval_masks(ctx.store, spec, find)
        job = TrainJob(
            model=find.spec.model,
            train=spec.train,
            init_state=_start_state(ctx, spec, find, data),
            data_seed=derive_seed(spec.seed, "eval-data"),
            mask=masks.train,
            label=f"eval {run_id[:8]}",
        )
        prepared.append((spec, run_id, find, data, job, masks, time.perf_counter() - t0))
    by_data: dict = defaultdict(list)
    for k, item in enumerate(prepared):
        by_data[item[2].spec.data].append(k)
    for members in by_data.values():
        data = prepared[members[0]][3]

        def write(i: int, result, members=members) -> None:
            k = members[i]
            _write(ctx, *prepared[k][:3], prepared[k][5], result, prepared[k][6])
            done(k)

        train_many([prepared[k][4] for k in members], data, ctx.engine, on_result=write)


def _write(ctx, spec: EvalSpec, run_id: str, find: FindRun, masks, result, prep_s) -> None:
    mask = masks.weights
    metrics = {
        **result.metrics(),
        "sparsity": overall_sparsity(mask),
        "lpr": layerwise_ratios(mask),
        "find_acc": find.find_acc(spec.sparsity),
    }
    if masks.units is not None:
        metrics["unit_lpr"] = unit_lpr(masks.units, find.prunable)
    parents = sorted({find.id} | {r for r in (spec.mask.lpr_from, spec.mask.lpr_to) if r})
    record = {
        "id": run_id,
        "kind": "eval",
        "spec": spec.to_dict(),
        "parents": parents,
        "prunable": find.prunable,
        "layers": find.layers,
        "provenance": provenance(
            pick_device(ctx.engine.device), result.seconds + prep_s, result.execution()
        ),
    }
    with ctx.store.new_run(run_id) as w:
        w.json("run.json", record)
        w.json("metrics.json", metrics)
        w.tensors("mask.safetensors", mask)
        if masks.units is not None:
            w.tensors("unit_mask.safetensors", masks.units)
        w.tensors("weights_final.safetensors", result.state)

