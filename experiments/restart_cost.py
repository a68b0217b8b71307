"""Restart-cost accounting on PostgreSQL: cost-aware BO (`bo-cost`) against cost-blind BO, side by side.

Question: with restart-only knobs allowed (`shared_buffers`, `wal_buffers`),
does the cost-aware tuner (EI per predicted second, expensive changes batched;
autosys/tuners/cost_aware.py) reach the same quality as cost-blind BO (the
same BO with plain EI) with at least 30% fewer server restarts?

Setup: a throwaway PostgreSQL cluster (initdb into a temporary folder, its own
port, stopped and deleted at the end: adapters/dbserver/private.py), so restarts disturb no one's server;
`--url` with `--restart-command` runs against an existing server instead (the
adapter restores it exactly as found, restarting if it must). The workload is
the real pgbench (TPC-B-like, small scale), not durable (`synchronous_commit`
may be off: a throwaway cluster loses nothing). For each seed the two studies
run back to back, the order alternating with the seed, with the same budget,
seed and study settings (by default without intensification, so the budget is
the tuners' own; `--intensify` races challengers as the CLI does). Counted per
study: server restarts during its trials (the adapter's RESTART commands;
the restore at the end is counted apart), and wall seconds. Quality: each
seed's two answers (and the default) are then re-measured in turns on the
same server, and the paired ratio of the cost-aware answer to the cost-blind
one carries its 95% interval (autosys/run/intervals.py).

Writes experiments/results/restart_cost.csv (one row per study),
restart_cost_confirm.csv (the side-by-side re-runs) and restart_cost.png
(`restart_cost_intensify*` with `--intensify`).
Timings are noisy on a shared machine: the comparisons are paired and
interleaved for that reason.

    .venv/bin/python experiments/restart_cost.py            # 3 seeds (~10-15 min on 2 cores)
    .venv/bin/python experiments/restart_cost.py --quick    # 1 seed, a few trials (a smoke run)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autosys.core.system import SystemUnavailable  # noqa: E402
from autosys.run.intervals import interval_of, log_gains  # noqa: E402
from autosys.run.study import Study  # noqa: E402
from autosys.tuners.cost_aware import count_changes  # noqa: E402
from autosys_adapters.dbserver.private import private_postgres  # noqa: E402

RESULTS = REPO / "experiments" / "results"
KNOBS = "shared_buffers,wal_buffers,synchronous_commit,commit_delay,wal_writer_delay,bgwriter_delay"
ARMS = {
    "cost-blind": ("bo", {"acquisition": "ei"}),
    "cost-aware": ("autosys.tuners.cost_aware:CostAwareBO", {}),
}


# ----------------------------------------------------------------------------- one study
def run_study(arm: str, seed: int, options: dict, budget: int, workdir: Path, intensify: bool) -> dict:
    tuner, tuner_options = ARMS[arm]
    study = Study.create(workdir / f"{arm}-{seed}", "postgres", system_options=options, tuner=tuner,
                         tuner_options=tuner_options, budget=budget, seed=seed, intensify=intensify)
    system = study.system
    restarts_in_trials = [0]

    def count(study_, trial):
        restarts_in_trials[0] = system.sent.count("RESTART")

    start = time.monotonic()
    study.run(count)
    seconds = time.monotonic() - start
    trials = sorted(study.trials(), key=lambda t: t.number)
    best = study.best
    default = study.default_trial
    space = study.tuner.space
    gain = study.gain_over_default() or {}
    return {
        "arm": arm,
        "seed": seed,
        "trials": len(trials),
        "restarts": restarts_in_trials[0],
        "restart_moves": count_changes(space, trials),
        "restore_restarts": system.sent.count("RESTART") - restarts_in_trials[0],
        "wall_seconds": round(seconds, 1),
        "trial_seconds_restart": _mean([t.info.get("seconds") for t, moved in _moves(space, trials) if moved]),
        "trial_seconds_other": _mean([t.info.get("seconds") for t, moved in _moves(space, trials) if not moved]),
        "best_tps_in_study": None if best is None else best.value,
        "default_tps": None if default is None else default.value,
        "vs_default": gain.get("ratio"),
        "best_config": json.dumps(None if best is None else best.config, sort_keys=True),
    }


def _moves(space, trials):
    previous = space.default()
    for t in trials:
        yield t, space.change_cost(previous, t.config) in ("restart", "rebuild")
        previous = t.config


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 2) if values else None


# ----------------------------------------------------------------------------- side-by-side quality
def confirm(options: dict, answers: dict[str, dict], rounds: int) -> list[dict]:
    """Re-measure the default and each arm's answer in turns (order rotating per round) on one server."""
    from autosys.core.registry import make_system

    system = make_system("postgres", options)
    rows = []
    names = ["default", *answers]
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                config = system.default() if name == "default" else answers[name]
                value = system.evaluate(system.check_config(config)).metrics["throughput"]
                rows.append({"round": r, "config": name, "tps": value})
    finally:
        system.teardown()
    return rows


def paired(rows: list[dict], first: str, second: str):
    by_round: dict[int, dict[str, float]] = {}
    for row in rows:
        by_round.setdefault(row["round"], {})[row["config"]] = row["tps"]
    pairs = [(r[first], r[second]) for r in by_round.values() if first in r and second in r]
    logs = log_gains(pairs, maximize=True)
    return None if logs is None or not len(logs) else interval_of(logs)


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=20, help="trials per study (the default's included)")
    ap.add_argument("--intensify", action="store_true",
                    help="race challengers in paired re-runs during the study (the CLI's default; the re-runs then take"
                         " most of a small budget, and their alternation restarts the server for both arms alike)")
    ap.add_argument("--seconds", type=float, default=2.0, help="pgbench seconds per measured run")
    ap.add_argument("--scale", type=int, default=2, help="pgbench scale (100k accounts each)")
    ap.add_argument("--rounds", type=int, default=4, help="side-by-side re-runs of each answer per seed")
    ap.add_argument("--url", default=None, help="an existing server (needs --restart-command); default: a throwaway cluster")
    ap.add_argument("--restart-command", default="")
    ap.add_argument("--quick", action="store_true", help="1 seed, 8 trials, 2 rounds: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budget, args.rounds = 1, 8, 2
    if args.url and not args.restart_command:
        ap.error("--url needs --restart-command (autosys never guesses how to restart a server)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if args.url:
            url, restart, root = args.url, args.restart_command, Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            try:
                cluster = stack.enter_context(private_postgres(prefix="autosys-restart-cost-"))
            except SystemUnavailable as exc:
                sys.exit(f"error: {exc}; or pass --url and --restart-command")
            url, restart, root = cluster.url, cluster.restart_command, cluster.directory
        workload = root / "pgbench.json"
        workload.write_text(json.dumps({"kind": "pgbench", "scale": args.scale, "concurrency": 4, "jobs": 2}))
        options = {"url": url, "workload": str(workload), "allow_restart": True, "restart_command": restart,
                   "durable": False, "knobs": KNOBS, "seconds": args.seconds, "warmup": 0.5,
                   "state_file": str(root / "restore-state.json")}
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autosys-restart-cost-studies-")))
        rows, confirm_rows, comparisons = [], [], []
        for seed in range(args.seeds):
            arms = list(ARMS) if seed % 2 == 0 else list(ARMS)[::-1]  # interleaved: the order alternates
            answers = {}
            for arm in arms:
                row = run_study(arm, seed, options, args.budget, workdir, args.intensify)
                rows.append(row)
                answers[arm] = json.loads(row["best_config"]) or {}
                print(f"seed {seed} {arm:10s} restarts {row['restarts']:3d} (restore {row['restore_restarts']}) "
                      f"wall {row['wall_seconds']:6.1f}s  best {row['best_tps_in_study']:.0f} tps  "
                      f"trial s: restart {row['trial_seconds_restart']} other {row['trial_seconds_other']}", flush=True)
            runs = confirm(options, answers, args.rounds)
            for r in runs:
                confirm_rows.append({"seed": seed, **r})
            gain = paired(runs, "cost-aware", "cost-blind")
            comparisons.append((seed, gain))
            print(f"seed {seed} side by side: cost-aware / cost-blind answer = {_fmt(gain)}", flush=True)
    stem = "restart_cost_intensify" if args.intensify else "restart_cost"
    _write(rows, confirm_rows, stem)
    _summary(rows, confirm_rows, comparisons)
    _plot(rows, confirm_rows, stem)
    return 0


def _fmt(gain) -> str:
    if gain is None:
        return "n/a"
    if gain.low is None:
        return f"{gain.ratio:.3f} (1 pair)"
    return f"{gain.ratio:.3f} [{gain.low:.3f}, {gain.high:.3f}] ({gain.pairs} pairs)"


def _write(rows, confirm_rows, stem: str) -> None:
    for name, data in ((f"{stem}.csv", rows), (f"{stem}_confirm.csv", confirm_rows)):
        with open(RESULTS / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)


def _summary(rows, confirm_rows, comparisons) -> None:
    blind = {r["seed"]: r for r in rows if r["arm"] == "cost-blind"}
    aware = {r["seed"]: r for r in rows if r["arm"] == "cost-aware"}
    seeds = sorted(blind)
    print("\nseed  restarts blind  restarts aware  ratio   wall blind  wall aware  ratio   aware/blind answer (95% CI)")
    for (seed, gain) in comparisons:
        b, a = blind[seed], aware[seed]
        rr = a["restarts"] / b["restarts"] if b["restarts"] else math.nan
        print(f"{seed:4d}  {b['restarts']:14d}  {a['restarts']:14d}  {rr:5.2f}   {b['wall_seconds']:10.1f}  "
              f"{a['wall_seconds']:10.1f}  {a['wall_seconds'] / b['wall_seconds']:5.2f}   {_fmt(gain)}")
    total_b = sum(blind[s]["restarts"] for s in seeds)
    total_a = sum(aware[s]["restarts"] for s in seeds)
    print(f"total restarts: cost-blind {total_b}, cost-aware {total_a}: "
          f"{100 * (1 - total_a / total_b) if total_b else float('nan'):.0f}% fewer")
    # pooled quality: every round of every seed as one pair (the answers differ per seed; the question is whether
    # the cost-aware answers are as good as the cost-blind ones)
    pooled = []
    for seed in seeds:
        pooled += [(r["seed"], r) for r in confirm_rows if r["seed"] == seed]
    pairs = {}
    for seed, r in pooled:
        pairs.setdefault((seed, r["round"]), {})[r["config"]] = r["tps"]
    both = [(p["cost-aware"], p["cost-blind"]) for p in pairs.values() if "cost-aware" in p and "cost-blind" in p]
    logs = log_gains(both, maximize=True)
    if logs is not None and len(logs):
        print(f"pooled over seeds: cost-aware / cost-blind answer = {_fmt(interval_of(logs))}")
    vs_default = [(p["cost-blind"], p["default"]) for p in pairs.values() if "default" in p and "cost-blind" in p]
    logs = log_gains(vs_default, maximize=True)
    if logs is not None and len(logs):
        print(f"pooled over seeds: cost-blind answer / default = {_fmt(interval_of(logs))}")
    vs_default = [(p["cost-aware"], p["default"]) for p in pairs.values() if "default" in p and "cost-aware" in p]
    logs = log_gains(vs_default, maximize=True)
    if logs is not None and len(logs):
        print(f"pooled over seeds: cost-aware answer / default = {_fmt(interval_of(logs))}")


def _plot(rows, confirm_rows, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in rows})
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    width = 0.38
    for k, arm in enumerate(ARMS):
        by_seed = {r["seed"]: r for r in rows if r["arm"] == arm}
        x = np.arange(len(seeds)) + (k - 0.5) * width
        axes[0].bar(x, [by_seed[s]["restarts"] for s in seeds], width, label=arm)
        axes[1].bar(x, [by_seed[s]["wall_seconds"] for s in seeds], width, label=arm)
        tps = [[r["tps"] for r in confirm_rows if r["seed"] == s and r["config"] == arm] for s in seeds]
        axes[2].bar(x, [np.median(t) for t in tps], width, label=arm,
                    yerr=[[np.median(t) - min(t) for t in tps], [max(t) - np.median(t) for t in tps]], capsize=3)
    default = [np.median([r["tps"] for r in confirm_rows if r["seed"] == s and r["config"] == "default"]) for s in seeds]
    axes[2].scatter(np.arange(len(seeds)), default, color="k", marker="_", s=400, label="default", zorder=3)
    for ax, title in zip(axes, ("server restarts during the study", "study wall seconds", "answer re-measured (tps, median and range)")):
        ax.set_title(title, fontsize=10)
        ax.set_xticks(np.arange(len(seeds)), [f"seed {s}" for s in seeds])
    axes[0].legend()
    fig.suptitle("PostgreSQL with restart-only knobs: cost-aware vs cost-blind BO (same seeds, interleaved)", fontsize=11)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=110)
    print(f"wrote {RESULTS / stem}.csv, {stem}_confirm.csv and {stem}.png")


if __name__ == "__main__":
    raise SystemExit(main())
