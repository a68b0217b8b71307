"""A small key-value service on one SQLite file whose PRAGMAs change while it runs.

It is the host for the embedded agent demo: the application calls `get`,
`put` and `scan`; every call is timed into a `CounterMonitor`, which is what
the agent watches. `apply(config)` changes the live connection's PRAGMAs
under the same lock the operations take, so a change lands between two
operations, never inside one. Its fidelity (offline `evaluate`) is the number
of seconds the mix runs, down to 1/16 of `seconds`.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from autosys_adapters.dbserver.monitors import SQLiteFileMonitor
from autosys_adapters.sqlite.knobs import SQLiteKnobs, apply_pragmas
from autosys_adapters.workloads.ycsb import value_for
from autosys.online.monitor import CounterMonitor, Monitor
from autosys.core.space import Config, Space
from autosys.core.fidelity import Fidelity, stamp
from autosys.core.system import Measurement, Objective, System

#: the knobs that can change on a live connection (page_size needs a rebuild)
LIVE_KNOBS = ("journal_mode", "synchronous", "cache_size_kib", "mmap_size_mib", "temp_store")

#: operation mixes of the demo's phases: fractions of get / put / scan
PHASES: dict[str, dict[str, float]] = {
    "read-heavy": {"get": 0.95, "put": 0.05},
    "write-heavy": {"get": 0.1, "put": 0.9},
    "scan-heavy": {"scan": 0.7, "get": 0.2, "put": 0.1},
}


class SQLiteService(System):
    """A running SQLite key-value store, tunable live. Objective: throughput seen by the app.

    Args:
        path: the database file (none = a temporary one).
        records, value_size: rows loaded and the bytes of each value.
        durable: forbid settings that can lose committed data (--no-durable allows them).
        workload: the app's phase: read-heavy, write-heavy or scan-heavy.
        seconds: length of each measured window.
        seed: seeds the app's operations.
    """

    name = "sqlite-service"

    def __init__(self, path: str | None = None, records: int = 20_000, value_size: int = 100,
                 durable: bool = True, workload: str = "read-heavy", seconds: float = 1.0, seed: int = 0):
        if workload not in PHASES:
            raise ValueError(f"workload {workload!r} is not one of {', '.join(PHASES)}")
        self.path = Path(path) if path else None
        self.records, self.value_size, self.durable = records, value_size, durable
        self.workload, self.seconds, self.seed = workload, seconds, seed
        self.counter = CounterMonitor("kv-service")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._config: Config | None = None
        self._tmp: Path | None = None
        self._version = 0

    # --- the contract
    def space(self) -> Space:
        full = SQLiteKnobs(durable=self.durable).space()
        return Space([p for p in full if p.name in LIVE_KNOBS], full.constraints)

    @property
    def objective(self) -> Objective:
        return Objective("throughput", "maximize")

    def monitors(self) -> list[Monitor]:
        """The application's own counters (ops, latency percentiles) and the database and WAL sizes."""
        if self.path is None:
            self.setup()
        return [self.counter, SQLiteFileMonitor(self.path)]

    def setup(self) -> None:
        if self._conn is not None:
            return
        if self.path is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="autosys-service-"))
            self.path = self._tmp / "service.db"
        fresh = not self.path.exists()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if fresh:
            self._conn.execute("CREATE TABLE kv (key INTEGER PRIMARY KEY, value BLOB NOT NULL)")
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO kv VALUES (?, ?)",
                                   ((k, value_for(k, self.value_size)) for k in range(self.records)))
            self._conn.execute("COMMIT")
        self.apply(self.default())

    def teardown(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp, self.path = None, None

    def apply(self, config: Config) -> None:
        config = self.space().validate(config)
        if self._conn is None:
            self.setup()
        with self._lock:
            apply_pragmas(self._conn, config)
            self._config = dict(config)

    def current(self) -> Config:
        if self._config is None:
            return self.default()
        return dict(self._config)

    def fidelity(self) -> Fidelity:
        """Seconds of the workload's mix measured (full = `seconds`)."""
        return Fidelity("seconds", "duration", self.seconds / 16, self.seconds, unit="s", integer=False)

    def evaluate(self, config: Config, fidelity: float | None = None) -> Measurement:
        """Offline use: apply `config`, run this workload's mix for `seconds` (or `fidelity`), report throughput."""
        seconds = self.resolve_fidelity(fidelity)
        self.setup()
        self.apply(config)
        rng = np.random.default_rng(self.seed)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:  # small batches: a short window stops soon after it ends
            self.run_ops(PHASES[self.workload], rng, 10)
            done += 10
        elapsed = time.perf_counter() - start
        return Measurement({"throughput": done / elapsed}, info=stamp({}, self.fidelity(), seconds, done))

    # --- the application's operations
    def get(self, key: int) -> bytes | None:
        t0 = time.perf_counter()
        with self._lock:
            row = self._conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        self.counter.record("get", time.perf_counter() - t0)
        return row[0] if row else None

    def put(self, key: int, value: bytes) -> None:
        t0 = time.perf_counter()
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
        self.counter.record("put", time.perf_counter() - t0)

    def scan(self, start: int, count: int = 100) -> list[tuple[int, bytes]]:
        t0 = time.perf_counter()
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM kv WHERE key>=? LIMIT ?", (start, count)).fetchall()
        self.counter.record("scan", time.perf_counter() - t0)
        return rows

    def run_ops(self, mix: dict[str, float], rng: np.random.Generator, n: int) -> None:
        """Issue `n` operations drawn from `mix` (the demo client's inner loop)."""
        names = list(mix)
        ops = rng.choice(len(names), size=n, p=np.array([mix[k] for k in names]) / sum(mix.values()))
        keys = rng.integers(0, self.records, size=n)
        for op, key in zip(ops, keys):
            kind = names[op]
            if kind == "get":
                self.get(int(key))
            elif kind == "put":
                self._version += 1
                self.put(int(key), value_for(int(key), self.value_size, self._version))
            else:
                self.scan(int(key))
