"""What every database workload offers, and a thin session over three DB-API drivers.

A `Benchmark` creates its tables, loads deterministic rows, produces a seeded
stream of operations (each a whole transaction), and executes one operation
through a `Session`. The same benchmark then runs unchanged on SQLite
(stdlib `sqlite3`), PostgreSQL (psycopg 3) and MariaDB/MySQL (pymysql): the
session converts `?` placeholders and names the per-dialect column types.
"""

from __future__ import annotations

import math
import numbers
import re
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

#: a server knob or option name: safe to put in SQL or on a command line (lower case, digits, _)
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

DIALECTS = ("sqlite", "postgres", "mysql")

#: column types per dialect, used as {blob}, {float}, {bigint} in schema strings
TYPES = {
    "sqlite": {"blob": "BLOB", "float": "REAL", "bigint": "INTEGER"},
    "postgres": {"blob": "BYTEA", "float": "DOUBLE PRECISION", "bigint": "BIGINT"},
    "mysql": {"blob": "LONGBLOB", "float": "DOUBLE", "bigint": "BIGINT"},
}


@lru_cache(maxsize=512)
def _format_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")


class Session:
    """One client connection in one dialect: execute with `?` placeholders, begin/commit/rollback.

    `sqlite3` connections must be opened with `isolation_level=None`, psycopg
    ones with `autocommit=True` and pymysql ones with `autocommit=True`, so
    that BEGIN/COMMIT here are the only transaction boundaries.
    """

    def __init__(self, conn: Any, dialect: str):
        if dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}")
        self.conn = conn
        self.dialect = dialect
        self._cursor = conn.cursor() if dialect == "mysql" else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.dialect == "sqlite":
            return self.conn.execute(sql, params)
        sql = _format_placeholders(sql)
        if self.dialect == "postgres":
            return self.conn.execute(sql, params)
        self._cursor.execute(sql, params)
        return self._cursor

    def execute_literal(self, sql: str) -> Any:
        """Run a statement that takes no parameters as written: a `%` in it (modulo) is never read as a placeholder."""
        if self.dialect == "mysql":
            self._cursor.execute(sql)
            return self._cursor
        return self.conn.execute(sql)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            self.conn.executemany(sql, rows)
            return
        sql = _format_placeholders(sql)
        if self.dialect == "postgres":
            with self.conn.cursor() as cur:
                cur.executemany(sql, list(rows))
        else:
            self._cursor.executemany(sql, list(rows))

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows: PostgreSQL's COPY (millions of rows in seconds), else executemany.

        `table` and `columns` come from a benchmark's own schema, never from user input.
        """
        if self.dialect == "postgres":
            with self.conn.cursor() as cur:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list:
        return list(self.execute(sql, params).fetchall())

    def begin(self, write: bool = True) -> None:
        # SQLite: take the write lock up front, so two writers never deadlock on an upgrade
        self.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" and write else "BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        try:
            self.execute("ROLLBACK")
        except Exception:  # no transaction open, or the connection is gone: nothing to undo
            pass

    def types(self) -> dict[str, str]:
        return TYPES[self.dialect]


def checked_settings(fields_of: type, label: str, spec: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> dict:
    """A workload dataclass's settings: `spec` with non-None `overrides` on top, unknown names rejected."""
    data = dict(spec or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = set(fields_of.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{label} workload: unknown setting {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}")
    return data


def check_counts(workload: Any, names: Sequence[str], minimum: int = 1) -> None:
    """Each named field of a (frozen) workload dataclass is a whole number >= `minimum`.

    An integral float (`2000.0` from TOML/JSON) becomes an int; NaN, infinity,
    fractions, booleans and strings are refused with one line naming the field.
    """
    for name in names:
        value = getattr(workload, name)
        whole = isinstance(value, numbers.Integral) or (
            isinstance(value, float) and math.isfinite(value) and value == int(value))
        if isinstance(value, bool) or not whole:
            raise ValueError(f"workload {workload.name!r}: {name} must be a whole number, not {value!r}")
        if int(value) < minimum:
            raise ValueError(f"workload {workload.name!r}: {name} must be at least {minimum}, not {int(value)}")
        object.__setattr__(workload, name, int(value))


def check_mix(workload: Any, what: str = "operation") -> None:
    """The mix's weights are finite, non-negative numbers that do not all vanish (they need not sum to one)."""
    mix = workload.mix
    if not isinstance(mix, Mapping) or not mix:
        raise ValueError(f"workload {workload.name!r}: mix must map {what}s to weights, not {mix!r}")
    for key, weight in mix.items():
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"workload {workload.name!r}: the weight of {what} {key!r} must be a finite number >= 0, "
                             f"not {weight!r}")
    if sum(mix.values()) <= 0:
        raise ValueError(f"workload {workload.name!r}: {what} weights must be non-negative and not all zero")


def check_memory(workload: Any, nbytes: float, what: str) -> None:
    """Refuse a workload whose in-memory part (estimated `nbytes`) exceeds the memory available now."""
    import psutil

    available = psutil.virtual_memory().available
    if nbytes > available:
        raise ValueError(f"workload {workload.name!r}: {what} needs about {nbytes / 2**30:,.1f} GiB of memory, "
                         f"but only {available / 2**30:,.1f} GiB is available")


class Benchmark(ABC):
    """A deterministic database workload: schema, initial rows, and a stream of transactions."""

    name: str = "benchmark"
    concurrency: int = 1

    @abstractmethod
    def signature(self) -> str:
        """A short string that changes whenever the loaded data would (cache key for base files)."""

    @abstractmethod
    def schema(self, dialect: str) -> list[str]:
        """CREATE TABLE / CREATE INDEX statements."""

    @abstractmethod
    def tables(self) -> list[str]:
        """The tables `schema` creates (for dropping)."""

    @abstractmethod
    def load(self, session: Session) -> None:
        """Insert the initial rows (tables exist; the caller commits)."""

    @abstractmethod
    def stream(self, seed: int) -> list[tuple]:
        """The operation stream; item[0] is the operation's kind (a str)."""

    @abstractmethod
    def execute(self, session: Session, item: tuple, index: int) -> None:
        """Run one operation as its own transaction(s); `index` is its position in the stream."""

    def create(self, session: Session) -> None:
        """Create the tables and load them in one transaction."""
        for statement in self.schema(session.dialect):
            session.execute(statement)
        session.begin()
        try:
            self.load(session)
            session.commit()
        except BaseException:
            session.rollback()
            raise

    def reset(self, session: Session) -> None:
        """Undo what earlier runs added (rows beyond the initial load), so trials stay comparable."""

    def drop(self, session: Session) -> None:
        for table in self.tables():
            session.execute(f"DROP TABLE IF EXISTS {table}")

    def to_json(self) -> dict:
        return {"name": self.name, "concurrency": self.concurrency}
