"""Expert baselines: PGTune's formulas against its published outputs, MariaDB's sizing, and configs valid for the host.

Published outputs are those of PGTune's own test suite
(le0pard/pgtune, src/features/configuration/__tests__/configurationSlice.test.js,
commit 01bb6447113831159c5f14fafe11f59cf2ba0964); the rest are worked out
by hand below from the formulas in configurationSlice.js at the same commit.
"""

from __future__ import annotations

import math
import os

import pytest

from autosys.core.space import Float, Int
from autosys_adapters.dbserver.expert import mariadb_rules, pgtune

GB = 1024**3
KB = 1024


def values(rules: dict) -> dict:
    return {name: value for name, (value, _unit, _rule) in rules.items()}


# ----------------------------------------------------------------------------- PGTune: its own published outputs
def test_pgtune_maintenance_work_mem_matches_its_published_outputs():
    # "calculates properly below the limit cap": 16 GB, web, linux -> 1048576 kB (1 GB)
    assert values(pgtune(16 * GB, 4, "web"))["maintenance_work_mem"] == 1048576
    # "caps at 8GB for linux servers with extreme memory": 256 GB, web -> 8388608 kB
    assert values(pgtune(256 * GB, 4, "web"))["maintenance_work_mem"] == 8388608


def test_pgtune_work_mem_matches_its_published_outputs():
    # "protects work_mem by flooring to 4MB during extreme max_connections": 4 GB, web, 9999 connections, 4 cpus
    assert values(pgtune(4 * GB, 4, "web", connections=9999))["work_mem"] == 4096
    # 256 GB, web, 20 connections, 4 cpus: "Actually evaluates to 2796202" (the PG 18 Windows case has no cap,
    # the formula is Linux's): (268435456 kB - 67108864 kB shared_buffers) / ((20 + 4 workers) * 3) = 2796202.67
    assert values(pgtune(256 * GB, 4, "web", connections=20))["work_mem"] == math.floor((268435456 - 67108864) / 72) == 2796202


def test_pgtune_parallel_settings_match_its_published_outputs():
    v = values(pgtune(16 * GB, 12, "web", version=13))  # "postgresql 13", 12 cpus
    assert (v["max_worker_processes"], v["max_parallel_workers_per_gather"], v["max_parallel_workers"],
            v["max_parallel_maintenance_workers"]) == (12, 4, 12, 4)
    v = values(pgtune(16 * GB, 31, "dw", version=12))  # "postgresql 12 with 31 cpu and DWH"
    assert (v["max_worker_processes"], v["max_parallel_workers_per_gather"], v["max_parallel_workers"]) == (31, 16, 31)
    v = values(pgtune(16 * GB, 2, "web"))  # "less ... cpu provided": no parallel settings below 4 cores
    assert "max_worker_processes" not in v and "max_parallel_workers_per_gather" not in v


def test_pgtune_constants_match_its_published_outputs():
    for workload, connections, target in (("web", 200, 100), ("oltp", 300, 100), ("dw", 40, 500), ("desktop", 20, 100),
                                          ("mixed", 100, 100)):
        v = values(pgtune(8 * GB, 4, workload))
        assert v["max_connections"] == connections and v["default_statistics_target"] == target
    for storage, cost, io in (("hdd", 4, 2), ("ssd", 1.1, 200), ("san", 1.1, 300), ("nvme", 1.1, 1000)):
        v = values(pgtune(8 * GB, 4, "oltp", storage=storage))
        assert v["random_page_cost"] == cost and v["effective_io_concurrency"] == io
    desktop = values(pgtune(8 * GB, 4, "desktop"))
    assert desktop["wal_level"] == "minimal" and desktop["max_wal_senders"] == 0
    assert values(pgtune(4 * GB, 4, "web"))["huge_pages"] == "off" and values(pgtune(16 * GB, 4, "web"))["huge_pages"] == "try"
    assert values(pgtune(8 * GB, 4, "oltp", version=15))["jit"] == "off" and "jit" not in values(pgtune(8 * GB, 4, "dw"))
    assert values(pgtune(256 * GB, 4, "web"))["autovacuum_work_mem"] == 2097152  # "caps ... at 2GB"
    assert "autovacuum_work_mem" not in values(pgtune(4 * GB, 4, "web"))


def test_pgtune_worked_example_by_hand():
    """8 GB, 4 cores, oltp, SSD (PGTune's default 300 connections), from the formulas of configurationSlice.js."""
    v = values(pgtune(8 * GB, 4, "oltp", storage="ssd"))
    ram_kb = 8 * 1024 * 1024
    assert v["shared_buffers"] == ram_kb // 4 == 2097152  # selectSharedBuffers: RAM/4
    assert v["effective_cache_size"] == ram_kb * 3 // 4 == 6291456  # selectEffectiveCacheSize: RAM*3/4
    assert v["maintenance_work_mem"] == ram_kb // 16 == 524288  # RAM/16
    assert v["wal_buffers"] == 16384  # 3% of 2097152 = 62914 kB, capped at 16 MB
    assert v["work_mem"] == (ram_kb - 2097152) // ((300 + 4) * 3) == 6898  # (RAM - shared_buffers) / ((conns + cores) * 3)
    assert (v["min_wal_size"], v["max_wal_size"]) == (2048 * KB, 8192 * KB)  # oltp: 2 GB and 8 GB, in kB
    assert v["checkpoint_completion_target"] == 0.9
    assert (v["max_worker_processes"], v["max_parallel_workers_per_gather"], v["max_parallel_maintenance_workers"]) == (4, 2, 2)
    # desktop: RAM/16 shared buffers, work_mem a sixth
    d = values(pgtune(8 * GB, 4, "desktop"))
    assert d["shared_buffers"] == ram_kb // 16
    assert d["work_mem"] == max(math.floor((ram_kb - ram_kb // 16) / ((20 + 4) * 3) / 6), 4096)


def test_rules_refuse_unknown_types():
    with pytest.raises(ValueError, match="workload type"):
        pgtune(8 * GB, 4, "batch")
    with pytest.raises(ValueError, match="storage type"):
        mariadb_rules(8 * GB, 4, "oltp", storage="tape")


def test_mariadb_rules():
    v = values(mariadb_rules(16 * GB, 4, "oltp", storage="ssd"))
    assert v["innodb_buffer_pool_size"] == int(16 * GB * 0.7)  # 60-70% of RAM on a dedicated server
    assert v["innodb_log_file_size"] == v["innodb_buffer_pool_size"] // 4  # 25% of the pool without a redo rate
    assert v["innodb_io_capacity"] == 2000 and v["innodb_flush_neighbors"] == 0 and v["innodb_flush_method"] == "O_DIRECT"
    hourly = values(mariadb_rules(16 * GB, 4, "oltp", storage="hdd", redo_bytes_per_second=100_000))
    assert hourly["innodb_log_file_size"] == 360_000_000 and hourly["innodb_io_capacity"] == 200
    assert values(mariadb_rules(16 * GB, 4, "desktop"))["innodb_buffer_pool_size"] < v["innodb_buffer_pool_size"]


# ----------------------------------------------------------------------------- against the real servers
def _system(dialect: str, knobs: str, tmp_path):
    if dialect == "postgres":
        psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
        url = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            psycopg.connect(url, connect_timeout=2).close()
        except psycopg.OperationalError as exc:
            pytest.skip(f"no PostgreSQL server reachable at {url}: {str(exc).strip().splitlines()[0]}")
        from autosys_adapters.dbserver.postgres import PostgresKnobs

        return PostgresKnobs(url=url, knobs=knobs, workload="ycsb-a", records=100, state_file=str(tmp_path / "pg.json"))
    pymysql = pytest.importorskip("pymysql", reason="pymysql is not installed")
    host = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")
    try:
        pymysql.connect(host=host, port=3306, user="root", password="", connect_timeout=2).close()
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"no MariaDB/MySQL server reachable at {host}:3306: {exc}")
    from autosys_adapters.dbserver.mysql import MySQLKnobs

    return MySQLKnobs(host=host, knobs=knobs, workload="ycsb-a", records=100, state_file=str(tmp_path / "my.json"))


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
@pytest.mark.parametrize("knobs", ["", "all"])
@pytest.mark.parametrize("workload", ["oltp", "dw"])
def test_expert_config_is_valid_for_the_host_and_the_space(dialect, knobs, workload, tmp_path):
    from autosys_adapters.dbserver.catalogue import PG_UNIT_BYTES, host_memory

    system = _system(dialect, knobs, tmp_path)
    try:
        space = system.space()
        expert = system.expert_config(workload)
        assert space.validate(expert.config) == expert.config  # a config of the space, constraints included
        assert expert.values and set(expert.values) <= set(space.params)
        assert set(expert.rules) == set(expert.values) | set(expert.dropped)
        assert all(why for why in expert.dropped.values())
        ram = host_memory()
        for name, value in expert.values.items():
            param = space[name]
            if isinstance(param, (Int, Float)):
                assert param.low <= value <= param.high
            info = system.catalog()[name]
            unit = PG_UNIT_BYTES.get(info.unit or "") if dialect == "postgres" else (1 if name.endswith("_size") else None)
            if unit and "wal_size" not in name and "log_file_size" not in name:
                assert value * unit <= ram, f"{name}={value} x {unit} B is above the host's RAM"
        if not system.allow_restart:  # restart-only rules are dropped, saying why
            restart = {"postgres": "shared_buffers", "mysql": "innodb_flush_method"}[dialect]
            assert restart not in expert.values and "restart" in expert.dropped[restart]
        if knobs == "all" and dialect == "postgres":
            assert {"effective_cache_size", "maintenance_work_mem", "default_statistics_target"} <= set(expert.values)
        if knobs == "" and dialect == "postgres":
            assert "not among the tuned knobs" in expert.dropped["effective_cache_size"]
        for name, (wanted, used) in expert.clipped.items():
            assert used == expert.values[name] and used != wanted
    finally:
        system.teardown()
