"""Durable study storage: one SQLite file (WAL) per study directory.

Every trial is written before it runs and again when it ends, inside
transactions, so a process killed at any moment loses at most the trial that
was running (which a resume marks as failed, "interrupted"). Readers never see
a half-written record: a trial's result columns change in one transaction.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Mapping

from autosys.trial import Trial, TrialState

SCHEMA_VERSION = 1


class StorageError(RuntimeError):
    """The storage file is missing, corrupt, or from an unknown schema version."""


class Storage(ABC):
    """What a study needs from a place to keep its spec, trials and tuner state."""

    @abstractmethod
    def save_spec(self, spec: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def load_spec(self) -> dict[str, Any] | None: ...

    @abstractmethod
    def add_trial(self, trial: Trial, tuner_state: Mapping[str, Any] | None = None) -> Trial:
        """Record a new trial as running (and the tuner state that proposed it, atomically).

        Assigns `trial.number` if it is negative.
        """

    @abstractmethod
    def finish_trial(self, trial: Trial) -> None:
        """Record a trial's final state, value, metrics and error in one step."""

    @abstractmethod
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]: ...

    @abstractmethod
    def save_tuner_state(self, state: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def load_tuner_state(self) -> dict[str, Any] | None: ...

    def close(self) -> None:
        """Release the connection (idempotent)."""


def _json_safe(value: Any) -> Any:
    """Non-finite floats become None, so a NaN metric can never be read back as a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def dumps(value: Any) -> str:
    return json.dumps(_json_safe(value), sort_keys=True, allow_nan=False, default=str)


class SQLiteStorage(Storage):
    """A study's SQLite file. Safe for several processes on one host (BEGIN IMMEDIATE)."""

    FILENAME = "study.sqlite"

    def __init__(self, path: str | Path, *, create: bool = True, timeout: float = 30.0):
        self.path = Path(path)
        if self.path.is_dir() or self.path.suffix == "":
            self.path = self.path / self.FILENAME
        if not self.path.exists() and not create:
            raise StorageError(f"no study found at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        self._timeout = timeout
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StorageError(f"{self.path} is not a readable autosys study ({exc})") from exc

    # --- connection and schema
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
        return self._conn

    def _setup(self) -> None:
        conn = self.conn
        conn.execute("PRAGMA quick_check").fetchone()
        with self._transaction():
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._create_schema()
            elif int(row[0]) > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} uses storage schema {row[0]}, newer than this autosys ({SCHEMA_VERSION}); upgrade autosys"
                )
            elif int(row[0]) < SCHEMA_VERSION:
                self._upgrade(int(row[0]))

    def _create_schema(self) -> None:
        for statement in """
            CREATE TABLE IF NOT EXISTS spec (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS trials (
                number INTEGER PRIMARY KEY,
                state TEXT NOT NULL,
                config TEXT NOT NULL,
                source TEXT NOT NULL DEFAULT '',
                seed INTEGER,
                value REAL,
                metrics TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                info TEXT NOT NULL DEFAULT '{}',
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                heartbeat REAL,
                worker TEXT
            );
            CREATE TABLE IF NOT EXISTS tuner_state (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS observations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                time REAL NOT NULL,
                source TEXT NOT NULL,
                metrics TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                time REAL NOT NULL,
                kind TEXT NOT NULL,
                body TEXT NOT NULL
            );
            """.split(";"):
            if statement.strip():
                self.conn.execute(statement)
        self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def _upgrade(self, version: int) -> None:
        """Migrate an older schema in place (there is only version 1 so far)."""
        raise StorageError(f"{self.path}: no upgrade path from schema {version}")

    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, *_):
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _transaction(self) -> "SQLiteStorage._Tx":
        return self._Tx(self.conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- spec and tuner state
    def save_spec(self, spec: Mapping[str, Any]) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO spec(id, body) VALUES (1, ?)", (dumps(spec),))

    def load_spec(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT body FROM spec WHERE id = 1").fetchone()
        return None if row is None else json.loads(row[0])

    def save_tuner_state(self, state: Mapping[str, Any]) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO tuner_state(id, body) VALUES (1, ?)", (dumps(state),))

    def load_tuner_state(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT body FROM tuner_state WHERE id = 1").fetchone()
        return None if row is None else json.loads(row[0])

    # --- trials
    def add_trial(self, trial: Trial, tuner_state: Mapping[str, Any] | None = None) -> Trial:
        now = time.time()
        trial.state = TrialState.RUNNING
        trial.started_at = trial.started_at or now
        with self._transaction() as conn:
            if trial.number < 0:
                (last,) = conn.execute("SELECT COALESCE(MAX(number), -1) FROM trials").fetchone()
                trial.number = last + 1
            conn.execute(
                "INSERT INTO trials(number, state, config, source, seed, info, created_at, started_at, heartbeat)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trial.number,
                    trial.state.value,
                    dumps(trial.config),
                    trial.source,
                    trial.seed,
                    dumps(trial.info),
                    now,
                    trial.started_at,
                    now,
                ),
            )
            if tuner_state is not None:
                conn.execute("INSERT OR REPLACE INTO tuner_state(id, body) VALUES (1, ?)", (dumps(tuner_state),))
        return trial

    def finish_trial(self, trial: Trial) -> None:
        if not trial.state.finished:
            raise ValueError(f"trial {trial.number} is {trial.state.value}, not finished")
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        trial.finished_at = trial.finished_at or time.time()
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE trials SET state=?, value=?, metrics=?, error=?, info=?, finished_at=? WHERE number=?",
                (
                    trial.state.value,
                    value,
                    dumps(trial.metrics),
                    trial.error,
                    dumps(trial.info),
                    trial.finished_at,
                    trial.number,
                ),
            ).rowcount
            if updated != 1:
                raise StorageError(f"trial {trial.number} was never recorded as started")

    def heartbeat(self, number: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE trials SET heartbeat=? WHERE number=?", (time.time(), number))

    def mark_interrupted(self, reason: str = "interrupted: the process running it died") -> list[int]:
        """Turn trials left running by a dead process into failed ones; returns their numbers."""
        with self._transaction() as conn:
            numbers = [r[0] for r in conn.execute("SELECT number FROM trials WHERE state IN ('running','pending')")]
            conn.execute(
                "UPDATE trials SET state='failed', error=?, finished_at=? WHERE state IN ('running','pending')",
                (reason, time.time()),
            )
        return numbers

    def _row_to_trial(self, row: tuple) -> Trial:
        number, state, config, source, seed, value, metrics, error, info, started, finished = row
        return Trial(
            number=number,
            config=json.loads(config),
            state=TrialState(state),
            value=value,
            metrics={k: (float("nan") if v is None else v) for k, v in json.loads(metrics).items()},
            error=error,
            seed=seed,
            source=source,
            info=json.loads(info),
            started_at=started,
            finished_at=finished,
        )

    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]:
        query = (
            "SELECT number, state, config, source, seed, value, metrics, error, info, started_at, finished_at"
            " FROM trials"
        )
        args: tuple = ()
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args = tuple(s.value for s in states)
        try:
            rows = self.conn.execute(query + " ORDER BY number", args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot read trials from {self.path}: {exc}") from exc
        return [self._row_to_trial(r) for r in rows]

    def count(self, states: tuple[TrialState, ...]) -> int:
        marks = ",".join("?" * len(states))
        (n,) = self.conn.execute(
            f"SELECT COUNT(*) FROM trials WHERE state IN ({marks})", tuple(s.value for s in states)
        ).fetchone()
        return n

    # --- monitor observations and agent events (used by monitors and the agent)
    def add_observations(self, source: str, rows: list[tuple[float, Mapping[str, float]]]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO observations(time, source, metrics) VALUES (?, ?, ?)",
                [(t, source, dumps(m)) for t, m in rows],
            )

    def observations(self, source: str | None = None) -> Iterator[tuple[float, str, dict]]:
        query = "SELECT time, source, metrics FROM observations"
        args: tuple = ()
        if source is not None:
            query += " WHERE source = ?"
            args = (source,)
        for t, s, m in self.conn.execute(query + " ORDER BY id", args):
            yield t, s, json.loads(m)

    def add_event(self, kind: str, body: Mapping[str, Any]) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO events(time, kind, body) VALUES (?, ?, ?)", (time.time(), kind, dumps(body)))

    def events(self, kind: str | None = None) -> list[tuple[float, str, dict]]:
        query = "SELECT time, kind, body FROM events"
        args: tuple = ()
        if kind is not None:
            query += " WHERE kind = ?"
            args = (kind,)
        return [(t, k, json.loads(b)) for t, k, b in self.conn.execute(query + " ORDER BY id", args)]
