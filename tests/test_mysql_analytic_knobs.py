"""The MariaDB knobs added for analytic queries: declared in the curated subset, per session, restored.

`join_cache_level` (hash and batched-key-access joins) and `max_heap_table_size`
(GROUP BY temp tables kept in memory) gave the largest speed-ups the analytic
probe found (experiments/probe_analytic_headroom.py). The server test skips if
no MariaDB listens at 127.0.0.1:3306; it changes only session values and checks
every global variable is as it was.
"""

from __future__ import annotations

import os

import pytest

from autosys.core.space import Int
from autosys_adapters.dbserver.mysql import MIB, PROPOSALS, MySQLKnobs
from tests.mariadb_server import connect_or_skip, global_variables

HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")
KNOBS = "join_cache_level,max_heap_table_size"


def test_analytic_knobs_are_in_the_curated_subset_with_ranges_around_the_defaults():
    jcl, heap = PROPOSALS["join_cache_level"], PROPOSALS["max_heap_table_size"]
    assert (jcl.low, jcl.high, jcl.log) == (0, 8, False)  # 2 (the default) is block nested loop only; 3-8 hash/BKA
    assert (heap.low, heap.high, heap.log) == (1 * MIB, 1024 * MIB, True)
    assert heap.low < 16 * MIB < heap.high  # the server's default stays inside the range


def _server():
    return connect_or_skip(HOST)


_globals = global_variables


def test_analytic_knobs_are_session_knobs_that_reach_the_benchmark_connection(tmp_path):
    conn = _server()
    before = _globals(conn)
    system = MySQLKnobs(host=HOST, workload="analytic", records=200, operations=5000, concurrency=1, seconds=0.3,
                        warmup=0.05, knobs=KNOBS, state_file=str(tmp_path / "state.json"))
    try:
        space = system.space()
        jcl, heap = space.params["join_cache_level"], space.params["max_heap_table_size"]
        assert isinstance(jcl, Int) and (jcl.low, jcl.high) == (0, 8)
        assert isinstance(heap, Int) and heap.low == 1 * MIB and heap.high == 1024 * MIB
        assert space.apply_costs() == {"join_cache_level": "none", "max_heap_table_size": "none"}
        system.setup()
        session_knobs = system.apply({"join_cache_level": 8, "max_heap_table_size": 256 * MIB})
        assert set(session_knobs) == {"join_cache_level", "max_heap_table_size"}  # nothing set server-wide
        session = system._bench_session(0, session_knobs)
        try:
            assert tuple(session.one("SELECT @@session.join_cache_level, @@session.max_heap_table_size")) == (8, 256 * MIB)
        finally:
            session.conn.close()
        assert _globals(conn) == before
        measured = system.evaluate({**system.default(), "join_cache_level": 6, "max_heap_table_size": 64 * MIB})
        assert measured.metrics["throughput"] > 0
    finally:
        system.teardown()
    assert _globals(conn) == before
    conn.close()
