"""Record the OS-level read stream of real servers under real workloads.

What a trace here is: every positioned read (`pread64`/`preadv`/`preadv2`)
that the server makes of its data files while a standard benchmark runs,
recorded with strace. These are the reads that miss the server's own buffer
(PostgreSQL's shared buffers, InnoDB's buffer pool, RocksDB's block cache), so
they are what the OS page cache (or any cache below the server) sees.

- `record_postgres`: pgbench (select-only, TPC-B-like, or a mix of zipfian
  point reads, index range scans and TPC-B updates) on a pgbench database
  larger than shared_buffers; strace attaches to the benchmark's backends
  only, and only files of that database are kept. 8 KB pages.
- `record_mariadb`: sysbench OLTP on its own database larger than the buffer
  pool; strace attaches to mariadbd's threads for the run; only that
  database's .ibd files are kept. 16 KB pages. (InnoDB reads with O_DIRECT
  here, and its linear/random read-ahead goes through asynchronous I/O that
  strace's pread filter does not see: the trace is its synchronous page reads.)
- `record_rocksdb`: a child process loads nothing and reads a RocksDB made
  beforehand (zipfian gets plus short scans) with a small block cache; strace
  starts it, so only its reads are seen. Reads are block-sized and vary in size.

Servers are left as found: no setting is changed; a database created for a
recording is dropped afterwards unless `keep=True`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autosys_adapters.pagecache.strace_log import ReadLog, StraceSession, TraceRecordingError, parse_strace, strace_version
from autosys_adapters.pagecache.traces import Trace

PG_WORKLOADS = ("select", "tpcb", "mixed")
MY_WORKLOADS = ("oltp_read_only", "oltp_point_select", "oltp_read_write")


@dataclass
class Recording:
    """A recorded read log, its page trace and the description written next to it."""

    reads: ReadLog
    trace: Trace
    description: dict[str, Any]


def description_path(trace_path: str | Path) -> Path:
    """Where a trace's description lives: `<trace file>.json`."""
    p = Path(trace_path)
    return p.with_name(p.name + ".json")


def write_description(trace_path: str | Path, description: dict[str, Any]) -> Path:
    path = description_path(trace_path)
    path.write_text(json.dumps(description, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_description(trace_path: str | Path) -> dict[str, Any] | None:
    path = description_path(trace_path)
    return json.loads(path.read_text()) if path.exists() else None


def _describe(trace: Trace, reads: ReadLog, **fields: Any) -> dict[str, Any]:
    return {
        "recorded_by": "autosys trace record",
        "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tracer": strace_version(),
        "requests": len(trace),
        "distinct_objects": trace.footprint,
        "reads": len(reads),
        "bytes_read": reads.bytes_read,
        "files": len(reads.files),
        **fields,
    }


def _deadline_wait(check, timeout: float, what: str, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise TraceRecordingError(f"timed out after {timeout:g} s waiting for {what}")


# --------------------------------------------------------------------------- PostgreSQL

_PG_SCRIPTS = {
    "point.sql": "\\set aid random_zipfian(1, 100000 * :scale, 1.01)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n",
    "range.sql": "\\set aid random(1, 100000 * :scale - 2000)\n"
                 "SELECT sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 2000;\n",
}


def _pg_connect(host: str, port: int, user: str, dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True, connect_timeout=10)


def pgbench_args(workload: str, scripts_dir: Path) -> list[str]:
    """pgbench's script arguments for a workload name."""
    if workload == "select":
        return ["-S"]
    if workload == "tpcb":
        return ["-b", "tpcb-like"]
    if workload == "mixed":
        for name, text in _PG_SCRIPTS.items():
            (scripts_dir / name).write_text(text)
        return ["-f", f"{scripts_dir / 'point.sql'}@6", "-f", f"{scripts_dir / 'range.sql'}@3", "-b", "tpcb-like@1"]
    raise ValueError(f"unknown PostgreSQL workload {workload!r}; choose one of: {', '.join(PG_WORKLOADS)}")


def record_postgres(
    workload: str = "mixed",
    duration: float = 30.0,
    clients: int = 4,
    scale: int = 50,
    database: str = "autosys_trace_pg",
    host: str = "127.0.0.1",
    port: int = 5432,
    user: str = "postgres",
    seed: int = 42,
    keep: bool = False,
    workdir: str | Path | None = None,
) -> Recording:
    """pgbench `workload` for `duration` s on `database` (made at `scale` if missing) with its backends' reads traced."""
    if workload not in PG_WORKLOADS:
        raise ValueError(f"unknown PostgreSQL workload {workload!r}; choose one of: {', '.join(PG_WORKLOADS)}")
    if duration <= 0 or clients < 1 or scale < 1:
        raise ValueError("duration, clients and scale must be positive")
    for tool in ("pgbench",):
        if shutil.which(tool) is None:
            raise TraceRecordingError(f"{tool} is not installed")
    with _pg_connect(host, port, user) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        datadir = conn.execute("SHOW data_directory").fetchone()[0]
        shared_buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None
        created = False
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
            created = True
    env = {**os.environ, "PGHOST": host, "PGPORT": str(port), "PGUSER": user}
    try:
        if created:
            subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), database], env=env, check=True,
                           capture_output=True, timeout=3600)
        with _pg_connect(host, port, user) as conn:
            oid = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (database,)).fetchone()[0]
            size = conn.execute("SELECT pg_database_size(%s)", (database,)).fetchone()[0]
        with _pg_connect(host, port, user, database) as conn:
            if conn.execute("SELECT to_regclass('pgbench_branches')").fetchone()[0] is None:
                raise TraceRecordingError(f"database {database!r} exists but holds no pgbench tables; "
                                          "name a new database (it is made and dropped) or run pgbench -i on it")
            db_scale = conn.execute("SELECT count(*) FROM pgbench_branches").fetchone()[0]
        prefix = f"{datadir.rstrip('/')}/base/{oid}/"
        with tempfile.TemporaryDirectory(prefix="autosys-pgtrace-", dir=workdir) as tmp:
            tmp = Path(tmp)
            app = f"autosys-trace-{os.getpid()}"
            argv = ["pgbench", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(int(round(duration))),
                    f"--random-seed={seed}", *pgbench_args(workload, tmp), database]
            bench = subprocess.Popen(argv, env={**env, "PGAPPNAME": app}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
            try:
                with _pg_connect(host, port, user) as conn:
                    def backends():
                        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                                            (database, app)).fetchall()
                        return [r[0] for r in rows] if len(rows) >= clients else None

                    pids = _deadline_wait(backends, 60, f"{clients} pgbench backends")
                log_path = tmp / "strace.txt"
                t0 = time.monotonic()
                with StraceSession(log_path, pids=pids):
                    out, _ = bench.communicate(timeout=duration + 120)
                traced = time.monotonic() - t0
            finally:
                if bench.poll() is None:
                    bench.kill()
                    bench.wait(timeout=10)
            if bench.returncode != 0:
                raise TraceRecordingError(f"pgbench failed: {out[-500:]}")
            reads = parse_strace(log_path, prefix)
    finally:
        if created and not keep:
            with _pg_connect(host, port, user) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
    tps = next((line.split("=")[1].split("(")[0].strip() for line in out.splitlines() if line.startswith("tps")), "?")
    name = f"postgres-{workload}"
    reads.meta = {"server": "postgresql", "workload": workload}
    trace = reads.pages(8192, name=name)
    desc = _describe(
        trace, reads,
        source=f"PostgreSQL {version}", workload=f"pgbench {workload} ({' '.join(argv[1:])})",
        database_scale=db_scale, database_bytes=size, shared_buffers=shared_buffers, clients=clients,
        duration_s=round(traced, 1), tps=tps, page_size=8192, unit="8 KB page touched by a read",
        what="pread64/preadv/preadv2 of the backends serving pgbench, files under "
             f"{prefix} (the database's relations): the reads that missed shared_buffers",
        not_seen="the first moments before strace attached; writes; WAL",
    )
    return Recording(reads, trace, desc)


# --------------------------------------------------------------------------- MariaDB


def _my_connect(host: str, port: int, user: str, password: str, database: str | None = None):
    import pymysql

    return pymysql.connect(host=host, port=port, user=user, password=password, database=database, autocommit=True,
                           connect_timeout=10)


def _sysbench(workload: str, database: str, tables: int, table_size: int, host: str, port: int, user: str,
              password: str, *extra: str) -> list[str]:
    argv = ["sysbench", workload, "--db-driver=mysql", f"--mysql-host={host}", f"--mysql-port={port}",
            f"--mysql-user={user}", f"--mysql-db={database}", f"--tables={tables}", f"--table-size={table_size}"]
    if password:
        argv.append(f"--mysql-password={password}")
    return argv + list(extra)


def record_mariadb(
    workload: str = "oltp_read_only",
    duration: float = 30.0,
    threads: int = 4,
    tables: int = 4,
    table_size: int = 1_000_000,
    database: str = "autosys_trace_my",
    host: str = "127.0.0.1",
    port: int = 3306,
    user: str = "root",
    password: str = "",
    seed: int = 42,
    keep: bool = False,
    workdir: str | Path | None = None,
) -> Recording:
    """sysbench `workload` for `duration` s on `database` (prepared if missing) with mariadbd's reads traced."""
    if workload not in MY_WORKLOADS:
        raise ValueError(f"unknown MariaDB workload {workload!r}; choose one of: {', '.join(MY_WORKLOADS)}")
    if duration <= 0 or threads < 1 or tables < 1 or table_size < 1:
        raise ValueError("duration, threads, tables and table_size must be positive")
    if shutil.which("sysbench") is None:
        raise TraceRecordingError("sysbench is not installed")
    with _my_connect(host, port, user, password) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@version, @@datadir, @@pid_file, @@innodb_buffer_pool_size, @@innodb_page_size, "
                    "@@innodb_flush_method")
        version, datadir, pid_file, pool, page_size, flush = cur.fetchone()
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
        created = cur.fetchone() is None
        if created:
            cur.execute(f"CREATE DATABASE `{database}`")
    page_size = int(page_size)
    try:
        if created:
            subprocess.run(_sysbench("oltp_read_only", database, tables, table_size, host, port, user, password, "prepare"),
                           check=True, capture_output=True, timeout=3600)
        with _my_connect(host, port, user, password) as conn, conn.cursor() as cur:
            cur.execute("SELECT SUM(data_length + index_length) FROM information_schema.TABLES WHERE table_schema = %s",
                        (database,))
            size = int(cur.fetchone()[0] or 0)
        pid = int(Path(pid_file).read_text().split()[0]) if Path(pid_file).exists() else None
        if pid is None:
            raise TraceRecordingError(f"cannot find mariadbd's pid (no {pid_file})")
        prefix = f"{datadir.rstrip('/')}/{database}/"
        with tempfile.TemporaryDirectory(prefix="autosys-mytrace-", dir=workdir) as tmp:
            log_path = Path(tmp) / "strace.txt"
            argv = _sysbench(workload, database, tables, table_size, host, port, user, password,
                             f"--threads={threads}", f"--time={int(round(duration))}", f"--rand-seed={seed}", "run")
            t0 = time.monotonic()
            with StraceSession(log_path, pids=[pid]):
                done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 300)
            traced = time.monotonic() - t0
            if done.returncode != 0:
                raise TraceRecordingError(f"sysbench failed: {(done.stdout + done.stderr)[-500:]}")
            reads = parse_strace(log_path, prefix)
    finally:
        if created and not keep:
            with _my_connect(host, port, user, password) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    tps = next((line.split("(")[1].split()[0] for line in done.stdout.splitlines() if "transactions:" in line), "?")
    name = f"mariadb-{workload}"
    reads.meta = {"server": "mariadb", "workload": workload}
    trace = reads.pages(page_size, name=name)
    desc = _describe(
        trace, reads,
        source=f"MariaDB {version}", workload=f"sysbench {workload} --tables={tables} --table-size={table_size} "
                                             f"--threads={threads}", database_bytes=size, buffer_pool_bytes=int(pool),
        flush_method=flush, duration_s=round(traced, 1), tps=tps, page_size=page_size,
        unit=f"{page_size // 1024} KB InnoDB page touched by a read",
        what=f"pread64/preadv/preadv2 of all mariadbd threads, files under {prefix}: InnoDB's synchronous page "
             "reads (buffer pool misses)",
        not_seen="asynchronous read-ahead (libaio/io_uring), writes, redo log",
    )
    return Recording(reads, trace, desc)


# --------------------------------------------------------------------------- RocksDB (in-process, a child under strace)


def _rocksdb_options(block_cache_mb: int):
    import rocksdict as r

    opts = r.Options(raw_mode=True)
    opts.create_if_missing(True)
    table = r.BlockBasedOptions()
    table.set_block_cache(r.Cache(max(1, block_cache_mb) * 1024 * 1024))
    table.set_block_size(4096)
    opts.set_block_based_table_factory(table)
    return opts


def _key(i: int) -> bytes:
    return b"user%012d" % i


def load_rocksdb(path: str | Path, keys: int, value_size: int = 200, seed: int = 0) -> None:
    """Write `keys` keys with random (poorly compressible) values and compact, so reads hit SST files."""
    import rocksdict as r

    rng = np.random.default_rng(seed)
    db = r.Rdict(str(path), options=_rocksdb_options(8))
    try:
        for start in range(0, keys, 50_000):
            batch = r.WriteBatch(raw_mode=True)
            blob = rng.bytes(value_size * 50_000)
            for j, i in enumerate(range(start, min(keys, start + 50_000))):
                batch.put(_key(i), blob[j * value_size:(j + 1) * value_size])
            db.write(batch)
        db.flush()
        db.compact_range(None, None)
    finally:
        db.close()


def rocksdb_reads(path: str, ops: int, keys: int, theta: float, scan_share: float, scan_length: int,
                  block_cache_mb: int, seed: int) -> None:
    """The traced child: zipfian gets and short scans on an existing RocksDB (run under strace)."""
    import rocksdict as r

    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, keys + 1, dtype=float) ** theta
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    perm = rng.permutation(keys)  # hot keys spread over the key space, as YCSB's hashed keys
    db = r.Rdict(path, options=_rocksdb_options(block_cache_mb), access_type=r.AccessType.read_only())
    try:
        done = 0
        while done < ops:
            n = min(100_000, ops - done)
            ks = perm[np.minimum(np.searchsorted(cdf, rng.random(n)), keys - 1)]
            scans = rng.random(n) < scan_share
            for k, s in zip(ks.tolist(), scans.tolist()):
                if s:
                    it = db.iter()
                    it.seek(_key(k))
                    for _ in range(scan_length):
                        if not it.valid():
                            break
                        it.value()
                        it.next()
                else:
                    db.get(_key(k))
            done += n
    finally:
        db.close()


def record_rocksdb(
    ops: int = 1_000_000,
    keys: int = 1_000_000,
    value_size: int = 200,
    theta: float = 0.9,
    scan_share: float = 0.05,
    scan_length: int = 50,
    block_cache_mb: int = 8,
    seed: int = 0,
    db_path: str | Path | None = None,
    workdir: str | Path | None = None,
    timeout: float = 3600.0,
) -> Recording:
    """Reads of a RocksDB (block cache `block_cache_mb`) under zipfian gets and scans, traced in a child process.

    The database is made at `db_path` if it holds none (a temporary one otherwise).
    """
    try:
        import rocksdict  # noqa: F401
    except ImportError as exc:
        raise TraceRecordingError("recording RocksDB needs rocksdict (pip install autosys-toolkit[kv])") from exc
    if ops < 1 or keys < 1:
        raise ValueError("ops and keys must be positive")
    with tempfile.TemporaryDirectory(prefix="autosys-rocksdb-trace-", dir=workdir) as tmp:
        tmp = Path(tmp)
        db = Path(db_path) if db_path else tmp / "db"
        if not (db / "CURRENT").exists():
            load_rocksdb(db, keys, value_size, seed)
        size = sum(f.stat().st_size for f in db.glob("*.sst"))
        log_path = tmp / "strace.txt"
        child = [sys.executable, "-m", "autosys_adapters.pagecache.server_traces", "rocksdb-reads", str(db), str(ops),
                 str(keys), str(theta), str(scan_share), str(scan_length), str(block_cache_mb), str(seed)]
        t0 = time.monotonic()
        session = StraceSession(log_path, command=child).start()
        code = session.wait(timeout)
        traced = time.monotonic() - t0
        if code != 0:
            raise TraceRecordingError(f"the traced RocksDB reader exited with {code}")
        prefix = str(db.resolve()) + "/"
        reads = parse_strace(log_path, lambda p: p.startswith(prefix) and p.endswith(".sst"))
    from importlib.metadata import PackageNotFoundError, version

    try:
        rocksdict_version = version("rocksdict")
    except PackageNotFoundError:
        rocksdict_version = "?"
    name = "rocksdb-zipf"
    reads.meta = {"server": "rocksdb", "workload": "zipf gets + scans"}
    trace = reads.blocks(name=name)
    desc = _describe(
        trace, reads,
        source=f"RocksDB via rocksdict {rocksdict_version} (in-process)",
        workload=f"{ops} ops on {keys} keys of {value_size} B: zipf({theta}) gets, {scan_share:.0%} scans of "
                 f"{scan_length} keys; block cache {block_cache_mb} MB, 4 KB blocks",
        database_bytes=size, duration_s=round(traced, 1), page_size=None,
        unit="one read (a data/index block, variable size); ReadLog.pages(4096) gives 4 KB pages",
        what="pread64/preadv/preadv2 of the reading process (strace --seccomp-bpf), .sst files only: "
             "block cache misses",
        not_seen="the load phase; memory-mapped reads (none: mmap reads are off)",
    )
    return Recording(reads, trace, desc)


def save_recording(rec: Recording, out: str | Path) -> dict[str, Path]:
    """Write the trace (format by suffix), its description (`.json`) and the raw read log (`.reads.npz`)."""
    from autosys_adapters.pagecache.traces import write_trace

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_trace(rec.trace, out)
    desc = {**rec.description, "file": out.name, "format": out.suffix.lstrip(".") or "text"}
    return {"trace": out, "description": write_description(out, desc),
            "reads": rec.reads.save(out.with_name(out.name + ".reads.npz"))}


def _main(argv: list[str]) -> int:
    if len(argv) == 9 and argv[0] == "rocksdb-reads":
        path, ops, keys, theta, share, length, cache, seed = argv[1:]
        rocksdb_reads(path, int(ops), int(keys), float(theta), float(share), int(length), int(cache), int(seed))
        return 0
    print("usage: python -m autosys_adapters.pagecache.server_traces rocksdb-reads PATH OPS KEYS THETA SCAN_SHARE "
          "SCAN_LENGTH BLOCK_CACHE_MB SEED", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
