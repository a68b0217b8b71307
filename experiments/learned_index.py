"""Tuned learned indexes vs numpy.searchsorted on SOSD-style key sets.

For each distribution: generate N keys (10M by default), run a Study of
`--budget` trials (random search by default; the default config first) on
the learned-index system, then rebuild the best index under the size cap and
time it side by side with `numpy.searchsorted` and every non-learned
baseline of `autosys_adapters.learned_index.baselines` on the same random-order
queries, interleaved, median of repeats, thread CPU time: compiled binary
search (the index's own lock-step batch size, no model), an Eytzinger layout
without and with software prefetching, a compiled static B+tree, and the
`BTrees` and `pygm` (PGM-index) packages, one Python call per query. The
index's gain is reported over the fastest of them (`best_baseline`,
`speedup_vs_best`), per key set; the ISSUE-22 target is 1.5x. Also measures what
numba's compilation costs: a cold compile into an empty cache vs loading the
cached kernels.

Prints a table and writes experiments/results/learned_index.csv,
learned_index_trials.csv, learned_index_speedup.png and one Pareto plot per
distribution.

    .venv/bin/python experiments/learned_index.py            # 10M keys; 40 trials on lognormal and osm, 15 on the others
    .venv/bin/python experiments/learned_index.py --quick    # 1M keys, 2 distributions, 15 trials
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autosys_adapters.learned_index import baselines, compiled  # noqa: E402
from autosys_adapters.learned_index.keys import GENERATORS  # noqa: E402
from autosys_adapters.learned_index.pareto import plot_pareto  # noqa: E402
from autosys_adapters.learned_index.system import LearnedIndexSystem, build_index  # noqa: E402
from autosys.run.study import Study  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
TARGETS = {"lognormal": 5.0, "osm": 3.0}
BEST_TARGET = 1.5  # over the best non-learned search, every distribution (issue 22)


def baseline_specs(batch: int) -> dict[str, tuple[str, dict]]:
    """Column name -> (baseline, options); the binary search uses the index's own batch size."""
    return {
        "binary": ("binary", {"batch": batch}),
        "eytzinger": ("eytzinger", {"prefetch": 0, "batch": 16}),
        "eytzinger_prefetch": ("eytzinger", {"prefetch": 3, "batch": 16}),
        "btree_compiled": ("kary", {"node_keys": 8, "batch": 16}),
        "btrees": ("btrees", {}),
        "pgm": ("pgm", {}),
    }


def thread_ns(fn) -> int:
    start = time.thread_time_ns()
    fn()
    return time.thread_time_ns() - start


def compile_cost() -> dict[str, float]:
    """Seconds for the first RMI lookup in a fresh process: empty numba cache vs the warm one."""
    code = (
        "import time, numpy as np; t=time.perf_counter();"
        "from autosys_adapters.learned_index import RMI, RMIConfig;"
        "k=np.arange(1000, dtype=np.uint64); RMI(k, RMIConfig(), backend='numba').lookup(k);"
        "print(time.perf_counter()-t)"
    )
    out = {}
    with tempfile.TemporaryDirectory() as cold:
        for label, env in (("cold_compile_s", {"NUMBA_CACHE_DIR": cold}), ("cached_s", {})):
            run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                 timeout=300, env={**os.environ, **env})
            out[label] = float(run.stdout.strip()) if run.returncode == 0 else float("nan")
    return out


def side_by_side(system: LearnedIndexSystem, config: dict, repeats: int) -> dict:
    """Index vs searchsorted vs every available baseline, interleaved on the same queries."""
    keys, queries = system.keys, system.queries
    index = build_index(keys, config, system.backend)
    want = np.searchsorted(keys, queries)
    assert np.array_equal(index.lookup(queries), want)
    contenders = {}
    row: dict = {}
    for column, (name, options) in baseline_specs(int(config.get("batch", 16))).items():
        reason = baselines.unavailable(name)
        if reason:
            row[f"ns_{column}"] = float("nan")
            print(f"    skipped {column}: {reason}", flush=True)
            continue
        contenders[column] = baselines.make(name, **options).build(keys)
        assert np.array_equal(contenders[column].lookup(queries), want), f"{column} is not exact"
    runs: dict[str, list[float]] = {"index": [], "searchsorted": [], **{c: [] for c in contenders}}
    for _ in range(repeats):
        runs["index"].append(thread_ns(lambda: index.lookup(queries)) / queries.size)
        runs["searchsorted"].append(thread_ns(lambda: np.searchsorted(keys, queries)) / queries.size)
        for column, baseline in contenders.items():
            runs[column].append(thread_ns(lambda: baseline.lookup(queries)) / queries.size)
    med = {k: float(np.median(v)) for k, v in runs.items()}
    for column in contenders:
        row[f"ns_{column}"] = med[column]
    best = min(contenders, key=med.get) if contenders else None
    row.update({
        "ns_index": med["index"],
        "ns_searchsorted": med["searchsorted"],
        "speedup": med["searchsorted"] / med["index"],
        # kept under its old name: the same lock-step batching as the index, without a model
        "ns_compiled_binary": med.get("binary", float("nan")),
        "speedup_vs_compiled_binary": med.get("binary", float("nan")) / med["index"],
        "best_baseline": best,
        "ns_best_baseline": med[best] if best else float("nan"),
        "speedup_vs_best": med[best] / med["index"] if best else float("nan"),
        "prefetch_gain": (med["eytzinger"] / med["eytzinger_prefetch"]
                          if "eytzinger_prefetch" in med and "eytzinger" in med else float("nan")),
        "index_pct_of_data": 100.0 * index.size_bytes / keys.nbytes,
        "build_s": index.build_seconds,
    })
    return row


def short(config: dict) -> str:
    batch = f" batch={config.get('batch', 16)}"
    if config["kind"] == "pgm":
        top = f"/{config['epsilon_recursive']}" if config.get("top", "recursive") == "recursive" else " top=binary"
        return f"pgm eps={config['epsilon']}{top} {config['search']}{batch}"
    mid = f"-{config['mid_models']}" if config.get("stages") == 3 else ""
    return (f"rmi{config['stages']} {config['root']}/{config['transform']}{mid} -> {config['leaves']} "
            f"{config['leaf']} {config['bounds']} {config['search']}{batch}")


def run_distribution(name: str, args, workdir: Path) -> tuple[dict, pd.DataFrame]:
    system = LearnedIndexSystem(distribution=name, n_keys=args.n_keys, queries=args.queries,
                                repeats=args.repeats, seed=args.seed, size_cap=args.size_cap)
    started = time.perf_counter()
    system.setup()
    data_s = time.perf_counter() - started
    budget = args.budget if name in TARGETS else args.budget_others
    study = Study.create(workdir / name, system, tuner=args.tuner, budget=budget, seed=args.seed)
    started = time.perf_counter()
    study.run()
    tuning_s = time.perf_counter() - started
    df = study.dataframe()
    best, default = study.best, study.default_trial
    row = {"distribution": name, "n_keys": args.n_keys, "trials": len(df), "tuning_wall_s": tuning_s,
           "data_s": data_s}
    if best is None:
        row["best_config"] = "none feasible"
        return row, df
    row["best_config"] = short(best.config)
    row["best_trial"] = best.number
    target = TARGETS.get(name)
    speedups = df["metrics.speedup"].where(df["feasible"])
    row["first_trial_meeting_target"] = (
        int(df["number"][speedups >= target].min()) if target and (speedups >= target).any() else None
    )
    row["default_speedup"] = default.metrics.get("speedup") if default else None
    row.update(side_by_side(system, best.config, args.final_repeats))
    row["target_speedup"] = target
    row["target_met"] = bool(target is None or row["speedup"] >= target) and row["index_pct_of_data"] <= 100 * args.size_cap
    row["best_target_met"] = bool(row["speedup_vs_best"] >= BEST_TARGET
                                  and row["index_pct_of_data"] <= 100 * args.size_cap)
    suffix = "_quick" if args.quick else ""
    plot_pareto(df, RESULTS / f"learned_index_pareto_{name}{suffix}.png", cap_bytes=system.cap_bytes,
                baseline_ns=row["ns_searchsorted"], title=f"{name}, {args.n_keys:,} keys")
    df.insert(0, "distribution", name)
    study.close()
    return row, df


def plot_speedups(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(table))
    ax.bar(x - 0.27, table["speedup"], 0.27, label="tuned index vs numpy.searchsorted")
    ax.bar(x, table["speedup_vs_compiled_binary"], 0.27, label="vs compiled binary search")
    ax.bar(x + 0.27, table["speedup_vs_best"], 0.27, label="vs best non-learned search")
    ax.axhline(BEST_TARGET, color="tab:green", linestyle=":", linewidth=0.8)
    for i, name in enumerate(table["distribution"]):
        if name in TARGETS:
            ax.hlines(TARGETS[name], i - 0.4, i + 0.4, color="tab:red", linestyles="--")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(x, table["distribution"], rotation=15)
    ax.set_ylabel("speedup (x)")
    ax.set_title(f"learned index, {int(table['n_keys'].iloc[0]):,} keys (dashed: targets)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1M keys, lognormal and osm, 15 trials")
    parser.add_argument("--n-keys", type=int, default=10_000_000)
    order = ["lognormal", "osm"] + [d for d in GENERATORS if d not in ("lognormal", "osm")]
    parser.add_argument("--distributions", default=",".join(order),
                        help="comma-separated; the two with targets (lognormal, osm) run first")
    parser.add_argument("--budget", type=int, default=40, help="trials for the distributions with targets")
    parser.add_argument("--budget-others", type=int, default=15,
                        help="trials for the other distributions (keeps the full run near 10 minutes)")
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--queries", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per trial")
    parser.add_argument("--final-repeats", type=int, default=7, help="interleaved runs in the final comparison")
    parser.add_argument("--size-cap", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_keys, args.budget, args.budget_others, args.distributions = 1_000_000, 15, 10, "lognormal,osm"
        args.queries, args.final_repeats = 100_000, 5
    if not compiled.available():
        print("note: numba is not installed; timing the numpy path")
    RESULTS.mkdir(parents=True, exist_ok=True)
    compile_info = compile_cost() if compiled.available() else {}
    rows, trials = [], []
    suffix = "_quick" if args.quick else ""
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.distributions.split(","):
            row, df = run_distribution(name.strip(), args, Path(tmp))
            row.update(compile_info)
            rows.append(row)
            trials.append(df)
            print(f"  {name}: {row.get('speedup', float('nan')):.2f}x in {row['tuning_wall_s']:.0f}s "
                  f"({row['best_config']})", flush=True)
            table = pd.DataFrame(rows)  # written after every distribution, so a cut-short run keeps its results
            table.to_csv(RESULTS / f"learned_index{suffix}.csv", index=False)
            pd.concat(trials, ignore_index=True).to_csv(RESULTS / f"learned_index_trials{suffix}.csv", index=False)
    if "speedup" in table:
        plot_speedups(table.dropna(subset=["speedup"]), RESULTS / f"learned_index_speedup{suffix}.png")
    cols = ["distribution", "trials", "tuning_wall_s", "ns_index", "ns_searchsorted", "speedup",
            "ns_compiled_binary", "speedup_vs_compiled_binary", "index_pct_of_data", "build_s",
            "first_trial_meeting_target", "target_met", "best_config"]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
        print(table[[c for c in cols if c in table]].round(2).to_string(index=False))
        # the learned index against every non-learned search, ns per lookup
        vs = ["distribution", "ns_index"] + [f"ns_{c}" for c in baseline_specs(16)] + [
            "best_baseline", "speedup_vs_best", "prefetch_gain", "best_target_met"]
        print(table[[c for c in vs if c in table]].round(2).to_string(index=False))
    if compile_info:
        print(f"numba: first lookup in a fresh process {compile_info['cold_compile_s']:.1f}s with an empty cache, "
              f"{compile_info['cached_s']:.1f}s with cache=True's cache")
    missed = table[table.get("target_met", pd.Series(dtype=bool)) == False]  # noqa: E712
    verdict = "all met" if missed.empty else f"missed on {', '.join(missed['distribution'])}"
    if args.n_keys != 10_000_000:
        verdict += " (the targets are set for 10M keys; this run used fewer)"
    print("targets:", verdict)
    if "best_target_met" in table:
        short_of = table[table["best_target_met"] == False]  # noqa: E712
        print(f"vs the best non-learned search (>= {BEST_TARGET}x):",
              "all met" if short_of.empty else f"missed on {', '.join(short_of['distribution'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
