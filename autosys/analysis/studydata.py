"""One study read for the report and the dashboard: its spec, trials, answer and agent decisions.

Read without building or importing the study's system. `load_study(...,
read_only=True)` opens the SQLite file with `mode=ro`, so the live dashboard can
read a study that another process is running without locking or changing it.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autosys.core.spec import redact_text
from autosys.core.system import Objective
from autosys.core.trial import TrialState
from autosys.run.selection import best_trial, gain_over_default
from autosys.run.study import open_study
from autosys.storage import SQLiteStorage, StorageError
from autosys.storage.sqlite import SCHEMA_VERSION


@dataclass
class StudyData:
    """What a report needs from one study directory, read without building its system."""

    directory: Path
    spec: dict[str, Any]
    trials: pd.DataFrame
    #: the study's answer (as `Study.best` picks it) and its gain over the default from paired runs
    best_number: int | None = None
    vs_default: dict | None = None
    #: the agent's logged decisions, (time, body) pairs (`autosys agent --dir DIR`)
    agent_events: list[tuple[float, dict]] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.spec["objective"]["metric"]

    @property
    def maximize(self) -> bool:
        return self.spec["objective"]["direction"] == "maximize"

    @property
    def label(self) -> str:
        return f"{self.spec['system']} / {self.spec['tuner']}"

    def best_so_far(self) -> np.ndarray:
        """Best feasible value after each trial (NaN until the first success)."""
        values = self.trials["value"].where(self.trials["feasible"].astype(bool)).astype(float).to_numpy()
        out = np.full(len(values), np.nan)
        best = np.nan
        for i, v in enumerate(values):
            if not math.isnan(v) and (math.isnan(best) or (v > best if self.maximize else v < best)):
                best = v
            out[i] = best
        return out


class ReadOnlySQLiteStorage(SQLiteStorage):
    """A study's SQLite file opened read-only (`mode=ro`): never upgrades, locks for writing or changes it.

    What the live dashboard reads with while a study is running in another process.
    """

    def __init__(self, path: str | Path, timeout: float = 5.0):
        super().__init__(path, create=False, timeout=timeout)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        return self._conn

    def _setup(self) -> None:
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = "no schema version" if row is None else f"schema {row[0]}"
            raise StorageError(f"{self.path}: {found}, this autosys reads schema {SCHEMA_VERSION}; "
                               "open it once with `autosys show` to upgrade it")


#: an agent directory holds decisions but no spec; its page shows the timeline alone
_AGENT_SPEC = {"system": "agent", "tuner": "agent", "objective": {"metric": "value", "direction": "minimize", "others": []}}


def load_study(directory: str | Path, url: str | None = None, *, read_only: bool = False) -> StudyData:
    """One study's spec, trials and agent decisions.

    url: its postgresql:// storage when it is kept there. read_only: open a study directory's
    SQLite file read-only (the dashboard, beside a running study); an agent's directory
    (decisions but no spec) loads with its timeline alone.
    """
    if read_only and url is None:
        storage = ReadOnlySQLiteStorage(directory)
        spec = storage.load_spec()
    else:
        try:
            storage, spec = open_study(directory, url)
        except StorageError as exc:
            if "no study spec" not in str(exc):
                raise
            storage, spec = SQLiteStorage(directory, create=False), None
    try:
        events = [(t, body) for t, _, body in storage.events("agent")]
        if spec is None:
            if not events:
                raise StorageError(f"{directory}: no study spec in the file")
            return StudyData(Path(directory), dict(_AGENT_SPEC), _empty_frame(), agent_events=events)
        rows = []
        trials = storage.trials()
        objective = Objective.from_json(spec["objective"])
        budget = (spec.get("budget") or {}).get("trials")
        answer = best_trial(trials, objective, intensify=bool(spec.get("intensify", False)), budget=budget)
        vs_default = gain_over_default(trials, objective, answer, budget)
        for t in trials:
            row = {
                "number": t.number,
                "state": t.state.value,
                "source": t.source,
                "value": t.value,
                "error": None if t.error is None else redact_text(t.error),  # no URL password in a report
                "feasible": t.feasible,
            }
            row.update({f"config.{k}": v for k, v in t.config.items()})
            row.update({f"metrics.{k}": v for k, v in t.metrics.items()})
            rows.append(row)
    finally:
        storage.close()
    frame = pd.DataFrame(rows) if rows else _empty_frame()
    return StudyData(Path(directory), spec, frame, None if answer is None else answer.number, vs_default, events)


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame(columns=["number", "state", "source", "value", "error", "feasible"])


def study_signature(directory: str | Path) -> list:
    """What changes when a trial lands or the agent decides: counts read read-only (cheap, for polling)."""
    storage = ReadOnlySQLiteStorage(directory)
    try:
        finished = (TrialState.COMPLETE, TrialState.FAILED, TrialState.TIMED_OUT, TrialState.PRUNED)
        (events,) = storage.conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'agent'").fetchone()
        return [storage.count(), storage.count(finished), int(events)]
    finally:
        storage.close()


__all__ = ["StudyData", "ReadOnlySQLiteStorage", "load_study", "study_signature"]
