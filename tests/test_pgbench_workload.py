"""The pgbench workload: spec handling here, and a real pgbench run against the local server."""

from __future__ import annotations

import json
import math
import os

import pytest

from autosys_adapters.workloads import load_benchmark
from autosys_adapters.workloads.pgbench import PgbenchBenchmark, _pgoptions, pgbench_binary

URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def test_presets_and_overrides():
    bench = load_benchmark("pgbench-write-heavy")
    assert isinstance(bench, PgbenchBenchmark)
    assert (bench.workload.mode, bench.workload.scale, bench.concurrency) == ("simple-update", 60, 16)
    # the server adapters pass records/operations/concurrency: records become a scale, operations do not apply
    bench = load_benchmark("pgbench", records=250_000, operations=100_000, concurrency=4)
    assert (bench.workload.scale, bench.concurrency) == (2, 4)
    with pytest.raises(ValueError, match="mode"):
        load_benchmark({"kind": "pgbench", "mode": "bogus"})
    with pytest.raises(ValueError, match="unknown setting 'clients'"):
        load_benchmark({"kind": "pgbench", "clients": 3})
    with pytest.raises(ValueError, match="PostgreSQL only"):
        bench.schema("mysql")


def test_session_knobs_become_pgoptions_and_odd_values_are_refused():
    assert _pgoptions({"work_mem": 4096, "jit": False, "random_page_cost": 1.5}) == (
        "-c work_mem=4096 -c jit=off -c random_page_cost=1.5"
    )
    for bad in ({"work_mem": "1 -c fsync=off"}, {"work mem": 1}, {"x": "a;b"}):
        with pytest.raises(ValueError, match="cannot pass"):
            _pgoptions(bad)


def test_a_real_pgbench_trial(tmp_path):
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
    if pgbench_binary() is None:
        pytest.skip("pgbench is not installed (Debian: apt install postgresql-client)")
    try:
        psycopg.connect(URL, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {URL}: {str(exc).strip().splitlines()[0]}")
    from autosys_adapters.dbserver.postgres import PostgresKnobs

    spec = tmp_path / "pgbench.json"
    spec.write_text(json.dumps({"kind": "pgbench", "scale": 1, "mode": "tpcb-like", "concurrency": 2, "jobs": 1}))
    system = PostgresKnobs(url=URL, workload=str(spec), seconds=1.0, warmup=0.0, knobs="commit_delay,work_mem",
                           state_file=str(tmp_path / "state.json"))
    try:
        m = system.evaluate({**system.default(), "work_mem": 8192}).metrics
        database = system.database
    finally:
        system.teardown()
    assert m["throughput"] > 0 and m["operations_done"] > 0
    assert math.isfinite(m["p95_latency_ms"]) and m["p95_latency_ms"] > 0
    assert m["rows_written_per_op"] > 0  # pgbench's transactions reached the study's own database
    with psycopg.connect(URL, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    assert left is None


def test_newest_debian_install_wins_by_version_not_by_text(tmp_path, monkeypatch):
    """/usr/lib/postgresql/15 is newer than 9.6 (as strings "15" < "9.6": the old sort picked 9.6)."""
    from autosys_adapters.workloads import pgbench as module

    for version in ("9.6", "15", "13"):
        folder = tmp_path / version / "bin"
        folder.mkdir(parents=True)
        (folder / "pgbench").write_text("#!/bin/sh\n")
        (folder / "pgbench").chmod(0o755)
    (tmp_path / "16" / "bin").mkdir(parents=True)  # a newer version without the client: skipped
    monkeypatch.setattr(module, "DEBIAN_BIN_GLOB", str(tmp_path / "*" / "bin"))
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    assert module.debian_pg_binaries("pgbench") == [str(tmp_path / v / "bin" / "pgbench") for v in ("15", "13", "9.6")]
    assert module.pgbench_binary() == str(tmp_path / "15" / "bin" / "pgbench")
