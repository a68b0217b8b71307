"""A short probe, not the full experiment: is there headroom over the default in steady-state windows?

    nice -n 10 .venv/bin/python experiments/probe_db_headroom.py [--servers postgres,mariadb]
        [--workload sysbench-read-write] [--seconds 90] [--warmup 20] [--rounds 3] [--rate 0]

For each server: sysbench read-write over the default cached dataset (8 x
600,000 rows, about 1.1 GB; loaded once, kept: adapters/dbserver/datasets.py),
measured in windows long enough to hold the default config's checkpoints,
default config vs an expert-like config made only of knobs that change
without a restart (a restart would disturb everyone else on a shared
server), in interleaved rounds (the order alternates), each run in a fresh
copy of the dataset, durable throughout. PostgreSQL's config follows PGTune
for this host's RAM and cores (OLTP, SSD) minus `shared_buffers` and
`wal_buffers` (restart-only); MariaDB's follows its InnoDB sizing guidance
within autosys's current proposal ranges (buffer pool and redo log 1 GB,
`innodb_io_capacity` 2000). Each row records throughput, p95/p99 latency, the
checkpoints in the window and how long restoring the dataset copy took.

Writes experiments/results/probe_db_headroom.csv and .png and prints a table
with each config's median and its ratio to the default's (with a bootstrap
95% interval over rounds). Timings on a shared 2-core host: run under load,
read ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autosys_adapters.dbserver.mysql import MySQLKnobs  # noqa: E402
from autosys_adapters.dbserver.postgres import PostgresKnobs  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
MIB = 1024 * 1024
CONFIGS = {
    "postgres": {
        "knobs": "max_wal_size,checkpoint_completion_target,random_page_cost,effective_io_concurrency,work_mem",
        # PGTune (OLTP, SSD, 23 GB RAM, 2 cores), reloadable part: min/max_wal_size 2/8 GB, cct 0.9, rpc 1.1, eic 200
        "expert": {"max_wal_size": 8192, "checkpoint_completion_target": 0.9, "random_page_cost": 1.1,
                   "effective_io_concurrency": 200, "work_mem": 15_000},
    },
    "mariadb": {
        "knobs": "innodb_buffer_pool_size,innodb_log_file_size,innodb_io_capacity",
        "expert": {"innodb_buffer_pool_size": 1024 * MIB, "innodb_log_file_size": 1024 * MIB, "innodb_io_capacity": 2000},
    },
}


def make(server: str, args, state: Path):
    common = dict(workload=args.workload, concurrency=args.threads, seconds=args.seconds, warmup=args.warmup,
                  knobs=CONFIGS[server]["knobs"], state_file=str(state), rate=args.rate, statement_timeout=60.0)
    return PostgresKnobs(**common) if server == "postgres" else MySQLKnobs(**common)


def data_size(system) -> float:
    conn = system._admin()
    try:
        if system.dialect == "postgres":
            return float(conn.execute("SELECT pg_database_size(%s)", (system.database,)).fetchone()[0])
        with conn.cursor() as cur:
            cur.execute("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                        (system.database,))
            return float(cur.fetchone()[0] or 0)
    finally:
        conn.close()


def one_run(server: str, name: str, args, state: Path) -> dict:
    system = make(server, args, state)
    try:
        started = time.monotonic()
        config = {**system.default(), **(CONFIGS[server]["expert"] if name == "expert" else {})}
        m = system.evaluate(config)
        size = data_size(system)
        load = system._datasets.info(system._dataset)
        row = {"server": server, "config": name, **{k: m.metrics.get(k) for k in (
            "throughput", "p95_latency_ms", "p99_latency_ms", "checkpoints", "checkpoints_requested", "pages_flushed")},
               "copy_s": m.info.get("dataset_copy_seconds"), "load_s": load.load_seconds if load else None,
               "loaded_here": system._datasets.loads, "data_bytes": size, "run_s": time.monotonic() - started}
    finally:
        system.teardown()
    return row


def ci_ratio(a: list[float], b: list[float], rng) -> tuple[float, float, float]:
    """Median ratio b/a over paired rounds, and a bootstrap 95% interval."""
    ratios = np.array(b) / np.array(a)
    boots = [np.median(rng.choice(ratios, len(ratios))) for _ in range(2000)]
    return float(np.median(ratios)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="postgres,mariadb")
    parser.add_argument("--workload", default="sysbench-read-write")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=int, default=0)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    state = RESULTS / ".probe_db_headroom_state.json"
    servers = args.servers.split(",")
    csv = RESULTS / "probe_db_headroom.csv"
    earlier = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    kept = earlier[~earlier.server.isin(servers)].to_dict("records") if len(earlier) else []  # other servers' rows
    rows = []
    for server in servers:
        for r in range(args.rounds):
            order = ["default", "expert"] if r % 2 == 0 else ["expert", "default"]
            for name in order:
                row = one_run(server, name, args, state)
                row["round"] = r
                rows.append(row)
                print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
                pd.DataFrame(kept + rows).to_csv(csv, index=False)
    df = pd.DataFrame(kept + rows)
    rng = np.random.default_rng(0)
    print(f"\n{args.workload}, {args.seconds:g}-s windows after {args.warmup:g}-s warm-up, {args.threads} threads, "
          f"rate {args.rate or 'closed loop'}; {args.rounds} interleaved rounds; shared 2-core host under load")
    print(f"{'server':8} {'metric':15} {'default':>10} {'expert':>10} {'ratio e/d [95% CI]':>26}")
    for server, part in df.groupby("server"):
        d = part[part.config == "default"].sort_values("round")
        e = part[part.config == "expert"].sort_values("round")
        for metric in ("throughput", "p95_latency_ms", "p99_latency_ms", "checkpoints"):
            a, b = d[metric].astype(float).tolist(), e[metric].astype(float).tolist()
            if metric != "checkpoints" and min(a) > 0:
                mid, lo, hi = ci_ratio(a, b, rng)
                ratio = f"{mid:.2f} [{lo:.2f}, {hi:.2f}]"
            else:
                ratio = ""
            print(f"{server:8} {metric:15} {statistics.median(a):10.2f} {statistics.median(b):10.2f} {ratio:>26}")
        print(f"{server:8} copy of {statistics.median(part.data_bytes) / 2**30:.2f} GiB: median "
              f"{statistics.median(part.copy_s):.1f} s (load {part.load_s.iloc[0]:.0f} s)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("throughput", "p99_latency_ms")):
        for i, (server, part) in enumerate(df.groupby("server")):
            for j, name in enumerate(("default", "expert")):
                values = part[part.config == name][metric]
                ax.scatter([i * 3 + j] * len(values), values, label=f"{server} {name}")
        ax.set_xticks([0, 1, 3, 4][: 2 * df.server.nunique()])
        ax.set_xticklabels([f"{s}\n{n}" for s in sorted(df.server.unique()) for n in ("default", "expert")], fontsize=7)
        ax.set_title(metric)
    fig.tight_layout()
    fig.savefig(RESULTS / "probe_db_headroom.png", dpi=120)


if __name__ == "__main__":
    main()
