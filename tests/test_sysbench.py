"""The sysbench workload: spec handling and report parsing here, and real runs on PostgreSQL and MariaDB.

The server tests use two tables of a few thousand rows and 2-second windows;
they skip with the reason when sysbench or a server is missing, and drop the
cached dataset they load (with keep_dataset=false) and the run database.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from autosys_adapters.workloads import load_benchmark
from autosys_adapters.workloads.sysbench import SysbenchBenchmark, parse_report, sysbench_binary

PG_URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MY_HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")


def test_presets_name_the_four_oltp_tests_and_options_override():
    tests = {name: load_benchmark(name).workload.test for name in
             ("sysbench-read-only", "sysbench-read-write", "sysbench-write-only", "sysbench-point-select")}
    assert tests == {"sysbench-read-only": "oltp_read_only", "sysbench-read-write": "oltp_read_write",
                     "sysbench-write-only": "oltp_write_only", "sysbench-point-select": "oltp_point_select"}
    assert [load_benchmark(n).writes for n in tests] == [False, True, True, False]
    default = load_benchmark("sysbench-read-write").workload
    assert default.tables * default.table_size * 230 > 1e9  # larger than the servers' default buffers
    # the server adapters pass records (total rows), operations (ignored: sysbench runs for a time), concurrency, rate
    bench = load_benchmark("sysbench-read-only", records=40_000, operations=5, concurrency=3, rate=250)
    assert (bench.workload.table_size, bench.concurrency, bench.workload.rate) == (40_000 // default.tables, 3, 250)
    with pytest.raises(ValueError, match="sysbench test 'oltp_bogus'"):
        load_benchmark({"kind": "sysbench", "test": "oltp_bogus"})
    with pytest.raises(ValueError, match="unknown setting 'clients'"):
        load_benchmark({"kind": "sysbench", "clients": 3})
    with pytest.raises(ValueError, match="rate must be at least 0"):
        load_benchmark({"kind": "sysbench", "rate": -1})
    with pytest.raises(ValueError, match="rate .*client-program workload"):
        load_benchmark("tpcc-like", rate=100)
    assert load_benchmark("pgbench", rate=300).workload.rate == 300


def _report(buckets: list[tuple[float, int]], tps: float) -> str:
    lines = ["Latency histogram (values are in milliseconds)", "       value  ------------- distribution ------------- count"]
    lines += [f"{v:12.3f} |{'*' * 5}{' ' * 30} {c}" for v, c in buckets]
    done = sum(c for _, c in buckets)
    lines += [" ", "SQL statistics:", f"    transactions:                        {done}    ({tps:.2f} per sec.)",
              "    ignored errors:                      3      (0.10 per sec.)", "Latency (ms):",
              "         99th percentile:                       12.00"]
    return "\n".join(lines)


def test_the_report_gives_throughput_and_percentiles_from_the_histogram():
    rng = np.random.default_rng(1)
    values = np.sort(rng.uniform(0.5, 50.0, 200).round(3))
    counts = rng.integers(1, 40, 200)
    stats = parse_report(_report(list(zip(values, counts)), tps=321.5))
    expanded = np.repeat(values, counts)
    assert stats.done == counts.sum() and math.isclose(stats.throughput, 321.5, rel_tol=1e-9)
    assert math.isclose(stats.p95_ms(), float(np.percentile(expanded, 95)), rel_tol=1e-9)
    assert stats.retries == 3 and stats.reported_percentile == (99, 12.0)
    with pytest.raises(RuntimeError, match="could not read"):
        parse_report("FATAL: connection refused")
    with pytest.raises(RuntimeError, match="no latency histogram"):
        parse_report("    transactions:                        10    (5.00 per sec.)")
    with pytest.raises(RuntimeError, match="no transactions"):
        parse_report(_report([], tps=0.0))


def _need_sysbench():
    if sysbench_binary() is None:
        pytest.skip("sysbench is not installed (Debian: apt install sysbench)")


def _postgres(tmp_path, workload: dict, **kw):
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
    _need_sysbench()
    try:
        psycopg.connect(PG_URL, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {PG_URL}: {str(exc).strip().splitlines()[0]}")
    from autosys_adapters.dbserver.postgres import PostgresKnobs

    spec = tmp_path / "sysbench.json"
    spec.write_text(json.dumps({"kind": "sysbench", "tables": 2, "table_size": 2000, **workload}))
    return PostgresKnobs(url=PG_URL, workload=str(spec), concurrency=2, seconds=2.0, warmup=1.0,
                         knobs="work_mem,checkpoint_completion_target", state_file=str(tmp_path / "state.json"),
                         keep_dataset=False, **kw)


def _mariadb(tmp_path, workload: dict, **kw):
    pymysql = pytest.importorskip("pymysql", reason="pymysql is not installed (pip install 'autosys-toolkit[db]')")
    _need_sysbench()
    try:
        pymysql.connect(host=MY_HOST, port=3306, user="root", password="", connect_timeout=2).close()
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"no MariaDB/MySQL server reachable at {MY_HOST}:3306: {exc}")
    from autosys_adapters.dbserver.mysql import MySQLKnobs

    spec = tmp_path / "sysbench.json"
    spec.write_text(json.dumps({"kind": "sysbench", "tables": 2, "table_size": 2000, **workload}))
    return MySQLKnobs(host=MY_HOST, workload=str(spec), concurrency=2, seconds=2.0, warmup=1.0,
                      knobs="sort_buffer_size,innodb_io_capacity", state_file=str(tmp_path / "state.json"),
                      keep_dataset=False, **kw)


def _databases(system) -> list[str]:
    conn = system._admin()
    try:
        if system.dialect == "postgres":
            return [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_a_real_sysbench_trial_reports_throughput_latency_and_checkpoints(tmp_path, server):
    make = _postgres if server == "postgres" else _mariadb
    system = make(tmp_path, {"test": "oltp_read_write"})
    assert isinstance(system.bench, SysbenchBenchmark)
    config = system.default()
    # a session knob: PGOPTIONS for PostgreSQL, a global default for MariaDB's client (restored at teardown)
    config["work_mem" if server == "postgres" else "sort_buffer_size"] = 8192 if server == "postgres" else 1 << 20
    conn = system._admin()
    try:
        before = system._take_snapshot(conn)
    finally:
        conn.close()
    try:
        m = system.evaluate(config).metrics
        assert system.objective.metric == "throughput"
        low = system.evaluate(config, fidelity=system.fidelity().min)
        run_database, dataset = system.database, system._dataset.database
    finally:
        system.teardown()
    assert m["throughput"] > 0 and m["operations_done"] > 0
    assert 0 < m["p50_latency_ms"] <= m["p95_latency_ms"] <= m["p99_latency_ms"]
    assert m["rows_written_per_op"] > 0  # sysbench's writes reached the run database
    assert "checkpoints" in m and m["checkpoints"] >= 0
    assert low.info["fidelity"]["value"] == 1.0  # the cheap rung: a 1-second window
    left = _databases(system)
    assert run_database not in left and dataset not in left  # keep_dataset=false drops the cache too
    conn = system._admin()
    try:
        after = system._take_snapshot(conn)
    finally:
        conn.close()
    from autosys_adapters.dbserver.base import _differences

    assert _differences(before, after, system.IGNORED) == []


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_a_fixed_offered_load_makes_tail_latency_the_objective(tmp_path, server):
    make = _postgres if server == "postgres" else _mariadb
    system = make(tmp_path, {"test": "oltp_point_select"}, rate=200)
    try:
        assert system.objective.metric == "p99_latency_ms" and system.objective.direction == "minimize"
        m = system.evaluate(system.default()).metrics
    finally:
        system.teardown()
    assert m["offered_rate"] == 200.0
    # open loop: the server easily keeps up with 200 point selects/s, so it completes about what was offered
    assert 0.5 * 200 < m["throughput"] < 1.5 * 200
    assert m["p99_latency_ms"] >= m["p95_latency_ms"] > 0
