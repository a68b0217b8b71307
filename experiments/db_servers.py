"""Database servers: default vs expert rules vs autosys vs the best durable config found, side by side.

    .venv/bin/python experiments/db_servers.py [--quick] [--servers postgres,mysql]
        [--workloads sysbench-read-only,sysbench-read-write,sysbench-write-only,analytic]
        [--budget 30] [--long-budget 0] [--rounds 5] [--seconds 600] [--warmup 60] [--rate-fraction 0.7]
        [--pg-private] [--tag TAG]

For each server and workload (issue 18):
  1. a study of `--budget` trials with the default tuner, durability on (the
     study's own measurement windows are its fidelity rungs: short is cheap);
     optionally a long `--long-budget` study as a reference for the headroom;
     The study measures the expert rules' config first, right after the
     default (`--no-start-expert`: from the default alone);
  2. the arms: the server's default, the expert heuristic for the workload
     type (PGTune's formulas; MariaDB's InnoDB sizing guidance;
     adapters/dbserver/expert.py), the autosys answer, the long study's answer,
     and a non-durable reference (commit flush off), measured in `--rounds`
     interleaved rounds, the order rotated each round so no arm always runs
     first after another;
  3. in every round each arm is measured twice: closed loop (throughput) and
     open loop at a fixed offered load (`--rate-fraction` of the default's
     median throughput, from a calibration window), where p99 latency
     includes queueing; the analytic mix (autosys's own clients, which
     offer no fixed load) is measured closed loop only, its p99 from those
     windows, at `--analytic-records` sales rows (2M: past both servers'
     default buffers; loaded server-side once and cached);
  4. each arm's gain over the default is the geometric mean of its paired
     per-round ratios with a 95% t-interval (autosys/run/intervals.py), for
     throughput and for p99; "best durable" is the best arm other than the
     non-durable one, and "headroom taken" is autosys's log-gain over the
     best durable arm's, where that arm's gain is significant.

Windows should hold at least two checkpoint cycles of the default config
(PostgreSQL: `checkpoint_timeout` = 300 s, or `max_wal_size` reached first
under heavy writes); the table prints the checkpoints each window saw, so a
row whose windows saw fewer is marked. Every server setting is restored
afterwards (the adapters snapshot and restore; a SIGKILL is repaired by the
next run), and cached datasets are kept for the next run (keep_dataset).

PostgreSQL's restart-only knobs (`shared_buffers`, `wal_buffers`) need a
restart, and the shared server is never restarted: `--pg-private` runs the
PostgreSQL arms on a private cluster instead (adapters/dbserver/private.py:
initdb defaults, durable, its own port, created once for the whole run,
stopped and deleted at the end), restart allowed; the study, the expert arm
and every measuring object use its url. Its rows say `cluster` = "private
initdb defaults" (else "shared").

Writes experiments/results/db_servers[_TAG][_quick].csv, db_servers_headroom[_TAG][_quick].csv
and db_servers[_TAG][_quick].png; `--pg-private` without `--tag` tags them `pg_private`, so a
private run never overwrites the shared server's results.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autosys.core.registry import make_system  # noqa: E402
from autosys.core.system import SystemUnavailable  # noqa: E402
from autosys.run.intervals import interval_of, log_gains  # noqa: E402
from autosys.run.study import Study  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
#: each server's commit-flush knob and its non-durable value: the reference any durable config stays below
NON_DURABLE = {"postgres": {"synchronous_commit": "off"}, "mysql": {"innodb_flush_log_at_trx_commit": 2}}
#: workload preset -> expert rules' workload type
WORKLOAD_TYPES = {"sysbench-read-only": "oltp", "sysbench-read-write": "oltp", "sysbench-write-only": "oltp",
                  "sysbench-point-select": "web", "pgbench": "oltp", "pgbench-write-heavy": "oltp", "analytic": "dw"}


#: workloads run by autosys's own Python clients (closed loop only): no fixed offered load, p99 from the closed-loop windows
CLOSED_LOOP_ONLY = {"analytic"}
#: the `cluster` column: where a server's rows were measured
SHARED, PRIVATE = "shared", "private initdb defaults"


def cluster_of(server: str, args) -> str:
    return PRIVATE if server == "postgres" and getattr(args, "pg_cluster", None) is not None else SHARED


def server_options(server: str, workload: str, args, **extra: Any) -> dict:
    options = {"workload": workload, "seconds": args.seconds, "warmup": args.warmup, "repeats": 1, **extra}
    if workload == "analytic":
        # the TPC-H-like mix at its fact-table size (server-side load, cached across trials and studies); a
        # default-config query over data that misses the buffers can take tens of seconds: a longer statement timeout
        options.update(records=args.analytic_records, statement_timeout=args.analytic_statement_timeout)
    if args.knobs:
        options["knobs"] = args.knobs
    if args.restart_command.get(server):
        options.update(allow_restart=True, restart_command=args.restart_command[server])
    cluster = getattr(args, "pg_cluster", None)
    if server == "postgres" and cluster is not None:
        # the private cluster: its url for every object (study, expert arm, measuring), restarts allowed, and the
        # restore state beside it (deleted with it)
        options.update(url=cluster.url, allow_restart=True, restart_command=cluster.restart_command,
                       state_file=str(cluster.directory / "restore-state.json"))
    return options


def expert_arm(system, workload: str) -> dict | None:
    """The expert heuristic's config for this workload type, completed inside the system's space."""
    try:
        from autosys_adapters.dbserver.expert import expert_config
    except ImportError as exc:
        print(f"  expert rules unavailable: {exc}")
        return None
    expert = expert_config(system, WORKLOAD_TYPES.get(workload, "mixed"))
    if expert.dropped:
        print(f"  expert rules left out: {', '.join(sorted(expert.dropped))} (use --knobs all to measure more of them)")
    return dict(expert.config)


def tuned_arm(system, directory: Path, budget: int, seed: int, start_from: list[dict] = ()) -> tuple[dict, float]:
    """The answer of a `budget`-trial study with the default tuner (`start_from`: configs it measures first)."""
    if directory.exists():
        shutil.rmtree(directory)
    start = time.perf_counter()
    study = Study.create(directory, system, tuner="meta", budget=budget, seed=seed, start_from=start_from).run()
    best = dict(study.best.config)
    study.close()
    return best, time.perf_counter() - start


def measure(system, config: dict) -> dict:
    m = system.evaluate(config)
    metrics = m.metrics
    p99 = metrics.get("p99_latency_ms", metrics.get("p95_latency_ms", math.nan))
    return {"throughput": metrics.get("throughput", math.nan), "p99_ms": p99,
            "checkpoints": metrics.get("checkpoints", math.nan)}


def gain(arm: list[float], default: list[float], maximize: bool) -> dict:
    """Paired per-round gain over the default: ratio and 95% interval (None when a value is missing)."""
    logs = log_gains(list(zip(arm, default)), maximize)
    if logs is None or len(logs) == 0:
        return {"ratio": math.nan, "low": math.nan, "high": math.nan}
    ci = interval_of(logs)
    return {"ratio": ci.ratio, "low": ci.low if ci.low is not None else math.nan,
            "high": ci.high if ci.high is not None else math.nan}


def run_pair(server: str, workload: str, args) -> list[dict]:
    """All arms of one server and workload, measured in interleaved rounds.

    One server object may tune a server at a time in a process, so the study's (durable) object is
    torn down before measuring, and each round measures through a non-durable object (its space
    holds every arm's config), first closed loop, then at the fixed offered load.
    """
    tuning = make_system(server, server_options(server, workload, args))
    tuning.setup()
    try:
        arms: dict[str, dict] = {"default": tuning.default()}
        expert = expert_arm(tuning, workload)
        if expert is not None:
            arms["expert"] = expert
        private = "-private" if cluster_of(server, args) == PRIVATE else ""
        study_dir = Path(args.work) / f"{server}{private}-{workload}"
        # the expert's config is the study's first proposal (--start-expert): a tuner a user runs starts from
        # the rules they would apply anyway; without it a study found PGTune-like configs too late to race them
        start_from = [expert] if expert is not None and args.start_expert else []
        arms["autosys"], seconds = tuned_arm(tuning, study_dir, args.budget, args.seed, start_from)
        print(f"  {server} {workload}: {args.budget}-trial study took {seconds:.0f} s", flush=True)
        if args.long_budget:
            arms["long study"], _ = tuned_arm(tuning, study_dir.with_name(study_dir.name + "-long"), args.long_budget, args.seed + 1)
    finally:
        tuning.teardown()

    def measuring(**extra: Any):
        system = make_system(server, server_options(server, workload, args, durable=False, **extra))
        system.setup()
        return system

    system = measuring()
    try:
        space = system.space()
        configs = {name: space.complete(config) for name, config in arms.items()}
        knobs = {k: v for k, v in NON_DURABLE[server].items() if k in space.params}
        if knobs:
            configs["non-durable"] = space.complete({**system.default(), **knobs})
        rate = 0 if workload in CLOSED_LOOP_ONLY else max(1, int(args.rate_fraction * measure(system, configs["default"])["throughput"]))
    finally:
        system.teardown()
    names = list(configs)
    samples = {name: {"throughput": [], "p99_ms": [], "checkpoints": []} for name in names}
    closed_only = workload in CLOSED_LOOP_ONLY  # its p99 is the closed-loop window's
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for paced in ((False,) if closed_only else (False, True)):
            system = measuring(rate=rate) if paced else measuring()
            try:
                for name in order:
                    m = measure(system, configs[name])
                    if paced or closed_only:
                        samples[name]["p99_ms"].append(m["p99_ms"])
                    if not paced:
                        samples[name]["throughput"].append(m["throughput"])
                        samples[name]["checkpoints"].append(m["checkpoints"])
            finally:
                system.teardown()
        print(f"    round {round_ + 1}/{args.rounds}: " + ", ".join(
            f"{n} {samples[n]['throughput'][-1]:.0f}/s p99 {samples[n]['p99_ms'][-1]:.1f} ms" for n in names), flush=True)
    rows = []
    base = samples["default"]
    for name in names:
        s_ = samples[name]
        t, p = gain(s_["throughput"], base["throughput"], True), gain(s_["p99_ms"], base["p99_ms"], False)
        checkpoints = np.asarray(s_["checkpoints"], dtype=float)
        # paired against the expert arm too: "autosys never significantly below the expert rules"
        vs = {}
        if "expert" in samples:
            expert = samples["expert"]
            vs = {**{f"tput_vs_expert_{k}": v for k, v in gain(s_["throughput"], expert["throughput"], True).items()},
                  **{f"p99_vs_expert_{k}": v for k, v in gain(s_["p99_ms"], expert["p99_ms"], False).items()}}
        rows.append({"server": server, "cluster": cluster_of(server, args), "workload": workload, "arm": name, "rate": rate,
                     "study_start": "expert" if start_from else "default",
                     "throughput": float(np.median(s_["throughput"])), "p99_ms": float(np.median(s_["p99_ms"])),
                     "checkpoints_per_window": float(np.nanmedian(checkpoints)) if np.isfinite(checkpoints).any() else math.nan,
                     **{f"tput_{k}": v for k, v in t.items()}, **{f"p99_{k}": v for k, v in p.items()},
                     **vs, "config": " ".join(f"{k}={v}" for k, v in configs[name].items() if configs["default"].get(k) != v)})
    return rows


def headroom(frame: pd.DataFrame) -> pd.DataFrame:
    """Per server and workload: the best durable arm, and the share of its log-gain autosys took."""
    out = []
    for (server, workload), rows in frame.groupby(["server", "workload"]):
        durable = rows[~rows["arm"].isin(["default", "non-durable"])]
        tuned = rows[rows["arm"] == "autosys"].iloc[0]
        entry = {"server": server, "cluster": rows["cluster"].iloc[0] if "cluster" in rows else SHARED, "workload": workload}
        for metric in ("tput", "p99"):
            best = durable.loc[durable[f"{metric}_ratio"].idxmax()]
            significant = best[f"{metric}_low"] > 1.0 and best[f"{metric}_ratio"] >= 1.0
            share = math.log(tuned[f"{metric}_ratio"]) / math.log(best[f"{metric}_ratio"]) if best[f"{metric}_ratio"] > 1 else math.nan
            entry.update({f"{metric}_best_arm": best["arm"], f"{metric}_best_ratio": best[f"{metric}_ratio"],
                          f"{metric}_headroom_significant": bool(significant), f"{metric}_taken": share})
            if f"{metric}_vs_expert_ratio" in tuned:  # autosys / expert, paired by round, with its interval
                entry.update({f"{metric}_autosys_vs_expert": tuned[f"{metric}_vs_expert_ratio"],
                              f"{metric}_autosys_vs_expert_low": tuned[f"{metric}_vs_expert_low"],
                              f"{metric}_autosys_vs_expert_high": tuned[f"{metric}_vs_expert_high"],
                              f"{metric}_autosys_below_expert": bool(tuned[f"{metric}_vs_expert_high"] < 1.0)})
        out.append(entry)
    return pd.DataFrame(out)


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(frame.groupby(["server", "workload"]))
    fig, axes = plt.subplots(2, len(groups), figsize=(4 * len(groups), 6), squeeze=False)
    for col, ((server, workload), rows) in enumerate(groups):
        for row, metric, title in ((0, "tput", "throughput gain"), (1, "p99", "p99 latency gain")):
            ax = axes[row][col]
            ratios = rows[f"{metric}_ratio"].to_numpy()
            low = np.nan_to_num(ratios - rows[f"{metric}_low"].to_numpy())
            high = np.nan_to_num(rows[f"{metric}_high"].to_numpy() - ratios)
            ax.bar(rows["arm"], ratios, yerr=[low, high], capsize=3, color="tab:blue")
            ax.axhline(1.0, color="black", lw=0.8)
            where = " (private)" if "cluster" in rows and rows["cluster"].iloc[0] == PRIVATE else ""
            ax.set_title(f"{server}{where} {workload}\n{title} vs default", fontsize=9)
            ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="postgres,mysql")
    parser.add_argument("--workloads", default="sysbench-read-only,sysbench-read-write,sysbench-write-only,analytic")
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--long-budget", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--rate-fraction", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--knobs", default="", help="the servers' knobs option: empty = the curated set, all = the catalogue")
    parser.add_argument("--pg-restart-command", default="")
    parser.add_argument("--mysql-restart-command", default="")
    parser.add_argument("--analytic-records", type=int, default=2_000_000,
                        help="sales rows of the analytic mix (its fact table; the other tables follow)")
    parser.add_argument("--analytic-statement-timeout", type=float, default=300.0,
                        help="seconds before an analytic query is cancelled (default-config queries can take tens of s)")
    parser.add_argument("--work", default="/tmp/autosys-db-servers")
    parser.add_argument("--pg-private", action="store_true",
                        help="run PostgreSQL on a private throwaway cluster (initdb defaults, restarts allowed: "
                             "shared_buffers is tuned), created once for the run; the shared server is never touched")
    parser.add_argument("--tag", default=None,
                        help="added to the result file names (default: pg_private with --pg-private, else none)")
    parser.add_argument("--start-expert", action=argparse.BooleanOptionalAction, default=True,
                        help="the autosys study measures the expert rules' config first, after the default (default: on)")
    parser.add_argument("--quick", action="store_true", help="tiny windows and budgets: checks the pipeline, not the claim")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget, args.rounds, args.seconds, args.warmup = min(args.budget, 4), min(args.rounds, 2), 3.0, 1.0
    if args.pg_private and args.pg_restart_command:
        parser.error("--pg-private restarts its own cluster: drop --pg-restart-command")
    if args.tag is None:
        args.tag = "pg_private" if args.pg_private else ""
    if args.tag and not all(c.isalnum() or c in "-_" for c in args.tag):
        parser.error("--tag: letters, digits, - and _ only (it goes into file names)")
    args.restart_command = {"postgres": args.pg_restart_command, "mysql": args.mysql_restart_command}
    servers = args.servers.split(",")
    rows = []
    with contextlib.ExitStack() as stack:
        args.pg_cluster = None
        if args.pg_private and "postgres" in servers:
            from autosys_adapters.dbserver.private import private_postgres

            # SIGTERM unwinds like Ctrl-C: the adapters restore and the private cluster is stopped and deleted
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
            try:
                args.pg_cluster = stack.enter_context(private_postgres(prefix="autosys-db-servers-"))
            except SystemUnavailable as exc:
                raise SystemExit(f"--pg-private: {exc}") from None
            print(f"postgres: private cluster at {args.pg_cluster.url} ({args.pg_cluster.directory})", flush=True)
        for server in servers:
            for workload in args.workloads.split(","):
                try:
                    rows += run_pair(server, workload, args)
                except SystemUnavailable as exc:
                    print(f"  {server} {workload}: skipped ({exc})")
    if not rows:
        print("nothing ran")
        return
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    frame.to_csv(RESULTS / f"db_servers{suffix}.csv", index=False)
    room = headroom(frame)
    room.to_csv(RESULTS / f"db_servers_headroom{suffix}.csv", index=False)
    plot(frame, RESULTS / f"db_servers{suffix}.png")
    pd.set_option("display.width", 200)
    print(frame[["server", "cluster", "workload", "arm", "throughput", "tput_ratio", "tput_low", "tput_high", "p99_ms",
                 "p99_ratio", "p99_low", "p99_high", "checkpoints_per_window"]].round(3).to_string(index=False))
    print(room.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
