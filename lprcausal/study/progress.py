"""Whole-study progress: runs done / total with an ETA, read from the run store.

The store is the shared state of every executor (in-process, Dask workers, another
process on the same store), so progress is measured there: a background thread
checks which pending runs have appeared. The bar counts optimizer steps (a find run
weighs as much as the training it does), so its ETA stays meaningful when find and
eval runs differ in length; the runs done / total are shown beside it. The engine's
per-group bars (one per fused training group) appear below it.

Without bars but with a ``log`` stream (``study run --no-progress``: stderr, e.g. a batch
job's log) the same poll writes one plain line whenever runs have finished and
``LOG_SECONDS`` have passed since the last line, so a long study's log moves as its
runs are stored (one long fused group says nothing until its runs are stored):
``study x: 45/120 runs, 38% of steps, 1m10s, about 2m left``.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

from lprcausal.store import RunStore

POLL_SECONDS = 1.0
LOG_SECONDS = 30.0


class StudyProgress:
    """Tracks ``pending`` runs (id -> optimizer steps) until each is stored or skipped."""

    def __init__(
        self,
        store: RunStore,
        pending: dict[str, int],
        total_runs: int,
        label: str,
        enabled: bool = True,
        log: TextIO | None = None,
    ):
        self.store = store
        self.pending = dict(pending)
        self.total_runs = total_runs
        self.done_runs = total_runs - len(pending)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = None
        self._thread = None
        self.label = label
        self._log = None if enabled else log  # plain lines instead of bars, if asked for
        self._steps_total = max(1, sum(self.pending.values()))
        self._steps_done = 0
        self._t0 = self._last_line = time.perf_counter()
        self._logged_runs = self.done_runs
        if self._log is not None and pending:
            self._thread = threading.Thread(target=self._poll_loop, daemon=True)
            self._thread.start()
        if enabled and pending:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=max(1, sum(pending.values())),
                desc=label,
                unit="step",
                unit_scale=True,
                dynamic_ncols=True,
                position=0,
                leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
            )
            self._describe()
            self._thread = threading.Thread(target=self._poll_loop, daemon=True)
            self._thread.start()

    def _describe(self) -> None:
        if self._bar is not None:
            self._bar.set_description_str(
                f"{self.label} {self.done_runs}/{self.total_runs} runs", refresh=True
            )

    def _poll_loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> None:
        """Move every pending run that is now in the store to done."""
        with self._lock:
            finished = [i for i in self.pending if self.store.exists(i)]
            self._finish(finished)

    def skip(self, ids) -> None:
        """Runs that will not be trained (their find run diverged): count them as done."""
        with self._lock:
            self._finish([i for i in ids if i in self.pending])

    def _finish(self, ids: list[str]) -> None:
        if not ids:
            return
        steps = sum(self.pending.pop(i) for i in ids)
        self.done_runs += len(ids)
        self._steps_done += steps
        if self._bar is not None:
            self._bar.update(steps)
            self._describe()
        if self._log is not None and time.perf_counter() - self._last_line >= LOG_SECONDS:
            self._write_line()

    def _write_line(self) -> None:
        """One plain progress line (bars off), if runs finished since the last one."""
        if self.done_runs == self._logged_runs:
            return
        now = time.perf_counter()
        elapsed, share = now - self._t0, self._steps_done / self._steps_total
        left = f", about {fmt_seconds(elapsed * (1 - share) / share)} left" if 0 < share < 1 else ""
        print(f"{self.label}: {self.done_runs}/{self.total_runs} runs, {share:.0%} of steps, "
              f"{fmt_seconds(elapsed)}{left}", file=self._log, flush=True)
        self._last_line, self._logged_runs = now, self.done_runs

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> StudyProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fmt_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0
