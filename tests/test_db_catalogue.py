"""The full knob catalogue (knobs="all") read from the real PostgreSQL and MariaDB servers (skips if unreachable).

The servers are shared: the test that applies sampled configs restores every
setting (the adapter's own snapshot and restore) and checks, with its own
snapshot, that the server is as it was; no test restarts a server.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from autosys.core.space import APPLY_COSTS, Categorical, Float, Int

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
pymysql = pytest.importorskip("pymysql", reason="pymysql is not installed (pip install 'autosys-toolkit[db]')")

from autosys_adapters.dbserver import catalogue  # noqa: E402
from autosys_adapters.dbserver.catalogue import PG_UNIT_BYTES, memory_unit  # noqa: E402
from autosys_adapters.dbserver.mysql import MySQLKnobs  # noqa: E402
from autosys_adapters.dbserver.postgres import PostgresKnobs  # noqa: E402
from tests.mariadb_server import global_variables  # noqa: E402

PG_URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")
#: RAM the catalogue sizes memory knobs against in the apply test (small: the host is shared)
TEST_RAM = 2 * 1024**3


def _pg():
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {PG_URL}: {str(exc).strip().splitlines()[0]}")


def _mysql():
    try:
        return pymysql.connect(host=MYSQL_HOST, port=3306, user="root", password="", autocommit=True, connect_timeout=2)
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"no MariaDB/MySQL server reachable at {MYSQL_HOST}:3306: {exc}")


def _pg_snapshot(conn) -> dict:
    rows = conn.execute("SELECT name, setting, source, pending_restart FROM pg_settings WHERE name <> 'application_name'")
    auto = conn.execute("SELECT pg_read_file('postgresql.auto.conf')").fetchone()[0]
    dbs = conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()
    return {"settings": sorted(rows.fetchall()), "auto": auto, "databases": dbs}


def _mysql_snapshot(conn) -> dict:
    variables = global_variables(conn)
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {"variables": variables, "databases": sorted(r[0] for r in cur.fetchall())}


def _touched(snap: dict, space) -> dict:
    """The snapshot's entries for the knobs of `space` (pg_settings rows or global variables)."""
    if "settings" in snap:
        return {row[0]: row for row in snap["settings"] if row[0] in space.params}
    return {k: v for k, v in snap["variables"].items() if k.lower() in space.params}


SERVERS = {
    "postgres": (_pg, _pg_snapshot, lambda tmp: PostgresKnobs(url=PG_URL, knobs="all", workload="ycsb-a", records=100,
                                                              concurrency=1, state_file=str(tmp / "pg.json"))),
    "mysql": (_mysql, _mysql_snapshot, lambda tmp: MySQLKnobs(host=MYSQL_HOST, knobs="all", workload="ycsb-a", records=100,
                                                              concurrency=1, state_file=str(tmp / "my.json"))),
}


@pytest.fixture(params=list(SERVERS))
def full(request, tmp_path):
    connect, snapshot, make = SERVERS[request.param]
    conn = connect()
    conn.close()
    system = make(tmp_path)
    yield system
    system.teardown()


def test_full_catalogue_has_many_knobs_with_valid_ranges_and_reasons_for_the_rest(full):
    space = full.space()
    minimum = 60 if full.dialect == "postgres" else 80  # 96 and 101 on PostgreSQL 15 and MariaDB 10.11 here
    assert len(space) >= minimum, f"{full.name}: only {len(space)} knobs"
    assert len(space) > len(full.PROPOSALS) * 3
    for p in space:
        assert p.apply_cost in APPLY_COSTS
        if isinstance(p, (Int, Float)):
            assert p.low < p.high, p
            assert p.low <= p.default_value() <= p.high, p  # the server's current value is inside
            info = full.catalog()[p.name]
            assert info.low is None or p.low >= info.low, p  # inside the server's own limits
            assert info.high is None or p.high <= info.high, p
        else:
            assert isinstance(p, Categorical) and len(p.choices) >= 2
    excluded = full.excluded_knobs
    assert not set(excluded) & set(space.params)
    assert all(isinstance(why, str) and why for why in excluded.values())
    unsafe = {
        "postgres": ["data_directory", "log_min_duration_statement", "wal_level", "ssl", "statement_timeout",
                     "default_transaction_isolation", "primary_conninfo", "autovacuum", "zero_damaged_pages"],
        "mysql": ["datadir", "general_log", "binlog_format", "wsrep_on", "lock_wait_timeout", "sql_mode",
                  "tx_isolation", "max_connections", "foreign_key_checks", "innodb_buffer_pool_load_now"],
    }[full.dialect]
    for name in unsafe:
        assert name in excluded, f"{name} should be excluded"
    # durability-guarded knobs keep to the durability constraint (pinned, or only durable choices)
    for name, allowed in full.DURABLE.items():
        if name in space.params and isinstance(space[name], Categorical):
            assert any(c not in allowed for c in space[name].choices) <= bool(space.constraints)


def test_memory_knobs_are_sized_against_the_host_ram(full):
    ram = catalogue.host_memory()
    for p in full.space():
        info = full.catalog()[p.name]
        unit = memory_unit(info, full.dialect)
        if unit and isinstance(p, (Int, Float)) and p.name not in full.PROPOSALS:
            assert p.high * unit <= ram, f"{p.name} may reach {p.high * unit / 2**30:.1f} GiB of {ram / 2**30:.1f}"


def test_restart_only_knobs_only_with_restarts_allowed(tmp_path):
    _pg().close()
    plain = PostgresKnobs(url=PG_URL, knobs="all", workload="ycsb-a", records=100, state_file=str(tmp_path / "a.json"))
    assert all(p.apply_cost != "restart" for p in plain.space())
    assert "max_worker_processes" in plain.excluded_knobs
    allowed = PostgresKnobs(url=PG_URL, knobs="all", workload="ycsb-a", records=100, allow_restart=True,
                            restart_command="false", state_file=str(tmp_path / "b.json"))
    restart = [p.name for p in allowed.space() if p.apply_cost == "restart"]
    assert "shared_buffers" in restart and "max_worker_processes" in restart


def test_propose_rules_without_a_server():
    from autosys_adapters.dbserver.base import KnobInfo

    ram, cores = 8 * 1024**3, 2
    work_mem = KnobInfo("work_mem", "integer", 4096, "kB", 64, 2147483647, how="session")
    p = catalogue.propose(work_mem, "postgres", ram=ram, cores=cores)
    assert p.high * 1024 <= ram * catalogue.SESSION_MEMORY_SHARE and p.log and p.low <= 4096
    auto = KnobInfo("autovacuum_work_mem", "integer", -1, "kB", -1, 2147483647, how="reload")
    p = catalogue.propose(auto, "postgres", ram=ram, cores=cores)
    assert p.low == -1 and not p.log  # the special value stays reachable
    workers = KnobInfo("max_parallel_workers", "integer", 8, None, 0, 1024)
    assert catalogue.propose(workers, "postgres", ram=ram, cores=cores).high == 8  # 4 per core
    unlimited = KnobInfo("tmp_disk_table_size", "integer", 2**64 - 1, None, 0, 2**64 - 1)
    assert isinstance(catalogue.propose(unlimited, "mysql", ram=ram, cores=cores), str)
    assert PG_UNIT_BYTES["8kB"] == 8192


def test_sampled_full_catalogue_configs_apply_and_everything_is_restored(request, tmp_path, monkeypatch):
    """Three random configs over every knob of each server are accepted; the server ends exactly as found."""
    monkeypatch.setattr(catalogue, "host_memory", lambda: TEST_RAM)  # small memory ranges on a shared host
    for name, (connect, snapshot, make) in SERVERS.items():
        conn = connect()
        before = snapshot(conn)
        system = make(tmp_path)
        try:
            space = system.space()
            disk = [p.name for p in space if re.search(catalogue.DISK_SIZE, p.name)]
            rng = np.random.default_rng(11)
            system.setup()
            for _ in range(3):
                config = space.sample(rng)
                # sizes on disk (WAL, redo log) stay at their defaults: the test keeps its disk use small
                config.update({n: space[n].default_value() for n in disk})
                session_knobs = system.apply(config)
                bench = system._bench_session(-1, session_knobs)  # per-connection knobs are set here
                bench.conn.close()
        finally:
            system.teardown()
        after = snapshot(conn)
        conn.close()
        # teardown verified the whole server against the snapshot it took under the server's lock; other runs on
        # this shared host change settings and databases of their own, so this check looks at what we touched
        assert _touched(after, space) == _touched(before, space), f"{name}: the server was not restored"
        assert not [d for d in str(after["databases"]).split("'") if d == system.database]
