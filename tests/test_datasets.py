"""The dataset cache against the real servers: a loaded dataset is reused, and restored after writes.

Each server test loads a tiny sysbench dataset (2 tables x 1,500 rows) into
a cache database, and drops it at the end (the cache is kept between runs
on purpose; `drop_datasets` is how it goes). Skips with the reason when
sysbench or a server is missing.
"""

from __future__ import annotations

import json
import os

import pytest

from autosys_adapters.dbserver.datasets import (
    PREFIX, DatasetCache, DatasetSpec, drop_datasets, fingerprint, list_datasets, table_checksums,
)
from autosys_adapters.workloads.sysbench import sysbench_binary

PG_URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MY_HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")


def test_the_fingerprint_follows_the_generator_and_every_parameter():
    base = fingerprint("sysbench-1.0.20-oltp", {"tables": 2, "table_size": 100, "dialect": "postgres"})
    assert base == fingerprint("sysbench-1.0.20-oltp", {"dialect": "postgres", "table_size": 100, "tables": 2})
    others = {
        fingerprint("sysbench-1.0.21-oltp", {"tables": 2, "table_size": 100, "dialect": "postgres"}),
        fingerprint("sysbench-1.0.20-oltp", {"tables": 3, "table_size": 100, "dialect": "postgres"}),
        fingerprint("sysbench-1.0.20-oltp", {"tables": 2, "table_size": 101, "dialect": "postgres"}),
        fingerprint("sysbench-1.0.20-oltp", {"tables": 2, "table_size": 100, "dialect": "mysql"}),
    }
    assert base not in others and len(others) == 4
    spec = DatasetSpec("sysbench-1.0.20-oltp", {"tables": 2})
    assert spec.database == PREFIX + spec.fingerprint and len(spec.database) <= 63


def _system(server: str, tmp_path, test: str):
    if sysbench_binary() is None:
        pytest.skip("sysbench is not installed (Debian: apt install sysbench)")
    spec = tmp_path / f"{test}.json"
    spec.write_text(json.dumps({"kind": "sysbench", "test": test, "tables": 2, "table_size": 1500}))
    common = dict(workload=str(spec), concurrency=2, seconds=1.0, warmup=0.0, state_file=str(tmp_path / "state.json"))
    if server == "postgres":
        psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
        try:
            psycopg.connect(PG_URL, connect_timeout=2).close()
        except psycopg.OperationalError as exc:
            pytest.skip(f"no PostgreSQL server reachable at {PG_URL}: {str(exc).strip().splitlines()[0]}")
        from autosys_adapters.dbserver.postgres import PostgresKnobs

        return PostgresKnobs(url=PG_URL, knobs="work_mem", **common)
    pymysql = pytest.importorskip("pymysql", reason="pymysql is not installed (pip install 'autosys-toolkit[db]')")
    try:
        pymysql.connect(host=MY_HOST, port=3306, user="root", password="", connect_timeout=2).close()
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"no MariaDB/MySQL server reachable at {MY_HOST}:3306: {exc}")
    from autosys_adapters.dbserver.mysql import MySQLKnobs

    return MySQLKnobs(host=MY_HOST, knobs="sort_buffer_size", **common)


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_a_cached_dataset_is_reused_and_restored_after_writes(tmp_path, server):
    first = _system(server, tmp_path, "oltp_write_only")
    second = None
    dataset = None
    try:
        try:
            first.evaluate(first.default())
            dataset = first._dataset
            if first._datasets.loads == 0:  # a cache a killed earlier run left: drop it, so this test loads one
                first.teardown()
                drop_datasets(first, [dataset.fingerprint])
                first = _system(server, tmp_path, "oltp_write_only")
                first.evaluate(first.default())
            assert first._datasets.loads == 1
            loaded = first._datasets.info(dataset)
            assert loaded is not None and loaded.checksums
        finally:
            first.teardown()
        assert dataset.database in [d if isinstance(d, str) else d.database for d in list_datasets(first)]

        # a second study (a fresh instance) finds the dataset loaded: no second load, same marker
        second = _system(server, tmp_path, "oltp_write_only")
        second.evaluate(second.default())
        assert second._datasets.loads == 0 and second._dataset == dataset
        assert second._datasets.info(dataset).loaded_at == loaded.loaded_at
        # the measured run wrote to the run database: it no longer equals the dataset as loaded ...
        changed = second._datasets.verify(dataset, second.database)
        assert changed, "the write-only run changed nothing; the restore below would prove nothing"
        # ... and the restore before the next measured run puts it back exactly
        copies = second._datasets.copies
        second._restore_dataset()
        assert second._datasets.copies == copies + 1
        assert second._datasets.verify(dataset, second.database) == []
        assert table_checksums(second, second.database) == loaded.checksums
    finally:
        if second is not None:
            second.teardown()
        if dataset is not None:
            assert drop_datasets(first, [dataset.fingerprint]) == [dataset.database]
    assert dataset.database not in [d if isinstance(d, str) else d.database for d in list_datasets(first)]


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_a_read_only_workload_is_copied_once_per_study(tmp_path, server):
    system = _system(server, tmp_path, "oltp_point_select")
    dataset = None
    try:
        system.evaluate(system.default())
        dataset = system._dataset
        system.evaluate(system.default())
        system.evaluate(system.default())
        assert system._datasets.copies == 1  # no restore between read-only runs
        assert system._datasets.verify(dataset, system.database) == []
    finally:
        system.teardown()
        if dataset is not None:
            drop_datasets(system, [dataset.fingerprint])


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_a_half_loaded_dataset_is_loaded_again_and_only_autosys_names_are_dropped(tmp_path, server):
    system = _system(server, tmp_path, "oltp_read_only")
    cache = DatasetCache(system)
    spec = DatasetSpec("autosys-test-generator", {"case": "half-loaded", "pid": os.getpid()})
    calls = []

    def load(session):
        calls.append(session.dialect)
        session.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
        session.execute("INSERT INTO t VALUES (1, 10), (2, 20)")

    try:
        cache._create(spec.database)  # a load that died before its marker
        assert cache.info(spec) is None
        info = cache.ensure(spec, load)
        assert calls and cache.loads == 1 and info.checksums["t"].startswith("2:")
        assert cache.ensure(spec, load).loaded_at == info.loaded_at and len(calls) == 1
        # a load cut short (the client may still exit 0) fails its check and is never marked as loaded
        short = DatasetSpec("autosys-test-generator", {"case": "cut-short", "pid": os.getpid()})

        def incomplete(session):
            if session.one("SELECT COUNT(*) FROM t")[0] != 3:
                raise RuntimeError("the load left 2 rows, not 3")

        try:
            with pytest.raises(RuntimeError, match="left 2 rows"):
                cache.ensure(short, load, check=incomplete)
            assert cache.info(short) is None
        finally:
            cache.drop(short)
        with pytest.raises(ValueError, match="not a cached dataset"):
            cache.drop("postgres" if server == "postgres" else "mysql")
        with pytest.raises(ValueError, match="autosys_bench_"):
            cache.copy(spec, f"{PREFIX}0000000000000000")
    finally:
        cache.drop(spec)
    assert spec.database not in cache.names()
