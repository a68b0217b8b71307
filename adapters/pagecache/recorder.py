"""Record real page accesses of an SQLite workload through a logging VFS shim.

`record_sqlite("ycsb", ops=20000, seed=0)` builds a database in a temporary
directory, loads it, then runs a seeded workload while an `apsw` VFS logs every
read and write SQLite issues to the main database file as (page, is_write),
page = offset // page_size. SQLite's own page cache is kept small
(`sqlite_cache_pages`) so the trace is what an OS page cache below it would see.
The same workload and seed replay the same page sequence.

Workloads (self-contained, seeded):
- ycsb:  zipfian point reads and updates on a key-value table (YCSB-A-like).
- tpcc:  a TPC-C-like mix: new orders with order lines, payments updating a
         customer, order-status lookups through a secondary index, stock scans.
- scan:  point reads mixed with range scans over a larger table.
- analytic: an index-heavy reporting mix over a sales fact table with three
         secondary indexes and two dimension tables: range aggregates by
         date through an index, top customers of a region (index + join),
         product lookups by category, and a few full-table group-bys.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from autosys_adapters.pagecache.traces import Trace

_counter = itertools.count()


def _apsw():
    try:
        import apsw
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("recording SQLite page traces needs the 'apsw' package (pip install autosys-toolkit[pagecache])") from exc
    return apsw


def _make_vfs(log: list, page_size: int):
    apsw = _apsw()

    class LoggingFile(apsw.VFSFile):
        def __init__(self, vfs, name, flags, main_db):
            super().__init__("", name, flags)  # "" = inherit from the default VFS
            self._main = main_db

        def xRead(self, amount, offset):
            if self._main and log_enabled[0]:
                log.append((offset // page_size, False))
            return super().xRead(amount, offset)

        def xWrite(self, data, offset):
            if self._main and log_enabled[0]:
                log.append((offset // page_size, True))
            return super().xWrite(data, offset)

    class LoggingVFS(apsw.VFS):
        def __init__(self, name):
            self.vfs_name = name
            super().__init__(name, "")

        def xOpen(self, name, flags):
            main = bool(flags[0] & apsw.SQLITE_OPEN_MAIN_DB)
            return LoggingFile(self.vfs_name, name, flags, main)

    log_enabled = [False]
    name = f"autosys-trace-{os.getpid()}-{next(_counter)}"
    return LoggingVFS(name), log_enabled


# --------------------------------------------------------------------------- workloads


def _zipf_keys(rng: np.random.Generator, n: int, size: int, theta: float = 0.99) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=float) ** theta
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    perm = rng.permutation(n)  # popular keys scattered over the table, as in YCSB's hashed keys
    return perm[np.minimum(np.searchsorted(cdf, rng.random(size)), n - 1)]


def _ycsb(conn, rng: np.random.Generator, ops: int, scale: int, start: Callable[[], None]) -> None:
    rows = 10_000 * scale
    conn.execute("CREATE TABLE usertable(key INTEGER PRIMARY KEY, field0 TEXT, field1 TEXT)")
    with conn:
        conn.executemany(
            "INSERT INTO usertable VALUES(?, ?, ?)",
            ((k, "x" * 100, "y" * 100) for k in range(rows)),
        )
    keys = _zipf_keys(rng, rows, ops)
    is_read = rng.random(ops) < 0.5
    start()
    for i in range(0, ops, 100):  # commit every 100 operations
        with conn:
            for k, r in zip(keys[i : i + 100].tolist(), is_read[i : i + 100].tolist()):
                if r:
                    conn.execute("SELECT field0, field1 FROM usertable WHERE key=?", (k,)).fetchall()
                else:
                    conn.execute("UPDATE usertable SET field0=? WHERE key=?", ("z" * 100, k))


def _tpcc(conn, rng: np.random.Generator, ops: int, scale: int, start: Callable[[], None]) -> None:
    customers, items = 3_000 * scale, 10_000 * scale
    conn.execute("CREATE TABLE customer(c_id INTEGER PRIMARY KEY, c_name TEXT, c_balance REAL, c_data TEXT)")
    conn.execute("CREATE TABLE stock(s_i_id INTEGER PRIMARY KEY, s_quantity INTEGER, s_data TEXT)")
    conn.execute("CREATE TABLE orders(o_id INTEGER PRIMARY KEY, o_c_id INTEGER, o_entry INTEGER, o_lines INTEGER)")
    conn.execute("CREATE TABLE order_line(ol_o_id INTEGER, ol_number INTEGER, ol_i_id INTEGER, ol_qty INTEGER, ol_amount REAL, PRIMARY KEY(ol_o_id, ol_number))")
    conn.execute("CREATE INDEX orders_by_customer ON orders(o_c_id, o_id)")
    with conn:
        conn.executemany("INSERT INTO customer VALUES(?,?,?,?)", ((c, f"name{c}", 0.0, "c" * 200) for c in range(customers)))
        conn.executemany("INSERT INTO stock VALUES(?,?,?)", ((i, 100, "s" * 50) for i in range(items)))
    start()
    next_order = 0
    kinds = rng.choice(4, size=ops, p=[0.45, 0.43, 0.08, 0.04])
    for kind in kinds.tolist():
        with conn:
            if kind == 0:  # new order: 5-15 lines, skewed item popularity
                c = int(rng.integers(customers))
                n_lines = int(rng.integers(5, 16))
                conn.execute("INSERT INTO orders VALUES(?,?,?,?)", (next_order, c, next_order, n_lines))
                for line, item in enumerate(_zipf_keys(rng, items, n_lines, 0.8).tolist()):
                    conn.execute("UPDATE stock SET s_quantity = s_quantity - 1 WHERE s_i_id=?", (item,))
                    conn.execute("INSERT INTO order_line VALUES(?,?,?,?,?)", (next_order, line, item, 1, 9.99))
                next_order += 1
            elif kind == 1:  # payment
                c = int(_zipf_keys(rng, customers, 1, 0.6)[0])
                conn.execute("UPDATE customer SET c_balance = c_balance + 10 WHERE c_id=?", (c,))
            elif kind == 2:  # order status through the secondary index
                c = int(rng.integers(customers))
                row = conn.execute("SELECT o_id FROM orders WHERE o_c_id=? ORDER BY o_id DESC LIMIT 1", (c,)).fetchall()
                if row:
                    conn.execute("SELECT * FROM order_line WHERE ol_o_id=?", (row[0][0],)).fetchall()
            else:  # stock level: recent order lines joined with stock
                conn.execute(
                    "SELECT COUNT(DISTINCT s_i_id) FROM order_line JOIN stock ON s_i_id = ol_i_id "
                    "WHERE ol_o_id >= ? AND s_quantity < 95",
                    (max(0, next_order - 20),),
                ).fetchall()


def _scan(conn, rng: np.random.Generator, ops: int, scale: int, start: Callable[[], None]) -> None:
    rows = 20_000 * scale
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    with conn:
        conn.executemany("INSERT INTO t VALUES(?, ?)", ((k, "v" * 150) for k in range(rows)))
    start()
    for _ in range(ops):
        if rng.random() < 0.05:
            lo = int(rng.integers(rows))
            conn.execute("SELECT SUM(length(v)) FROM t WHERE k BETWEEN ? AND ?", (lo, lo + 400)).fetchall()
        else:
            k = int(_zipf_keys(rng, rows, 1, 0.9)[0]) if rng.random() < 0.9 else int(rng.integers(rows))
            conn.execute("SELECT v FROM t WHERE k=?", (k,)).fetchall()


def _analytic(conn, rng: np.random.Generator, ops: int, scale: int, start: Callable[[], None]) -> None:
    sales, customers, products, days = 40_000 * scale, 2_000 * scale, 1_000 * scale, 1_000
    conn.execute("CREATE TABLE customer(c_id INTEGER PRIMARY KEY, c_region INTEGER, c_name TEXT)")
    conn.execute("CREATE TABLE product(p_id INTEGER PRIMARY KEY, p_category INTEGER, p_name TEXT)")
    conn.execute("CREATE TABLE sales(s_id INTEGER PRIMARY KEY, s_day INTEGER, s_c_id INTEGER, s_p_id INTEGER, "
                 "s_qty INTEGER, s_amount REAL, s_note TEXT)")
    with conn:
        conn.executemany("INSERT INTO customer VALUES(?,?,?)", ((c, c % 25, "c" * 60) for c in range(customers)))
        conn.executemany("INSERT INTO product VALUES(?,?,?)", ((p, p % 50, "p" * 60) for p in range(products)))
        day = np.sort(rng.integers(days, size=sales))
        cust = _zipf_keys(rng, customers, sales, 0.7)
        prod = _zipf_keys(rng, products, sales, 0.9)
        conn.executemany("INSERT INTO sales VALUES(?,?,?,?,?,?,?)",
                         ((i, int(day[i]), int(cust[i]), int(prod[i]), 1 + i % 7, 1.5 * (1 + i % 97), "n" * 40)
                          for i in range(sales)))
        conn.execute("CREATE INDEX sales_by_day ON sales(s_day)")
        conn.execute("CREATE INDEX sales_by_customer ON sales(s_c_id, s_day)")
        conn.execute("CREATE INDEX sales_by_product ON sales(s_p_id)")
        conn.execute("CREATE INDEX product_by_category ON product(p_category)")
    start()
    kinds = rng.choice(5, size=ops, p=[0.35, 0.3, 0.2, 0.13, 0.02])
    recent = (days * 0.8, days)  # most reports look at recent days
    for kind in kinds.tolist():
        if kind == 0:  # revenue over a date range, through the day index
            lo = int(rng.uniform(*recent)) if rng.random() < 0.7 else int(rng.integers(days))
            conn.execute("SELECT SUM(s_amount), COUNT(*) FROM sales WHERE s_day BETWEEN ? AND ?",
                         (lo, lo + int(rng.integers(1, 8)))).fetchall()
        elif kind == 1:  # one customer's history, through the customer index
            c = int(_zipf_keys(rng, customers, 1, 0.7)[0])
            conn.execute("SELECT s_day, s_amount FROM sales WHERE s_c_id=? ORDER BY s_day DESC LIMIT 20", (c,)).fetchall()
        elif kind == 2:  # sales of a category's products (index on category, then the product index)
            cat = int(rng.integers(50))
            conn.execute("SELECT SUM(s_qty) FROM sales WHERE s_p_id IN (SELECT p_id FROM product WHERE p_category=?) "
                         "AND s_day >= ?", (cat, days - 30)).fetchall()
        elif kind == 3:  # top customers of a region over the last week (join through the day index)
            conn.execute("SELECT c.c_id, SUM(s.s_amount) AS t FROM sales s JOIN customer c ON c.c_id = s.s_c_id "
                         "WHERE s.s_day >= ? AND c.c_region = ? GROUP BY c.c_id ORDER BY t DESC LIMIT 10",
                         (days - 7, int(rng.integers(25)))).fetchall()
        else:  # a full scan: revenue per day of week
            conn.execute("SELECT s_day % 7, SUM(s_amount) FROM sales GROUP BY 1").fetchall()


WORKLOADS: dict[str, Callable] = {"ycsb": _ycsb, "tpcc": _tpcc, "scan": _scan, "analytic": _analytic}


def record_sqlite(
    workload: str = "ycsb",
    ops: int = 20_000,
    seed: int = 0,
    scale: int = 1,
    page_size: int = 4096,
    sqlite_cache_pages: int = 16,
) -> Trace:
    """Run `workload` on a fresh SQLite database and return the page trace of its run phase."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown SQLite workload {workload!r}; choose one of: {', '.join(WORKLOADS)}")
    if ops < 1 or scale < 1:
        raise ValueError("ops and scale must be at least 1")
    apsw = _apsw()
    log: list[tuple[int, bool]] = []
    vfs, enabled = _make_vfs(log, page_size)
    rng = np.random.default_rng(seed)
    try:
        with tempfile.TemporaryDirectory(prefix="autosys-trace-") as tmp:
            conn = apsw.Connection(str(Path(tmp) / "db.sqlite"), vfs=vfs.vfs_name)
            try:
                conn.execute(f"PRAGMA page_size={int(page_size)}")
                conn.execute(f"PRAGMA cache_size={int(sqlite_cache_pages)}")

                def start() -> None:
                    enabled[0] = True

                WORKLOADS[workload](conn, rng, int(ops), int(scale), start)
            finally:
                enabled[0] = False
                conn.close()
    finally:
        vfs.unregister()
    if not log:
        raise RuntimeError(f"the {workload} workload made no page accesses")
    pages = np.fromiter((p for p, _ in log), dtype=np.int64, count=len(log))
    writes = np.fromiter((w for _, w in log), dtype=bool, count=len(log))
    return Trace(
        pages,
        writes,
        np.full(len(pages), page_size, dtype=np.int64),
        name=f"sqlite-{workload}",
        meta={"workload": workload, "ops": ops, "seed": seed, "scale": scale, "page_size": page_size,
              "sqlite_cache_pages": sqlite_cache_pages},
    )
