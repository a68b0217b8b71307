"""The TPC-H-like analytic mix at scale: every query's answer, the server-side load, the dataset cache.

Each query runs on a small dataset (SQLite always; PostgreSQL at
127.0.0.1:5432 and MariaDB at 127.0.0.1:3306 when they answer, else the test
skips saying why) and its result is compared with the same query computed
independently in numpy from the generator's Python formula
(`sales_columns`), which the server-side SQL load must reproduce row for row.
The cache tests load a dataset of a few thousand rows into the server's
dataset cache, check that a second system with the same parameters reuses it
and one with other parameters loads its own, that the inserts of a measured
run do not accumulate, and drop what they loaded; every server setting is
compared before and after.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3

import numpy as np
import pytest

from autosys_adapters.workloads import load_benchmark
from autosys_adapters.workloads.analytic import (
    CATEGORIES, DAYS, NATIONS, PROMOS, REGIONS, SEGMENTS, customers_of, returns_columns, returns_of, sales_columns,
)
from autosys_adapters.workloads.base import Session
from tests.mariadb_server import connect_or_skip, global_variables

PG_URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MY_HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")
RECORDS = 4000  # sales rows of the answer tests: 1000 orders of four lines, 200 customers, 400 returns


# ----------------------------------------------------------------------------- the reference, in numpy
def _promos() -> dict[str, np.ndarray]:
    g = np.arange(PROMOS)
    return {"region": g % REGIONS, "qty": 1 + (g // REGIONS) % 19, "campaign": g % 10, "discount": np.full(PROMOS, 0.9)}


def expected(item: tuple, records: int) -> list[tuple]:
    """The answer of one query of the stream, computed from the generator's formula alone."""
    s = sales_columns(np.arange(records), records)
    revenue = s["qty"] * s["price"]
    kind = item[0]
    if kind == "revenue_by_region":
        _, first, last, _ = item
        m = (s["day"] >= first) & (s["day"] <= last)
        return [(r, revenue[m & (s["region"] == r)].sum(), int((m & (s["region"] == r)).sum()))
                for r in range(REGIONS) if (m & (s["region"] == r)).any()]
    if kind == "top_products":
        _, first, last, region = item
        m = (s["day"] >= first) & (s["day"] <= last) & (s["region"] == region)
        sums = {int(p): revenue[m & (s["product"] == p)].sum() for p in np.unique(s["product"][m])}
        return sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    if kind == "daily_average":
        _, first, last, region = item
        m = (s["day"] >= first) & (s["day"] <= last) & (s["region"] != region)
        return [(int(d), s["price"][m & (s["day"] == d)].mean(), int(s["qty"][m & (s["day"] == d)].max()))
                for d in np.unique(s["day"][m])]
    if kind == "range_count":
        _, low, high = item
        m = (s["id"] >= low) & (s["id"] <= high)
        return [(int(m.sum()), int(s["qty"][m].sum()))]
    if kind == "category_revenue":
        _, first, last, _ = item
        m = (s["day"] >= first) & (s["day"] <= last)
        category = s["product"] % CATEGORIES  # products.category = id % 25
        rows = [(int(c), revenue[m & (category == c)].sum(), int((m & (category == c)).sum()))
                for c in np.unique(category[m])]
        return sorted(rows, key=lambda r: (-r[1], r[0]))
    if kind == "segment_revenue":
        _, first, last, region = item
        nation, segment = s["customer"] % NATIONS, (s["customer"] // NATIONS) % SEGMENTS
        m = (s["day"] >= first) & (s["day"] <= last) & (nation >= 3 * region) & (nation <= 3 * region + 2)
        return [(int(g), int((m & (segment == g)).sum()), revenue[m & (segment == g)].sum())
                for g in np.unique(segment[m])]
    if kind == "returns_by_region":
        _, reasons = item
        r = returns_columns(records)
        m = r["reason"] < reasons
        region = s["region"][r["sale_id"]]  # sales ids are 0..records-1: the id is the row
        return [(int(g), int((m & (region == g)).sum()), r["amount"][m & (region == g)].sum())
                for g in np.unique(region[m])]
    if kind == "promo_join":
        _, first, last = item
        p = _promos()
        m = (s["day"] >= first) & (s["day"] <= last)
        out = []
        for campaign in range(4):
            pm = p["campaign"] == campaign
            count, total = 0, 0.0
            for region, qty, discount in zip(p["region"][pm], p["qty"][pm], p["discount"][pm]):
                hit = m & (s["region"] == region) & (s["qty"] == qty)
                count += int(hit.sum())
                total += float((revenue[hit] * discount).sum())
            if count:
                out.append((campaign, count, total))
        return out
    if kind == "large_orders":
        _, low = item
        high = low + max(records // 2, 1) - 1
        m = (s["id"] >= low) & (s["id"] <= high)
        order = s["id"][m] // 4
        totals = np.bincount(order - order.min(), weights=s["qty"][m])
        return [(int(o + order.min()), int(t)) for o, t in enumerate(totals) if t > 60]
    if kind == "deep_sort":
        _, day = item
        m = s["day"] < day
        ids, prices = s["id"][m], s["price"][m]
        order = np.lexsort((ids, -prices))
        offset = max(records // 40, 1)
        return [(int(ids[i]), float(prices[i])) for i in order[offset:offset + 50]]
    raise ValueError(kind)


def _same(got: list, want: list) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if len(g) != len(w):
            return False
        for a, b in zip(g, w):
            if isinstance(b, (float, np.floating)) or isinstance(a, float):
                if not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6):
                    return False
            elif int(a) != int(b):
                return False
    return True


def _items(bench) -> dict[str, tuple]:
    """One item of each read kind, from streams of a few seeds (fixed parameters, so failures reproduce)."""
    found: dict[str, tuple] = {}
    for seed in range(20):
        for item in bench.stream(seed):
            if item[0] != "insert_batch":
                found.setdefault(item[0], item)
    return found


def _check_answers(session: Session, bench) -> None:
    items = _items(bench)
    assert set(items) == set(bench.workload.mix) - {"insert_batch"}
    for kind, item in sorted(items.items()):
        sql, params = bench.query(session.dialect, item)
        got = [tuple(row) for row in session.all(sql, params)]
        want = expected(item, bench.workload.records)
        assert want, f"{kind} {item}: the reference answer is empty, so the check would prove little"
        assert _same(got, want), f"{session.dialect} {kind} {item}: got {got[:5]}, want {want[:5]}"


def _bench(records: int = RECORDS):
    mix = {"revenue_by_region": 1, "top_products": 1, "daily_average": 1, "range_count": 1, "category_revenue": 1,
           "segment_revenue": 1, "returns_by_region": 1, "promo_join": 1, "large_orders": 1, "deep_sort": 1}
    return load_benchmark({"kind": "analytic", "records": records, "operations": 200, "mix": mix})


def test_the_reference_tables_are_what_the_sql_load_makes_on_sqlite(tmp_path):
    bench = _bench()
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    session = Session(conn, "sqlite")
    bench.create(session)
    want = sales_columns(np.arange(RECORDS), RECORDS)
    rows = session.all("SELECT id, region, product, customer, day, qty, price FROM sales ORDER BY id")
    got = np.array(rows, dtype=float)
    for k, name in enumerate(("id", "region", "product", "customer", "day", "qty", "price")):
        assert np.array_equal(got[:, k], want[name].astype(float)), name
    assert session.one("SELECT COUNT(*) FROM customers")[0] == customers_of(RECORDS)
    assert session.one("SELECT COUNT(*) FROM returns")[0] == returns_of(RECORDS)
    # the product skew of a TPC-H-like fact table: the 50 lowest product ids take most of the rows
    assert (want["product"] < 50).mean() > 0.4 and len(np.unique(want["product"])) > 200
    conn.close()


def test_every_query_answers_right_on_sqlite(tmp_path):
    bench = _bench()
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    session = Session(conn, "sqlite")
    bench.create(session)
    _check_answers(session, bench)
    conn.close()


def test_a_large_dataset_is_cached_and_a_small_one_is_not():
    assert hasattr(load_benchmark("analytic"), "dataset_key")  # 2M rows by default
    assert load_benchmark("analytic").workload.records == 2_000_000
    assert not hasattr(load_benchmark({"kind": "analytic", "records": 5000}), "dataset_key")
    a = load_benchmark({"kind": "analytic", "records": 200_000})
    b = load_benchmark({"kind": "analytic", "records": 200_001})
    assert a.dataset_key("postgres") != b.dataset_key("postgres") != b.dataset_key("mysql")
    assert a.dataset_key("postgres") == load_benchmark({"kind": "analytic", "records": 200_000, "operations": 7}).dataset_key("postgres")


# ----------------------------------------------------------------------------- the real servers
def _pg_or_skip():
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {PG_URL}: {str(exc).strip().splitlines()[0]}")


def _pg_settings(conn) -> dict:
    rows = conn.execute("SELECT name, setting, source FROM pg_settings WHERE name <> 'application_name'").fetchall()
    auto = conn.execute("SELECT pg_read_file('postgresql.auto.conf')").fetchone()[0]
    return {"settings": sorted(rows), "auto": auto}


def _admin(server: str):
    """(connection, snapshot function) of a server, or skip."""
    if server == "postgres":
        conn = _pg_or_skip()
        return conn, lambda: _pg_settings(conn)
    conn = connect_or_skip(MY_HOST)
    return conn, lambda: global_variables(conn)


def _scratch_session(server: str, conn, name: str) -> Session:
    """A session in a scratch database `name` (created fresh)."""
    if server == "postgres":
        import psycopg

        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
        return Session(psycopg.connect(url, autocommit=True), "postgres")
    import pymysql

    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}`")
    return Session(pymysql.connect(host=MY_HOST, port=3306, user="root", password="", database=name, autocommit=True),
                   "mysql")


def _drop_scratch(server: str, conn, name: str) -> None:
    if server == "postgres":
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    else:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.mark.parametrize("server,sequence", [("postgres", "engine"), ("mariadb", "engine"), ("mariadb", "table")])
def test_every_query_answers_right_on_the_server(server, sequence):
    conn, settings = _admin(server)
    before = settings()
    name = "autosys_bench_test_analytic"
    bench = _bench()
    session = _scratch_session(server, conn, name)
    try:
        if server == "mariadb" and sequence == "engine" and bench._sequence(session) != "engine":
            pytest.skip("this MariaDB has no SEQUENCE engine (the numbers-table load is tested alongside)")
        for statement in bench.schema(session.dialect):
            session.execute(statement)
        for statement in bench.load_statements(session.dialect, sequence):
            session.execute_literal(statement)
        bench.check_loaded(session)
        got = np.array(session.all("SELECT id, region, product, customer, day, qty, price FROM sales ORDER BY id"), dtype=float)
        want = sales_columns(np.arange(RECORDS), RECORDS)
        for k, column in enumerate(("id", "region", "product", "customer", "day", "qty", "price")):
            assert np.array_equal(got[:, k], want[column].astype(float)), f"{server}: sales.{column} differs from the formula"
        _check_answers(session, bench)
        if server == "mariadb":  # the join algorithms the tuner may pick give the same answers
            for level in (4, 8):
                session.execute("SET SESSION join_cache_level = ?", (level,))
                _check_answers(session, bench)
    finally:
        session.conn.close()
        _drop_scratch(server, conn, name)
    assert settings() == before
    conn.close()


def _system(server: str, tmp_path, records: int, mix: dict | None = None):
    spec = {"kind": "analytic", "records": records, "cache_rows": 1000, "batch": 20}
    if mix:
        spec["mix"] = mix
    path = tmp_path / f"analytic-{records}.json"
    path.write_text(json.dumps(spec))
    common = dict(workload=str(path), operations=400, concurrency=2, seconds=0.6, warmup=0.0,
                  state_file=str(tmp_path / "state.json"))
    if server == "postgres":
        from autosys_adapters.dbserver.postgres import PostgresKnobs

        return PostgresKnobs(url=PG_URL, knobs="work_mem", **common)
    from autosys_adapters.dbserver.mysql import MySQLKnobs

    return MySQLKnobs(host=MY_HOST, knobs="join_cache_level", **common)


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_the_dataset_is_reused_for_the_same_parameters_and_rebuilt_for_others(tmp_path, server):
    from autosys_adapters.dbserver.datasets import drop_datasets, list_datasets

    conn, settings = _admin(server)
    before = settings()
    records = 3000 + (os.getpid() % 97)  # a size no earlier (killed) run can have left cached
    loaded = []
    systems = []
    try:
        first = _system(server, tmp_path, records)
        systems.append(first)
        first.setup()
        assert first._datasets.loads == 1
        loaded.append(first._dataset.fingerprint)
        marker = first._datasets.info(first._dataset)
        first.teardown()

        second = _system(server, tmp_path, records)  # a second system (a new study): found, not reloaded
        systems.append(second)
        second.setup()
        assert second._datasets.loads == 0 and second._dataset == first._dataset
        assert second._datasets.info(second._dataset).loaded_at == marker.loaded_at
        assert second._datasets.verify(second._dataset, second.database) == []
        second.teardown()

        other = _system(server, tmp_path, records + 1)  # other parameters: a dataset of its own
        systems.append(other)
        other.setup()
        assert other._datasets.loads == 1 and other._dataset.fingerprint != first._dataset.fingerprint
        loaded.append(other._dataset.fingerprint)
        other.teardown()
        names = [d if isinstance(d, str) else d.database for d in list_datasets(first)]
        assert all(f"autosys_ds_{f}" in names for f in loaded)
    finally:
        for system in systems:
            system.teardown()
        if loaded:
            assert sorted(drop_datasets(systems[0], loaded)) == sorted(f"autosys_ds_{f}" for f in loaded)
    assert settings() == before
    conn.close()


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_inserts_do_not_accumulate_across_measured_runs(tmp_path, server):
    from autosys_adapters.dbserver.datasets import drop_datasets

    conn, settings = _admin(server)
    before = settings()
    records = 2000 + (os.getpid() % 89)
    mix = {"range_count": 1, "insert_batch": 1}
    system = _system(server, tmp_path, records, mix)
    dataset = None
    try:
        for _ in range(3):
            m = system.evaluate(system.default())
            dataset = system._dataset
            inserted = m.info["by_kind"].get("insert_batch", 0) * 20
            assert inserted > 0
            session = system._bench_session(-1, {})
            try:
                rows = int(session.one("SELECT COUNT(*) FROM sales")[0])
            finally:
                session.conn.close()
            assert rows == records + inserted  # this run's inserts only: the last run's were deleted before it
        assert system._datasets.copies == 1  # bounded by reset(), not by copying the dataset again
        session = system._bench_session(-1, {})
        try:
            system.bench.reset(session)
        finally:
            session.conn.close()
        assert system._datasets.verify(dataset, system.database) == []  # exactly the loaded content again
    finally:
        system.teardown()
        if dataset is not None:
            drop_datasets(system, [dataset.fingerprint])
    assert settings() == before
    conn.close()


def test_curated_buffer_ranges_are_sized_to_the_host_ram_and_hold_the_analytic_knobs():
    from autosys_adapters.dbserver import mysql, postgres
    from autosys_adapters.dbserver.catalogue import SERVER_MEMORY_SHARE, host_memory

    ram = host_memory()
    pool, shared = mysql.PROPOSALS["innodb_buffer_pool_size"], postgres.PROPOSALS["shared_buffers"]
    assert pool.high == max(int(ram * SERVER_MEMORY_SHARE), 1 << 30)  # bytes
    assert shared.high == max(int(ram * SERVER_MEMORY_SHARE), 1 << 30) // 8192  # 8 kB pages
    assert pool.low < 128 * 2**20 < pool.high and shared.low < 16384 < shared.high  # the servers' defaults inside
    # what the analytic probe found (hash/BKA joins, join buffers, in-memory GROUP BY temp tables) is curated
    assert {"join_cache_level", "join_buffer_size", "max_heap_table_size", "tmp_table_size"} <= set(mysql.PROPOSALS)
