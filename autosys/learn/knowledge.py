"""The knowledge base: one store of finished studies, a SQLite file or a PostgreSQL schema.

Each study is kept with what finds it again and what it taught: its system
name, the host it ran on (`autosys.learn.host`), its workload signature (the
system's options, the default config's metrics and monitor means), its space
and objective, and every trial (config, value, state, metrics, monitors).

Where it lives: `--kb` on the command line, else AUTOSYS_KB, else
$XDG_DATA_HOME/autosys/knowledge.db (~/.local/share/autosys/knowledge.db);
a postgresql://USER@HOST/DB URL (optionally ?schema=NAME, default
autosys_kb) makes it a team's, shared by many hosts. "off" turns it off.

Crash safety: a study is added in one transaction (SQLite: BEGIN IMMEDIATE
on a WAL file with synchronous=FULL; PostgreSQL: one transaction under an
advisory lock), so a process killed while adding leaves the whole study or
none of it; every read checks that a study has as many trials as it says.
A file that is not a readable knowledge base raises one `KnowledgeBaseError`
naming the file and what to do. Nothing read back is executed: every field
is JSON, and system names are only compared as text.

May import: the standard library and `autosys.core` (psycopg only for a URL, on use).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from autosys.core.trial import Trial, TrialState

KIND = "autosys-knowledge-base"
SCHEMA_VERSION = 1
#: the environment variable naming the knowledge base (a path, a postgresql:// URL, or "off")
ENV = "AUTOSYS_KB"
#: tests only: seconds to sleep after each trial row while a study is added (to kill a process mid-transaction)
PAUSE_ENV = "AUTOSYS_KB_TEST_PAUSE"
OFF = ("off", "none", "no", "false", "0")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS kb_studies (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uid TEXT NOT NULL UNIQUE,
        system TEXT NOT NULL,
        name TEXT NOT NULL,
        origin TEXT NOT NULL,
        direction TEXT NOT NULL,
        metric TEXT NOT NULL,
        added_at REAL NOT NULL,
        n_trials INTEGER NOT NULL,
        best_value REAL,
        default_value REAL,
        host TEXT NOT NULL,
        signature TEXT NOT NULL,
        space TEXT NOT NULL,
        objective TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS kb_studies_system ON kb_studies(system)",
    """CREATE TABLE IF NOT EXISTS kb_trials (
        study_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        source TEXT NOT NULL,
        feasible INTEGER NOT NULL,
        value REAL,
        config TEXT NOT NULL,
        metrics TEXT NOT NULL,
        monitors TEXT NOT NULL,
        PRIMARY KEY (study_id, number)
    )""",
)

_SUMMARY_COLUMNS = "id, uid, system, name, origin, direction, metric, added_at, n_trials, best_value, default_value, host, signature, space, objective"


class KnowledgeBaseError(RuntimeError):
    """The knowledge base cannot be opened or read (the message names it and says what to do)."""


@dataclass
class StoredTrial:
    """One trial as the knowledge base keeps it."""

    number: int
    state: str
    config: dict[str, Any]
    value: float | None
    source: str = ""
    feasible: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    monitors: dict[str, float] = field(default_factory=dict)


@dataclass
class StoredStudy:
    """A finished study in the knowledge base (`trials` empty in listings, filled by `get`)."""

    uid: str
    system: str
    name: str
    origin: str
    direction: str
    metric: str
    host: dict[str, Any]
    signature: dict[str, Any]
    space: dict[str, Any]
    objective: dict[str, Any]
    trials: list[StoredTrial] = field(default_factory=list)
    n_trials: int = 0
    best_value: float | None = None
    default_value: float | None = None
    added_at: float = 0.0
    id: int | None = None

    def ranked(self) -> list[StoredTrial]:
        """Feasible complete trials with a finite value, best first (ties: earlier first)."""
        good = [t for t in self.trials if t.feasible and t.value is not None and math.isfinite(t.value)]
        sign = -1.0 if self.direction == "maximize" else 1.0
        return sorted(good, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- building an entry


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value))


def _monitor_means(info: Mapping[str, Any]) -> dict[str, float]:
    """trial.info["monitors"] as {metric: mean}: {"m": {"mean": x}} or {"m": x}; anything else is left out."""
    monitors = info.get("monitors")
    out: dict[str, float] = {}
    if not isinstance(monitors, Mapping):
        return out
    for name, reading in monitors.items():
        value = reading.get("mean") if isinstance(reading, Mapping) else reading
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[str(name)] = float(value)
    return out


def _finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        str(k): float(v) for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def workload_signature(spec: Mapping[str, Any], trials: Sequence[Trial]) -> dict[str, Any]:
    """What describes a study's workload: the system's options (scalars), and, when measured, the
    default config's metrics and monitor means (else the monitor means over all complete trials)."""
    options = {str(k): v for k, v in (spec.get("system_options") or {}).items() if _scalar(v)}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    default = next((t for t in complete if t.source == "default"), None)
    metrics = _finite_metrics(default.metrics) if default is not None else {}
    monitors = _monitor_means(default.info) if default is not None else {}
    if not monitors:
        sums: dict[str, list[float]] = {}
        for t in complete:
            for name, value in _monitor_means(t.info).items():
                sums.setdefault(name, []).append(value)
        monitors = {name: sum(v) / len(v) for name, v in sums.items()}
    return {"options": options, "metrics": metrics, "monitors": monitors}


def study_uid(spec: Mapping[str, Any]) -> str:
    """A study's identity across copies and moves: its system, tuner, seed and creation time."""
    key = json.dumps([spec.get("system"), spec.get("tuner"), spec.get("seed"), spec.get("created_at"),
                      spec.get("system_options")], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def entry_from_study(
    spec: Mapping[str, Any], trials: Sequence[Trial], *, host: Mapping[str, Any], name: str, origin: str
) -> StoredStudy:
    """A knowledge-base entry from a study's stored spec and trials (unfinished trials are left out)."""
    objective = dict(spec.get("objective") or {})
    direction = objective.get("direction", "maximize")
    kept = [
        StoredTrial(
            number=t.number,
            state=t.state.value,
            config=dict(t.config),
            value=t.value if t.value is not None and math.isfinite(t.value) else None,
            source=t.source,
            feasible=t.feasible and t.value is not None and math.isfinite(t.value),
            metrics=_finite_metrics(t.metrics),
            monitors=_monitor_means(t.info),
        )
        for t in trials
        if t.state.finished
    ]
    entry = StoredStudy(
        uid=study_uid(spec),
        system=str(spec.get("system", "")),
        name=name,
        origin=origin,
        direction=direction,
        metric=str(objective.get("metric", "")),
        host=dict(host),
        signature=workload_signature(spec, trials),
        space=dict(spec.get("space") or {}),
        objective=objective,
        trials=kept,
        n_trials=len(kept),
    )
    ranked = entry.ranked()
    entry.best_value = ranked[0].value if ranked else None
    default = next((t for t in kept if t.source == "default" and t.feasible), None)
    entry.default_value = default.value if default is not None else None
    return entry


def add_study(study: Any, location: "str | Path | KnowledgeBase | None" = None, *,
              origin: str | None = None) -> tuple[int, bool, str]:
    """Add a finished study (a `Study`: spec, trials(), directory) to the knowledge base at `location`
    (or to an open `KnowledgeBase`, which stays open).

    Returns (its id, whether it replaced an earlier entry of the same study, where the base is).
    The host recorded is this one (the fsync latency of the study directory's file system).
    """
    from autosys.learn.host import host_fingerprint

    directory = Path(study.directory) if getattr(study, "directory", None) is not None else None
    entry = entry_from_study(
        study.spec, study.trials(), host=host_fingerprint(directory).to_json(),
        name=directory.name if directory is not None else str(study.spec.get("system", "")),
        origin=origin if origin is not None else (str(directory.resolve()) if directory is not None else ""),
    )
    if isinstance(location, KnowledgeBase):
        study_id, replaced = location.add(entry)
        return study_id, replaced, location.where
    if location is not None and not isinstance(location, (str, Path)):
        raise TypeError(f"a knowledge base location is a path, a URL or a KnowledgeBase, not {type(location).__name__}")
    with open_knowledge_base(location) as base:
        study_id, replaced = base.add(entry)
        return study_id, replaced, base.where


# ----------------------------------------------------------------------------- where it lives


def default_location() -> str:
    """AUTOSYS_KB, else $XDG_DATA_HOME/autosys/knowledge.db (~/.local/share/autosys/knowledge.db)."""
    explicit = os.environ.get(ENV, "").strip()
    if explicit:
        return explicit
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "autosys" / "knowledge.db")


def is_off(location: str | None) -> bool:
    return location is not None and location.strip().lower() in OFF


def _is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_knowledge_base(location: str | Path | None = None, *, create: bool = True) -> "KnowledgeBase":
    """The knowledge base at `location` (a path or postgresql:// URL; default: `default_location()`)."""
    text = str(location) if location is not None else default_location()
    if is_off(text):
        raise KnowledgeBaseError(f"the knowledge base is turned off ({ENV}={text!r})")
    if _is_url(text):
        return PostgresKnowledgeBase(text, create=create)
    return KnowledgeBase(Path(text).expanduser(), create=create)


# ----------------------------------------------------------------------------- the store


def _dumps(value: Any) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and callable(v.item):  # numpy scalars
            return clean(v.item())
        return v

    return json.dumps(clean(value), sort_keys=True, allow_nan=False, default=str)


class KnowledgeBase:
    """Finished studies in one SQLite file; safe for several processes on one host."""

    def __init__(self, path: str | Path, *, create: bool = True, timeout: float = 30.0):
        self.path = Path(path)
        self.where = str(self.path)
        self._timeout = timeout
        self._conn: Any = None
        self._depth = 0
        self._lock = threading.RLock()
        if self.path.is_dir():
            raise KnowledgeBaseError(f"{self.path} is a directory; the knowledge base is a file (e.g. {self.path / 'knowledge.db'})")
        if not self.path.exists():
            if not create:
                raise KnowledgeBaseError(f"no knowledge base at {self.path} (it is made when a study adds itself)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    # --- errors the driver raises for "cannot read this"
    _db_errors: tuple[type[BaseException], ...] = (sqlite3.DatabaseError,)

    def _corrupt(self, detail: str) -> KnowledgeBaseError:
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        return KnowledgeBaseError(
            f"{self.where} is not a readable autosys knowledge base ({detail}). Move it aside "
            f"(mv {self.where} {self.where}.bad) to start an empty one, then `autosys kb add DIR` the studies "
            f"to keep; or point {ENV} or --kb at another file"
        )

    def _connect(self) -> Any:
        conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _open(self) -> None:
        try:
            self._conn = self._connect()
            self._check_integrity()
            self._setup()
        except self._db_errors as exc:
            self.close()
            raise self._corrupt(str(exc).strip()) from None
        except KnowledgeBaseError:
            self.close()
            raise

    def _check_integrity(self) -> None:
        row = self._conn.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise self._corrupt(f"integrity check failed: {row[0] if row else 'no answer'}")

    def _setup(self) -> None:
        """Check an existing base (read only: readers never wait on a writer), or make the schema."""
        conn = self._conn
        tables = {r[0] for r in conn.execute(self._TABLES_SQL).fetchall()}
        if tables and "kb_meta" not in tables:
            raise self._corrupt("it holds other tables: an autosys study file or another database, not a knowledge base")
        rows = dict(conn.execute("SELECT key, value FROM kb_meta").fetchall()) if tables else {}
        if not rows:
            with self.transaction():  # two processes making it at once: the second finds it made
                conn.execute(_SCHEMA[0])
                rows = dict(conn.execute("SELECT key, value FROM kb_meta").fetchall())
                if not rows:
                    for statement in _SCHEMA[1:]:
                        conn.execute(self._sql(statement))
                    rows = {"kind": KIND, "schema_version": str(SCHEMA_VERSION)}
                    for key, value in rows.items():
                        conn.execute(self._sql("INSERT INTO kb_meta(key, value) VALUES (?, ?)"), (key, value))
        if rows.get("kind") != KIND:
            raise self._corrupt(f"its kind is {rows.get('kind')!r}, not {KIND!r}")
        try:
            version = int(rows.get("schema_version", ""))
        except ValueError:
            raise self._corrupt(f"schema version {rows.get('schema_version')!r} is not a number") from None
        if version > SCHEMA_VERSION:
            raise KnowledgeBaseError(
                f"{self.where} uses knowledge-base schema {version}, newer than this autosys ({SCHEMA_VERSION}); upgrade autosys"
            )

    _TABLES_SQL = "SELECT name FROM sqlite_master WHERE type='table'"

    def _sql(self, statement: str) -> str:
        return statement

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction; nested uses join the outer one; writers queue on it."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- writing
    def add(self, entry: StoredStudy) -> tuple[int, bool]:
        """Add a study (replacing the entry of the same study, e.g. one resumed since); returns (id, replaced).

        One transaction: a process killed meanwhile leaves the old state, never half a study.
        """
        pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
        try:
            with self.transaction() as conn:
                old = conn.execute(self._sql("SELECT id FROM kb_studies WHERE uid = ?"), (entry.uid,)).fetchone()
                if old is not None:  # the same study again (resumed, or added by hand): replaced, keeping its id
                    self._delete(int(old[0]))
                columns = "uid, system, name, origin, direction, metric, added_at, n_trials, best_value, default_value, host, signature, space, objective"
                values: tuple = ()
                if old is not None:
                    columns, values = "id, " + columns, (int(old[0]),)
                (study_id,) = conn.execute(
                    self._sql(f"INSERT INTO kb_studies({columns}) VALUES ({', '.join('?' * (len(values) + 14))}) RETURNING id"),
                    (*values, entry.uid, entry.system, entry.name, entry.origin, entry.direction, entry.metric, time.time(),
                     len(entry.trials), entry.best_value, entry.default_value, _dumps(entry.host), _dumps(entry.signature),
                     _dumps(entry.space), _dumps(entry.objective)),
                ).fetchone()
                insert = self._sql(
                    "INSERT INTO kb_trials(study_id, number, state, source, feasible, value, config, metrics, monitors)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                )
                for t in entry.trials:
                    conn.execute(insert, (study_id, t.number, t.state, t.source, int(bool(t.feasible)), t.value,
                                          _dumps(t.config), _dumps(t.metrics), _dumps(t.monitors)))
                    if pause:
                        time.sleep(pause)
        except self._db_errors as exc:
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                raise self._corrupt(str(exc).strip()) from None  # "malformed" and the like: say what to do
            raise KnowledgeBaseError(f"cannot add a study to {self.where}: {str(exc).strip()}") from None
        entry.id = int(study_id)
        return entry.id, old is not None

    def _delete(self, study_id: int) -> None:
        self._conn.execute(self._sql("DELETE FROM kb_trials WHERE study_id = ?"), (study_id,))
        self._conn.execute(self._sql("DELETE FROM kb_studies WHERE id = ?"), (study_id,))

    def forget(self, study_id: int) -> bool:
        """Remove a study and its trials; False when there was none with this id."""
        try:
            with self.transaction() as conn:
                row = conn.execute(self._sql("SELECT id FROM kb_studies WHERE id = ?"), (int(study_id),)).fetchone()
                if row is None:
                    return False
                self._delete(int(study_id))
        except self._db_errors as exc:
            raise KnowledgeBaseError(f"cannot change {self.where}: {str(exc).strip()}") from None
        return True

    # --- reading
    def _loads(self, text: Any, what: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError) as exc:
            raise self._corrupt(f"{what} is not valid JSON: {exc}") from None

    def _summary(self, row: Sequence[Any]) -> StoredStudy:
        (sid, uid, system, name, origin, direction, metric, added, n, best, default, host, signature, space, objective) = row
        return StoredStudy(
            id=int(sid), uid=str(uid), system=str(system), name=str(name), origin=str(origin), direction=str(direction),
            metric=str(metric), added_at=float(added), n_trials=int(n), best_value=best, default_value=default,
            host=self._loads(host, f"study {sid}'s host"), signature=self._loads(signature, f"study {sid}'s signature"),
            space=self._loads(space, f"study {sid}'s space"), objective=self._loads(objective, f"study {sid}'s objective"),
        )

    def _query(self, sql: str, args: tuple = ()) -> list[Any]:
        try:
            return list(self._conn.execute(self._sql(sql), args).fetchall())
        except self._db_errors as exc:
            raise self._corrupt(str(exc).strip()) from None

    def studies(self, system: str | None = None, *, with_trials: bool = False) -> list[StoredStudy]:
        """Every study (of `system` if given), oldest first; with their trials when asked."""
        where, args = ("", ()) if system is None else (" WHERE system = ?", (system,))
        entries = [self._summary(r) for r in self._query(f"SELECT {_SUMMARY_COLUMNS} FROM kb_studies{where} ORDER BY id", args)]
        if with_trials:
            for entry in entries:
                self._fill(entry)
        return entries

    def get(self, study_id: int) -> StoredStudy | None:
        """One study with its trials, or None."""
        rows = self._query(f"SELECT {_SUMMARY_COLUMNS} FROM kb_studies WHERE id = ?", (int(study_id),))
        if not rows:
            return None
        return self._fill(self._summary(rows[0]))

    def _fill(self, entry: StoredStudy) -> StoredStudy:
        rows = self._query(
            "SELECT number, state, source, feasible, value, config, metrics, monitors FROM kb_trials"
            " WHERE study_id = ? ORDER BY number", (entry.id,),
        )
        if len(rows) != entry.n_trials:
            raise self._corrupt(f"study {entry.id} says it has {entry.n_trials} trials but {len(rows)} are stored")
        entry.trials = [
            StoredTrial(
                number=int(n), state=str(state), source=str(source), feasible=bool(feasible), value=value,
                config=self._loads(config, f"study {entry.id} trial {n}'s config"),
                metrics=self._loads(metrics, f"study {entry.id} trial {n}'s metrics"),
                monitors=self._loads(monitors, f"study {entry.id} trial {n}'s monitors"),
            )
            for n, state, source, feasible, value, config, metrics, monitors in rows
        ]
        return entry

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM kb_studies")[0][0])


# ----------------------------------------------------------------------------- PostgreSQL

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")


class _PgConn:
    """A psycopg connection with the small sqlite3-like surface `KnowledgeBase` uses."""

    def __init__(self, raw: Any):
        self.raw = raw

    def execute(self, sql: str, args: tuple = ()) -> Any:
        if sql.startswith("PRAGMA"):
            return self.raw.execute("SELECT 'ok'")
        return self.raw.execute(sql, args)

    def close(self) -> None:
        self.raw.close()


class PostgresKnowledgeBase(KnowledgeBase):
    """Finished studies in a PostgreSQL schema, shared by a team: postgresql://USER@HOST/DB[?schema=NAME].

    Every write transaction takes an advisory lock of the schema, the
    counterpart of SQLite's BEGIN IMMEDIATE, so concurrent adds queue instead of colliding.
    """

    def __init__(self, url: str, *, create: bool = True, timeout: float = 30.0):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        try:
            import psycopg
        except ImportError as exc:
            raise KnowledgeBaseError("a postgresql:// knowledge base needs psycopg 3: pip install 'autosys-toolkit[db]'") from exc
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.schema = query.pop("schema", "autosys_kb").lower()
        if not _SCHEMA_NAME.fullmatch(self.schema):
            raise KnowledgeBaseError(f"a knowledge-base schema name is 1-48 letters, digits or '_', not {self.schema!r}")
        self._psycopg = psycopg
        self._db_errors = (psycopg.Error,)
        self._conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        host = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        self.where = f"postgresql://{host}?schema={self.schema}"  # no user, no password
        self.path = Path(host)
        self._timeout = timeout
        self._conn = None
        self._depth = 0
        self._lock = threading.RLock()
        self._key = zlib.crc32(f"autosys-kb:{self.schema}".encode())
        self._create = create
        try:
            self._open()
        except psycopg.Error as exc:  # a connection that failed before _open caught it
            raise KnowledgeBaseError(f"cannot use the knowledge base {self.where}: {str(exc).strip()}") from None

    def _corrupt(self, detail: str) -> KnowledgeBaseError:
        return KnowledgeBaseError(
            f"cannot use the knowledge base {self.where}: {detail}. Check the server and the URL, or drop the schema "
            f"(DROP SCHEMA {self.schema} CASCADE) to start an empty one"
        )

    def _connect(self) -> Any:
        raw = self._psycopg.connect(self._conninfo, autocommit=True, connect_timeout=int(self._timeout))
        if not self._create:
            row = raw.execute("SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND table_name='kb_meta'",
                              (self.schema,)).fetchone()
            if row is None:
                raw.close()
                raise KnowledgeBaseError(f"no knowledge base in {self.where} (it is made when a study adds itself)")
        return _PgConn(raw)

    def _check_integrity(self) -> None:
        """PostgreSQL keeps its pages consistent itself; rows are still checked when read."""

    def _setup(self) -> None:
        self._conn.execute(f'SET search_path TO "{self.schema}"')  # the name was checked in __init__
        exists = self._conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (self.schema,)).fetchone()
        if exists is None:
            with self.transaction() as conn:  # two processes making the schema at once queue on the lock
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        super()._setup()

    _TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"

    def _sql(self, statement: str) -> str:
        text = statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        if text.lstrip().startswith("CREATE TABLE"):
            text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)
            text = re.sub(r"\bINTEGER\b", "BIGINT", text)
        return text.replace("?", "%s")

    def _begin(self) -> None:
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))

    def drop(self) -> None:
        """Delete this knowledge base (its schema) from the database."""
        self._conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.close()
