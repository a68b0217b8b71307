"""A short probe, not the full experiment: do planner and memory knobs speed up analytic queries here?

    nice -n 10 .venv/bin/python experiments/probe_analytic_headroom.py [--servers postgres,mariadb]
        [--rows 2000000] [--rounds 5] [--timeout 60] [--keep]

Loads, in a probe database of its own (`autosys_probe_analytic`, generated
server-side so loading takes seconds, not minutes), the `sales` table of
autosys's analytic mix (adapters/workloads/analytic.py: same columns, same
value ranges, a zipf-like product skew) at a size larger than either server's
default buffers (2M rows, about 200 MB: PostgreSQL's shared_buffers and
MariaDB's buffer pool are 128 MB), plus what a TPC-H-like mix adds and that
mix lacks: a `products` dimension (key join), a `returns` fact table joined on
the sales key (BKA/MRR territory), a `promos` table joined on unindexed
columns (block nested loop vs hash join), and a high-cardinality GROUP BY
(TPC-H Q18-like: temp tables / hash aggregates that spill).

Every knob is set per session only (MariaDB `SET SESSION`, PostgreSQL `SET`
after `RESET ALL`), so nothing server-wide changes; the script still compares
a snapshot of the server's settings (MariaDB: every global variable;
PostgreSQL: every non-default `pg_settings` row and `postgresql.auto.conf`)
before and after and says whether they are identical. Restart-only or global
knobs (shared_buffers, innodb_buffer_pool_size) are not probed here.

Rounds are interleaved: in each round every query runs once under the
default and once under each candidate config, in an order that rotates from
round to round; the ratio of a round is default time / candidate time (>1:
the candidate is faster). The table shows each ratio's median over rounds and
a bootstrap 95% interval. A run past `--timeout` counts as the timeout (so a
ratio against a timed-out default is a lower bound, marked `>`).

Restart-only and global knobs are probed on private throwaway servers, never
on the shared ones:

    # shared_buffers 128 MB / 1 GB / 4 GB, every query (initdb'd cluster in that folder, port 5499, removed after
    # unless --keep; adapters/dbserver/private.py)
    ... probe_analytic_headroom.py --servers "" --private-pg /tmp/pgprobe --csv experiments/results/probe_analytic_headroom_shared_buffers.csv
    # autosys's own path: the analytic mix through PostgresKnobs, shared_buffers default vs 1 GB (restarts)
    ... probe_analytic_headroom.py --servers "" --private-pg /tmp/pgmix --adapter-mix --csv experiments/results/probe_analytic_headroom_mix.csv
    # the same through MySQLKnobs, innodb_buffer_pool_size default vs 1 GB, on a private MariaDB started by hand:
    #   mariadb-install-db --user=mysql --datadir=/tmp/mydata --auth-root-authentication-method=normal --skip-test-db
    #   mariadbd --no-defaults --user=mysql --datadir=/tmp/mydata --port=3399 --bind-address=127.0.0.1 \\
    #       --socket=/tmp/mydata/mysqld.sock --pid-file=/tmp/mydata/mysqld.pid --log-error=/tmp/mydata/err.log &
    ... probe_analytic_headroom.py --servers "" --mariadb-mix-port 3399 --csv experiments/results/probe_analytic_headroom_mix_mariadb.csv

Writes experiments/results/probe_analytic_headroom.csv (one row per timed
run; `--csv` elsewhere) and prints the ratio table. Shared 2-core host: read
ratios, not times.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
DB = "autosys_probe_analytic"
MIB = 1024 * 1024

# ----------------------------------------------------------------------------- queries (parameters fixed per query)
# the autosys mix's four reads (adapters/workloads/analytic.py) at wide parameters, then the TPC-H-like additions
QUERIES = {
    "revenue_by_region": "SELECT region, SUM(qty * price), COUNT(*) FROM sales WHERE day BETWEEN 100 AND 159"
                         " GROUP BY region ORDER BY region",
    "top_products": "SELECT product, SUM(qty * price) AS revenue FROM sales WHERE region = 3 AND day BETWEEN 100 AND 159"
                    " GROUP BY product ORDER BY revenue DESC, product LIMIT 10",
    "daily_average": "SELECT day, AVG(price), MAX(qty) FROM sales WHERE day BETWEEN 100 AND 159 AND region <> 3"
                     " GROUP BY day ORDER BY day",
    "range_count": "SELECT COUNT(*), SUM(qty) FROM sales WHERE id BETWEEN 500000 AND 600000",
    "full_scan_agg": "SELECT region, SUM(qty * price), AVG(price), COUNT(*) FROM sales GROUP BY region ORDER BY region",
    "join_category": "SELECT p.category, SUM(s.qty * s.price) AS revenue FROM sales s JOIN products p ON s.product = p.id"
                     " WHERE s.day BETWEEN 0 AND 179 GROUP BY p.category ORDER BY revenue DESC",
    "join_returns": "SELECT s.region, COUNT(*), SUM(r.amount) FROM returns r JOIN sales s ON s.id = r.sale_id"
                    " WHERE r.reason < 5 GROUP BY s.region ORDER BY s.region",
    "join_unindexed": "SELECT p.campaign, SUM(s.qty * s.price * p.discount) FROM sales s JOIN promos p"
                      " ON s.region = p.region AND s.qty = p.qty WHERE p.campaign < 4 GROUP BY p.campaign ORDER BY p.campaign",
    "big_group": "SELECT o, total FROM (SELECT FLOOR(id / 4) AS o, SUM(qty) AS total FROM sales GROUP BY FLOOR(id / 4)) t"
                 " WHERE total > 70 ORDER BY o",
    "big_sort": "SELECT id, price FROM sales WHERE day < 120 ORDER BY price DESC, id LIMIT 50 OFFSET 100000",
}

# ----------------------------------------------------------------------------- candidate configs (session knobs)
CANDIDATES = {
    "mariadb": {
        "jcl4_hash": {"join_cache_level": 4},
        "jcl8_bka_mrr": {"join_cache_level": 8, "optimizer_switch": "mrr=on,mrr_sort_keys=on"},
        "join_buffer_32M": {"join_buffer_size": 32 * MIB},
        "jcl8_jb32M_mrr": {"join_cache_level": 8, "join_buffer_size": 32 * MIB,
                           "optimizer_switch": "mrr=on,mrr_sort_keys=on"},
        "tmp_table_256M": {"tmp_table_size": 256 * MIB, "max_heap_table_size": 256 * MIB},
        "sort_buffer_32M": {"sort_buffer_size": 32 * MIB},
        "expert_all": {"join_cache_level": 8, "join_buffer_size": 32 * MIB, "optimizer_switch": "mrr=on,mrr_sort_keys=on",
                       "tmp_table_size": 256 * MIB, "max_heap_table_size": 256 * MIB, "sort_buffer_size": 32 * MIB},
    },
    "postgres": {
        "work_mem_256MB": {"work_mem": "256MB"},
        "hash_mem_x8": {"hash_mem_multiplier": 8},
        "jit_off": {"jit": "off"},
        "no_parallel": {"max_parallel_workers_per_gather": 0},
        "cheap_parallel": {"parallel_setup_cost": 100, "parallel_tuple_cost": 0.01, "min_parallel_table_scan_size": "1MB"},
        "rpc_1.1_ecs_16GB": {"random_page_cost": 1.1, "effective_cache_size": "16GB"},
        "expert_all": {"work_mem": "256MB", "jit": "off", "random_page_cost": 1.1, "effective_cache_size": "16GB"},
    },
}


# ----------------------------------------------------------------------------- servers
class Server:
    """One benchmark connection plus an admin connection for snapshots; dialect hooks below."""

    name = ""

    def snapshot(self) -> dict:
        raise NotImplementedError

    def apply(self, knobs: dict) -> None:
        raise NotImplementedError

    def run(self, sql: str) -> int:
        raise NotImplementedError


class Maria(Server):
    name = "mariadb"
    IGNORED = ("gtid_binlog_pos", "gtid_binlog_state", "gtid_current_pos", "gtid_slave_pos")

    def __init__(self, timeout: float):
        import pymysql

        self.pymysql = pymysql
        self.conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
        self.timeout = timeout
        self.knobs = sorted({k for c in CANDIDATES["mariadb"].values() for k in c})

    def snapshot(self) -> dict:
        with self.conn.cursor() as cur:
            cur.execute("SHOW GLOBAL VARIABLES")
            return {k: v for k, v in cur.fetchall() if k not in self.IGNORED}

    def exec(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)

    def load(self, rows: int) -> None:
        self.exec(f"CREATE DATABASE IF NOT EXISTS {DB}")
        self.exec(f"USE {DB}")
        with self.conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME='promos'", (DB,))
            if cur.fetchone()[0]:
                cur.execute("SELECT COUNT(*) FROM sales")
                if cur.fetchone()[0] == rows:
                    return
        for t in ("sales", "products", "returns", "promos"):
            self.exec(f"DROP TABLE IF EXISTS {t}")
        self.exec("CREATE TABLE sales (id BIGINT PRIMARY KEY, region INTEGER, product INTEGER, day INTEGER, qty INTEGER,"
                  " price DOUBLE, note VARCHAR(40)) ENGINE=InnoDB")
        self.exec("SET SESSION max_statement_time = 0")
        step = 500_000
        for start in range(0, rows, step):
            end = min(rows, start + step) - 1
            self.exec(f"INSERT INTO sales SELECT seq, FLOOR(RAND(seq)*8), FLOOR(500*POW(RAND(seq+1),3)), FLOOR(RAND(seq+2)*365),"
                      f" 1+FLOOR(RAND(seq+3)*19), ROUND(1+RAND(seq+4)*199, 2), CONCAT('note-', seq % 997)"
                      f" FROM seq_{start}_to_{end}")
        self.exec("CREATE INDEX sales_day ON sales (day)")
        self.exec("CREATE TABLE products (id INTEGER PRIMARY KEY, category INTEGER, brand INTEGER, name VARCHAR(40))")
        self.exec("INSERT INTO products SELECT seq, seq % 25, seq % 50, CONCAT('product-', seq) FROM seq_0_to_499")
        self.exec("CREATE TABLE returns (id INTEGER PRIMARY KEY, sale_id BIGINT, reason INTEGER, amount DOUBLE)")
        self.exec(f"INSERT INTO returns SELECT seq, FLOOR(RAND(seq)*{rows}), seq % 10, ROUND(RAND(seq+7)*100, 2)"
                  f" FROM seq_0_to_{rows // 10 - 1}")
        self.exec("CREATE TABLE promos (id INTEGER PRIMARY KEY, region INTEGER, qty INTEGER, campaign INTEGER, discount DOUBLE)")
        self.exec("INSERT INTO promos SELECT seq, seq % 8, 1 + FLOOR(seq / 8) % 19, seq % 10, 0.9 FROM seq_0_to_1519")
        self.exec("ANALYZE TABLE sales, products, returns, promos")

    def size(self) -> float:
        with self.conn.cursor() as cur:
            cur.execute("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (DB,))
            return float(cur.fetchone()[0] or 0)

    def apply(self, knobs: dict) -> None:
        with self.conn.cursor() as cur:
            for name in self.knobs:  # back to the global value first, so configs never leak into each other
                cur.execute(f"SET SESSION {name} = DEFAULT")
            for name, value in knobs.items():
                cur.execute(f"SET SESSION {name} = %s", (value,))
            cur.execute("SET SESSION max_statement_time = %s", (self.timeout,))

    def run(self, sql: str) -> int:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return len(cur.fetchall())

    def is_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, self.pymysql.err.OperationalError) and exc.args and exc.args[0] == 1969

    def plan(self, sql: str) -> str:
        with self.conn.cursor() as cur:
            cur.execute("EXPLAIN " + sql)
            return " | ".join(f"{r[2]}:{r[3]}:{r[9] or ''}" for r in cur.fetchall())

    def close(self, drop: bool) -> None:
        if drop:
            self.exec(f"DROP DATABASE IF EXISTS {DB}")
        self.conn.close()


class Pg(Server):
    name = "postgres"

    def __init__(self, timeout: float, port: int = 5432):
        import psycopg

        self.psycopg = psycopg
        self.port = port
        self.admin = psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True)
        self.timeout = timeout
        self.conn = None

    def snapshot(self) -> dict:
        rows = self.admin.execute("SELECT name, setting, source FROM pg_settings WHERE source NOT IN ('default', 'override')"
                                  " AND name <> 'application_name'").fetchall()
        auto = self.admin.execute("SELECT pg_read_file(current_setting('data_directory') || '/postgresql.auto.conf')").fetchone()[0]
        return {**{r[0]: (r[1], r[2]) for r in rows}, "<postgresql.auto.conf>": auto}

    def load(self, rows: int) -> None:
        exists = self.admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone()
        if not exists:
            self.admin.execute(f"CREATE DATABASE {DB}")
        self.conn = self.psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{DB}", autocommit=True)
        have = self.conn.execute("SELECT to_regclass('promos') IS NOT NULL").fetchone()[0]
        if have and self.conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == rows:
            return
        for t in ("sales", "products", "returns", "promos"):
            self.conn.execute(f"DROP TABLE IF EXISTS {t}")
        self.conn.execute("CREATE TABLE sales (id BIGINT PRIMARY KEY, region INTEGER, product INTEGER, day INTEGER,"
                          " qty INTEGER, price DOUBLE PRECISION, note VARCHAR(40))")
        self.conn.execute("SELECT setseed(0.42)")
        self.conn.execute(f"INSERT INTO sales SELECT g, floor(random()*8), floor(500*power(random(),3)), floor(random()*365),"
                          f" 1+floor(random()*19), round((1+random()*199)::numeric, 2), 'note-' || (g % 997)"
                          f" FROM generate_series(0, {rows - 1}) g")
        self.conn.execute("CREATE INDEX sales_day ON sales (day)")
        self.conn.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, category INTEGER, brand INTEGER, name VARCHAR(40))")
        self.conn.execute("INSERT INTO products SELECT g, g % 25, g % 50, 'product-' || g FROM generate_series(0, 499) g")
        self.conn.execute("CREATE TABLE returns (id INTEGER PRIMARY KEY, sale_id BIGINT, reason INTEGER, amount DOUBLE PRECISION)")
        self.conn.execute(f"INSERT INTO returns SELECT g, floor(random()*{rows}), g % 10, round((random()*100)::numeric, 2)"
                          f" FROM generate_series(0, {rows // 10 - 1}) g")
        self.conn.execute("CREATE TABLE promos (id INTEGER PRIMARY KEY, region INTEGER, qty INTEGER, campaign INTEGER,"
                          " discount DOUBLE PRECISION)")
        self.conn.execute("INSERT INTO promos SELECT g, g % 8, 1 + (g / 8) % 19, g % 10, 0.9 FROM generate_series(0, 1519) g")
        self.conn.execute("VACUUM ANALYZE")

    def size(self) -> float:
        return float(self.admin.execute("SELECT pg_database_size(%s)", (DB,)).fetchone()[0])

    def apply(self, knobs: dict) -> None:
        self.conn.execute("RESET ALL")
        for name, value in knobs.items():
            self.conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
        self.conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(self.timeout * 1000)}",))

    def run(self, sql: str) -> int:
        return len(self.conn.execute(sql.replace("FLOOR(id / 4)", "(id / 4)")).fetchall())

    def is_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, self.psycopg.errors.QueryCanceled)

    def plan(self, sql: str) -> str:
        rows = self.conn.execute("EXPLAIN " + sql.replace("FLOOR(id / 4)", "(id / 4)")).fetchall()
        return " | ".join(r[0].strip() for r in rows if "->" in r[0] or not r[0].startswith(" "))[:300]

    def close(self, drop: bool) -> None:
        if self.conn is not None:
            self.conn.close()
        if drop:
            self.admin.execute(f"DROP DATABASE IF EXISTS {DB}")
        self.admin.close()


# ----------------------------------------------------------------------------- measuring
CSV = RESULTS / "probe_analytic_headroom.csv"


def save(rows: list[dict]) -> None:
    """Writes this run's rows to CSV, keeping the rows of servers this run did not probe."""
    mine = pd.DataFrame(rows)
    earlier = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=mine.columns)
    pd.concat([earlier[~earlier.server.isin(set(mine.server))], mine]).to_csv(CSV, index=False)


def timed(server: Server, knobs: dict, sql: str) -> tuple[float, bool]:
    """Seconds one execution took under `knobs`, and whether it hit the timeout."""
    server.apply(knobs)
    started = time.perf_counter()
    try:
        server.run(sql)
    except Exception as exc:
        if not server.is_timeout(exc):
            raise
        return server.timeout, True
    return time.perf_counter() - started, False


def ci(ratios: list[float], rng) -> tuple[float, float, float]:
    """Median ratio over rounds and a bootstrap 95% interval of the median."""
    arr = np.array(ratios)
    boots = [np.median(rng.choice(arr, len(arr))) for _ in range(2000)]
    return float(np.median(arr)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def probe(server: Server, args, rows: list[dict]) -> None:
    configs = {"default": {}, **CANDIDATES[server.name]}
    queries = [q for q in QUERIES if not args.queries or q in args.queries.split(",")]
    candidates = [c for c in configs if c == "default" or not args.configs or c in args.configs.split(",")]
    for q in queries:  # warm the caches and show the plans that differ
        plans = {}
        for c in candidates:
            server.apply(configs[c])
            plans[c] = server.plan(QUERIES[q])
        timed(server, {}, QUERIES[q])
        print(f"  plan {q}: default = {plans['default'][:220]}", flush=True)
        for c in candidates:
            if plans[c] != plans["default"]:
                print(f"      {c:>16}: {plans[c][:220]}", flush=True)
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        for qi, q in enumerate(queries):
            shift = (r + qi) % len(candidates)
            order = candidates[shift:] + candidates[:shift]
            if r % 2:
                order.reverse()
            for c in order:
                seconds, hit = timed(server, configs[c], QUERIES[q])
                rows.append({"server": server.name, "round": r, "query": q, "config": c, "seconds": seconds,
                             "timed_out": hit, "load1": load})
        done = [x for x in rows if x["server"] == server.name and x["round"] == r]
        print(f"  round {r}: {sum(x['seconds'] for x in done):.1f} s of queries, load {load:.2f}", flush=True)
        save(rows)


def table(df: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    print(f"\n{'server':8} {'query':18} {'default s':>9} {'config':>16} {'ratio d/c [95% CI]':>24}")
    for (srv, q), part in df.groupby(["server", "query"], sort=False):
        base = part[part.config == "default"].set_index("round")
        for c in [c for c in part.config.unique() if c != "default"]:
            cand = part[part.config == c].set_index("round")
            ratios = (base.seconds / cand.seconds).dropna().tolist()
            mid, lo, hi = ci(ratios, rng)
            mark = ">" if base.timed_out.any() else ("<" if cand.timed_out.any() else " ")
            flag = " *" if lo >= 1.2 else ""
            print(f"{srv:8} {q:18} {statistics.median(base.seconds):9.3f} {c:>16} {mark}{mid:5.2f} [{lo:5.2f}, {hi:5.2f}]{flag}")


# ----------------------------------------------------------------------------- shared_buffers on a private cluster
PRIVATE_PORT = 5499


def _private_cluster(args):
    """The private cluster of `--private-pg` (adapters/dbserver/private.py): initdb'd there (or reused if kept),
    autovacuum off, on 127.0.0.1:5499; stopped at the end and deleted unless --keep."""
    from autosys_adapters.dbserver.private import private_postgres

    return private_postgres(PRIVATE_PORT, directory=args.private_pg, keep=args.keep, settings={"autovacuum": "off"},
                            prefix="autosys-probe-")


def _set_shared_buffers(cluster, size: str) -> None:
    """ALTER SYSTEM SET shared_buffers and restart the private cluster (never the shared server)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(size)))
    cluster.restart()


def probe_shared_buffers(args, rows: list[dict]) -> None:
    """shared_buffers needs a restart, so it is probed on a private throwaway cluster, never on the shared server.

    The cluster (initdb defaults, shared_buffers 128 MB) lives in `--private-pg` and listens on 127.0.0.1:5499;
    each round restarts it once per config (order alternating), runs every query once to warm the buffers,
    then times each query once. The cluster is stopped at the end (its directory is kept only with --keep).
    """
    configs = {"default": "128MB", "shared_buffers_1GB": "1GB", "shared_buffers_4GB": "4GB"}
    queries = [q for q in QUERIES if not args.queries or q in args.queries.split(",")]
    with _private_cluster(args) as cluster:
        server = Pg(args.timeout, port=cluster.port)
        server.load(args.rows)
        server.close(drop=False)
        for r in range(args.rounds):
            order = list(configs) if r % 2 == 0 else list(configs)[::-1]
            load = os.getloadavg()[0]
            for c in order:
                _set_shared_buffers(cluster, configs[c])
                server = Pg(args.timeout, port=cluster.port)
                server.load(args.rows)  # connects; the data is already there
                for q in queries:  # warm-up pass: what a long-running server would have in its buffers
                    timed(server, {}, QUERIES[q])
                for q in queries:
                    seconds, hit = timed(server, {}, QUERIES[q])
                    rows.append({"server": "postgres-private", "round": r, "query": q, "config": c, "seconds": seconds,
                                 "timed_out": hit, "load1": load})
                server.close(drop=False)
            print(f"  private postgres round {r} done, load {load:.2f}", flush=True)
            save(rows)


def probe_mix_via_adapter(args, rows: list[dict]) -> None:
    """autosys's own path: the analytic mix (adapters/workloads/analytic.py) through `PostgresKnobs`, default vs a
    larger `shared_buffers` (applied with ALTER SYSTEM and a restart, restored by the adapter's teardown), on the
    private cluster of `--private-pg`; throughput of closed-loop windows in interleaved rounds."""
    from autosys_adapters.dbserver.postgres import PostgresKnobs

    with _private_cluster(args) as cluster:
        system = PostgresKnobs(url=cluster.url, workload="analytic",
                               records=args.rows, operations=200_000, concurrency=1, seconds=args.mix_seconds,
                               warmup=args.mix_seconds / 4, knobs="shared_buffers", allow_restart=True,
                               restart_command=cluster.restart_command,
                               statement_timeout=args.timeout, state_file=str(cluster.directory / "state.json"))
        try:
            configs = {"default": system.default(), "shared_buffers_1GB": {**system.default(), "shared_buffers": 131_072}}
            _mix_rounds(system, configs, "postgres-private-mix", args.rounds, rows)
        finally:
            system.teardown()


def _mix_rounds(system, configs: dict[str, dict], server: str, rounds: int, rows: list[dict]) -> None:
    """Measure each config's mix throughput through an autosys server adapter, in `rounds` rounds, order
    alternating, appending one row per run (seconds per operation) and saving after each round."""
    for r in range(rounds):
        order = list(configs) if r % 2 == 0 else list(configs)[::-1]
        load = os.getloadavg()[0]
        for c in order:
            m = system.evaluate(configs[c])
            rows.append({"server": server, "round": r, "query": "analytic_mix", "config": c,
                         "seconds": 1.0 / m.metrics["throughput"], "timed_out": False, "load1": load})
        print(f"  adapter mix round {r}: " + ", ".join(
            f"{x['config']} {1 / x['seconds']:.1f} ops/s" for x in rows[-len(order):]) + f", load {load:.2f}",
            flush=True)
        save(rows)


def probe_mix_mariadb(args, rows: list[dict]) -> None:
    """The analytic mix through autosys's `MySQLKnobs` on a private MariaDB at 127.0.0.1:`--mariadb-mix-port`
    (started by hand, see the module docstring), default vs `innodb_buffer_pool_size` 1 GB (a global, dynamic
    knob: set and restored by the adapter); throughput of closed-loop windows in interleaved rounds."""
    from autosys_adapters.dbserver.mysql import MySQLKnobs

    if args.mariadb_mix_port == 3306:
        raise SystemExit("--mariadb-mix-port: use a private server, not the shared one (a global knob is changed)")
    system = MySQLKnobs(host="127.0.0.1", port=args.mariadb_mix_port, workload="analytic", records=args.rows,
                        operations=200_000, concurrency=1, seconds=args.mix_seconds, warmup=args.mix_seconds / 4,
                        knobs="innodb_buffer_pool_size", statement_timeout=args.timeout,
                        state_file=str(RESULTS / ".probe_analytic_mariadb_state.json"))
    configs = {"default": system.default(), "buffer_pool_1GB": {**system.default(), "innodb_buffer_pool_size": 1024 * MIB}}
    try:
        _mix_rounds(system, configs, "mariadb-private-mix", args.rounds, rows)
    finally:
        system.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="postgres,mariadb")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a query is cancelled")
    parser.add_argument("--queries", default="", help="comma-separated subset of the queries (default: all)")
    parser.add_argument("--configs", default="", help="comma-separated subset of the candidate configs (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the probe database for the next run")
    parser.add_argument("--private-pg", default="", help="also probe shared_buffers on a private PostgreSQL cluster"
                        " created in this directory (port 5499; the shared server is never restarted)")
    parser.add_argument("--adapter-mix", action="store_true", help="with --private-pg: the analytic mix through"
                        " autosys's PostgresKnobs, default vs shared_buffers 1 GB (restarts the private cluster)")
    parser.add_argument("--mariadb-mix-port", type=int, default=0, help="the analytic mix through autosys's MySQLKnobs"
                        " on a private MariaDB at this port, default vs innodb_buffer_pool_size 1 GB")
    parser.add_argument("--mix-seconds", type=float, default=20.0, help="measured window of --adapter-mix")
    parser.add_argument("--csv", default=str(CSV), help="where the rows go (rows of servers not probed now are kept)")
    args = parser.parse_args()
    globals()["CSV"] = Path(args.csv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run the finally blocks: stop, restore
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in [s for s in args.servers.split(",") if s]:
        server = Maria(args.timeout) if name == "mariadb" else Pg(args.timeout)
        before = server.snapshot()
        try:
            started = time.monotonic()
            server.load(args.rows)
            print(f"{name}: {args.rows:,} rows ready in {time.monotonic() - started:.0f} s, "
                  f"{server.size() / MIB:.0f} MiB on disk; load {os.getloadavg()}", flush=True)
            probe(server, args, rows)
        finally:
            if name == "mariadb":
                server.apply({})
            server.close(drop=not args.keep)
            check = Maria(args.timeout) if name == "mariadb" else Pg(args.timeout)
            after = check.snapshot()
            (check.conn if name == "mariadb" else check.admin).close()
            diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            print(f"{name}: server settings after the probe {'identical to before' if not diff else 'DIFFER: ' + str(diff)}",
                  flush=True)
    if args.mariadb_mix_port:
        probe_mix_mariadb(args, rows)
    if args.private_pg and args.adapter_mix:
        probe_mix_via_adapter(args, rows)
    elif args.private_pg:
        probe_shared_buffers(args, rows)
    table(pd.DataFrame(rows))


if __name__ == "__main__":
    main()
