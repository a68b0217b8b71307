"""System-specific monitors: what a database file, a PostgreSQL server and RocksDB say about themselves.

Each is an `autosys.online.monitor.Monitor`: `sample()` returns one reading, with
counters turned into per-second rates over the time since the previous
reading. The agent and the learner read these beside the machine monitor.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from autosys.online.monitor import Monitor, Rates
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
        import psycopg

        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=max(int(connect_timeout), 1))
        except psycopg.OperationalError as exc:
            raise SystemUnavailable(f"cannot reach PostgreSQL at {url}: {exc}".strip()) from None
        self.database = database or self._conn.info.dbname
        self._rates = Rates()

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(_PG_DATABASE)} FROM pg_stat_database WHERE datname = %s", (self.database,))
            row = cur.fetchone()
            if row is None:
                raise SystemUnavailable(f"no database {self.database!r} in pg_stat_database")
            cur.execute(f"SELECT {', '.join(_PG_BGWRITER)} FROM pg_stat_bgwriter")
            bg = cur.fetchone()
        out: dict[str, float] = {}
        for name, value in zip(_PG_DATABASE + _PG_BGWRITER, tuple(row) + tuple(bg)):
            out[f"{name}_per_s"] = self._rates(name, float(value or 0), now)
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
