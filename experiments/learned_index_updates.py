"""The updatable learned index vs a compiled B+tree on mixed read/insert workloads (issue 22, item 3).

For each key distribution: draw N base keys (10M by default) and fresh keys
from the same distribution; bulk-load both structures on the base keys; then
replay op streams (read-only, 95% lookups / 5% inserts, 50/50) in one
compiled call each, every structure from a fresh copy of its bulk load,
interleaved over `--repeats` rounds. Times are thread CPU time of the whole
stream (other processes on this shared machine do not count), split into
lookups and inserts by their shares of the time-stamp-counter cycles counted
per op inside the kernels. Structures:

- `alex_default`: the updatable index at its default knobs;
- `alex_tuned`: knobs from a Study (random search, `--budget` trials, the
  default first) of the `learned-index-updates` system on a shorter 50/50
  stream (1/8 of the ops) over the same keys, used for every workload;
- `btree`: the compiled B+tree with inserts and deletes, its leaf size and
  bulk fill picked per distribution from a small grid by total time on the
  first 1/8 of the 50/50 stream (the best of the grid is the anchor);
- `btrees`: the `BTrees` package's QQBTree, one Python call per op (a second,
  per-call-overhead-bound row; fewer ops, one run).

The ISSUE-22 targets: lookups/s at least 1.5x the B+tree's and inserts/s at
least 1x, on the mixed workloads. Ratios are geometric means of the per-round
paired ratios with a 95% t-interval. Prints a table and writes
experiments/results/learned_index_updates.csv (summary),
learned_index_updates_runs.csv (every round), learned_index_updates_trials.csv
(the studies) and learned_index_updates.png.

    nice -n 10 .venv/bin/python experiments/learned_index_updates.py           # 10M keys, 3 distributions, 1M ops
    nice -n 10 .venv/bin/python experiments/learned_index_updates.py --quick   # 1M keys, 2 distributions, 200K ops
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autosys_adapters.learned_index.dynamic_btree import DynamicBTree  # noqa: E402
from autosys_adapters.learned_index.keys import generate  # noqa: E402
from autosys_adapters.learned_index.updatable import INSERT, LOOKUP, UpdatableIndex  # noqa: E402
from autosys_adapters.learned_index.updatable_system import (UpdatableIndexSystem, config_of, key_split,  # noqa: E402
                                                     mixed_stream, timed_run)
from autosys.run.study import Study  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
WORKLOADS = {"read_only": 0.0, "95/5": 0.05, "50/50": 0.5}
LOOKUP_TARGET, INSERT_TARGET = 1.5, 1.0
BTREE_GRID = [(leaf, inner, fill) for leaf, inner, fill in itertools.product((64, 128), (16,), (0.7, 1.0))]


def ratio_ci(num: np.ndarray, den: np.ndarray) -> tuple[float, float, float]:
    """Geometric mean of paired ratios num/den and its 95% t-interval."""
    logs = np.log(np.asarray(num, float) / np.asarray(den, float))
    logs = logs[np.isfinite(logs)]
    if logs.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = logs.mean()
    if logs.size < 2:
        return float(np.exp(mean)), float("nan"), float("nan")
    half = stats.t.ppf(0.975, logs.size - 1) * logs.std(ddof=1) / np.sqrt(logs.size)
    return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))


def pick_btree(base, kinds, keys) -> tuple[tuple, pd.DataFrame]:
    rows = []
    for leaf, inner, fill in BTREE_GRID:
        tree = DynamicBTree(leaf, inner, fill).bulk_load(base)
        seconds, _, ns = timed_run(tree, kinds, keys)
        rows.append({"leaf": leaf, "inner": inner, "fill": fill, "seconds": seconds, "lookup_ns": ns[LOOKUP],
                     "insert_ns": ns[INSERT]})
    grid = pd.DataFrame(rows)
    best = grid.loc[grid["seconds"].idxmin()]
    return (int(best["leaf"]), int(best["inner"]), float(best["fill"])), grid


def tune(name: str, keys: np.ndarray, args, workdir: Path) -> tuple[dict, pd.DataFrame]:
    """A Study of the learned-index-updates system on a 50/50 stream over this distribution's keys."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}_keys.npy"
    np.save(path, keys)
    system = UpdatableIndexSystem(keys=str(path), n_keys=args.n_keys, operations=args.tune_ops,
                                  insert_fraction=0.5, seed=args.seed, repeats=1)
    study = Study.create(workdir / name, system, tuner="random", budget=args.budget, seed=args.seed)
    study.run()
    df = study.dataframe()
    df.insert(0, "distribution", name)
    best = study.best
    study.close()
    return (dict(best.config) if best is not None else system.default()), df


def btrees_row(base: np.ndarray, kinds: np.ndarray, keys: np.ndarray) -> dict:
    """QQBTree, one Python call per op, per-op wall clock (timer cost subtracted)."""
    from BTrees.QQBTree import QQBTree

    tree = QQBTree()
    for start in range(0, base.size, 1 << 20):
        part = base[start: start + (1 << 20)].tolist()
        tree.update(list(zip(part, part)))
    clock = time.perf_counter_ns
    pairs = [(clock(), clock()) for _ in range(10_000)]
    overhead = float(np.median([b - a for a, b in pairs]))  # what one timer pair costs
    spent = {LOOKUP: 0, INSERT: 0}
    counts = {LOOKUP: 0, INSERT: 0}
    get = tree.get
    for kind, key in zip(kinds.tolist(), keys.tolist()):
        t0 = clock()
        if kind == LOOKUP:
            get(key)
        else:
            tree[key] = key
        spent[kind] += clock() - t0 - overhead
        counts[kind] += 1
    return {k: spent[k] / counts[k] if counts[k] else float("nan") for k in spent} | {"bytes": 16.0 * len(tree)}


def run_distribution(name: str, args, workdir: Path) -> tuple[list[dict], list[dict], pd.DataFrame]:
    n_fresh = int(args.ops * 0.5 * 1.1) + 16
    started = time.perf_counter()
    base, fresh = key_split(generate(name, int((args.n_keys + n_fresh) * 1.05) + 64, args.seed), args.n_keys, args.seed)
    streams = {w: mixed_stream(base, fresh, args.ops, f, seed=args.seed + 1 + i) for i, (w, f) in enumerate(WORKLOADS.items())}
    print(f"[{name}] {base.size:,} base keys, streams of {args.ops:,} ops ({time.perf_counter() - started:.0f}s)", flush=True)

    started = time.perf_counter()
    tuned, trials = tune(name, np.concatenate([base, fresh]), args, workdir)
    print(f"[{name}] tuned in {time.perf_counter() - started:.0f}s: {tuned}", flush=True)
    (leaf, inner, fill), grid = pick_btree(base, *(a[: args.tune_ops] for a in streams["50/50"]))
    print(f"[{name}] B+tree grid best: leaf {leaf}, inner {inner}, fill {fill}", flush=True)

    builders = {
        "alex_default": lambda: UpdatableIndex(config_of(UpdatableIndexSystem().default())).bulk_load(base),
        "alex_tuned": lambda: UpdatableIndex(config_of(tuned)).bulk_load(base),
        "btree": lambda: DynamicBTree(leaf, inner, fill).bulk_load(base),
    }
    built = {}
    for key, build in builders.items():
        t0 = time.perf_counter()
        built[key] = build()
        built[key].build_seconds = time.perf_counter() - t0
    runs = []
    for workload, (kinds, keys) in streams.items():
        reference = None
        for repeat in range(args.repeats):
            order = list(built) if repeat % 2 == 0 else list(built)[::-1]  # interleaved, alternating order
            for structure in order:
                copy = built[structure].copy()
                seconds, out, ns = timed_run(copy, kinds, keys)
                if reference is None:
                    reference = out
                elif not np.array_equal(out, reference):
                    raise RuntimeError(f"{structure} answered {workload} on {name} differently from the others")
                runs.append({"distribution": name, "workload": workload, "structure": structure, "repeat": repeat,
                             "seconds": seconds, "ns_per_op": seconds * 1e9 / keys.size, "lookup_ns": ns[LOOKUP],
                             "insert_ns": ns[INSERT], "bytes_after": copy.size_bytes,
                             "config": built[structure].describe(), "build_seconds": built[structure].build_seconds})
        print(f"[{name}] {workload} done", flush=True)

    summary = summarize(pd.DataFrame(runs))
    if args.btrees:
        for workload, (kinds, keys) in streams.items():
            n = min(args.btrees_ops, keys.size)
            row = btrees_row(base, kinds[:n], keys[:n])
            summary.append({"distribution": name, "workload": workload, "structure": "btrees", "rounds": 1,
                            "lookup_ns": row[LOOKUP], "insert_ns": row[INSERT], "ns_per_op": float("nan"),
                            "lookup_mops": 1e3 / row[LOOKUP], "insert_mops": 1e3 / row[INSERT] if row[INSERT] == row[INSERT] else float("nan"),
                            "size_mb": row["bytes"] / 1e6, "config": f"QQBTree, {n:,} ops, Python call per op"})
    return summary, runs, pd.concat([trials, grid.assign(distribution=name, kind="btree_grid")], ignore_index=True)


def summarize(runs: pd.DataFrame) -> list[dict]:
    rows = []
    for (dist, workload), group in runs.groupby(["distribution", "workload"], sort=False):
        anchor = group[group["structure"] == "btree"].sort_values("repeat")
        for structure, part in group.groupby("structure", sort=False):
            part = part.sort_values("repeat")
            row = {"distribution": dist, "workload": workload, "structure": structure, "rounds": len(part),
                   "ns_per_op": part["ns_per_op"].median(), "lookup_ns": part["lookup_ns"].median(),
                   "insert_ns": part["insert_ns"].median(), "size_mb": part["bytes_after"].median() / 1e6,
                   "build_s": part["build_seconds"].iloc[0], "config": part["config"].iloc[0]}
            row["lookup_mops"] = 1e3 / row["lookup_ns"]
            row["insert_mops"] = 1e3 / row["insert_ns"] if row["insert_ns"] == row["insert_ns"] else float("nan")
            row["total_mops"] = 1e3 / row["ns_per_op"]
            for what in ("lookup", "insert"):
                r, lo, hi = ratio_ci(anchor[f"{what}_ns"].to_numpy(), part[f"{what}_ns"].to_numpy())
                row[f"{what}_x_btree"], row[f"{what}_x_lo"], row[f"{what}_x_hi"] = r, lo, hi
            row["total_x_btree"] = ratio_ci(anchor["ns_per_op"].to_numpy(), part["ns_per_op"].to_numpy())[0]
            if structure.startswith("alex") and workload != "read_only":
                row["targets_met"] = bool(row["lookup_x_btree"] >= LOOKUP_TARGET and row["insert_x_btree"] >= INSERT_TARGET)
            rows.append(row)
    return rows


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alex = table[table["structure"] == "alex_tuned"].reset_index(drop=True)
    labels = [f"{d}\n{w}" for d, w in zip(alex["distribution"], alex["workload"])]
    x = np.arange(len(alex))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(alex) + 2), 4))
    for offset, what, color in ((-0.2, "lookup", "tab:blue"), (0.2, "insert", "tab:orange")):
        r = alex[f"{what}_x_btree"].to_numpy()
        err = np.array([r - alex[f"{what}_x_lo"].to_numpy(), alex[f"{what}_x_hi"].to_numpy() - r])
        ax.bar(x + offset, r, 0.4, yerr=np.nan_to_num(err), capsize=3, label=f"{what}s/s vs B+tree", color=color)
    ax.axhline(LOOKUP_TARGET, ls="--", color="tab:blue", lw=1)
    ax.axhline(INSERT_TARGET, ls="--", color="tab:orange", lw=1)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("ops/s ratio: tuned index / B+tree")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M keys, 2 distributions (lognormal, osm), 200K ops")
    parser.add_argument("--distributions", nargs="+", default=None)
    parser.add_argument("--n-keys", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="ops per stream")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--budget", type=int, default=None, help="study trials per distribution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-btrees", dest="btrees", action="store_false", help="skip the BTrees package row")
    parser.add_argument("--btrees-ops", type=int, default=30_000)
    parser.add_argument("--tag", default="", help="suffix for the result files (keeps another run's files)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.distributions = args.distributions or (["lognormal", "osm"] if quick else ["lognormal", "uniform_sparse", "osm"])
    args.n_keys = args.n_keys or (1_000_000 if quick else 10_000_000)
    args.ops = args.ops or (200_000 if quick else 1_000_000)
    args.repeats = args.repeats or 3
    args.budget = args.budget or 6
    args.tune_ops = max(16, args.ops // 8)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = ("_quick" if quick else "") + (f"_{args.tag}" if args.tag else "")
    started = time.perf_counter()
    summary, runs, trials = [], [], []
    with tempfile.TemporaryDirectory(prefix="li-updates-") as tmp:
        for name in args.distributions:
            rows, rounds, df = run_distribution(name, args, Path(tmp))
            summary += rows
            runs += rounds
            trials.append(df)
    table = pd.DataFrame(summary)
    table.to_csv(RESULTS / f"learned_index_updates{suffix}.csv", index=False)
    pd.DataFrame(runs).to_csv(RESULTS / f"learned_index_updates{suffix}_runs.csv", index=False)
    pd.concat(trials, ignore_index=True).to_csv(RESULTS / f"learned_index_updates{suffix}_trials.csv", index=False)
    plot(table, RESULTS / f"learned_index_updates{suffix}.png")
    pd.set_option("display.width", 250)
    cols = ["distribution", "workload", "structure", "lookup_mops", "insert_mops", "total_mops", "lookup_x_btree",
            "lookup_x_lo", "lookup_x_hi", "insert_x_btree", "insert_x_lo", "insert_x_hi", "size_mb"]
    print(f"\n{args.n_keys:,} base keys, {args.ops:,} ops a stream, {args.repeats} interleaved rounds; "
          "M ops/s of thread CPU time; x_btree = ratio of throughputs to the compiled B+tree (95% CI)")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\nconfigs:")
    for (dist, structure), group in table.groupby(["distribution", "structure"], sort=False):
        print(f"  {dist:15s} {structure:13s} {group['config'].iloc[0]}")
    if "targets_met" in table:
        mixed = table[table["targets_met"].notna()]
        print(f"\nISSUE-22 targets (lookups >= {LOOKUP_TARGET}x, inserts >= {INSERT_TARGET}x the B+tree) met on "
              f"{int(mixed['targets_met'].sum())} of {len(mixed)} mixed rows")
    print(f"wall {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
