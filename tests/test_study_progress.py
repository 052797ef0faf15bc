"""Study progress without bars: plain lines, one per interval in which runs finished."""

from __future__ import annotations

import io
import re

import lprcausal.study.progress as progress
from lprcausal.study.progress import StudyProgress


class FakeStore:
    def __init__(self):
        self.present: set[str] = set()

    def exists(self, run_id: str) -> bool:
        return run_id in self.present


def test_without_bars_a_line_is_written_when_runs_finished_and_the_interval_passed(monkeypatch):
    monkeypatch.setattr(progress, "POLL_SECONDS", 1e6)  # the test polls, not the thread
    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)
    store, log = FakeStore(), io.StringIO()
    # 5 runs in the study, 1 cached; pending runs weigh their optimizer steps
    bar = StudyProgress(store, {"a": 10, "b": 30, "c": 60, "d": 100}, 5, "study q",
                        enabled=False, log=log)
    bar.poll()
    assert log.getvalue() == ""  # nothing finished yet
    store.present |= {"a", "b"}
    bar.poll()
    bar.poll()  # nothing new: no second line
    store.present |= {"c"}
    bar.poll()
    bar.skip(["d"])  # its find run diverged: counted as done
    bar.close()
    lines = log.getvalue().splitlines()
    left = r", about \d+(s|m\d\ds) left"
    assert len(lines) == 3
    assert re.fullmatch(rf"study q: 3/5 runs, 20% of steps, \d+s{left}", lines[0])
    assert re.fullmatch(rf"study q: 4/5 runs, 50% of steps, \d+s{left}", lines[1])
    assert re.fullmatch(r"study q: 5/5 runs, 100% of steps, \d+s", lines[2])


def test_lines_wait_for_the_interval(monkeypatch):
    monkeypatch.setattr(progress, "POLL_SECONDS", 1e6)
    monkeypatch.setattr(progress, "LOG_SECONDS", 1e6)
    store, log = FakeStore(), io.StringIO()
    bar = StudyProgress(store, {"a": 1, "b": 1}, 2, "study q", enabled=False, log=log)
    store.present |= {"a"}
    bar.poll()
    bar.close()
    assert log.getvalue() == ""


def test_with_bars_no_plain_lines_are_written(monkeypatch):
    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)
    store, log = FakeStore(), io.StringIO()
    bar = StudyProgress(store, {"a": 1}, 1, "study q", enabled=True, log=log)
    store.present |= {"a"}
    bar.close()
    assert log.getvalue() == ""
