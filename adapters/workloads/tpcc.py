"""A TPC-C-like OLTP mix: new-order, payment and order-status as multi-statement transactions.

Scaled down from TPC-C (one warehouse, 10 districts, a few hundred customers
per district, `items` items with their stock) so that it loads in a second,
but with the same shape of contention and durability cost: every new-order
and payment is a write transaction of 5-30 statements that commits once.
Lock order is fixed (district before stock, stock rows by item id; warehouse
before district before customer) so the mix does not deadlock by design;
servers may still report a deadlock or serialization failure, which the
runner retries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from autosys_adapters.workloads.base import Benchmark, Session, TYPES, check_counts, check_memory, check_mix, checked_settings

TRANSACTIONS = ("new_order", "payment", "order_status")
TABLES = ("warehouse", "district", "customer", "history", "item", "stock", "orders", "new_order", "order_line")


@dataclass(frozen=True)
class TPCCWorkload:
    """Sizes and mix of the TPC-C-like workload (weights need not sum to one)."""

    name: str = "tpcc-like"
    warehouses: int = 1
    districts: int = 10
    customers: int = 300  # per district
    items: int = 5_000
    operations: int = 2_000  # transactions in the stream
    mix: Mapping[str, float] = field(default_factory=lambda: {"new_order": 0.45, "payment": 0.43, "order_status": 0.12})
    concurrency: int = 1

    def __post_init__(self):
        unknown = set(self.mix) - set(TRANSACTIONS)
        if unknown:
            raise ValueError(f"workload {self.name!r}: unknown transaction {sorted(unknown)[0]!r}; known: {', '.join(TRANSACTIONS)}")
        check_mix(self, "transaction")
        check_counts(self, ("warehouses", "districts", "customers", "operations", "concurrency"))
        check_counts(self, ("items",), minimum=15)  # a new order has up to 15 lines
        # rows are built as Python lists per table before they are inserted; a stream entry holds up to 15 lines
        rows = self.warehouses * (self.districts * self.customers + self.items) + self.items
        check_memory(self, rows * 200 + self.operations * 1_000, f"{rows:,} rows and {self.operations:,} transactions")

    def to_json(self) -> dict:
        data = asdict(self)
        data["mix"] = dict(self.mix)
        return data


def _text(seed: int, length: int) -> str:
    stem = f"{seed:x}-"
    return (stem * (length // len(stem) + 1))[:length]


class TPCCLike(Benchmark):
    """The TPC-C-like benchmark over any `Session` dialect."""

    def __init__(self, workload: TPCCWorkload):
        self.workload = workload
        self.name = workload.name
        self.concurrency = int(workload.concurrency)

    def signature(self) -> str:
        w = self.workload
        return f"tpcc-{w.warehouses}w-{w.districts}d-{w.customers}c-{w.items}i"

    def tables(self) -> list[str]:
        return list(TABLES)

    def schema(self, dialect: str) -> list[str]:
        t = TYPES[dialect]
        f, b = t["float"], t["bigint"]
        return [
            f"CREATE TABLE warehouse (w_id INTEGER PRIMARY KEY, w_name VARCHAR(10), w_tax {f}, w_ytd {f})",
            f"CREATE TABLE district (d_w_id INTEGER, d_id INTEGER, d_tax {f}, d_ytd {f}, d_next_o_id INTEGER,"
            " PRIMARY KEY (d_w_id, d_id))",
            f"CREATE TABLE customer (c_w_id INTEGER, c_d_id INTEGER, c_id INTEGER, c_last VARCHAR(16), c_discount {f},"
            f" c_balance {f}, c_ytd_payment {f}, c_payment_cnt INTEGER, c_data VARCHAR(500),"
            " PRIMARY KEY (c_w_id, c_d_id, c_id))",
            f"CREATE TABLE history (h_c_id INTEGER, h_c_d_id INTEGER, h_c_w_id INTEGER, h_d_id INTEGER, h_w_id INTEGER,"
            f" h_date {b}, h_amount {f}, h_data VARCHAR(24))",
            f"CREATE TABLE item (i_id INTEGER PRIMARY KEY, i_name VARCHAR(24), i_price {f}, i_data VARCHAR(50))",
            "CREATE TABLE stock (s_w_id INTEGER, s_i_id INTEGER, s_quantity INTEGER, s_ytd INTEGER, s_order_cnt INTEGER,"
            " s_data VARCHAR(50), PRIMARY KEY (s_w_id, s_i_id))",
            f"CREATE TABLE orders (o_w_id INTEGER, o_d_id INTEGER, o_id INTEGER, o_c_id INTEGER, o_entry_d {b},"
            " o_ol_cnt INTEGER, PRIMARY KEY (o_w_id, o_d_id, o_id))",
            "CREATE INDEX orders_customer ON orders (o_w_id, o_d_id, o_c_id, o_id)",
            "CREATE TABLE new_order (no_w_id INTEGER, no_d_id INTEGER, no_o_id INTEGER, PRIMARY KEY (no_w_id, no_d_id, no_o_id))",
            f"CREATE TABLE order_line (ol_w_id INTEGER, ol_d_id INTEGER, ol_o_id INTEGER, ol_number INTEGER, ol_i_id INTEGER,"
            f" ol_quantity INTEGER, ol_amount {f}, PRIMARY KEY (ol_w_id, ol_d_id, ol_o_id, ol_number))",
        ]

    def load(self, session: Session) -> None:
        w = self.workload
        rng = np.random.default_rng([w.items, w.customers, 0x79CC])
        session.executemany(
            "INSERT INTO warehouse VALUES (?, ?, ?, ?)",
            [(wid, f"wh{wid}", 0.1, 300_000.0) for wid in range(1, w.warehouses + 1)],
        )
        session.executemany(
            "INSERT INTO district VALUES (?, ?, ?, ?, ?)",
            [(wid, d, 0.05, 30_000.0, 1) for wid in range(1, w.warehouses + 1) for d in range(1, w.districts + 1)],
        )
        discounts = np.round(rng.uniform(0.0, 0.5, size=w.warehouses * w.districts * w.customers), 4).tolist()
        session.executemany(
            "INSERT INTO customer VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (wid, d, c, f"LAST{c % 1000}", discounts[i], -10.0, 10.0, 1, _text(i, 300))
                for i, (wid, d, c) in enumerate(
                    (wid, d, c)
                    for wid in range(1, w.warehouses + 1)
                    for d in range(1, w.districts + 1)
                    for c in range(1, w.customers + 1)
                )
            ],
        )
        prices = np.round(rng.uniform(1.0, 100.0, size=w.items), 2).tolist()
        session.executemany(
            "INSERT INTO item VALUES (?, ?, ?, ?)",
            [(i, f"item{i}", prices[i - 1], _text(i, 40)) for i in range(1, w.items + 1)],
        )
        quantities = rng.integers(10, 101, size=w.items * w.warehouses).tolist()
        session.executemany(
            "INSERT INTO stock VALUES (?, ?, ?, ?, ?, ?)",
            [
                (wid, i, quantities[(wid - 1) * w.items + i - 1], 0, 0, _text(i * 7, 40))
                for wid in range(1, w.warehouses + 1)
                for i in range(1, w.items + 1)
            ],
        )

    def reset(self, session: Session) -> None:
        session.begin()
        for table in ("order_line", "new_order", "orders", "history"):
            session.execute(f"DELETE FROM {table}")
        session.execute("UPDATE district SET d_next_o_id = 1")
        session.commit()

    def stream(self, seed: int) -> list[tuple]:
        """(kind, params...) tuples; new orders carry their sorted item lines. Vectorized: 100k in well under a second."""
        w = self.workload
        rng = np.random.default_rng([seed, 0x79CC])
        n = w.operations
        names = list(w.mix)
        weights = np.array([w.mix[k] for k in names], dtype=float)
        kinds = rng.choice(len(names), size=n, p=weights / weights.sum()).tolist()
        wids = rng.integers(1, w.warehouses + 1, n).tolist()
        dids = rng.integers(1, w.districts + 1, n).tolist()
        cids = _nurand(rng, 1023, 1, w.customers, n).tolist()
        n_lines = rng.integers(5, 16, n).tolist()
        item_ids = _nurand(rng, 8191, 1, w.items, (n, 15)).tolist()
        qtys = rng.integers(1, 11, (n, 15)).tolist()
        amounts = np.round(rng.uniform(1.0, 5000.0, n), 2).tolist()
        out: list[tuple] = []
        for i, k in enumerate(kinds):
            kind = names[k]
            if kind == "new_order":
                chosen: dict[int, int] = {}
                for iid, qty in zip(item_ids[i][: n_lines[i]], qtys[i]):
                    chosen.setdefault(iid, qty)
                out.append((kind, wids[i], dids[i], cids[i], tuple(sorted(chosen.items()))))
            elif kind == "payment":
                out.append((kind, wids[i], dids[i], cids[i], amounts[i]))
            else:
                out.append((kind, wids[i], dids[i], cids[i]))
        return out

    def execute(self, session: Session, item: tuple, index: int) -> None:
        kind = item[0]
        if kind not in TRANSACTIONS:
            raise ValueError(f"unknown TPC-C-like transaction {kind!r}")
        session.begin(write=kind != "order_status")
        try:
            getattr(self, "_" + kind)(session, index, *item[1:])
            session.commit()
        except BaseException:
            session.rollback()
            raise

    # --- the transactions (inside BEGIN ... COMMIT)
    def _new_order(self, s: Session, index: int, wid: int, did: int, cid: int, lines: tuple) -> None:
        s.one("SELECT w_tax FROM warehouse WHERE w_id = ?", (wid,))
        # increment first: takes the district's row lock before reading the order id
        s.execute("UPDATE district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = ? AND d_id = ?", (wid, did))
        d_tax, next_id = s.one("SELECT d_tax, d_next_o_id FROM district WHERE d_w_id = ? AND d_id = ?", (wid, did))
        oid = int(next_id) - 1
        s.one("SELECT c_discount, c_last FROM customer WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?", (wid, did, cid))
        s.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", (wid, did, oid, cid, index, len(lines)))
        s.execute("INSERT INTO new_order VALUES (?, ?, ?)", (wid, did, oid))
        for number, (iid, qty) in enumerate(lines, start=1):
            (price,) = s.one("SELECT i_price FROM item WHERE i_id = ?", (iid,))
            s.execute(
                "UPDATE stock SET s_quantity = CASE WHEN s_quantity >= ? THEN s_quantity - ? ELSE s_quantity - ? + 91 END,"
                " s_ytd = s_ytd + ?, s_order_cnt = s_order_cnt + 1 WHERE s_w_id = ? AND s_i_id = ?",
                (qty + 10, qty, qty, qty, wid, iid),
            )
            s.execute(
                "INSERT INTO order_line VALUES (?, ?, ?, ?, ?, ?, ?)",
                (wid, did, oid, number, iid, qty, round(float(price) * qty, 2)),
            )

    def _payment(self, s: Session, index: int, wid: int, did: int, cid: int, amount: float) -> None:
        s.execute("UPDATE warehouse SET w_ytd = w_ytd + ? WHERE w_id = ?", (amount, wid))
        s.execute("UPDATE district SET d_ytd = d_ytd + ? WHERE d_w_id = ? AND d_id = ?", (amount, wid, did))
        s.execute(
            "UPDATE customer SET c_balance = c_balance - ?, c_ytd_payment = c_ytd_payment + ?,"
            " c_payment_cnt = c_payment_cnt + 1 WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?",
            (amount, amount, wid, did, cid),
        )
        s.one("SELECT c_balance FROM customer WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?", (wid, did, cid))
        s.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (cid, did, wid, did, wid, index, amount, "payment"))

    def _order_status(self, s: Session, index: int, wid: int, did: int, cid: int) -> None:
        s.one("SELECT c_balance, c_last FROM customer WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?", (wid, did, cid))
        row = s.one(
            "SELECT o_id FROM orders WHERE o_w_id = ? AND o_d_id = ? AND o_c_id = ? ORDER BY o_id DESC LIMIT 1",
            (wid, did, cid),
        )
        if row is not None:
            s.all(
                "SELECT ol_i_id, ol_quantity, ol_amount FROM order_line WHERE ol_w_id = ? AND ol_d_id = ? AND ol_o_id = ?",
                (wid, did, row[0]),
            )

    def to_json(self) -> dict:
        return {"kind": "tpcc", **self.workload.to_json()}


def _nurand(rng: np.random.Generator, a: int, low: int, high: int, size) -> np.ndarray:
    """TPC-C's non-uniform random: a few hot customers and items."""
    return ((rng.integers(0, a + 1, size) | rng.integers(low, high + 1, size)) % (high - low + 1)) + low


def make_tpcc(spec: Mapping[str, Any] | None = None, **overrides: Any) -> TPCCLike:
    """A TPC-C-like benchmark from a mapping of TPCCWorkload fields; unknown names are rejected."""
    return TPCCLike(TPCCWorkload(**checked_settings(TPCCWorkload, "tpcc-like", spec, overrides)))
