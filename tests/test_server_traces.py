"""Server read traces: strace's output parsed exactly, and real recordings of a child, PostgreSQL, MariaDB, RocksDB."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest

from autosys_adapters.pagecache import traces as T
from autosys_adapters.pagecache.server_traces import description_path, read_description, save_recording
from autosys_adapters.pagecache.strace_log import ReadLog, StraceSession, TraceRecordingError, parse_strace, strace_available

STRACE_OK, STRACE_WHY = strace_available()
needs_strace = pytest.mark.skipif(not STRACE_OK, reason=f"needs strace with ptrace allowed: {STRACE_WHY}")

LOG = """\
101   pread64(7</data/base/1/100>, ""..., 8192, 16384) = 8192
102   pread64(8</data/base/1/200>,  <unfinished ...>
101   pread64(9</etc/passwd>, ""..., 4096, 0) = 1200
102   <... pread64 resumed>""..., 8192, 0) = 8192
103   preadv(7</data/base/1/100>, [{iov_base=""..., iov_len=16384}], 1, 8192) = 16384
103   preadv2(8</data/base/1/200>, [{iov_base=""..., iov_len=4096}], 1, 40960, RWF_NOWAIT) = 4096
101   pread64(7</data/base/1/100>, 0x7ffd, 8192, 99999) = -1 EINTR (Interrupted system call)
104   pread64(7</data/base/1/100>, ""..., 8192, 1048576) = 0
105   +++ exited with 0 +++
"""


def test_parse_strace_reads_every_form(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(LOG)
    log = parse_strace(path, "/data/")
    assert log.files == ["/data/base/1/100", "/data/base/1/200"]
    assert log.file.tolist() == [0, 1, 0, 1]
    assert log.offset.tolist() == [16384, 0, 8192, 40960]
    assert log.length.tolist() == [8192, 8192, 16384, 4096]  # failed and end-of-file reads are dropped
    assert log.pid.tolist() == [101, 102, 103, 103]
    everything = parse_strace(path)
    assert "/etc/passwd" in everything.files and len(everything) == 5
    pred = parse_strace(path, lambda p: p.endswith("200"))
    assert pred.files == ["/data/base/1/200"]


def test_reads_become_pages_and_blocks():
    log = ReadLog(["a", "b"], np.array([0, 1, 0], np.int32), np.array([8192, 4096, 12288], np.int64),
                  np.array([8192, 100, 16384], np.int64), np.array([1, 1, 1], np.int32))
    pages = log.pages(8192)
    # read 0 covers page 1; read 1 (b, 4096..4195) page 0 of file 1; read 2 (12288..28671) pages 1, 2, 3
    assert pages.ids.tolist() == [1, (1 << 32) | 0, 1, 2, 3]
    assert (pages.sizes == 8192).all()
    blocks = log.blocks()
    assert blocks.ids.tolist() == [8192, (1 << 40) | 4096, 12288]
    assert blocks.sizes.tolist() == [8192, 100, 16384]
    with pytest.raises(ValueError, match="page_size"):
        log.pages(0)


def test_read_log_and_description_roundtrip(tmp_path):
    log = ReadLog(["x"], np.zeros(3, np.int32), np.array([0, 4096, 0], np.int64), np.full(3, 4096, np.int64),
                  np.ones(3, np.int32), {"server": "test"})
    back = ReadLog.load(log.save(tmp_path / "r.npz"))
    assert back.files == ["x"] and back.meta == {"server": "test"} and np.array_equal(back.offset, log.offset)

    class Rec:
        reads, trace, description = log, log.pages(4096), {"what": "a test"}

    paths = save_recording(Rec, tmp_path / "t.oracleGeneral")
    assert read_description(paths["trace"])["what"] == "a test"
    assert description_path(paths["trace"]).name == "t.oracleGeneral.json"
    assert T.read_trace(paths["trace"]).ids.tolist() == [0, 1, 0]


@needs_strace
def test_strace_records_a_child_exactly(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(64 * 1024))
    offsets = [0, 16384, 4096, 16384, 61440]
    script = textwrap.dedent(f"""
        import os
        fd = os.open({str(data)!r}, os.O_RDONLY)
        for off in {offsets}:
            os.pread(fd, 4096, off)
        """)
    out = tmp_path / "strace.txt"
    session = StraceSession(out, command=[sys.executable, "-c", script]).start()
    assert session.wait(60) == 0
    log = parse_strace(out, str(data))
    assert log.offset.tolist() == offsets and (log.length == 4096).all()
    assert log.pages(4096).ids.tolist() == [o // 4096 for o in offsets]


def test_session_needs_exactly_one_target(tmp_path):
    with pytest.raises(ValueError, match="either pids"):
        StraceSession(tmp_path / "x", pids=[1], command=["true"])
    with pytest.raises(ValueError, match="either pids"):
        StraceSession(tmp_path / "x")


# --------------------------------------------------------------------------- real servers (slow)


def _postgres_up() -> str:
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3):
            return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: skip
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable ({type(exc).__name__})"


def _mariadb_up() -> str:
    try:
        import pymysql

        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3).close()
        return ""
    except Exception as exc:  # noqa: BLE001
        return f"MariaDB at 127.0.0.1:3306 is not reachable ({type(exc).__name__})"


@pytest.mark.slow
@needs_strace
def test_record_postgres_pgbench(tmp_path):
    why = _postgres_up()
    if why:
        pytest.skip(why)
    from shutil import which

    if which("pgbench") is None:
        pytest.skip("pgbench is not installed")
    import psycopg

    from autosys_adapters.pagecache.server_traces import record_postgres

    db = f"autosys_test_trace_{os.getpid()}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres") as conn:
        before = conn.execute("SELECT setting FROM pg_settings WHERE name = 'shared_buffers'").fetchone()
    rec = record_postgres("select", duration=3, clients=2, scale=3, database=db, workdir=tmp_path)
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres") as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (db,)).fetchone()[0] == 0
        # only the buffer size is compared: other sessions may tune the shared server meanwhile
        assert conn.execute("SELECT setting FROM pg_settings WHERE name = 'shared_buffers'").fetchone() == before
    assert len(rec.trace) > 100  # scale 3 (45 MB) was loaded through a ring buffer: reads miss shared_buffers
    assert all("/base/" in f for f in rec.reads.files)
    assert (rec.trace.sizes == 8192).all()
    d = rec.description
    assert d["requests"] == len(rec.trace) and d["page_size"] == 8192 and "PostgreSQL" in d["source"]
    paths = save_recording(rec, tmp_path / "pg.oracleGeneral")
    assert json.loads(paths["description"].read_text())["workload"].startswith("pgbench select")


@pytest.mark.slow
@needs_strace
def test_record_mariadb_sysbench_leaves_the_server_as_found(tmp_path):
    why = _mariadb_up()
    if why:
        pytest.skip(why)
    from shutil import which

    if which("sysbench") is None:
        pytest.skip("sysbench is not installed")
    import pymysql

    from autosys_adapters.pagecache.server_traces import record_mariadb

    db = f"autosys_test_trace_{os.getpid()}"

    def state():
        # knobs are not compared: other sessions tune the shared server meanwhile; the recorder sets none
        with pymysql.connect(host="127.0.0.1", user="root", password="") as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
            return cur.fetchone()[0]

    before = state()
    try:
        rec = record_mariadb("oltp_point_select", duration=3, threads=2, tables=1, table_size=20_000, database=db,
                             workdir=tmp_path)
    except TraceRecordingError as exc:
        # a fresh 5 MB table sits in the buffer pool: InnoDB may issue no page read at all, which is the truth
        assert "no reads" in str(exc)
    else:
        assert all(f"/{db}/" in f for f in rec.reads.files)
        assert (rec.trace.sizes == rec.description["page_size"]).all()
    assert state() == before == 0  # the database it made is dropped


@pytest.mark.slow
@needs_strace
def test_record_rocksdb_block_reads(tmp_path):
    pytest.importorskip("rocksdict", reason="recording RocksDB needs rocksdict (pip install autosys-toolkit[kv])")
    from autosys_adapters.pagecache.server_traces import record_rocksdb

    rec = record_rocksdb(ops=3_000, keys=30_000, block_cache_mb=1, workdir=tmp_path)
    assert len(rec.trace) > 100
    assert all(f.endswith(".sst") for f in rec.reads.files)
    assert rec.trace.sizes.min() > 0 and len(np.unique(rec.trace.sizes)) > 1  # blocks differ in size
    assert rec.description["requests"] == len(rec.trace)


def test_cli_refuses_unknown_engine(tmp_path):
    from typer.testing import CliRunner

    from autosys_adapters.pagecache.cli import app

    result = CliRunner().invoke(app, ["record", "oracle", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "choose one of" in result.output
