"""SQLite PRAGMA tuning on a real database file: the embedded default system.

Each evaluation copies an identical, deterministically loaded database file,
applies the PRAGMAs on a fresh connection, replays a seeded YCSB-style
operation stream (one transaction per operation, as YCSB does) and repeats
that several times, reporting the median throughput with its spread.

`page_size` cannot change on a populated file without a rebuild, so the base
file is built once per page size (its build time is reported, not counted).
Only `journal_mode=WAL` persists in the file; every other PRAGMA here is per
connection, so the benchmark connection sets them all. Apply costs say so:
`page_size` needs a rebuild (VACUUM), `locking_mode` a new connection.

Fidelity: the number of operations replayed (a prefix of the seeded stream),
from about 1/32 of the stream to all of it; the time cap (`seconds`) shrinks
by the same fraction, so a lower fidelity does less work whichever binds.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import time
from dataclasses import replace
from pathlib import Path
import numpy as np

from autosys_adapters.workloads import load_benchmark
from autosys_adapters.workloads.base import Session
from autosys_adapters.workloads.runner import run_serial
from autosys_adapters.workloads.ycsb import YCSBBenchmark
from autosys_adapters.workloads.ycsb import DELETE, INSERT, READ, RMW, SCAN, UPDATE, operations, value_for
from autosys.core.space import Categorical, Condition, Config, Forbid, Int, Ordinal, Space
from autosys.core.fidelity import Fidelity, stamp
from autosys.core.system import Measurement, Objective, System
from autosys.core.monitor import Monitor, host_monitors
from autosys_adapters.dbserver.monitors import SQLiteFilesMonitor

JOURNAL_MODES = ("delete", "truncate", "persist", "memory", "wal", "off")
SYNCHRONOUS = ("off", "normal", "full", "extra")

#: knobs whose values risk more than speed, as https://www.sqlite.org/pragma.html describes them;
#: a study leaves these values out unless the user allows the knob (--allow-risky NAME)
RISKS = {
    "locking_mode": dict(risk="availability: other connections can no longer read or write the database file", risky_values=("exclusive",)),
    "wal_autocheckpoint": dict(risk="unbounded disk use: with automatic checkpoints off the WAL file grows without bound", risky_values=(0,)),
}
#: values that give up durability, forbidden while `durable` (https://www.sqlite.org/pragma.html):
#: synchronous=normal lets a WAL commit roll back on a power loss or OS crash, off lets either journal
#: lose commits or corrupt the file; journal_mode off or memory keeps no rollback journal on disk
NOT_DURABLE = {"synchronous": ("off", "normal"), "journal_mode": ("off", "memory")}
MIB = 1 << 20
PAGE_SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
MMAP_MIB = (0, 1, 4, 16, 64, 256)


class SQLiteKnobs(System):
    """Tunes SQLite PRAGMAs for throughput on a YCSB-style workload.

    Args:
        workload: preset name (e.g. ycsb-a, tpcc-like, analytic) or a JSON/TOML file.
        records: rows loaded before the run.
        operations: operations in each measured run.
        repeats: measured runs per trial; the median is reported.
        seconds: cap on each measured run.
        durable: forbid settings that can lose committed data (--no-durable allows them).
        seed: seeds the workload.
    """

    name = "sqlite"

    def __init__(
        self,
        workload: str = "ycsb-a",
        records: int = 5_000,
        operations: int = 3_000,
        repeats: int = 3,
        seconds: float = 1.0,
        durable: bool = True,
        seed: int = 0,
    ):
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        bench = load_benchmark(workload, records=records, operations=operations)
        # YCSB keeps the tuned loop below; other benchmarks (tpcc-like, analytic) run through autosys_adapters.workloads
        self.bench = None if isinstance(bench, YCSBBenchmark) else bench
        self.workload = bench.workload
        self.repeats = repeats
        self.seconds = seconds
        self.durable = durable
        self.seed = seed
        self._stream = None

    # --- the contract
    def space(self) -> Space:
        params = [
            Categorical("journal_mode", JOURNAL_MODES, default="delete"),
            Categorical("synchronous", SYNCHRONOUS, default="full"),
            Int("cache_size_kib", 64, 262_144, log=True, default=2_000),
            Ordinal("mmap_size_mib", MMAP_MIB, default=0),
            Categorical("temp_store", ("default", "file", "memory"), default="default"),
            Categorical("locking_mode", ("normal", "exclusive"), default="normal", apply_cost="restart", **RISKS["locking_mode"]),
            Ordinal("wal_autocheckpoint", (0, 100, 1000, 10000), default=1000, condition=Condition("journal_mode", ("wal",)),
                    **RISKS["wal_autocheckpoint"]),
            Ordinal("page_size", PAGE_SIZES, default=4096, apply_cost="rebuild"),
        ]
        constraints = []
        if self.durable:
            reason = "can lose committed transactions on a power loss or OS crash (pass --durable false to allow)"
            constraints = [
                Forbid("durable", reason=reason, synchronous=NOT_DURABLE["synchronous"]),
                Forbid("durable", reason=reason, journal_mode=NOT_DURABLE["journal_mode"]),
            ]
        return Space(params, constraints)

    @property
    def objective(self) -> Objective:
        return Objective("throughput", "maximize", others=(("p95_latency_ms", "minimize"),))

    def fidelity(self) -> Fidelity:
        """Operations replayed per run: a prefix of the seeded stream (full = the whole stream)."""
        full = len(self._operations())
        return Fidelity("operations", "operations", min(full, max(50, full // 32)), full, unit="operations")

    def setup(self) -> None:
        self.acquire_workdir()

    def teardown(self) -> None:
        self.release_workdir()

    def monitors(self) -> list[Monitor]:
        """The host and this process, and the size of the running trial's database files and WAL."""
        return [*host_monitors(), SQLiteFilesMonitor(lambda: self.attempt_dir or self.workdir, "trial-*.db")]

    def evaluate(self, config: Config, fidelity: int | None = None) -> Measurement:
        limit = self.resolve_fidelity(fidelity)
        if self.workdir is None:
            self.setup()
        base, build_seconds = self._base_file(config["page_size"])
        stream = _head(self._operations(), limit)
        seconds = self.seconds * limit / len(self._operations())
        runs = []
        for repeat in range(self.repeats):
            trial_file = self.scratch_dir() / f"trial-{repeat}.db"
            _remove_db(trial_file)
            shutil.copyfile(base, trial_file)
            try:
                runs.append(self._run(trial_file, config, stream, seconds))
            finally:
                _remove_db(trial_file)
        throughputs = [r["throughput"] for r in runs]
        p95s = [r["p95_latency_ms"] for r in runs]
        median = statistics.median(throughputs)
        return Measurement(
            metrics={
                "throughput": median,
                "p95_latency_ms": statistics.median(p95s),
                "throughput_spread": (max(throughputs) - min(throughputs)) / median if median else float("nan"),
                "operations_done": statistics.median(r["done"] for r in runs),
                "wal_mib": max(r["wal_bytes"] for r in runs) / MIB,  # side effects, measured: the WAL left at the end
                "disk_mib": max(r["disk_bytes"] for r in runs) / MIB,
            },
            samples={"throughput": throughputs, "p95_latency_ms": p95s},
            info=stamp({"workload": self.workload.name, "base_build_seconds": build_seconds}, self.fidelity(), limit,
                       sum(r["done"] for r in runs)),
        )

    # --- internals
    def _operations(self):
        if self._stream is None:
            self._stream = self.bench.stream(self.seed) if self.bench else operations(self.workload, self.seed)
        return self._stream

    def _base_file(self, page_size: int) -> tuple[Path, float]:
        """The loaded database at `page_size`, built once and reused (deterministic content)."""
        w = self.workload
        stem = self.bench.signature() if self.bench else f"{w.records}r-{w.value_size}b"
        path = Path(self.workdir) / f"base-{stem}-{page_size}p.db"
        if path.exists():
            return path, 0.0
        start = time.perf_counter()
        tmp = path.with_suffix(".building")
        _remove_db(tmp)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute(f"PRAGMA page_size={int(page_size)}")
            if self.bench:
                self.bench.create(Session(conn, "sqlite"))
                conn.close()
                tmp.rename(path)
                return path, time.perf_counter() - start
            conn.execute("CREATE TABLE usertable (key INTEGER PRIMARY KEY, value BLOB NOT NULL)")
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO usertable VALUES (?, ?)", ((k, value_for(k, w.value_size)) for k in range(w.records))
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        tmp.rename(path)  # atomic: a half-built file is never mistaken for a base
        return path, time.perf_counter() - start

    def _run(self, path: Path, config: Config, stream, seconds: float) -> dict[str, float]:
        """One measured replay on a fresh connection; the files' sizes are read before it closes
        (closing checkpoints and removes the WAL), so a WAL that grows shows in `wal_mib`."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            apply_pragmas(conn, config)
            result = run_serial(Session(conn, "sqlite"), self.bench, stream, seconds) if self.bench else self._replay(conn, stream, seconds)
            wal = path.with_name(path.name + "-wal")
            result["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
            result["disk_bytes"] = path.stat().st_size + result["wal_bytes"]
            return result
        finally:
            conn.close()

    def _replay(self, conn: sqlite3.Connection, stream, seconds: float) -> dict[str, float]:
        """The YCSB loop: one statement (one transaction) per operation, until the stream or `seconds` ends."""
        value_size, scan_length = self.workload.value_size, self.workload.scan_length
        latencies = np.empty(len(stream), dtype=float)
        clock = time.perf_counter
        start = clock()
        deadline = start + seconds
        done = 0
        for i, (op, key) in enumerate(zip(stream.ops.tolist(), stream.keys.tolist())):
            t0 = clock()
            if op == READ:
                conn.execute("SELECT value FROM usertable WHERE key=?", (key,)).fetchone()
            elif op == UPDATE:
                conn.execute("UPDATE usertable SET value=? WHERE key=?", (value_for(key, value_size, i), key))
            elif op == INSERT:
                conn.execute("INSERT OR REPLACE INTO usertable VALUES (?, ?)", (key, value_for(key, value_size)))
            elif op == SCAN:
                conn.execute("SELECT key, value FROM usertable WHERE key>=? LIMIT ?", (key, scan_length)).fetchall()
            elif op == RMW:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("SELECT value FROM usertable WHERE key=?", (key,)).fetchone()
                conn.execute("UPDATE usertable SET value=? WHERE key=?", (value_for(key, value_size, i), key))
                conn.execute("COMMIT")
            elif op == DELETE:
                conn.execute("DELETE FROM usertable WHERE key=?", (key,))
            t1 = clock()
            latencies[i] = t1 - t0
            done += 1
            if t1 >= deadline:
                break
        elapsed = clock() - start
        return {
            "throughput": done / elapsed,
            "p95_latency_ms": float(np.percentile(latencies[:done], 95) * 1e3),
            "done": done,
        }


def apply_pragmas(conn: sqlite3.Connection, config: Config) -> None:
    """Set the PRAGMAs named in a validated config (values come from the space, never raw input).

    Only the knobs present are set, so a live service can apply its subset.
    """
    if config.get("journal_mode", "delete") not in JOURNAL_MODES or config.get("synchronous", "full") not in SYNCHRONOUS:
        raise ValueError("config was not validated against the space")
    if "locking_mode" in config:
        conn.execute(f"PRAGMA locking_mode={config['locking_mode']}")
    journal = config.get("journal_mode")
    if journal is not None:
        got = conn.execute(f"PRAGMA journal_mode={journal}").fetchone()[0]
        if got != journal:
            raise RuntimeError(f"SQLite refused journal_mode={journal} (it stayed {got})")
    if "synchronous" in config:
        conn.execute(f"PRAGMA synchronous={config['synchronous']}")
    if "cache_size_kib" in config:
        conn.execute(f"PRAGMA cache_size={-int(config['cache_size_kib'])}")
    if "mmap_size_mib" in config:
        conn.execute(f"PRAGMA mmap_size={int(config['mmap_size_mib']) * 1024 * 1024}")
    if "temp_store" in config:
        conn.execute(f"PRAGMA temp_store={config['temp_store']}")
    if journal == "wal" and "wal_autocheckpoint" in config:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(config['wal_autocheckpoint'])}")


def _head(stream, n: int):
    """The first `n` operations of a stream (a benchmark's list, or a YCSB stream of arrays)."""
    if n >= len(stream):
        return stream
    if isinstance(stream, list):
        return stream[:n]
    return replace(stream, ops=stream.ops[:n], keys=stream.keys[:n])


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)

