"""Compute only what the store lacks, safely alongside other processes.

Each missing run is claimed with its lock (without waiting); a damaged one is moved
aside (see :meth:`RunStore.quarantine`) once claimed. Claimed runs are
computed together (so the engine can fuse them) and written one by one as they
finish. Runs another process holds are waited for afterwards, and computed here only
if that process died without writing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lprcausal.config import spec_hash
from lprcausal.store import RunStore

# compute(specs, ids, write) must call write(i) after storing specs[i]
Compute = Callable[[list, list[str], Callable[[int], None]], None]


def ensure_runs(store: RunStore, specs: Sequence, compute: Compute) -> list[str]:
    """Return the run id of every spec, computing the missing ones."""
    ids = [spec_hash(s) for s in specs]
    pending: dict[str, object] = {}
    for run_id, spec in zip(ids, specs, strict=True):
        if run_id not in pending and not store.exists(run_id):
            pending[run_id] = spec
    if not pending:
        return ids
    claimed, locks, others = [], {}, []
    for run_id in pending:
        lock = store.try_lock(run_id)
        if lock is None:
            others.append(run_id)
        elif store.exists(run_id):
            lock.release()
        else:
            _set_aside(store, run_id)
            claimed.append(run_id)
            locks[run_id] = lock
    try:
        _compute_claimed(claimed, pending, locks, compute)
    finally:
        for lock in locks.values():
            lock.release()
    for run_id in others:
        with store.lock(run_id):
            if not store.exists(run_id):
                _set_aside(store, run_id)
                compute([pending[run_id]], [run_id], lambda i: None)
    return ids


def _set_aside(store: RunStore, run_id: str) -> None:
    """Quarantine a present but damaged run (the caller holds its lock)."""
    why = store.damage(run_id)
    if why is not None:
        store.quarantine(run_id, why)


def _compute_claimed(claimed, pending, locks, compute: Compute) -> None:
    if not claimed:
        return

    def written(i: int) -> None:
        lock = locks.pop(claimed[i], None)
        if lock is not None:
            lock.release()

    compute([pending[r] for r in claimed], claimed, written)
