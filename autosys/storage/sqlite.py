"""Durable study storage: one SQLite file (WAL) per study directory.

Every trial is written before it runs and again when it ends, inside
transactions, so a process killed at any moment loses at most the trials that
were running (which are then marked failed, "interrupted"). Readers never see
a half-written record: a trial's result columns change in one transaction,
and a row whose JSON cannot be read is reported as corruption, never guessed.

Several processes (on one host, or hosts sharing a file system that honours
SQLite locks) may work on one study: trial numbers are assigned inside
`BEGIN IMMEDIATE` transactions, the tuner state carries a revision so a
process can tell that another one changed it, and every running trial names
its worker and carries a heartbeat, so a trial whose process died is found
and failed (`reap`).

Schema history: 1 = first release; 2 adds `tuner_state.revision` and
`trials.attempts`. Files of version 1 are upgraded in place when opened.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from autosys.core.trial import Trial, TrialState
from autosys.storage.base import Journal, Storage, StorageError, dumps
from autosys.storage.liveness import worker_alive, worker_id

SCHEMA_VERSION = 2

_RUNNING = ("running", "pending")

_SCHEMA_V1 = """
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
    )
"""

#: version -> statements that upgrade a file from version-1 to version
_UPGRADES: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE tuner_state ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE trials ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",
    ),
}


class SQLiteStorage(Storage, Journal):
    """A study's SQLite file. Safe for several processes on one host (BEGIN IMMEDIATE)."""

    FILENAME = "study.sqlite"

    def __init__(self, path: str | Path, *, create: bool = True, timeout: float = 30.0, schema_version: int | None = None):
        self.path = Path(path)
        # a study directory (any name, "run-0.5" too) holds study.sqlite; only an existing file or a
        # .sqlite/.db name is taken as the database file itself
        if not self.path.is_file() and self.path.suffix not in (".sqlite", ".db", ".sqlite3"):
            self.path = self.path / self.FILENAME
        if not self.path.exists() and not create:
            raise StorageError(f"no study found at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        self._timeout = timeout
        self._depth = 0
        self._lock = threading.RLock()
        self.worker = worker_id()
        #: only for tests of the upgrade path: create a file of an older schema
        self._create_version = schema_version or SCHEMA_VERSION
        try:
            self._setup()
        except self._db_errors as exc:
            self.close()
            raise StorageError(f"{self.path} is not a readable autosys study ({exc})") from exc

    # --- connection and schema
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
        return self._conn

    #: errors of the database driver that mean "cannot read this storage"
    _db_errors: tuple[type[BaseException], ...] = (sqlite3.DatabaseError,)

    def _check_integrity(self) -> None:
        check = self.conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")

    def _setup(self) -> None:
        conn = self.conn
        self._check_integrity()
        with self.transaction():
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._create_schema(self._create_version)
                return
            try:
                version = int(row[0])
            except ValueError:
                raise StorageError(f"{self.path}: schema version {row[0]!r} is not a number") from None
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} uses storage schema {version}, newer than this autosys ({SCHEMA_VERSION}); upgrade autosys"
                )
            if version < SCHEMA_VERSION:
                self._upgrade(version)

    @property
    def schema_version(self) -> int:
        (value,) = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(value)

    def _create_schema(self, version: int) -> None:
        for statement in _SCHEMA_V1.split(";"):
            if statement.strip():
                self.conn.execute(statement)
        for step in range(2, version + 1):
            for statement in _UPGRADES[step]:
                self.conn.execute(statement)
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))

    def _upgrade(self, version: int) -> None:
        """Migrate an older schema in place, step by step, inside the caller's transaction."""
        for step in range(version + 1, SCHEMA_VERSION + 1):
            if step not in _UPGRADES:
                raise StorageError(f"{self.path}: no upgrade path from schema {step - 1} to {step}")
            for statement in _UPGRADES[step]:
                self.conn.execute(statement)
        self.conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        self.conn.execute(
            "INSERT INTO events(time, kind, body) VALUES (?, 'schema_upgrade', ?)",
            (time.time(), dumps({"from": version, "to": SCHEMA_VERSION})),
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE); nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield conn
            except BaseException:
                self._depth = 0
                conn.execute("ROLLBACK")
                raise
            self._depth = 0
            conn.execute("COMMIT")

    _transaction = transaction

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def clone(self) -> "SQLiteStorage":
        """A second connection to the same file (for another thread, e.g. heartbeats)."""
        return SQLiteStorage(self.path, create=False, timeout=self._timeout)

    # --- spec and tuner state
    def save_spec(self, spec: Mapping[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO spec(id, body) VALUES (1, ?)", (dumps(spec),))

    def load_spec(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT body FROM spec WHERE id = 1").fetchone()
        return None if row is None else self._loads(row[0], "the study spec")

    def save_tuner_state(self, state: Mapping[str, Any]) -> int:
        """Store the tuner state with the next revision number; returns that revision."""
        with self.transaction() as conn:
            revision = self.tuner_revision() + 1
            conn.execute(
                "INSERT OR REPLACE INTO tuner_state(id, body, revision) VALUES (1, ?, ?)", (dumps(state), revision)
            )
        return revision

    def tuner_revision(self) -> int:
        """How many times the tuner state was saved (0: never); changes tell of another writer."""
        row = self.conn.execute("SELECT revision FROM tuner_state WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def load_tuner_state(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT body FROM tuner_state WHERE id = 1").fetchone()
        return None if row is None else self._loads(row[0], "the tuner state")

    def _loads(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StorageError(f"{self.path}: {what} is corrupt ({exc})") from None

    # --- trials
    def claim_trial(
        self, trial: Trial, *, tuner_state: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> Trial | None:
        """Like `add_trial`, but returns None (writing nothing) when `limit` trials already exist.

        The count and the insert happen in one transaction, so processes sharing
        a study can never together start more than `limit` trials.
        """
        now = time.time()
        with self.transaction() as conn:
            if limit is not None:
                (n,) = conn.execute("SELECT COUNT(*) FROM trials").fetchone()
                if n >= limit:
                    return None
            if trial.number < 0:
                (last,) = conn.execute("SELECT COALESCE(MAX(number), -1) FROM trials").fetchone()
                trial.number = last + 1
            trial.state = TrialState.RUNNING
            trial.started_at = trial.started_at or now
            conn.execute(
                "INSERT INTO trials(number, state, config, source, seed, info, created_at, started_at, heartbeat, worker)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    self.worker,
                ),
            )
            if tuner_state is not None:
                self.save_tuner_state(tuner_state)
        return trial

    def count(self, states: tuple[TrialState, ...] | None = None) -> int:
        if not states:
            (n,) = self.conn.execute("SELECT COUNT(*) FROM trials").fetchone()
            return n
        marks = ",".join("?" * len(states))
        (n,) = self.conn.execute(
            f"SELECT COUNT(*) FROM trials WHERE state IN ({marks})", tuple(s.value for s in states)
        ).fetchone()
        return n

    def finish_trial(self, trial: Trial, tuner_state: Mapping[str, Any] | None = None) -> bool:
        if not trial.state.finished:
            raise ValueError(f"trial {trial.number} is {trial.state.value}, not finished")
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        trial.finished_at = trial.finished_at or time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM trials WHERE number=?", (trial.number,)).fetchone()
            if row is None:
                raise StorageError(f"trial {trial.number} was never recorded as started")
            if row[0] not in _RUNNING:
                # failed meanwhile (its heartbeat was late): keep what was measured, as an event
                conn.execute(
                    "INSERT INTO events(time, kind, body) VALUES (?, 'late_result', ?)",
                    (
                        time.time(),
                        dumps({"number": trial.number, "state": trial.state.value, "value": value,
                               "metrics": trial.metrics, "error": trial.error, "worker": self.worker}),
                    ),
                )
                return False
            conn.execute(
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
            )
            if tuner_state is not None:
                self.save_tuner_state(tuner_state)
        return True

    def attempts(self, number: int) -> int:
        row = self.conn.execute("SELECT attempts FROM trials WHERE number=?", (number,)).fetchone()
        if row is None:
            raise StorageError(f"no trial {number} in {self.path}")
        return int(row[0])

    def adopt(self, number: int) -> None:
        """Take over a failed trial to run it again here (a retry): running, this worker, attempts + 1."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE trials SET state='running', error=NULL, finished_at=NULL, worker=?, heartbeat=?,"
                " attempts=attempts+1 WHERE number=?",
                (self.worker, time.time(), number),
            )

    def set_attempts(self, number: int, attempts: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE trials SET attempts=?, heartbeat=? WHERE number=?", (attempts, time.time(), number))

    def heartbeat(self, number: int | list[int] | tuple[int, ...]) -> None:
        """Say that these running trials are still being worked on."""
        numbers = [number] if isinstance(number, int) else list(number)
        if not numbers:
            return
        with self.transaction() as conn:
            now = time.time()
            conn.executemany(
                "UPDATE trials SET heartbeat=? WHERE number=? AND state='running'", [(now, n) for n in numbers]
            )

    def reap(self, grace: float | None, reason: str = "interrupted: the process running it died") -> list[Trial]:
        """Fail running trials whose worker is dead: a gone process on this host, or no heartbeat for `grace` s.

        With `grace=None` only trials of dead processes on this host are failed
        (trials of other hosts are left alone). Returns the trials failed.
        """
        now = time.time()
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT number, worker, heartbeat FROM trials WHERE state IN ('running','pending')"
            ).fetchall()
            dead = []
            for number, worker, beat in rows:
                alive = worker_alive(worker)
                stale = grace is not None and (beat is None or now - beat > grace)
                if alive is False or (stale and worker != self.worker):
                    dead.append(number)
            if dead:
                marks = ",".join("?" * len(dead))
                conn.execute(
                    f"UPDATE trials SET state='failed', error=?, finished_at=? WHERE number IN ({marks})",
                    (reason, now, *dead),
                )
                reaped = self._select(f" WHERE number IN ({marks})", tuple(dead))
            else:
                reaped = []
        return reaped

    def mark_interrupted(self, reason: str = "interrupted: the process running it died") -> list[int]:
        """Turn every trial left running into a failed one; returns their numbers.

        Only right when no other process works on the study; `reap` is the shared-study form.
        """
        with self.transaction() as conn:
            numbers = [r[0] for r in conn.execute("SELECT number FROM trials WHERE state IN ('running','pending')")]
            conn.execute(
                "UPDATE trials SET state='failed', error=?, finished_at=? WHERE state IN ('running','pending')",
                (reason, time.time()),
            )
        return numbers

    _COLUMNS = "number, state, config, source, seed, value, metrics, error, info, started_at, finished_at"

    def _row_to_trial(self, row: tuple) -> Trial:
        number, state, config, source, seed, value, metrics, error, info, started, finished = row
        try:
            trial_state = TrialState(state)
        except ValueError:
            raise StorageError(f"{self.path}: trial {number} has an unknown state {state!r} (corrupt file?)") from None
        if trial_state == TrialState.COMPLETE and value is None:
            raise StorageError(f"{self.path}: trial {number} is complete but has no value (corrupt file?)")
        return Trial(
            number=number,
            config=self._loads(config, f"trial {number}'s config"),
            state=trial_state,
            value=value,
            metrics={k: (float("nan") if v is None else v) for k, v in self._loads(metrics, f"trial {number}'s metrics").items()},
            error=error,
            seed=seed,
            source=source,
            info=self._loads(info, f"trial {number}'s info"),
            started_at=started,
            finished_at=finished,
        )

    def _select(self, where: str = "", args: tuple = ()) -> list[Trial]:
        try:
            rows = self.conn.execute(f"SELECT {self._COLUMNS} FROM trials{where} ORDER BY number", args).fetchall()
        except self._db_errors as exc:
            raise StorageError(f"cannot read trials from {self.path}: {exc}") from exc
        return [self._row_to_trial(r) for r in rows]

    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]:
        if states:
            return self._select(f" WHERE state IN ({','.join('?' * len(states))})", tuple(s.value for s in states))
        return self._select()

    def finished_for_tuner(self, told: set[int] | frozenset[int] = frozenset()) -> list[Trial]:
        """Finished trials proposed by a tuner (info has a tuner_number) whose number is not in `told`."""
        try:
            rows = self.conn.execute(
                "SELECT number, json_extract(info, '$.tuner_number') FROM trials"
                " WHERE state IN ('complete','failed','timed_out','pruned') AND json_extract(info, '$.tuner_number') IS NOT NULL"
            ).fetchall()
        except self._db_errors as exc:
            raise StorageError(f"cannot read trials from {self.path}: {exc}") from exc
        wanted = [n for n, tuner_number in rows if tuner_number not in told]
        out: list[Trial] = []
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            out += self._select(f" WHERE number IN ({','.join('?' * len(chunk))})", tuple(chunk))
        return out

    def trial_workers(self) -> dict[int, tuple[str | None, int]]:
        """number -> (worker, attempts), for inspection and tests."""
        rows = self.conn.execute("SELECT number, worker, attempts FROM trials").fetchall()
        return {n: (w, a) for n, w, a in rows}

    # --- monitor observations and agent events (used by monitors and the agent)
    def add_observations(self, source: str, rows: list[tuple[float, Mapping[str, float]]]) -> None:
        with self.transaction() as conn:
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
            yield t, s, self._loads(m, "an observation")

    def add_event(self, kind: str, body: Mapping[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO events(time, kind, body) VALUES (?, ?, ?)", (time.time(), kind, dumps(body)))

    def events(self, kind: str | None = None) -> list[tuple[float, str, dict]]:
        query = "SELECT time, kind, body FROM events"
        args: tuple = ()
        if kind is not None:
            query += " WHERE kind = ?"
            args = (kind,)
        return [(t, k, self._loads(b, "an event")) for t, k, b in self.conn.execute(query + " ORDER BY id", args)]
