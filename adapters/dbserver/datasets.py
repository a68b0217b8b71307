"""Loaded benchmark datasets kept on the server between runs, and restored to their initial state.

Loading a gigabyte of benchmark data takes minutes, so a loaded dataset is
kept — deliberately, across trials, studies and processes — in its own
database named after a fingerprint of its generator and parameters
(`autosys_ds_<16 hex>`), e.g. sysbench 1.0.20's OLTP tables at 8 x 600,000
rows on PostgreSQL. A study never writes to that pristine copy: it measures
in a copy of its own (`autosys_bench_<pid>_<token>`, dropped at teardown),
made from the pristine one before each measured run of a workload that
writes (so writes never accumulate across trials), and once per study for
a read-only workload.

- PostgreSQL: the pristine database is a template that accepts no
  connections (`IS_TEMPLATE`, `ALLOW_CONNECTIONS false`); a copy is
  `CREATE DATABASE run TEMPLATE pristine STRATEGY FILE_COPY` (PostgreSQL 15:
  a file copy with a checkpoint, instead of WAL-logging every block, which
  would itself force checkpoints into the next window).
- MariaDB/MySQL: there are no templates, so each table is copied with
  `CREATE TABLE .. LIKE` and `INSERT .. SELECT` (unique and foreign-key checks
  off: InnoDB's bulk load into an empty table), then `FLUSH TABLES .. FOR
  EXPORT` writes the copy's dirty pages, so the copy's own flushing does not
  fall into the next measured window.

A dataset counts as loaded only once its marker is written, last (the
PostgreSQL database comment, a one-row `autosys_dataset_info` table on
MariaDB); a load that died half-way is dropped and redone. Loads of one
dataset on one host are serialized by an flock.

These cache databases stay on the server on purpose. `list_datasets(server)`
shows them and `drop_datasets(server)` removes them (all, or the given
fingerprints); `--option keep_dataset=false` drops the one a run used at its
teardown. Only names that start with `autosys_ds_` are ever dropped. From a shell:

    python -c "from autosys_adapters.dbserver.postgres import PostgresKnobs as S;
from autosys_adapters.dbserver.datasets import drop_datasets; print(drop_datasets(S()))"

(`MySQLKnobs` for MariaDB; pass the server's url/host options to the class), or by
hand: PostgreSQL `ALTER DATABASE autosys_ds_X IS_TEMPLATE false; DROP DATABASE
autosys_ds_X`, MariaDB `DROP DATABASE autosys_ds_X`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from autosys.core.hostlocks import lock_dir
from autosys.core.system import SystemUnavailable
from autosys_adapters.workloads.base import Session

PREFIX = "autosys_ds_"
MARKER_TABLE = "autosys_dataset_info"
_NAME = re.compile(r"^autosys_(ds|bench)_[a-z0-9_]{1,50}$")
#: how long a process waits for another one loading the same dataset
LOAD_WAIT_SECONDS = 6 * 3600.0


def fingerprint(generator: str, params: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the generator and its parameters (JSON, sorted keys)."""
    text = json.dumps({"generator": generator, "params": dict(params)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: the generator (program and version) and the parameters it was run with."""

    generator: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.generator, self.params)

    @property
    def database(self) -> str:
        return f"{PREFIX}{self.fingerprint}"


@dataclass
class DatasetInfo:
    """A loaded dataset as its marker records it."""

    database: str
    generator: str
    params: dict
    loaded_at: float  # Unix time the load finished
    load_seconds: float
    checksums: dict = field(default_factory=dict)  # table -> "rows:content hash" right after the load


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"refusing to touch database {name!r}: not one autosys names")
    return name


class DatasetCache:
    """The datasets cached on one server, reached through a `ServerKnobs` system's admin connections.

    `loads` and `copies` count what this instance did (tests assert reuse with them).
    """

    def __init__(self, server: Any):
        self.server = server
        self.dialect = server.dialect
        if self.dialect not in ("postgres", "mysql"):
            raise ValueError(f"no dataset cache for dialect {self.dialect!r}")
        self.loads = 0
        self.copies = 0
        self.last_copy_seconds = float("nan")

    # ------------------------------------------------------------------ public
    def ensure(self, spec: DatasetSpec, load: Callable[[Session], None],
               check: Callable[[Session], None] | None = None) -> DatasetInfo:
        """The loaded dataset of `spec`: reused when its marker is there, else (re)loaded with `load(session)`.

        `check(session)` raises when a load returned without loading everything
        (a client killed mid-load may still exit 0); the marker is written only after it passes.
        """
        info = self.info(spec)
        if info is not None:
            return info
        with self._load_lock(spec):
            info = self.info(spec)  # another process may have loaded it while we waited
            if info is not None:
                return info
            name = spec.database
            self._drop(name)  # a half-loaded leftover
            self._create(name)
            started = time.monotonic()
            conn = self.server._admin(name)
            try:
                _no_statement_timeout(conn, self.dialect)
                load(Session(conn, self.dialect))
                if check is not None:
                    check(Session(conn, self.dialect))
                self._settle(conn, name)
            finally:
                conn.close()
            info = DatasetInfo(name, spec.generator, dict(spec.params), time.time(), time.monotonic() - started,
                               table_checksums(self.server, name))
            self._mark(name, info)
            self.loads += 1
            return info

    def info(self, spec_or_name: DatasetSpec | str) -> DatasetInfo | None:
        """The marker of a cached dataset, or None when it is absent or was never completely loaded."""
        name = spec_or_name.database if isinstance(spec_or_name, DatasetSpec) else _checked(spec_or_name)
        conn = self.server._admin()
        try:
            text = self._read_marker(conn, name)
        finally:
            conn.close()
        if not text:
            return None
        try:
            data = json.loads(text)
            return DatasetInfo(name, data["generator"], data["params"], float(data["loaded_at"]), float(data["load_seconds"]),
                               dict(data.get("checksums") or {}))
        except (ValueError, KeyError, TypeError):
            return None  # not our marker: treated as not loaded (and reloaded)

    def copy(self, spec: DatasetSpec, target: str) -> float:
        """Make `target` an exact copy of the pristine dataset (dropping what it held); returns the seconds taken."""
        _checked(target)
        if not target.startswith("autosys_bench_"):
            raise ValueError(f"refusing to overwrite {target!r}: copies go to autosys_bench_* databases only")
        started = time.monotonic()
        if self.dialect == "postgres":
            self._pg_copy(spec.database, target)
        else:
            self._my_copy(spec.database, target)
        self.copies += 1
        self.last_copy_seconds = time.monotonic() - started
        return self.last_copy_seconds

    def verify(self, spec: DatasetSpec, database: str) -> list[str]:
        """The tables of `database` whose content differs from the dataset as loaded (empty: an exact copy)."""
        info = self.info(spec)
        if info is None:
            raise ValueError(f"dataset {spec.database} is not loaded")
        now = table_checksums(self.server, database)
        return sorted(t for t in set(info.checksums) | set(now) if info.checksums.get(t) != now.get(t))

    def drop(self, spec_or_name: DatasetSpec | str) -> None:
        """Drop one cached dataset."""
        name = spec_or_name.database if isinstance(spec_or_name, DatasetSpec) else spec_or_name
        if not name.startswith(PREFIX):
            raise ValueError(f"refusing to drop {name!r}: not a cached dataset ({PREFIX}*)")
        self._drop(_checked(name))

    def names(self) -> list[str]:
        """Every cached dataset database on the server (loaded or not)."""
        conn = self.server._admin()
        try:
            if self.dialect == "postgres":
                rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'autosys\\_ds\\_%'").fetchall()
            else:
                with conn.cursor() as cur:
                    cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'autosys\\_ds\\_%%'")
                    rows = cur.fetchall()
        finally:
            conn.close()
        return sorted(r[0] for r in rows)

    # ------------------------------------------------------------------ dialects
    def _create(self, name: str) -> None:
        conn = self.server._admin()
        try:
            if self.dialect == "postgres":
                conn.execute(f'CREATE DATABASE "{_checked(name)}"')
            else:
                with conn.cursor() as cur:
                    cur.execute(f"CREATE DATABASE `{_checked(name)}`")
        finally:
            conn.close()

    def _drop(self, name: str) -> None:
        conn = self.server._admin()
        try:
            if self.dialect == "postgres":
                row = conn.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if row and row[0]:
                    conn.execute(f'ALTER DATABASE "{_checked(name)}" WITH IS_TEMPLATE false')
                conn.execute(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')
            else:
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{_checked(name)}`")
        finally:
            conn.close()

    def _settle(self, conn, name: str) -> None:
        """After a load: statistics and visibility, so every copy starts from the same settled state."""
        if self.dialect == "postgres":
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        else:
            with conn.cursor() as cur:
                for table in self._my_tables(conn, name):
                    cur.execute(f"ANALYZE TABLE `{table}`")
                    cur.fetchall()

    def _mark(self, name: str, info: DatasetInfo) -> None:
        text = json.dumps({"generator": info.generator, "params": info.params, "loaded_at": info.loaded_at,
                           "load_seconds": round(info.load_seconds, 3), "checksums": info.checksums}, sort_keys=True)
        if self.dialect == "postgres":
            conn = self.server._admin()
            try:
                sql = _psycopg_sql()
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(text)))
                # a pristine template: nobody connects (autovacuum included), so it never changes
                conn.execute(f'ALTER DATABASE "{_checked(name)}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            finally:
                conn.close()
        else:
            conn = self.server._admin(name)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"CREATE TABLE `{MARKER_TABLE}` (info TEXT NOT NULL)")
                    cur.execute(f"INSERT INTO `{MARKER_TABLE}` VALUES (%s)", (text,))
            finally:
                conn.close()

    def _read_marker(self, conn, name: str) -> str | None:
        if self.dialect == "postgres":
            row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                               (name,)).fetchone()
            return row[0] if row else None
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (name, MARKER_TABLE))
            if cur.fetchone() is None:
                return None
            cur.execute(f"SELECT info FROM `{_checked(name)}`.`{MARKER_TABLE}` LIMIT 1")
            row = cur.fetchone()
        return row[0] if row else None

    def _pg_copy(self, source: str, target: str) -> None:
        conn = self.server._admin()
        try:
            _no_statement_timeout(conn, "postgres")
            version = int(conn.execute("SHOW server_version_num").fetchone()[0])
            strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""  # before 15 every copy is a file copy
            conn.execute(f'DROP DATABASE IF EXISTS "{_checked(target)}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{_checked(target)}" TEMPLATE "{_checked(source)}"{strategy}')
        finally:
            conn.close()

    def _my_tables(self, conn, schema: str) -> list[str]:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'"
                        " AND TABLE_NAME <> %s ORDER BY TABLE_NAME", (schema, MARKER_TABLE))
            return [r[0] for r in cur.fetchall()]

    def _my_copy(self, source: str, target: str) -> None:
        conn = self.server._admin()
        try:
            tables = self._my_tables(conn, source)
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{_checked(target)}`")
                cur.execute(f"CREATE DATABASE `{_checked(target)}`")
                cur.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
            _no_statement_timeout(conn, "mysql")
            with conn.cursor() as cur:
                for table in tables:
                    if not re.match(r"^[A-Za-z0-9_]{1,64}$", table):
                        raise ValueError(f"refusing to copy table {table!r}: unexpected name")
                    cur.execute(f"CREATE TABLE `{target}`.`{table}` LIKE `{source}`.`{table}`")
                    cur.execute(f"INSERT INTO `{target}`.`{table}` SELECT * FROM `{source}`.`{table}`")
                if tables:
                    # write the copy's dirty pages now, not as background flushing inside the next measured window
                    cur.execute("FLUSH TABLES " + ", ".join(f"`{target}`.`{t}`" for t in tables) + " FOR EXPORT")
                    cur.execute("UNLOCK TABLES")
        finally:
            conn.close()

    # ------------------------------------------------------------------ locking
    class _Lock:
        def __init__(self, path: str, wait: float):
            self.path, self.wait, self.fd = path, wait, -1

        def __enter__(self):
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            deadline = time.monotonic() + self.wait
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return self
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(self.fd)
                        raise SystemUnavailable(f"another process has been loading this dataset for over {self.wait:g} s ({self.path})") from None
                    time.sleep(0.2)

        def __exit__(self, *exc):
            os.close(self.fd)  # releases the flock

    def _load_lock(self, spec: DatasetSpec) -> "DatasetCache._Lock":
        identity = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.server.identity()).strip("._") or "server"
        return self._Lock(str(lock_dir() / f"autosys-dataset-{self.server.name}-{identity}-{spec.fingerprint}.lock"),
                          LOAD_WAIT_SECONDS)


def _no_statement_timeout(conn, dialect: str) -> None:
    """Loading, settling and copying a gigabyte outlast the benchmark's statement timeout: lift it on this connection."""
    if dialect == "postgres":
        conn.execute("SELECT set_config('statement_timeout', '0', false)")
    else:
        with conn.cursor() as cur:
            cur.execute("SET SESSION max_statement_time = 0")
        # pymysql's client-side read timeout (the adapter's statement timeout + 5 s) would cut a long copy short
        conn._read_timeout = None
        conn._write_timeout = None


def _psycopg_sql():
    from psycopg import sql

    return sql


def table_checksums(server: Any, database: str) -> dict[str, str]:
    """A content checksum of every table of `database` (except the marker): equal checksums, equal data.

    PostgreSQL: the row count and the sum of each row's `hashtext` (one pass, no
    ordering, nothing held in memory); MariaDB: the row count and CHECKSUM TABLE.
    A PostgreSQL template that takes no connections (a cached dataset) cannot be
    read: compare against its marker's checksums instead (`DatasetCache.verify`).
    """
    _checked(database)
    out: dict[str, str] = {}
    if server.dialect == "postgres":
        conn = server._admin(database)
        try:
            _no_statement_timeout(conn, "postgres")
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
            for table in tables:
                if not re.match(r"^[A-Za-z0-9_]{1,63}$", table):
                    continue
                row = conn.execute(f'SELECT count(*), coalesce(sum(hashtext(t::text)::numeric), 0) FROM "{table}" t').fetchone()
                out[table] = f"{row[0]}:{row[1]}"
        finally:
            conn.close()
        return out
    conn = server._admin()
    try:
        _no_statement_timeout(conn, "mysql")
        cache = DatasetCache(server)
        for table in cache._my_tables(conn, database):
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
                count = cur.fetchone()[0]
                cur.execute(f"CHECKSUM TABLE `{database}`.`{table}`")
                out[table] = f"{count}:{cur.fetchone()[1]}"
    finally:
        conn.close()
    return out


def list_datasets(server: Any) -> list[DatasetInfo | str]:
    """The cached datasets on `server`: their markers, or the bare name of one never completely loaded."""
    cache = DatasetCache(server)
    return [cache.info(name) or name for name in cache.names()]


def drop_datasets(server: Any, fingerprints: list[str] | None = None) -> list[str]:
    """Drop the cached datasets on `server` (all, or those with the given fingerprints); returns the names dropped."""
    cache = DatasetCache(server)
    wanted = None if fingerprints is None else {f"{PREFIX}{f}" if not f.startswith(PREFIX) else f for f in fingerprints}
    dropped = []
    for name in cache.names():
        if wanted is None or name in wanted:
            cache.drop(name)
            dropped.append(name)
    return dropped


__all__ = ["DatasetCache", "DatasetInfo", "DatasetSpec", "PREFIX", "drop_datasets", "fingerprint", "list_datasets",
           "table_checksums"]
