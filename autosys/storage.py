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
import os
import re
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Mapping

from autosys.trial import Trial, TrialState

SCHEMA_VERSION = 2

_RUNNING = ("running", "pending")


class StorageError(RuntimeError):
    """The storage file is missing, corrupt, or from an unknown schema version."""


def _process_start(pid: int) -> str:
    try:
        import psutil

        return f"{psutil.Process(pid).create_time():.2f}"
    except Exception:  # psutil missing or the process is gone
        return "?"


def worker_id() -> str:
    """host:pid:start-time of this process; the start time tells a reused pid apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def worker_alive(worker: str | None) -> bool | None:
    """True/False for a worker on this host; None when it runs elsewhere (only heartbeats can tell)."""
    if not worker:
        return False  # written by schema-1 code, which only knew "interrupted at resume"
    host, _, rest = worker.partition(":")
    if host != socket.gethostname():
        return None
    pid_text, _, started = rest.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return started == _process_start(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started in ("?", _process_start(pid))


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
    def finish_trial(self, trial: Trial) -> bool:
        """Record a trial's final state, value, metrics and error in one step.

        Returns False (and keeps the result as a "late_result" event) when the
        trial had already been finished by someone else, e.g. failed by `reap`.
        """

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


class SQLiteStorage(Storage):
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
    def add_trial(self, trial: Trial, tuner_state: Mapping[str, Any] | None = None) -> Trial:
        claimed = self.claim_trial(trial, tuner_state=tuner_state)
        assert claimed is not None
        return claimed

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
                " WHERE state IN ('complete','failed','timed_out') AND json_extract(info, '$.tuner_number') IS NOT NULL"
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


# ----------------------------------------------------------------------------- PostgreSQL

_STUDY_NAME = re.compile(r"[A-Za-z0-9_]{1,48}")


def _pg_sql(sql: str) -> str:
    """Translate the SQLite dialect used above into PostgreSQL's (only the forms this module writes)."""
    text = sql.strip()
    match = re.fullmatch(r"INSERT OR REPLACE INTO (\w+)\(([^)]*)\) VALUES (\(.*\))", text, flags=re.S)
    if match:
        table, columns, values = match.groups()
        names = [c.strip() for c in columns.split(",")]
        updates = ", ".join(f"{c}=EXCLUDED.{c}" for c in names[1:])
        text = f"INSERT INTO {table}({columns}) VALUES {values} ON CONFLICT ({names[0]}) DO UPDATE SET {updates}"
    if text.startswith("CREATE TABLE") or text.startswith("ALTER TABLE"):
        text = text.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)
        text = re.sub(r"\bINTEGER\b", "BIGINT", text)
    text = text.replace("json_extract(info, '$.tuner_number')", "((info::jsonb)->>'tuner_number')::bigint")
    return text.replace("?", "%s")


class _NoRows:
    def fetchone(self):
        return None

    def fetchall(self):
        return []

    def __iter__(self):
        return iter(())


class _PgConnection:
    """Gives a psycopg connection the small sqlite3-like surface SQLiteStorage uses."""

    def __init__(self, raw: Any, lock_key: int):
        self.raw = raw
        self.lock_key = lock_key

    def execute(self, sql: str, args: tuple = ()):
        if sql.startswith("PRAGMA"):
            return _NoRows()
        if sql == "BEGIN IMMEDIATE":  # one writer at a time per study, like SQLite's reserved lock
            self.raw.execute("BEGIN")
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
            return _NoRows()
        return self.raw.execute(_pg_sql(sql), tuple(args))

    def executemany(self, sql: str, rows) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(_pg_sql(sql), [tuple(r) for r in rows])

    def close(self) -> None:
        self.raw.close()


class PostgresStorage(SQLiteStorage):
    """A study kept in a PostgreSQL database (one schema per study), shared by processes on many hosts.

    URL: postgresql://USER@HOST:PORT/DB?study=NAME (NAME: letters, digits, _).
    Transactions take a per-study advisory lock, the counterpart of SQLite's
    BEGIN IMMEDIATE, so trial numbers and the budget stay exact across hosts.
    """

    def __init__(self, url: str, *, study: str | None = None, create: bool = True, timeout: float = 30.0):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        try:
            import psycopg
        except ImportError as exc:
            raise StorageError("a postgresql:// storage needs psycopg 3: pip install 'autosys[db]'") from exc
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise StorageError(f"not a PostgreSQL URL: {parts.scheme}://...")
        query = dict(parse_qsl(parts.query))
        name = query.pop("study", None) or (re.sub(r"[-.]", "_", study) if study else None)
        if not name or not _STUDY_NAME.fullmatch(name):
            raise StorageError(f"a PostgreSQL study name must be 1-48 letters, digits or '_', not {name!r}")
        self.url = url
        self.study = name.lower()
        self.schema = f"autosys_{self.study}"
        self._conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        self._psycopg = psycopg
        self._db_errors = (sqlite3.DatabaseError, psycopg.Error)
        self.path = Path(f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}#{self.study}")
        self._conn = None
        self._timeout = timeout
        self._depth = 0
        self._lock = threading.RLock()
        self.worker = worker_id()
        self._create_version = SCHEMA_VERSION
        try:
            exists = self._schema_exists()
            if not exists and not create:
                raise StorageError(f"no study {self.study!r} in {self.path.parent}")
            self._setup()
        except psycopg.Error as exc:
            self.close()
            raise StorageError(f"cannot use PostgreSQL study {self.path}: {str(exc).strip()}") from exc

    @property
    def conn(self):  # type: ignore[override]
        if self._conn is None:
            raw = self._psycopg.connect(self._conninfo, autocommit=True, connect_timeout=int(self._timeout))
            raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')  # the name was checked in __init__
            raw.execute(f'SET search_path TO "{self.schema}"')
            import zlib

            self._conn = _PgConnection(raw, zlib.crc32(self.schema.encode()))
        return self._conn

    def _schema_exists(self) -> bool:
        with self._psycopg.connect(self._conninfo, autocommit=True, connect_timeout=int(self._timeout)) as raw:
            row = raw.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND table_name='meta'", (self.schema,)
            ).fetchone()
        return row is not None

    def _check_integrity(self) -> None:
        """PostgreSQL keeps its own pages consistent; rows are still checked when read."""

    def clone(self) -> "PostgresStorage":
        return PostgresStorage(self.url, study=self.study, create=False, timeout=self._timeout)

    def drop(self) -> None:
        """Delete this study (its schema) from the database."""
        self.conn.raw.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.close()


def open_storage(location: str | Path, *, create: bool = True, study: str | None = None) -> SQLiteStorage:
    """A study directory or SQLite path, or a postgresql:// URL (with ?study=NAME or `study`)."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(text, study=study, create=create)
    return SQLiteStorage(location, create=create)


def storage_exists(location: str | Path, study: str | None = None) -> bool:
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            storage = PostgresStorage(text, study=study, create=False)
        except StorageError as exc:
            if "no study" in str(exc):
                return False
            raise
        storage.close()
        return True
    return (Path(location) / SQLiteStorage.FILENAME).exists() or (Path(location).is_file())
