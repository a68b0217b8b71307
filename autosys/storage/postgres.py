"""A study kept in PostgreSQL: one schema per study, shared by processes on many hosts."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

from autosys.storage.base import StorageError
from autosys.storage.liveness import worker_id
from autosys.storage.sqlite import SCHEMA_VERSION, SQLiteStorage

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
            raise StorageError("a postgresql:// storage needs psycopg 3: pip install 'autosys-toolkit[db]'") from exc
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


