"""sysbench as the load generator: its OLTP scripts drive PostgreSQL or MariaDB from a C client.

sysbench 1.0 (Debian's `sysbench` package) ships `oltp_read_only`,
`oltp_read_write`, `oltp_write_only` and `oltp_point_select` with both a
MySQL/MariaDB and a PostgreSQL driver, so the same transactions run on both
servers at a fraction of the client CPU a Python client costs. `create`
loads the tables with `sysbench <test> prepare` (N tables of `table_size`
rows each, about 230 bytes per row with its indexes); the server adapter
keeps that load as a cached dataset (adapters/dbserver/datasets.py, keyed by
`dataset_key()`), so a study never reloads it. Each measured window is one
`sysbench <test> run --time=S --histogram`, after a separate warm-up run;
its report gives the throughput and the latency histogram (p50/p95/p99).

Open loop: with `rate` > 0 sysbench's own event generator offers that many
transactions per second (exponential inter-arrivals) whatever the server's
speed, and each latency counts the time the transaction waited in the queue
(sysbench 1.0 adds the queue time to the event's timer), so queueing near
saturation shows in p99. `rate` = 0 is a closed loop: each thread starts its
next transaction when the last one ends.

Connection settings travel in a private config file (`--config-file`, mode
0600), never on the command line, so a password does not show in `ps`.
PostgreSQL session knobs travel in PGOPTIONS; the MariaDB client has no such
channel, so the server adapter sets those knobs server-wide for the run.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from autosys_adapters.workloads.base import Benchmark, Session, check_counts, checked_settings
from autosys_adapters.workloads.pgbench import _pgoptions

#: the OLTP scripts this workload runs, and whether each changes the data
TESTS = {
    "oltp_read_only": False,
    "oltp_point_select": False,
    "oltp_read_write": True,
    "oltp_write_only": True,
}
DRIVERS = {"postgres": "pgsql", "mysql": "mysql"}
_TRANSACTIONS = re.compile(r"transactions:\s+(\d+)\s+\(([0-9.]+) per sec\.\)")
_IGNORED = re.compile(r"ignored errors:\s+(\d+)")
_PERCENTILE = re.compile(r"(\d+)th percentile:\s+([0-9.]+)")
_BUCKET = re.compile(r"^\s*([0-9.]+)\s+\|\**\s+(\d+)\s*$", re.M)
_TOTAL_TIME = re.compile(r"total time:\s+([0-9.]+)s")


def sysbench_binary() -> str | None:
    """The sysbench executable, or None when it is not installed."""
    return shutil.which("sysbench")


def sysbench_version() -> str:
    """`sysbench --version` (e.g. '1.0.20'): part of a dataset's fingerprint, since `prepare` may change with it."""
    binary = sysbench_binary()
    if binary is None:
        raise FileNotFoundError("the sysbench workload needs sysbench (Debian: apt install sysbench)")
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    return out.strip().split()[-1] if out.strip() else "unknown"


@dataclass(frozen=True)
class SysbenchWorkload:
    """One sysbench OLTP test over `tables` x `table_size` rows.

    The default data (8 x 600,000 rows, about 1.1 GB on either server) is
    several times the servers' default buffers (128 MB each), so reads and
    flushing reach the disk path; tests use a few thousand rows.
    """

    name: str = "sysbench"
    test: str = "oltp_read_write"
    tables: int = 8
    table_size: int = 600_000
    concurrency: int = 8
    rate: int = 0  # offered load, transactions/s (open loop); 0 = closed loop
    percentile: int = 99  # the percentile sysbench itself reports (cross-checked against the histogram)

    def __post_init__(self):
        if self.test not in TESTS:
            raise ValueError(f"workload {self.name!r}: sysbench test {self.test!r} is not one of {', '.join(TESTS)}")
        check_counts(self, ("tables", "table_size", "concurrency"))
        check_counts(self, ("rate",), minimum=0)
        check_counts(self, ("percentile",))
        if self.percentile > 100:
            raise ValueError(f"workload {self.name!r}: percentile must be 1..100, not {self.percentile}")


@dataclass
class SysbenchTarget:
    """Where sysbench connects: its driver and connection settings (the password stays out of argv)."""

    driver: str
    host: str
    port: int
    user: str
    password: str
    database: str

    def config_lines(self) -> list[str]:
        d = self.driver
        lines = [f"db-driver={d}", f"{d}-host={self.host}", f"{d}-port={self.port}", f"{d}-user={self.user}",
                 f"{d}-db={self.database}"]
        if self.password:
            lines.append(f"{d}-password={self.password}")
        for line in lines:
            if "\n" in line or "\r" in line:
                raise ValueError("sysbench: a connection setting contains a line break")
        return lines


class SysbenchBenchmark(Benchmark):
    """Runs the real sysbench against the benchmark database (see the module doc)."""

    external = True  # the server adapter calls run() instead of driving Python clients

    def __init__(self, workload: SysbenchWorkload):
        self.workload = workload
        self.name = workload.name
        self.concurrency = int(workload.concurrency)

    @property
    def writes(self) -> bool:
        """Whether a run changes the data (then the dataset is restored before each measured run)."""
        return TESTS[self.workload.test]

    def signature(self) -> str:
        w = self.workload
        return f"sysbench-t{w.tables}x{w.table_size}"

    def dataset_key(self, dialect: str) -> tuple[str, dict]:
        """(generator, parameters) of the loaded data: the four tests share one dataset per size and dialect."""
        w = self.workload
        return f"sysbench-{sysbench_version()}-oltp", {"dialect": dialect, "tables": w.tables, "table_size": w.table_size,
                                                       "seed": 1}

    def tables(self) -> list[str]:
        return [f"sbtest{i}" for i in range(1, self.workload.tables + 1)]

    def schema(self, dialect: str) -> list[str]:
        if dialect not in DRIVERS:
            raise ValueError(f"the sysbench workload drives PostgreSQL and MariaDB/MySQL, not {dialect}")
        return []  # `sysbench prepare` creates its own tables

    def create(self, session: Session) -> None:
        """Load the tables with `sysbench prepare` (one table per thread, so two threads load two at once)."""
        self.schema(session.dialect)
        threads = max(1, min(self.workload.tables, os.cpu_count() or 1))
        self._sysbench(self.dsn_of(session.conn), ["--rand-seed=1", f"--threads={threads}"], "prepare", timeout=6 * 3600)

    def check_loaded(self, session: Session) -> None:
        """Raise unless every table holds exactly `table_size` rows: a load cut short must never be cached."""
        for table in self.tables():
            try:
                rows = session.one(f"SELECT COUNT(*) FROM {table}")[0]
            except Exception as exc:  # the driver's "no such table"
                raise RuntimeError(f"sysbench prepare left no table {table}: {exc}") from None
            if int(rows) != self.workload.table_size:
                raise RuntimeError(f"sysbench prepare left {rows} rows in {table}, not {self.workload.table_size}")

    @staticmethod
    def dsn_of(conn: Any) -> SysbenchTarget:
        """The sysbench target of a psycopg or pymysql connection."""
        info = getattr(conn, "info", None)
        if info is not None and hasattr(info, "dbname"):  # psycopg 3
            return SysbenchTarget("pgsql", info.host or "localhost", int(info.port or 5432), info.user or "",
                                  info.password or "", info.dbname)

        def text(value: Any) -> str:
            return value.decode() if isinstance(value, (bytes, bytearray)) else str(value or "")

        if hasattr(conn, "db") and hasattr(conn, "port"):  # pymysql
            return SysbenchTarget("mysql", text(conn.host), int(conn.port), text(conn.user), text(conn.password),
                                  text(conn.db))
        raise TypeError(f"sysbench: cannot tell where {type(conn).__name__} connects")

    def load(self, session: Session) -> None:
        """Unused: `create` runs `sysbench prepare`."""

    def stream(self, seed: int) -> list[tuple]:
        return []  # sysbench draws its own operations (seeded with --rand-seed in run())

    def execute(self, session: Session, item: tuple, index: int) -> None:
        raise TypeError("the sysbench workload runs as a whole (run()), not one operation at a time")

    def _run_args(self, seconds: float, seed: int) -> list[str]:
        w = self.workload
        args = [f"--threads={w.concurrency}", f"--time={max(1, math.ceil(seconds))}", f"--rand-seed={int(seed) + 1}",
                f"--percentile={w.percentile}", "--histogram=on"]
        if w.rate > 0:
            args.append(f"--rate={w.rate}")
        return args

    def warm_up(self, dsn: SysbenchTarget, session_knobs: Mapping[str, Any], seconds: float, seed: int,
                timeout: float) -> None:
        """A run whose results are thrown away: caches, plans and connections settle before the window."""
        if seconds > 0:
            self._sysbench(dsn, self._run_args(seconds, seed), "run", knobs=session_knobs, timeout=seconds + timeout)

    def run(self, dsn: SysbenchTarget, session_knobs: Mapping[str, Any], seconds: float, warmup: float, seed: int,
            timeout: float):
        """A warm-up run (not counted, when `warmup` > 0) and one measured run; returns RunStats."""
        self.warm_up(dsn, session_knobs, warmup, seed, timeout)
        out = self._sysbench(dsn, self._run_args(seconds, seed), "run", knobs=session_knobs, timeout=seconds + timeout)
        return parse_report(out, self.workload.test, rate=self.workload.rate)

    def _sysbench(self, dsn: SysbenchTarget, args: list[str], command: str, *, timeout: float,
                  knobs: Mapping[str, Any] | None = None) -> str:
        binary = sysbench_binary()
        if binary is None:
            raise FileNotFoundError("the sysbench workload needs sysbench (Debian: apt install sysbench)")
        if knobs and dsn.driver != "pgsql":
            raise ValueError("sysbench: the MariaDB client takes no session settings; the server adapter sets them server-wide")
        env = {**os.environ}
        if knobs:
            env["PGOPTIONS"] = _pgoptions(knobs)
        w = self.workload
        with tempfile.TemporaryDirectory(prefix="autosys-sysbench-") as folder:
            config = os.path.join(folder, "connection.cfg")
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("\n".join(dsn.config_lines()) + "\n")
            argv = [binary, f"--config-file={config}", w.test, f"--tables={w.tables}", f"--table-size={w.table_size}",
                    *args, command]
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=folder)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"sysbench {command} did not finish within {timeout:.0f} s") from None
        out = proc.stdout + proc.stderr
        if proc.returncode != 0 or "FATAL:" in out:  # a failed thread may still exit 0
            raise RuntimeError(f"sysbench {command} failed (exit {proc.returncode}): {out.strip()[-500:]}")
        return out

    def to_json(self) -> dict:
        return {"kind": "sysbench", **asdict(self.workload)}


def parse_report(out: str, kind: str = "sysbench", rate: int = 0):
    """RunStats from one `sysbench run --histogram` report: throughput, and latencies from the histogram.

    The histogram's buckets (about 1.8% wide) stand for their transactions, so
    percentiles computed from them match sysbench's own to a bucket. Raises
    RuntimeError when the report has no transactions (a failed or empty run
    must never look like a result).
    """
    from autosys_adapters.workloads.runner import RunStats

    found = _TRANSACTIONS.findall(out)
    if not found:
        raise RuntimeError(f"could not read sysbench's result from its output: {out.strip()[-400:]!r}")
    done, per_second = int(found[-1][0]), float(found[-1][1])
    if done == 0 or per_second <= 0:
        raise RuntimeError(f"sysbench completed no transactions: {out.strip()[-400:]!r}")
    buckets = [(float(v), int(c)) for v, c in _BUCKET.findall(out)]
    if not buckets:
        raise RuntimeError("sysbench printed no latency histogram (needs --histogram=on)")
    values = np.array([v for v, _ in buckets])
    counts = np.array([c for _, c in buckets])
    latencies = np.repeat(values, counts) / 1e3  # ms -> s, as RunStats keeps them
    ignored = _IGNORED.findall(out)
    stats = RunStats(done=done, elapsed=done / per_second, latencies=latencies,
                     retries=int(ignored[-1]) if ignored else 0, by_kind={kind: done})
    reported = _PERCENTILE.findall(out)
    stats.reported_percentile = (int(reported[-1][0]), float(reported[-1][1])) if reported else None  # type: ignore[attr-defined]
    stats.offered_rate = float(rate)  # type: ignore[attr-defined]
    return stats


def make_sysbench(spec: Mapping[str, Any] | None = None, **overrides: Any) -> SysbenchBenchmark:
    """A sysbench benchmark from a mapping of SysbenchWorkload fields; unknown names are rejected."""
    return SysbenchBenchmark(SysbenchWorkload(**checked_settings(SysbenchWorkload, "sysbench", spec, overrides)))


__all__ = ["DRIVERS", "TESTS", "SysbenchBenchmark", "SysbenchTarget", "SysbenchWorkload", "make_sysbench",
           "parse_report", "sysbench_binary", "sysbench_version"]
