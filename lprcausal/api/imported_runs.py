"""Masks between files and the run store: export a run's mask, import a file as a run.

An imported masks file becomes a run of kind ``import`` (:class:`ImportSpec`): one level
(the file's sparsity), the masks over the named parameters of a built model, and that
model's seeded initialization as rewind point. ``lprcausal lpr --compare`` and
``transplant --source`` read it like a find run, and ``lprcausal eval`` trains it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from lprcausal.api.mask_files import check_fits, load_masks, save_masks
from lprcausal.config import DataConfig, ImportSpec, ModelConfig, check_sparsity
from lprcausal.errors import LprError
from lprcausal.models import build_network, layer_table
from lprcausal.pipeline.context import Context, initial_state
from lprcausal.pipeline.ensure import ensure_runs
from lprcausal.pipeline.runs import FindRun, join_levels, level_key, open_run
from lprcausal.provenance import provenance
from lprcausal.pruning import layerwise_ratios, overall_sparsity, removal_count
from lprcausal.store import RunStore
from lprcausal.usercode import resolve_data, resolve_model


def export_masks(store: RunStore, ref: str, sparsity: float | None, out: str | os.PathLike) -> Path:
    """Write the mask of run ``ref`` (a find-like run at ``sparsity``, or an eval run) to
    ``out`` with its description in the header. Returns the path."""
    run = open_run(store, ref, "RUN")
    if isinstance(run, FindRun):
        if sparsity is None:
            have = ", ".join(f"{s:g}" for s in run.levels)
            raise LprError(
                f"--sparsity is missing: find run {run.id} has masks at sparsities {have}; "
                "expected one of them."
            )
        masks = run.mask(sparsity)
        method = getattr(getattr(run.spec, "prune", None), "method", run.kind)
        if run.kind == "import":
            method = "import"
    else:
        masks = run.mask()
        method = f"eval mask {run.spec.mask.kind}"
    extra = {}
    model = getattr(run.spec, "model", None)
    if model is not None:
        extra["model"] = model.to_dict()
    return save_masks(out, masks, method=method, source_run=run.id, run_kind=run.kind, **extra)


def masks_digest(masks: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the masks' names, shapes and bits (the imported run's identity)."""
    h = hashlib.sha256()
    for name, m in masks.items():
        h.update(json.dumps([name, list(m.shape)]).encode())
        h.update(m.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def import_masks(
    ctx: Context,
    path: str | os.PathLike,
    model: ModelConfig,
    data: DataConfig,
    seed: int = 0,
    sparsity: float | None = None,
) -> str:
    """Store the masks file ``path`` as an ``import`` run on ``model`` for ``data``; return
    its id. ``sparsity`` labels its level and must match the file's removal count exactly
    (``round(s * N)``); default: the file's own sparsity."""
    masks = load_masks(path)
    if not masks:
        raise LprError(
            f"masks file {str(path)!r} holds no masks: expected at least one bool tensor "
            "named after a parameter of the model (True = weight kept)."
        )
    model, data = resolve_model(model), resolve_data(data)  # user code: its identity
    dataset = ctx.dataset(data)
    net = build_network(model, dataset.in_shape, dataset.n_classes)
    check_fits(masks, net, f"masks file {str(path)!r}")
    order = [n for n, _ in net.named_parameters() if n in masks]
    masks = {n: masks[n] for n in order}
    level = overall_sparsity(masks)
    if sparsity is not None:
        s = check_sparsity(sparsity)
        n_total = sum(m.numel() for m in masks.values())
        removed = n_total - sum(int(m.sum()) for m in masks.values())
        if removal_count(s, n_total) != removed:
            raise LprError(
                f"--sparsity = {sparsity!r} does not match the masks file, which removes "
                f"{removed} of {n_total} weights (sparsity {level:.6g}): expected a sparsity "
                f"s with round(s * {n_total}) = {removed}."
            )
        level = s
    spec = ImportSpec(masks_sha256=masks_digest(masks), data=data, model=model,
                      sparsity=None if sparsity is None else level, seed=seed)

    def compute(specs, ids, done):
        t0 = time.perf_counter()
        metrics = {
            "levels": [level],
            "find_acc": {level_key(level): float("nan")},
            "lpr": {level_key(level): layerwise_ratios(masks)},
            "dense_test_acc": float("nan"),
            "rounds": [],
            "diverged": False,
            "source_file": str(path),
        }
        record = {
            "id": ids[0],
            "kind": spec.kind,
            "spec": spec.to_dict(),
            "prunable": order,
            "layers": layer_table(net, order),
            "provenance": provenance("cpu", time.perf_counter() - t0),
        }
        with ctx.store.new_run(ids[0]) as w:
            w.json("run.json", record)
            w.json("metrics.json", metrics)
            w.tensors("masks.safetensors", join_levels({level: masks}))
            w.tensors("weights_rewind.safetensors", initial_state(model, dataset, seed))
        done(0)

    [run_id] = ensure_runs(ctx.store, [spec], compute)
    return run_id
