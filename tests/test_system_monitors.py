"""System-specific monitors against the real things: an SQLite file, PostgreSQL, RocksDB."""

import socket
import sqlite3
import time

import pytest

from autosys_adapters.dbserver.monitors import PostgresMonitor, RocksDBMonitor, SQLiteFileMonitor


def test_sqlite_file_monitor_sees_the_wal_grow(tmp_path):
    path = tmp_path / "x.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (v BLOB)")
    monitor = SQLiteFileMonitor(path)
    before = monitor.sample()
    for _ in range(200):
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 1000,))
    after = monitor.sample()
    assert after["wal_bytes"] > before["wal_bytes"] + 100_000
    assert after["db_bytes"] > 0


def _postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _postgres_up(), reason="no PostgreSQL server at 127.0.0.1:5432")
def test_postgres_monitor_counts_commits_as_rates():
    pytest.importorskip("psycopg", reason="the db extra (psycopg) is not installed")
    import psycopg

    monitor = PostgresMonitor()
    monitor.sample()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        for _ in range(50):
            conn.execute("SELECT 1")
    time.sleep(0.6)  # pg_stat counters are flushed by the backend at most every 500 ms or at exit
    reading = monitor.sample()
    monitor.close()
    assert reading["xact_commit_per_s"] > 0
    assert 0 <= reading["cache_hit_ratio"] <= 1 or reading["cache_hit_ratio"] != reading["cache_hit_ratio"]
    assert "buffers_alloc_per_s" in reading
    # a trial's database that does not exist yet (copied from a template in its first second): no error,
    # the server-wide counters only
    early = PostgresMonitor(database="autosys_not_created_yet")
    first = early.sample()
    early.close()
    assert "buffers_alloc_per_s" in first and "xact_commit_per_s" not in first and "cache_hit_ratio" not in first
    # a server restart ends the monitor's connection (a restart knob changed between trials): it connects again
    again = PostgresMonitor()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (again._conn.info.backend_pid,))
    time.sleep(0.2)
    assert "buffers_alloc_per_s" in again.sample()
    again.close()


def test_rocksdb_monitor_reads_properties(tmp_path):
    rocksdict = pytest.importorskip("rocksdict", reason="the kv extra (rocksdict) is not installed")
    db = rocksdict.Rdict(str(tmp_path / "r"))
    for i in range(1000):
        db[f"k{i}".encode()] = b"v" * 100
    reading = RocksDBMonitor(db).sample()
    db.close()
    assert reading["estimate_num_keys"] == 1000
    assert reading["cur_size_all_mem_tables"] > 100_000
