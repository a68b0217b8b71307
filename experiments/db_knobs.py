"""Database knobs: default vs tuned on SQLite (YCSB A/B/C/F, TPC-C-like), PostgreSQL and MariaDB, plus warm start.

    .venv/bin/python experiments/db_knobs.py [--quick] [--budget 30] [--tuner random] [--server-tuner bo]
        [--no-postgres] [--no-mysql] [--pg-workload pgbench-write-heavy] [--pg-restart-command CMD]
        [--mysql-workload write-heavy] [--clients 16] [--workloads ycsb-a,...]

    # the run behind the README's table (restart-only knobs allowed; root on a Debian host):
    .venv/bin/python experiments/db_knobs.py --pg-restart-command "pg_ctlcluster 15 main restart"

For each workload: a study with a trial budget (durability kept: SQLite may
not use synchronous=off or an off/memory journal; PostgreSQL keeps fsync,
full_page_writes and synchronous_commit on; MariaDB keeps
innodb_flush_log_at_trx_commit=1 and the doublewrite buffer), then the default and the best
config are re-measured interleaved (default, best, default, best, ...) and
reported as medians with their min-max spread; "within noise" marks a
difference whose ranges overlap. The server rows also measure, in the same
rounds, a non-durable twin (synchronous_commit=off, innodb_flush_log_at_trx_commit=2):
the most that skipping the commit flush gives, i.e. a ceiling for durable knobs. Then warm start: cold vs warm-started
studies on a new workload similar to past ones, counting trials until the
best-so-far reaches 95% of the cold study's final best.

The PostgreSQL row is driven by pgbench itself by default (its update mix over
6M accounts, about 900 MB, 16 clients): Python clients on this 2-core host
spend ~0.1 ms of CPU per statement and cap the rate whatever the knobs (see
adapters/workloads/pgbench.py); the TPC-C-like `write-heavy` mix, with its one
hot warehouse row, is still there with --pg-workload write-heavy.

Writes experiments/results/db_knobs.csv, db_knobs_warm.csv and db_knobs.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autosys_adapters.sqlite.knobs import SQLiteKnobs  # noqa: E402
from autosys.analysis.workload_mapping import KnowledgeBase, characterize, trials_to_reach, warm_start  # noqa: E402
from autosys.run.study import Study  # noqa: E402

RESULTS = ROOT / "experiments" / "results"


def compare(system, default: dict, best: dict, rounds: int, ceiling: tuple | None = None) -> dict:
    """Interleaved re-measurement of default and best: medians, min-max spreads, ratio, noise flag.

    `ceiling` = (system, config): a non-durable reference (e.g. synchronous_commit=off) measured in
    the same rounds, so the table shows how much any durable config could gain at most here.
    """
    arms = [("default", system, default), ("best", system, best)]
    if ceiling is not None:
        arms.append(("ceiling", *ceiling))
    samples = {label: {"throughput": [], "p95": []} for label, _, _ in arms}
    for _ in range(rounds):
        for label, sys_, config in arms:
            m = sys_.evaluate(config)
            if label == "ceiling":  # a server-wide unsafe knob (InnoDB's) must not leak into the next arm
                sys_.apply(sys_.default())
            samples[label]["throughput"].extend(m.samples.get("throughput", [m.metrics["throughput"]]))
            samples[label]["p95"].extend(m.samples.get("p95_latency_ms", [m.metrics["p95_latency_ms"]]))
    d, b = samples["default"], samples["best"]
    ratio = statistics.median(b["throughput"]) / statistics.median(d["throughput"])
    overlap = max(d["throughput"]) >= min(b["throughput"]) and max(b["throughput"]) >= min(d["throughput"])
    out = {
        "default_tput": statistics.median(d["throughput"]),
        "default_tput_range": f"{min(d['throughput']):.0f}-{max(d['throughput']):.0f}",
        "tuned_tput": statistics.median(b["throughput"]),
        "tuned_tput_range": f"{min(b['throughput']):.0f}-{max(b['throughput']):.0f}",
        "default_p95_ms": statistics.median(d["p95"]),
        "tuned_p95_ms": statistics.median(b["p95"]),
        "speedup": ratio,
        "within_noise": overlap,
        "samples": len(d["throughput"]),
        "nondurable_ceiling": float("nan"),
    }
    if ceiling is not None:
        out["nondurable_ceiling"] = statistics.median(samples["ceiling"]["throughput"]) / statistics.median(d["throughput"])
    return out


def tune(directory: Path, system, tuner: str, budget: int, seed: int) -> Study:
    if directory.exists():
        shutil.rmtree(directory)
    start = time.perf_counter()
    study = Study.create(directory, system, tuner=tuner, budget=budget, seed=seed).run()
    study.spec["wall_seconds"] = time.perf_counter() - start
    return study


def changed_knobs(default: dict, best: dict) -> str:
    return ", ".join(f"{k}={best[k]}" for k in best if default.get(k) != best[k])


def run_row(name: str, system, directory: Path, args, rounds: int, tuner: str | None = None, ceiling=None) -> dict:
    """Tune `system`, then re-measure default vs best interleaved; `ceiling` = (system, overrides) non-durable."""
    study = tune(directory, system, tuner or args.tuner, args.budget, args.seed)
    trials = study.trials()
    best, default = study.best, study.default_trial
    system.setup()
    if ceiling is not None:
        ceiling_system, overrides = ceiling
        ceiling_system.setup()
        ceiling = (ceiling_system, {**ceiling_system.default(), **overrides})
    try:
        row = compare(system, default.config, best.config, rounds, ceiling)
    finally:
        system.teardown()
        if ceiling is not None:
            ceiling[0].teardown()
    row.update(
        {
            "system": name.split(":")[0],
            "workload": name.split(":")[1],
            "tuner": tuner or args.tuner,
            "trials": len(trials),
            "failed": sum(t.state.value != "complete" for t in trials),
            "study_seconds": round(study.spec["wall_seconds"], 1),
            "tuned_config": changed_knobs(default.config, best.config),
        }
    )
    study.close()
    ceiling_note = "" if pd.isna(row["nondurable_ceiling"]) else f"  (non-durable ceiling {row['nondurable_ceiling']:.2f}x)"
    print(f"  {name}: {row['speedup']:.2f}x ({row['default_tput']:.0f} -> {row['tuned_tput']:.0f}/s)"
          f"{'  [within noise]' if row['within_noise'] else ''}{ceiling_note}  {row['tuned_config']}", flush=True)
    return row


def server_row(rows: list, label: str, cls, opts: dict, unsafe: dict, base: Path, args, rounds: int) -> None:
    """Tune a server (durable) and compare, with a non-durable twin measuring `unsafe` as the ceiling."""
    from autosys.core.system import SystemUnavailable

    workload = opts["workload"]
    try:
        system = cls(**opts)
        # its own state file: the per-server lock admits one live system per file (the twin touches only `unsafe`)
        twin = cls(**{**opts, "durable": False, "knobs": ",".join(unsafe), "state_file": str(base / label / "ceiling-state.json")})
        rows.append(run_row(f"{label}:{workload}", system, base / label / workload, args, rounds + 2,
                            tuner=args.server_tuner, ceiling=(twin, unsafe)))
    except SystemUnavailable as exc:
        print(f"  skipped: {exc}", flush=True)


def warm_experiment(args, base: Path, sqlite_opts: dict) -> dict:
    """Cold vs warm start on a new workload (YCSB-A-like, more records and bigger values, another seed)."""
    new = dict(sqlite_opts, workload="ycsb-a", records=sqlite_opts["records"] * 2, seed=args.seed + 1)
    kb = KnowledgeBase(base / "sqlite")
    probe = SQLiteKnobs(**new)
    probe.setup()
    try:
        signature = characterize(probe)
    finally:
        probe.teardown()
    distance, record = kb.nearest(signature, system="SQLiteKnobs")[0]
    cold = tune(base / "warm" / "cold", SQLiteKnobs(**new), args.tuner, args.budget, args.seed + 1)
    warm_dir = base / "warm" / "warm"
    if warm_dir.exists():
        shutil.rmtree(warm_dir)
    warm = Study.create(warm_dir, SQLiteKnobs(**new), tuner=args.tuner, budget=args.budget, seed=args.seed + 1)
    warm_start(warm, record, enqueue=3, default_value=signature.get("throughput"))
    warm.run()
    cold_values = [t.value for t in cold.trials()]
    warm_values = [t.value for t in warm.trials()]
    target = 0.95 * cold.best.value
    out = {
        "mapped_to": record.workload,
        "distance": round(distance, 3),
        "cold_best": cold.best.value,
        "warm_best": warm.best.value,
        "target_95pct": target,
        "cold_trials_to_target": trials_to_reach(cold_values, target),
        "warm_trials_to_target": trials_to_reach(warm_values, target),
        "budget": args.budget,
        "cold_curve": json.dumps([round(v, 1) if v else None for v in cold_values]),
        "warm_curve": json.dumps([round(v, 1) if v else None for v in warm_values]),
    }
    reached = out["warm_trials_to_target"]
    out["met"] = reached is not None and reached <= args.budget // 2
    cold.close()
    warm.close()
    return out


def plot(rows: pd.DataFrame, warm: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if warm else 1, figsize=(12 if warm else 6, 4), squeeze=False)
    ax = axes[0][0]
    labels = rows["system"] + "\n" + rows["workload"]
    ax.bar(labels, rows["speedup"], color=["tab:gray" if n else "tab:blue" for n in rows["within_noise"]])
    ax.set_yscale("log")
    ax.set_ylabel("tuned / default throughput (median)")
    ax.axhline(1, color="black", lw=0.5)
    if warm:
        ax = axes[0][1]
        for key, label in (("cold_curve", "cold start"), ("warm_curve", f"warm start (from {warm['mapped_to']})")):
            values = json.loads(warm[key])
            best, curve = None, []
            for v in values:
                if v is not None:
                    best = v if best is None else max(best, v)
                curve.append(best)
            ax.plot(range(1, len(curve) + 1), curve, label=label)
        ax.axhline(warm["target_95pct"], ls="--", color="gray", label="95% of cold best")
        ax.set_xlabel("trial")
        ax.set_ylabel("best throughput so far")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small budgets and sizes (about a minute)")
    parser.add_argument("--budget", type=int, default=None, help="trials per study (default 30, quick 8)")
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved re-measurement rounds (default 3)")
    parser.add_argument("--workloads", default="ycsb-a,ycsb-b,ycsb-c,ycsb-f,tpcc-like")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-mysql", action="store_true", help="skip the MariaDB/MySQL row")
    parser.add_argument("--server-tuner", default="bo", help="tuner for the PostgreSQL and MariaDB rows")
    parser.add_argument("--pg-workload", default="pgbench-write-heavy",
                        help="PostgreSQL row's workload (default: pgbench's update mix over ~900 MB, pgbench as the client)")
    parser.add_argument("--pg-restart-command", default="",
                        help="lets the PostgreSQL study change restart-only knobs (shared_buffers, wal_buffers), e.g."
                             " 'pg_ctlcluster 15 main restart'; without it they stay at their defaults")
    parser.add_argument("--pg-seconds", type=float, default=10.0, help="measured seconds per PostgreSQL run")
    parser.add_argument("--pg-knobs", default="", help="comma-separated PostgreSQL knobs to tune (default: all it knows)")
    parser.add_argument("--tag", default="", help="suffix of the result files (db_knobs<tag>.csv, ...), for partial runs")
    parser.add_argument("--mysql-workload", default="write-heavy", help="MariaDB row's workload")
    parser.add_argument("--clients", type=int, default=16, help="client threads of the server rows")
    parser.add_argument("--mysql-host", default="127.0.0.1")
    parser.add_argument("--mysql-port", type=int, default=3306)
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--work", default=None, help="where studies go (default studies/db_knobs, git-ignored)")
    args = parser.parse_args()
    args.budget = args.budget or (8 if args.quick else 30)
    rounds = args.rounds or (2 if args.quick else 3)
    base = Path(args.work) if args.work else ROOT / "studies" / "db_knobs"
    base.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sqlite_opts = dict(records=2_000 if args.quick else 5_000, operations=1_500 if args.quick else 3_000,
                       repeats=2 if args.quick else 3, seconds=0.5 if args.quick else 1.0)

    rows = []
    print(f"SQLite ({args.tuner}, budget {args.budget}, durable, {sqlite_opts})", flush=True)
    for workload in [w for w in args.workloads.split(",") if w]:
        system = SQLiteKnobs(workload=workload, seed=args.seed, **sqlite_opts)
        rows.append(run_row(f"sqlite:{workload}", system, base / "sqlite" / workload, args, rounds))

    if not args.no_postgres:
        from autosys_adapters.dbserver.postgres import PostgresKnobs

        pg_opts = dict(url=args.pg_url, workload=args.pg_workload, concurrency=args.clients,
                       seconds=min(args.pg_seconds, 3.0) if args.quick else args.pg_seconds,
                       warmup=1.0 if args.quick else 2.0, repeats=1, seed=args.seed,
                       allow_restart=bool(args.pg_restart_command), restart_command=args.pg_restart_command,
                       knobs=args.pg_knobs)
        print(f"PostgreSQL ({args.server_tuner}, budget {args.budget}, fsync/full_page_writes on, synchronous_commit"
              f" not off; {pg_opts})", flush=True)
        server_row(rows, "postgres", PostgresKnobs, pg_opts, {"synchronous_commit": "off"}, base, args, rounds)

    if not args.no_mysql:
        from autosys_adapters.dbserver.mysql import MySQLKnobs

        my_opts = dict(host=args.mysql_host, port=args.mysql_port, workload=args.mysql_workload,
                       concurrency=args.clients, seconds=1.5 if args.quick else 2.5, warmup=0.5, repeats=1,
                       seed=args.seed)
        print(f"MariaDB ({args.server_tuner}, budget {args.budget}, innodb_flush_log_at_trx_commit=1 and"
              f" doublewrite kept; {my_opts})", flush=True)
        server_row(rows, "mariadb", MySQLKnobs, my_opts, {"innodb_flush_log_at_trx_commit": 2}, base, args, rounds)

    if not rows:
        raise SystemExit("no rows measured (every system skipped)")
    table = pd.DataFrame(rows)
    columns = ["system", "workload", "default_tput", "default_tput_range", "tuned_tput", "tuned_tput_range", "speedup",
               "within_noise", "nondurable_ceiling", "default_p95_ms", "tuned_p95_ms", "tuner", "trials", "failed",
               "study_seconds", "tuned_config"]
    table = table[columns]
    table.to_csv(RESULTS / f"db_knobs{args.tag}.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_colwidth", 90, "display.float_format", "{:,.2f}".format):
        print(table.drop(columns=["tuned_config"]).to_string(index=False))
        print(table[["system", "workload", "tuned_config"]].to_string(index=False))

    warm = None
    if not args.no_warm:
        print("Warm start (SQLite, new YCSB-A-like workload: 2x records, another seed)", flush=True)
        warm = warm_experiment(args, base, sqlite_opts)
        pd.DataFrame([warm]).to_csv(RESULTS / f"db_knobs{args.tag}_warm.csv", index=False)
        for key in ("mapped_to", "distance", "cold_best", "warm_best", "target_95pct", "cold_trials_to_target",
                    "warm_trials_to_target", "budget", "met"):
            print(f"  {key}: {warm[key]}")
    plot(table, warm, RESULTS / f"db_knobs{args.tag}.png")

    print("targets:")
    a = table[(table.system == "sqlite") & (table.workload == "ycsb-a")]
    if len(a):
        print(f"  SQLite YCSB-A tuned >= 20x default: {a.speedup.iloc[0]:.1f}x -> {'met' if a.speedup.iloc[0] >= 20 else 'NOT met'}")
    for system, target in (("postgres", 1.3), ("mariadb", None)):
        p = table[table.system == system]
        if not len(p):
            continue
        r = p.iloc[0]
        goal = f">= {target}x " if target else ""
        verdict = ("met" if r.speedup >= target and not r.within_noise else "NOT met") if target else "no target"
        print(f"  {system} {r.workload} tuned {goal}(durable): {r.speedup:.2f}x -> {verdict}"
              f"{' (within noise)' if r.within_noise else ''}; non-durable ceiling {r.nondurable_ceiling:.2f}x")
    if warm:
        print(f"  warm start reaches 95% of cold in <= {args.budget // 2} trials: {warm['warm_trials_to_target']} -> "
              f"{'met' if warm['met'] else 'NOT met'} (cold took {warm['cold_trials_to_target']})")


if __name__ == "__main__":
    main()
