"""An analytic scan/aggregate mix over one fact table (`sales`).

Queries that read many rows and compute little per row: grouped sums over a
day range, a top-10 of products in a region, a daily average, and a count by
range of ids; a small share of batched inserts keeps the table live. Memory
knobs (work_mem, cache sizes, sort buffers) matter here, where OLTP knobs do
not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from autosys_adapters.workloads.base import Benchmark, Session, TYPES, check_counts, check_memory, check_mix, checked_settings

QUERIES = ("revenue_by_region", "top_products", "daily_average", "range_count", "insert_batch")
DAYS, REGIONS, PRODUCTS = 365, 8, 500


@dataclass(frozen=True)
class AnalyticWorkload:
    name: str = "analytic"
    records: int = 50_000
    operations: int = 200
    mix: Mapping[str, float] = field(
        default_factory=lambda: {
            "revenue_by_region": 0.3, "top_products": 0.3, "daily_average": 0.2, "range_count": 0.15, "insert_batch": 0.05,
        }
    )
    batch: int = 50
    concurrency: int = 1

    def __post_init__(self):
        unknown = set(self.mix) - set(QUERIES)
        if unknown:
            raise ValueError(f"workload {self.name!r}: unknown query {sorted(unknown)[0]!r}; known: {', '.join(QUERIES)}")
        check_mix(self, "query")
        check_counts(self, ("records", "operations", "batch", "concurrency"))
        # rows are loaded in batches of 10,000; the stream and the inserted batches stay in memory
        check_memory(self, 10_000 * 200 + self.operations * (200 + self.batch * 200),
                     f"{self.operations:,} operations of batch {self.batch:,}")

    def to_json(self) -> dict:
        data = asdict(self)
        data["mix"] = dict(self.mix)
        return data


class Analytic(Benchmark):
    def __init__(self, workload: AnalyticWorkload):
        self.workload = workload
        self.name = workload.name
        self.concurrency = int(workload.concurrency)

    def signature(self) -> str:
        return f"analytic-{self.workload.records}r"

    def tables(self) -> list[str]:
        return ["sales"]

    def schema(self, dialect: str) -> list[str]:
        t = TYPES[dialect]
        return [
            f"CREATE TABLE sales (id {t['bigint']} PRIMARY KEY, region INTEGER, product INTEGER, day INTEGER,"
            f" qty INTEGER, price {t['float']}, note VARCHAR(40))",
            "CREATE INDEX sales_day ON sales (day)",
        ]

    def _rows(self, start: int, count: int, seed: int) -> list[tuple]:
        rng = np.random.default_rng([seed, start, 0xA7A])
        region = rng.integers(0, REGIONS, count).tolist()
        product = rng.zipf(1.3, count) % PRODUCTS
        day = rng.integers(0, DAYS, count).tolist()
        qty = rng.integers(1, 20, count).tolist()
        price = np.round(rng.uniform(1, 200, count), 2).tolist()
        return [
            (start + i, region[i], int(product[i]), day[i], qty[i], price[i], f"note-{(start + i) % 997}")
            for i in range(count)
        ]

    def load(self, session: Session) -> None:
        step = 10_000
        for start in range(0, self.workload.records, step):
            count = min(step, self.workload.records - start)
            session.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?)", self._rows(start, count, 0))

    def reset(self, session: Session) -> None:
        session.execute("DELETE FROM sales WHERE id >= ?", (self.workload.records,))

    def stream(self, seed: int) -> list[tuple]:
        w = self.workload
        rng = np.random.default_rng([seed, 0xA7A])
        names = list(w.mix)
        weights = np.array([w.mix[n] for n in names], dtype=float)
        out: list[tuple] = []
        next_id = w.records + seed * 10_000_000  # streams of different seeds never collide
        for k in rng.choice(len(names), size=w.operations, p=weights / weights.sum()).tolist():
            kind = names[k]
            if kind == "insert_batch":
                out.append((kind, next_id))
                next_id += w.batch
            elif kind == "range_count":
                low = int(rng.integers(0, w.records))
                out.append((kind, low, low + max(w.records // 20, 1)))
            else:
                first = int(rng.integers(0, DAYS - 60))
                out.append((kind, first, first + int(rng.integers(7, 60)), int(rng.integers(0, REGIONS))))
        return out

    def execute(self, session: Session, item: tuple, index: int) -> None:
        kind = item[0]
        if kind == "revenue_by_region":
            _, first, last, _region = item
            session.all(
                "SELECT region, SUM(qty * price), COUNT(*) FROM sales WHERE day BETWEEN ? AND ? GROUP BY region ORDER BY region",
                (first, last),
            )
        elif kind == "top_products":
            _, first, last, region = item
            session.all(
                "SELECT product, SUM(qty * price) AS revenue FROM sales WHERE region = ? AND day BETWEEN ? AND ?"
                " GROUP BY product ORDER BY revenue DESC, product LIMIT 10",
                (region, first, last),
            )
        elif kind == "daily_average":
            _, first, last, region = item
            session.all(
                "SELECT day, AVG(price), MAX(qty) FROM sales WHERE day BETWEEN ? AND ? AND region <> ? GROUP BY day ORDER BY day",
                (first, last, region),
            )
        elif kind == "range_count":
            _, low, high = item
            session.one("SELECT COUNT(*), SUM(qty) FROM sales WHERE id BETWEEN ? AND ?", (low, high))
        elif kind == "insert_batch":
            _, start = item
            session.begin()
            try:
                session.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?)", self._rows(start, self.workload.batch, 1))
                session.commit()
            except BaseException:
                session.rollback()
                raise
        else:
            raise ValueError(f"unknown analytic query {kind!r}")

    def to_json(self) -> dict:
        return {"kind": "analytic", **self.workload.to_json()}


def make_analytic(spec: Mapping[str, Any] | None = None, **overrides: Any) -> Analytic:
    return Analytic(AnalyticWorkload(**checked_settings(AnalyticWorkload, "analytic", spec, overrides)))
