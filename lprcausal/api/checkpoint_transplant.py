"""Transplant a stored run's LPR onto weights from outside the store (a checkpoint file).

For each level ``s``: the checkpoint's weights are pruned layerwise by magnitude at the
exact per-layer counts of the source run's mask (``transplant_masks``), and the masks are
written to a file. With an eval, each mask is also compared with the checkpoint's own
global magnitude mask at the same sparsity: both are trained from the checkpoint
(fine-tuned, mask held) with H_eval per seed (and, if asked, at interpolated LPRs and at
control masks), giving the ordinary transplant Dataset
(:mod:`lprcausal.results.schema`) of one pair whose design is ``checkpoint``: the
source run is a, the checkpoint b, and only b's weights take both LPRs, so
``lprcausal stats`` and ``lprcausal figures`` read it as they read any transplant.nc.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from lprcausal.api.checkpoints import load_state_dict_file
from lprcausal.api.mask_files import save_masks
from lprcausal.config import (
    CONTROLS,
    DataConfig,
    ModelConfig,
    TrainConfig,
    check_sparsity,
    derive_seed,
)
from lprcausal.errors import LprError, bad_value, check_choice, check_distinct
from lprcausal.models import build_network
from lprcausal.pipeline import Context, FindRun
from lprcausal.pipeline.masks import control_mask, interpolated_mask
from lprcausal.pruning import (
    global_magnitude_masks,
    layerwise_ratios,
    overall_sparsity,
    transplant_masks,
)
from lprcausal.results.build import transplant_dataset
from lprcausal.results.check import check_transplant
from lprcausal.results.schema import CHECKPOINT, pair_label
from lprcausal.study.collect import provenance_attrs, setup_attrs
from lprcausal.study.spec import fixed_eval_label
from lprcausal.train import TrainJob, train_many


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_target(ctx: Context, path: str | os.PathLike, model: ModelConfig,
                data: DataConfig) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict, checked to load into ``model`` built for ``data``."""
    state = load_state_dict_file(path)
    ds = ctx.dataset(data)
    net = build_network(model, ds.in_shape, ds.n_classes)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise LprError(
            f"checkpoint {str(path)!r} does not fit model {model.name!r}: missing keys "
            f"{missing[:5]}, unexpected keys {unexpected[:5]}, shape mismatches (checkpoint vs "
            f"model) {wrong[:5]}; expected a state dict of that model (--model, --widths)."
        )
    return {k: state[k].to(v.dtype) for k, v in expected.items()}


def masks_out_paths(out: str | os.PathLike, levels: list[float]) -> list[Path]:
    """One file per level: ``out`` itself for one level, ``<stem>-s<level><suffix>`` for more."""
    out = Path(out)
    if len(levels) == 1:
        return [out]
    return [out.with_name(f"{out.stem}-s{s:g}{out.suffix}") for s in levels]


def transplant_onto_checkpoint(
    ctx: Context,
    source_ref: str,
    path: str | os.PathLike,
    model: ModelConfig,
    data: DataConfig,
    sparsities: tuple[float, ...],
    masks_out: str | os.PathLike,
) -> tuple[FindRun, list[float], dict[str, torch.Tensor], list[dict], list[Path]]:
    """Masks of the checkpoint at the source's LPR at each level, written to files.

    Returns the source run, the levels, the checkpoint state, the masks per level and
    the files written.
    """
    source = FindRun(ctx.store, ctx.store.resolve(source_ref, "--source"), "source")
    levels = [check_sparsity(s) for s in sparsities] or source.levels
    for s in levels:
        source.level(s, "--sparsity")
    state = load_target(ctx, path, model, data)
    weights = {}
    for name in source.prunable:
        if name not in state:
            raise LprError(
                f"source run {source.id} prunes {name!r}, which model {model.name!r} does not "
                "have: expected a target of the same architecture as the source run."
            )
        weights[name] = state[name]
    digest = _file_sha256(Path(path))
    masks, files = [], masks_out_paths(masks_out, levels)
    for s, out in zip(levels, files, strict=True):
        m = transplant_masks(source.mask(s), weights)
        masks.append(m)
        save_masks(out, m, method="transplant", source_run=source.id,
                   target_checkpoint=str(path), target_sha256=digest, model=model.to_dict())
    return source, levels, state, masks, files


def check_dose_and_controls(alphas: tuple[float, ...], controls: tuple[str, ...]) -> None:
    """Clear errors for a bad --alpha or --control, before anything trains."""
    for a in alphas:
        if not 0 <= a <= 1:
            raise bad_value("--alpha", a, "0 <= alpha <= 1")
    for c in controls:
        check_choice("--control", c, CONTROLS)
    check_distinct("--alpha", alphas)
    check_distinct("--control", controls)


def evaluate_transplant(
    ctx: Context,
    state: dict[str, torch.Tensor],
    masks: list[dict],
    levels: list[float],
    model: ModelConfig,
    data: DataConfig,
    h_eval: TrainConfig,
    seeds: tuple[int, ...],
    source: FindRun,
    path: str | os.PathLike,
    names: tuple[str, str],
    alphas: tuple[float, ...] = (),
    controls: tuple[str, ...] = (),
) -> xr.Dataset:
    """Train the checkpoint (weights b) at the source's LPR (``lpr_src = a``) and at its
    own global magnitude LPR (``b``) per seed and level: the transplant Dataset of the one
    pair ``names`` = (a, b) labels, design ``checkpoint`` (the cells of weights a NaN).

    ``alphas``: also at the LPR ``(1 - alpha) * LPR_a + alpha * LPR_b`` (dose-response);
    ``controls``: also at control masks of the same sparsity (:func:`control_mask`, drawn
    from the replicate seed). Every cell of one seed trains on the same data order.
    """
    check_dose_and_controls(alphas, controls)
    ds = ctx.dataset(data)
    prunable = list(masks[0])
    weights = {n: state[n] for n in prunable}
    shape = (1, 2, 2, len(seeds), len(levels))  # (pair, w_src, lpr_src, seed, sparsity)
    kinds = {
        "": shape,
        "_alpha": (1, len(alphas), len(seeds), len(levels)),  # (pair, alpha, seed, sparsity)
        "_control": (1, len(controls), 2, len(seeds), len(levels)),  # (.., control, w_src, ..)
    }
    jobs, where = [], []

    def add(kind: str, at: tuple, mask: dict, s: float, seed: int) -> None:
        jobs.append(TrainJob(model=model, train=h_eval, init_state=state,
                             data_seed=derive_seed(seed, "eval-data"), mask=mask,
                             label=f"transplant ckpt s{s:g}"))
        where.append((kind, at, overall_sparsity(mask)))

    # per level, what no seed changes: the checkpoint's own mask and the dose masks
    owns = [global_magnitude_masks(weights, s) for s in levels]
    doses = [[interpolated_mask(weights, layerwise_ratios(source.mask(s)),
                                layerwise_ratios(own), alpha) for alpha in alphas]
             for s, own in zip(levels, owns, strict=True)]
    for i, seed in enumerate(seeds):
        for j, (s, transplanted, own) in enumerate(zip(levels, masks, owns, strict=True)):
            for lp, mask in enumerate((transplanted, own)):
                add("", (0, 1, lp, i, j), mask, s, seed)  # weights b: the checkpoint
            for k, mask in enumerate(doses[j]):
                add("_alpha", (0, k, i, j), mask, s, seed)
            for k, control in enumerate(controls):
                add("_control", (0, k, 1, i, j), control_mask(control, weights, own, s, seed),
                    s, seed)
    cells = {kind: {"acc": np.full(shp, np.nan), "val_acc": np.full(shp, np.nan),
                    "mask_sparsity": np.full(shp, np.nan), "diverged": np.zeros(shp, dtype=bool)}
             for kind, shp in kinds.items()}
    for (kind, at, sparsity), result in zip(where, train_many(jobs, ds, ctx.engine),
                                            strict=True):
        m, c = result.metrics(), cells[kind]
        c["mask_sparsity"][at] = sparsity
        c["diverged"][at] = bool(m["diverged"])
        if not m["diverged"]:
            c["acc"][at] = m["test_acc"]
            c["val_acc"][at] = m["final_val_acc"]
    n_diverged = int(sum(c["diverged"].sum() for c in cells.values()))
    label = fixed_eval_label(h_eval, source.spec.train, ())[0]
    out = transplant_dataset([names], seeds, levels, cells[""], designs=[CHECKPOINT],
                             matches=["name"], alphas=alphas,
                             alpha_cells=cells["_alpha"] if alphas else None,
                             controls=controls,
                             control_cells=cells["_control"] if controls else None, attrs={
        **provenance_attrs("lprcausal transplant --target CHECKPOINT"),
        **setup_attrs(data, model, source.spec.prune),
        "title": f"LPR transplant {pair_label(*names)}",
        "h_eval": label,
        "h_eval_config": json.dumps(h_eval.to_dict(), sort_keys=True, default=list),
        "eval_mode": "finetune",
        "source_run": source.id,
        "target_checkpoint": str(path),
        "target_sha256": _file_sha256(Path(path)),
        "n_diverged": n_diverged,
    })
    check_transplant(out)
    return out
