"""`autosys show DIR --watch`: follow a study as its trials land, until it ends, a deadline, or Ctrl-C.

The study's storage is read, never written (a watcher can open a study
another process is running). On a terminal the view is redrawn in place
(the latest trials); elsewhere each newly finished trial is one line, the
same line a running study logs (autosys/run/progress.py).

A study has ended when its trial budget is spent and no trial runs, or when
no live trial has run for `idle` seconds since its first trial (a time budget
ran out, patience stopped it, or its process died: a running trial whose
process on this host is gone does not count). Before its first trial a study
may spend long setting up (loading a database), so the watch waits for it
(`--timeout` bounds that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from autosys.core.system import Objective
from autosys.core.trial import Trial, TrialState
from autosys.run.progress import trial_line
from autosys.run.selection import best_trial
from autosys.storage import SQLiteStorage
from autosys.storage.liveness import worker_alive

#: seconds without a live running trial after which a study counts as ended (at least 3 refreshes)
IDLE_SECONDS = 15.0


@dataclass
class Snapshot:
    """What one look at the study found."""

    spec: dict
    trials: list[Trial]
    running: int  # trials running in a live process (or one on another host)

    @property
    def objective(self) -> Objective:
        return Objective.from_json(self.spec["objective"])

    @property
    def budget(self) -> int | None:
        return (self.spec.get("budget") or {}).get("trials")

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.finished]

    def best(self) -> Trial | None:
        return best_trial(self.trials, self.objective, intensify=bool(self.spec.get("intensify", False)), budget=self.budget)

    def budget_spent(self) -> bool:
        return self.budget is not None and len(self.finished) >= self.budget


def look(storage: SQLiteStorage) -> Snapshot | None:
    """The study's spec, trials and live running count now (None while it has no spec)."""
    spec = storage.load_spec()
    if spec is None:
        return None
    trials = storage.trials()
    workers = storage.trial_workers()
    running = sum(
        1 for t in trials
        if t.state in (TrialState.RUNNING, TrialState.PENDING) and worker_alive(workers.get(t.number, (None, 0))[0]) is not False
    )
    return Snapshot(spec, trials, running)


def watch(directory: Path, console: Console, render: Callable[[Snapshot, int | None], RenderableType], *,
          interval: float = 2.0, timeout: float | None = None, idle: float | None = None) -> str:
    """Follow the study in `directory` until it ends or `timeout` seconds pass; returns why it stopped.

    `render(snapshot, rows)` draws the terminal view with at most `rows` trials (None: all).
    Raises StorageError when there is no study; Ctrl-C propagates to the caller.
    """
    idle = max(IDLE_SECONDS, 3 * interval) if idle is None else idle
    deadline = None if timeout is None else time.monotonic() + timeout
    storage = SQLiteStorage(directory, create=False)
    live_view = console.is_terminal
    printed: set[int] = set()
    last_active = time.monotonic()
    try:
        with Live(console=console, auto_refresh=False, transient=False) if live_view else _nothing() as live:
            while True:
                snapshot = look(storage)
                now = time.monotonic()
                if snapshot is not None:
                    if live_view:
                        live.update(render(snapshot, max(5, console.height - 12)), refresh=True)
                    else:
                        _print_new_lines(console, snapshot, printed)
                    if snapshot.running or not snapshot.trials:  # before its first trial a study may set up for long
                        last_active = now
                    if snapshot.budget_spent() and not snapshot.running:
                        return "finished: its trial budget is spent"
                if now - last_active >= idle:
                    return f"not running: no trial has run for {idle:g} s (it ended, stopped early, or its process died)"
                if deadline is not None and now >= deadline:
                    return f"stopped watching after {timeout:g} s; the study goes on"
                time.sleep(min(interval, max(0.0, deadline - now)) if deadline is not None else interval)
    finally:
        storage.close()


def _print_new_lines(console: Console, snapshot: Snapshot, printed: set[int]) -> None:
    """One line per trial finished since the last look, in the order they finished."""
    new = sorted((t for t in snapshot.finished if t.number not in printed), key=lambda t: (t.finished_at or 0, t.number))
    if not new:
        return
    best = snapshot.best()  # the best now (for a backlog of trials: not as it was when each ended)
    for trial in new:
        printed.add(trial.number)
        console.print(Text(trial_line(trial, snapshot.objective, best, len(printed), snapshot.budget)), soft_wrap=True)


class _nothing:
    """A stand-in for Live off a terminal."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


__all__ = ["IDLE_SECONDS", "Snapshot", "look", "watch"]
