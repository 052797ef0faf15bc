"""Check a run store: integrity of every run, and reproduction of a sample retrained alone.

:func:`check_store` verifies every run (see :class:`lprcausal.store.RunStore`), moves the
damaged ones aside and removes stale temp entries. :func:`retrain_alone` trains a stored
run again by itself (K = 1, no fusion) in a scratch store and reports how far its weights
and accuracy are from the stored ones, next to the seed-to-seed spread of that accuracy
among its sibling runs (same spec but the seed). On the CPU the difference is exactly 0
(a run's numbers do not depend on its group); on CUDA it shows the float noise.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lprcausal.pipeline.context import Context
from lprcausal.pipeline.evaluate import ensure_evals
from lprcausal.pipeline.find import ensure_finds
from lprcausal.pipeline.runs import StoredRun
from lprcausal.store import RunStore


@dataclass
class StoreCheck:
    """What :func:`check_store` found: valid ids, damaged ids -> reason, removed temp entries."""

    valid: list[str]
    damaged: dict[str, str]
    stale: list[Path]
    dangling_names: dict[str, str]


def check_store(store: RunStore, quarantine: bool = True) -> StoreCheck:
    """Verify every run; quarantine the damaged ones (unless ``quarantine=False``)."""
    stale = store.remove_stale_temp()
    valid, damaged = [], {}
    for run_id in store.run_ids():
        why = store.damage(run_id)
        if why is None:
            valid.append(run_id)
            continue
        damaged[run_id] = why
        if quarantine:
            store.quarantine(run_id, why, then="left for the command that made it to recompute")
    present = set(valid)
    dangling = {n: i for n, i in store.names().items() if i not in present}
    return StoreCheck(valid, damaged, stale, dangling)


def _accuracy(run: StoredRun) -> float:
    return float(run.metrics["dense_test_acc" if run.kind == "find" else "test_acc"])


def _sibling_key(run: StoredRun, store: RunStore) -> str:
    """The run's spec with every seed (and, for evals, the seed-specific parent ids) left out."""
    spec = run.spec.to_dict()
    spec.pop("seed", None)
    if run.kind == "eval":
        parent = spec.pop("find", None)
        if parent is not None and store.exists(parent):
            parent_spec = StoredRun(store, parent).spec.to_dict()
            parent_spec.pop("seed", None)
            spec["find_spec"] = parent_spec
        mask = dict(spec.get("mask", {}))
        for field in ("lpr_from", "lpr_to", "seed"):
            mask.pop(field, None)
        spec["mask"] = mask
    return repr(sorted((k, repr(v)) for k, v in spec.items()))


def seed_spread(store: RunStore, run: StoredRun) -> tuple[float, int]:
    """Standard deviation of the accuracy over the run's siblings (same spec, other seeds)."""
    key = _sibling_key(run, store)
    accs = []
    for other_id in store.run_ids():
        if not store.exists(other_id):
            continue
        other = StoredRun(store, other_id)
        if other.kind == run.kind and _sibling_key(other, store) == key:
            acc = _accuracy(other)
            if math.isfinite(acc):
                accs.append(acc)
    return (statistics.stdev(accs) if len(accs) > 1 else math.nan), len(accs)


def retrain_alone(ctx: Context, run_id: str) -> dict:
    """Train ``run_id`` again alone in a scratch store; compare with what is stored.

    Returns ``max_weight_diff`` (largest absolute difference over the final weights),
    ``acc_diff`` (absolute difference of the test accuracy), ``seed_std`` and ``n_seeds``
    (the accuracy's spread over the run's sibling seeds in the store).
    """
    stored = StoredRun(ctx.store, run_id)
    with tempfile.TemporaryDirectory(prefix="lprcausal-verify-") as scratch:
        fresh = dataclasses.replace(  # the same data (loaded once), a scratch store
            ctx, store=RunStore(Path(scratch) / "runs"),
            engine=dataclasses.replace(ctx.engine, fuse=False, progress=False),
        )

        for parent in stored.record.get("parents", []):
            shutil.copytree(ctx.store.run_dir(parent), fresh.store.run_dir(parent))
        ensure = ensure_finds if stored.kind == "find" else ensure_evals
        [new_id] = ensure(fresh, [stored.spec])
        again = StoredRun(fresh.store, new_id)
        old_w = ctx.store.read_tensors(run_id, "weights_final.safetensors")
        new_w = fresh.store.read_tensors(new_id, "weights_final.safetensors")
        diff = max(
            (float((old_w[n].double() - new_w[n].double()).abs().max()) for n in old_w
             if old_w[n].is_floating_point() and old_w[n].numel()),
            default=0.0,
        )
        acc_diff = abs(_accuracy(stored) - _accuracy(again))
    spread, n = seed_spread(ctx.store, stored)
    return {"run": run_id, "kind": stored.kind, "max_weight_diff": diff, "acc_diff": acc_diff,
            "seed_std": spread, "n_seeds": n}
