"""System-specific monitors: what SQLite files, a PostgreSQL or MariaDB server and RocksDB say about themselves.

Each is an `autosys.core.monitor.Monitor`: `sample()` returns one reading, with
counters turned into per-second rates over the time since the previous
reading. The agent and the learner read these beside the machine monitor.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from autosys.core.monitor import DeferredMonitor, Monitor, Rates
from autosys.core.system import SystemUnavailable


class SQLiteFileMonitor(Monitor):
    """Size of an SQLite database file and of its write-ahead log (0 when not in WAL mode)."""

    name = "sqlite-file"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def sample(self) -> dict[str, float]:
        def size(p: Path) -> float:
            try:
                return float(p.stat().st_size)
            except FileNotFoundError:
                return 0.0

        return {"db_bytes": size(self.path), "wal_bytes": size(Path(str(self.path) + "-wal"))}


_PG_DATABASE = ("xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
                "tup_inserted", "tup_updated", "tup_deleted", "temp_bytes", "deadlocks")
_PG_BGWRITER = ("checkpoints_timed", "checkpoints_req", "buffers_checkpoint", "buffers_clean", "buffers_backend",
                "buffers_alloc")


class PostgresMonitor(Monitor):
    """pg_stat_database (one database) and pg_stat_bgwriter, as rates, plus the buffer cache hit ratio."""

    name = "postgres"

    def __init__(self, url: str = "postgresql://postgres@127.0.0.1:5432/postgres", database: str | None = None,
                 connect_timeout: float = 3.0):
        self._url, self._timeout = url, max(int(connect_timeout), 1)
        self._conn = self._connect()
        self.database = database or self._conn.info.dbname
        self._rates = Rates()

    def _connect(self):
        import psycopg

        try:
            return psycopg.connect(self._url, autocommit=True, connect_timeout=self._timeout)
        except psycopg.OperationalError as exc:
            raise SystemUnavailable(f"cannot reach PostgreSQL at {self._url}: {exc}".strip()) from None

    def sample(self) -> dict[str, float]:
        import psycopg

        try:
            return self._sample()
        except psycopg.OperationalError:  # the server restarted (a restart knob changed): one new connection
            self._conn.close()
            self._conn = self._connect()
            self._rates = Rates()  # counters may have been reset: no rate across the restart
            return self._sample()

    def _sample(self) -> dict[str, float]:
        now = time.monotonic()
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(_PG_DATABASE)} FROM pg_stat_database WHERE datname = %s", (self.database,))
            row = cur.fetchone()
            cur.execute(f"SELECT {', '.join(_PG_BGWRITER)} FROM pg_stat_bgwriter")
            bg = cur.fetchone()
        # a trial's database may not exist yet (a benchmark database is copied from its template in the trial's
        # first second): the server-wide counters are still read, the database's are left out of that sample
        names = (_PG_DATABASE if row is not None else ()) + _PG_BGWRITER
        out: dict[str, float] = {}
        for name, value in zip(names, (tuple(row) if row is not None else ()) + tuple(bg)):
            out[f"{name}_per_s"] = self._rates(name, float(value or 0), now)
        if row is not None:
            reads, hits = out["blks_read_per_s"], out["blks_hit_per_s"]
            out["cache_hit_ratio"] = hits / (hits + reads) if hits + reads > 0 else float("nan")
        return out

    def close(self) -> None:
        self._conn.close()


class RocksDBMonitor(Monitor):
    """RocksDB's own properties of an open `rocksdict.Rdict` (sizes, keys, compactions, stalls)."""

    name = "rocksdb"
    PROPERTIES = (
        "rocksdb.estimate-num-keys",
        "rocksdb.cur-size-all-mem-tables",
        "rocksdb.num-running-compactions",
        "rocksdb.num-running-flushes",
        "rocksdb.estimate-live-data-size",
        "rocksdb.total-sst-files-size",
        "rocksdb.block-cache-usage",
        "rocksdb.estimate-pending-compaction-bytes",
        "rocksdb.actual-delayed-write-rate",
    )

    def __init__(self, db: Any):
        self.db = db

    def sample(self) -> dict[str, float]:
        out = {}
        for prop in self.PROPERTIES:
            value = self.db.property_int_value(prop)
            if value is not None:
                out[prop.removeprefix("rocksdb.").replace("-", "_")] = float(value)
        return out


class SQLiteFilesMonitor(Monitor):
    """Total size of the SQLite databases (and their write-ahead logs) matching `pattern` in a folder.

    `folder` is called at each sample, so it can follow the running trial's
    own folder (a system's `attempt_dir`); no folder yet reads as zero.
    """

    name = "sqlite-files"

    def __init__(self, folder: "Callable[[], Path | str | None]", pattern: str = "*.db"):
        self.folder = folder
        self.pattern = pattern

    def sample(self) -> dict[str, float]:
        where = self.folder()
        files = db = wal = 0.0
        if where is not None and Path(where).is_dir():
            for path in Path(where).glob(self.pattern):
                try:
                    db += path.stat().st_size
                    files += 1
                except FileNotFoundError:
                    continue
                try:
                    wal += Path(str(path) + "-wal").stat().st_size
                except FileNotFoundError:
                    pass
        return {"db_bytes": db, "wal_bytes": wal, "databases": files}


_MARIADB_COUNTERS = {
    "Innodb_buffer_pool_read_requests": "buffer_pool_read_requests",
    "Innodb_buffer_pool_reads": "buffer_pool_reads",
    "Innodb_buffer_pool_write_requests": "buffer_pool_write_requests",
    "Innodb_data_read": "data_read_bytes",
    "Innodb_data_written": "data_written_bytes",
    "Innodb_os_log_written": "log_written_bytes",
    "Innodb_row_lock_waits": "row_lock_waits",
    "Handler_read_rnd_next": "handler_read_rnd_next",
    "Rows_read": "rows_read",
    "Com_select": "com_select",
    "Com_insert": "com_insert",
    "Com_update": "com_update",
    "Com_delete": "com_delete",
    "Com_commit": "com_commit",
    "Questions": "questions",
    "Created_tmp_disk_tables": "created_tmp_disk_tables",
}
_MARIADB_GAUGES = {
    "Threads_running": "threads_running",
    "Threads_connected": "threads_connected",
    "Innodb_buffer_pool_pages_dirty": "buffer_pool_pages_dirty",
    "Innodb_buffer_pool_pages_free": "buffer_pool_pages_free",
}


class MariaDBMonitor(Monitor):
    """MariaDB/MySQL `SHOW GLOBAL STATUS`: InnoDB buffer pool, log and row counters as rates, thread
    and page gauges, and the buffer pool hit ratio (NaN when nothing was read)."""

    name = "mariadb"

    def __init__(self, host: str = "127.0.0.1", port: int = 3306, user: str = "root", password: str = "",
                 connect_timeout: float = 3.0):
        try:
            import pymysql
        except ImportError:
            raise SystemUnavailable("the db extra (pymysql) is not installed") from None
        try:
            self._conn = pymysql.connect(host=host, port=int(port), user=user, password=password, autocommit=True,
                                         connect_timeout=max(int(connect_timeout), 1), read_timeout=10, write_timeout=10)
        except pymysql.err.OperationalError as exc:
            raise SystemUnavailable(f"cannot reach MariaDB at {host}:{port}: {exc}") from None
        self._rates = Rates()

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        wanted = [*_MARIADB_COUNTERS, *_MARIADB_GAUGES]
        with self._conn.cursor() as cur:
            cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({', '.join(['%s'] * len(wanted))})", wanted)
            rows = {str(k): v for k, v in cur.fetchall()}
        out: dict[str, float] = {}
        for key, name in _MARIADB_COUNTERS.items():
            if key in rows:
                out[f"{name}_per_s"] = self._rates(name, float(rows[key] or 0), now)
        for key, name in _MARIADB_GAUGES.items():
            if key in rows:
                out[name] = float(rows[key] or 0)
        requests, reads = out.get("buffer_pool_read_requests_per_s", 0.0), out.get("buffer_pool_reads_per_s", 0.0)
        out["cache_hit_ratio"] = 1.0 - reads / requests if requests > 0 else float("nan")
        return out

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:
            pass


def server_monitors(system: Any) -> list[Monitor]:
    """The server's own monitor for a database-server system: PostgreSQL (a `url`) or MariaDB (`host`, `port`).

    Deferred: it connects at its first reading, so a server that is down
    leaves out only this monitor.
    """
    if getattr(system, "url", None):
        url, database = system.url, getattr(system, "database", None)
        return [DeferredMonitor("postgres", lambda: PostgresMonitor(url, database))]
    if getattr(system, "host", None):
        host, port, user = system.host, system.port, system.user
        password = getattr(system, "password", "")
        return [DeferredMonitor("mariadb", lambda: MariaDBMonitor(host, port, user, password))]
    return []
