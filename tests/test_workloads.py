"""Database workloads: deterministic streams, user files, and correct transactions on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from autosys_adapters.workloads import load_benchmark, preset_names
from autosys_adapters.workloads.base import Session
from autosys_adapters.workloads.runner import ClientError, run_clients, run_serial
from autosys_adapters.workloads.tpcc import TPCCLike
from autosys_adapters.workloads.ycsb import PRESETS, YCSBBenchmark, load_workload, operations


@pytest.mark.parametrize("name", ["ycsb-a", "ycsb-e", "ycsb-f", "tpcc-like", "analytic"])
def test_streams_are_deterministic_and_seeded(name):
    bench = load_benchmark(name, operations=400)
    assert bench.stream(3) == load_benchmark(name, operations=400).stream(3)
    assert bench.stream(3) != bench.stream(4)
    assert len(bench.stream(0)) == 400


def test_presets_and_ycsb_api_unchanged():
    assert {"ycsb-a", "ycsb-c", "ycsb-f", "tpcc-like", "analytic"} <= set(preset_names())
    w = load_workload("ycsb-a", records=100, operations=50)
    assert isinstance(load_benchmark("ycsb-a"), YCSBBenchmark) and PRESETS["ycsb-a"].mix["update"] == 0.5
    assert len(operations(w, 0)) == 50


def test_write_heavy_preset_has_only_write_transactions():
    bench = load_benchmark("write-heavy", operations=300, concurrency=16)
    assert bench.name == "write-heavy" and bench.concurrency == 16
    kinds = {item[0] for item in bench.stream(0)}
    assert kinds == {"new_order", "payment"}
    assert load_benchmark("tpcc-like").workload.mix["order_status"] > 0  # the shared preset was not changed


def test_user_workload_files(tmp_path):
    toml = tmp_path / "mine.toml"
    toml.write_text('kind = "tpcc"\nitems = 100\noperations = 50\nconcurrency = 3\n[mix]\npayment = 1.0\n')
    bench = load_benchmark(str(toml))
    assert isinstance(bench, TPCCLike) and bench.concurrency == 3 and bench.name == "mine"
    assert {item[0] for item in bench.stream(0)} == {"payment"}
    js = tmp_path / "kv.json"
    js.write_text(json.dumps({"mix": {"read": 0.9, "scan": 0.1}, "records": 300, "distribution": "uniform"}))
    assert load_benchmark(str(js)).workload.records == 300
    for bad, match in [
        ({"kind": "tpcc", "warehouse_count": 2}, "unknown setting"),
        ({"kind": "tpcc", "mix": {"delivery": 1.0}}, "unknown transaction"),
        ({"kind": "graph"}, "kind"),
        ({"kind": "analytic", "records": 0}, "at least 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_benchmark(bad)
    with pytest.raises(ValueError, match="neither a preset"):
        load_benchmark(str(tmp_path / "missing.json"))


def _sqlite(path):
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA synchronous=off")  # correctness tests: no need to wait for the disk
    return Session(conn, "sqlite")


def test_tpcc_transactions_keep_the_books(tmp_path):
    bench = load_benchmark({"kind": "tpcc", "items": 200, "customers": 30, "operations": 300})
    s = _sqlite(tmp_path / "t.db")
    bench.create(s)
    items = bench.stream(1)
    stats = run_serial(s, bench, items, seconds=60)
    assert stats["done"] == 300
    kinds = [i[0] for i in items]
    new_orders = kinds.count("new_order")
    assert s.one("SELECT COUNT(*) FROM orders")[0] == new_orders
    assert s.one("SELECT SUM(d_next_o_id - 1) FROM district")[0] == new_orders
    lines = sum(len(i[4]) for i in items if i[0] == "new_order")
    assert s.one("SELECT COUNT(*) FROM order_line")[0] == lines
    paid = sum(i[4] for i in items if i[0] == "payment")
    assert s.one("SELECT w_ytd - 300000 FROM warehouse")[0] == pytest.approx(paid)
    assert s.one("SELECT COUNT(*) FROM history")[0] == kinds.count("payment")
    bench.reset(s)
    assert s.one("SELECT COUNT(*) FROM orders")[0] == 0 and s.one("SELECT MAX(d_next_o_id) FROM district")[0] == 1


def test_concurrent_clients_share_the_stream(tmp_path):
    bench = load_benchmark("ycsb-a", records=200, operations=600)
    path = tmp_path / "c.db"
    s = _sqlite(path)
    s.execute("PRAGMA journal_mode=wal")
    bench.create(s)
    opened = []

    def open_session(ci):
        opened.append(threading.get_ident())
        return _sqlite(path)

    stats = run_clients(open_session, bench, bench.stream(0), concurrency=3, seconds=60)
    assert stats.done == 600 and len(set(opened)) == 3 and stats.throughput > 0
    assert sum(stats.by_kind.values()) == 600


def test_a_failing_client_stops_the_run_with_its_reason(tmp_path):
    bench = load_benchmark("ycsb-a", records=50, operations=100)

    def open_session(ci):
        return _sqlite(tmp_path / "empty.db")  # no table: every operation fails

    with pytest.raises(ClientError, match="no such table"):
        run_clients(open_session, bench, bench.stream(0), concurrency=2, seconds=5)


def test_analytic_queries_run(tmp_path):
    bench = load_benchmark({"kind": "analytic", "records": 2000, "operations": 40})
    s = _sqlite(tmp_path / "a.db")
    bench.create(s)
    assert run_serial(s, bench, bench.stream(0), seconds=60)["done"] == 40
    bench.reset(s)
    assert s.one("SELECT COUNT(*) FROM sales")[0] == 2000


def test_a_stream_used_up_by_the_warm_up_is_an_error_not_a_rate(tmp_path):
    from autosys_adapters.workloads.runner import StreamExhausted

    bench = load_benchmark("ycsb-c", records=200, operations=300)
    path = tmp_path / "w.db"
    s = _sqlite(path)
    bench.create(s)
    # 300 reads take milliseconds: all of them fall in the 1-s warm-up, none in the window
    with pytest.raises(StreamExhausted, match="ran out"):
        run_clients(lambda ci: _sqlite(path), bench, bench.stream(0), concurrency=1, seconds=5, warmup=1.0)
