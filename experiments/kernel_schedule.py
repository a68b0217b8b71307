"""Tuned kernel schedules vs numpy (OpenBLAS) and a naive loop; model-guided vs random search.

For matmul 256^3, 512^3, 1024^3, three non-square shapes (a dense layer, a
skinny and a tall product) and one ResNet-style conv2d, on this machine, in
one run, every GFLOP/s beside the measured fp32 peak:

* GFLOP/s of the best schedule found (the search's top schedules measured
  again, side by side, best median wins), numpy on the same shape and thread
  count, and the naive kernel, measured interleaved in one child process
  (at 2 threads numpy runs in alternating processes of its own), at 1 thread
  and at all threads;
* at 512^3: trials each tuner needs to reach 90% of the best GFLOP/s found by
  any run (median over seeds): random search, model-guided (cold), and
  model-guided warm-started from the trials of other shapes (a 256^3 study and
  a 1024^3 study: AutoTVM's cross-shape transfer);
* how well a cost model trained on the other shapes' trials ranks schedules of
  shapes it never saw.

A config measured once is reused within the run (its trial still counts for
every tuner that proposes it). One-thread times are per-thread CPU time;
two-thread times are wall time.

    .venv/bin/python experiments/kernel_schedule.py [--quick]

Writes experiments/results/kernel_schedule_{summary,search,trials}.csv and .png.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autosys_adapters.kernels.system import KernelSchedule  # noqa: E402
from autosys_adapters.kernels.peak import peak  # noqa: E402
from autosys_adapters.kernels.cost_model import KernelCostModel, KernelRecord  # noqa: E402
from autosys.core.trial import Result  # noqa: E402
from autosys.tuners.model_guided import ModelGuidedTuner  # noqa: E402
from autosys.tuners.random_search import RandomSearch  # noqa: E402

RESULTS = ROOT / "experiments" / "results"

FULL = dict(seeds=5, budget_256=30, budget_512=30, budget_ns=20, budget_1024=20, budget_conv=20, top=3, budget_2t=12)
QUICK = dict(seeds=2, budget_256=8, budget_512=12, budget_ns=6, budget_1024=5, budget_conv=8, top=1, budget_2t=3)
#: random configs before the model-guided tuner trusts its model (the tuner's generic default is 8)
N_INITIAL = 5

SHAPES = {
    "mm256": ("matmul", "256,256,256"),
    "mm512": ("matmul", "512,512,512"),
    "mm128x1000x512": ("matmul", "128,1000,512"),
    "mm1024": ("matmul", "1024,1024,1024"),
    "mm32x4096x1024": ("matmul", "32,4096,1024"),  # skinny: a few rows (a small batch through a wide layer)
    "mm4096x32x1024": ("matmul", "4096,32,1024"),  # tall: a few columns
    "conv64x56": ("conv2d", "1,64,58,58,64,3,3"),
}


class Bench:
    """Measures configs once per (shape, threads) and keeps every trial for the CSV."""

    def __init__(self, cache_dir: str | None, repeats: int):
        self.cache_dir, self.repeats = cache_dir, repeats
        self.systems: dict[tuple[str, int], KernelSchedule] = {}
        self.memo: dict[tuple[str, int, str], float | None] = {}
        self.rows: list[dict[str, Any]] = []

    def system(self, label: str, threads: int = 1) -> KernelSchedule:
        key = (label, threads)
        if key not in self.systems:
            op, shape = SHAPES[label]
            self.systems[key] = KernelSchedule(
                op=op, shape=shape, threads=threads, repeats=self.repeats, timeout=60, cache_dir=self.cache_dir
            )
        return self.systems[key]

    def measure(self, label: str, threads: int, config: dict) -> float | None:
        system = self.system(label, threads)
        key = (label, threads, system.space().config_key(config))
        if key not in self.memo:
            try:
                self.memo[key] = system.evaluate(config).metrics["gflops"]
            except Exception as exc:  # a failed trial is data
                print(f"    failed: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
                self.memo[key] = None
        return self.memo[key]

    def run(self, label: str, tuner, budget: int, tuner_name: str, seed: int, threads: int = 1) -> list[float]:
        """Drive `tuner` for `budget` trials; returns GFLOP/s per trial (nan for failures)."""
        values = []
        start = time.perf_counter()
        for i in range(budget):
            trial = tuner.ask()
            gflops = self.measure(label, threads, trial.config)
            tuner.tell(trial, Result.complete(gflops) if gflops is not None else Result.failed("kernel failed"))
            values.append(float("nan") if gflops is None else gflops)
            self.rows.append(
                dict(shape=label, threads=threads, tuner=tuner_name, seed=seed, trial=i + 1,
                     gflops=values[-1], config=trial.config)
            )
        best = np.nanmax(values) if np.isfinite(values).any() else float("nan")
        print(f"  {label:15s} {tuner_name:12s} seed {seed}: best {best:7.1f} GFLOP/s in {budget} trials"
              f" ({time.perf_counter() - start:5.1f} s)", flush=True)
        return values

    def best_configs(self, label: str, threads: int, n: int) -> list[tuple[float, dict]]:
        seen: dict[str, tuple[float, dict]] = {}
        space = self.system(label, threads).space()
        for row in self.rows:
            if row["shape"] == label and row["threads"] == threads and math.isfinite(row["gflops"]):
                seen[space.config_key(row["config"])] = (row["gflops"], row["config"])
        return sorted(seen.values(), key=lambda p: -p[0])[:n]


def trials_to_reach(values: list[float], target: float) -> int | None:
    best = -math.inf
    for i, v in enumerate(values):
        if math.isfinite(v):
            best = max(best, v)
        if best >= target:
            return i + 1
    return None


def model_tuner(system: KernelSchedule, seed: int, prior: list[ModelGuidedTuner] = (), epsilon: float = 0.1):
    tuner = ModelGuidedTuner(system.space(), direction="maximize", seed=seed, features=system.features,
                             epsilon=epsilon, n_initial=N_INITIAL)
    for i, other in enumerate(prior):
        rows, losses, configs = other.export_rows()
        tuner.add_prior(rows, losses, group=f"prior{i}", configs=configs)
    return tuner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small budgets and fewer seeds (a few minutes)")
    parser.add_argument("--cache-dir", default=None, help="compiled-kernel cache (default ~/.cache/autosys/kernels)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.cache_dir, repeats=3)
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    seeds = list(range(plan["seeds"]))

    print("1) tuning, one thread", flush=True)
    tuners: dict[str, list[ModelGuidedTuner]] = {}
    # the knowledge base: a model-guided study at 256^3, then 1024^3 warm-started from it;
    # their trials warm-start 512^3 (a shape neither saw) and the non-square shapes
    t256 = model_tuner(bench.system("mm256"), seed=100)
    bench.run("mm256", t256, plan["budget_256"], "model", 100)
    t1024 = model_tuner(bench.system("mm1024"), seed=100, prior=[t256], epsilon=0.05)
    bench.run("mm1024", t1024, plan["budget_1024"], "model+transfer", 100)
    tuners["other shapes"] = [t256, t1024]
    # 512^3: random vs model-guided (cold) vs model-guided warm-started from the other shapes
    search: dict[str, list[list[float]]] = {"random": [], "model": [], "model+transfer": []}
    sys512 = bench.system("mm512")
    for seed in seeds:
        search["random"].append(bench.run("mm512", RandomSearch(sys512.space(), direction="maximize", seed=seed),
                                          plan["budget_512"], "random", seed))
        cold = model_tuner(sys512, seed)
        search["model"].append(bench.run("mm512", cold, plan["budget_512"], "model", seed))
        tuners.setdefault("mm512", []).append(cold)
    for seed in seeds:
        warm = model_tuner(sys512, seed, prior=tuners["other shapes"], epsilon=0.05)
        search["model+transfer"].append(bench.run("mm512", warm, plan["budget_512"], "model+transfer", seed))
    # the non-square shapes: model-guided, warm-started from every square matmul study so far
    mm_prior = tuners["other shapes"] + tuners["mm512"]
    for label in ("mm128x1000x512", "mm32x4096x1024", "mm4096x32x1024"):  # the non-square shapes
        bench.run(label, model_tuner(bench.system(label), 0, prior=mm_prior, epsilon=0.05), plan["budget_ns"],
                  "model+transfer", 0)
    bench.run("conv64x56", model_tuner(bench.system("conv64x56"), 0), plan["budget_conv"], "model", 0)

    print("2) two threads: the best one-thread schedules with each way of splitting the work, then a short "
          "study from them (a one-thread winner's blocking can leave a thread idle)", flush=True)
    for label in SHAPES:
        system2 = bench.system(label, 2)
        swept = []
        for _, config in bench.best_configs(label, 1, plan["top"]):
            for c2 in ways_to_split(system2.space(), config):
                gflops = bench.measure(label, 2, c2)
                swept.append(c2)
                bench.rows.append(dict(shape=label, threads=2, tuner="par-sweep", seed=0, trial=0,
                                       gflops=float("nan") if gflops is None else gflops, config=c2))
        tuner = model_tuner(system2, 0)
        for c2 in swept:  # measured already (the bench's memo): the study starts knowing them
            tuner.enqueue(c2, source="one-thread winner")
        bench.run(label, tuner, len(swept) + plan["budget_2t"], "model 2t", 0, threads=2)

    print("3) side by side: tuned vs numpy vs naive, interleaved in one process per thread count", flush=True)
    ceiling = peak()
    summary = []
    for label, (op, shape) in SHAPES.items():
        row: dict[str, Any] = {"shape": label, "op": op, "dims": shape}
        for threads in (1, 2):
            system = bench.system(label, threads)
            # the top schedules of the search are measured again, side by side; the best median is "tuned"
            top = bench.best_configs(label, threads, plan["top"])
            sources = {"naive": system.naive_source()} if threads == 1 else {}
            sources.update({f"top{i}": system.source(config) for i, (_, config) in enumerate(top)})
            rep = system.measure_sources(sources, numpy=True, repeats=7)
            finalists = [n for n in rep if n.startswith("top") and "gflops" in rep[n]]
            if finalists:
                winner = max(finalists, key=lambda n: rep[n]["gflops"])
                rep["tuned"] = rep[winner]
                row[f"config_{threads}t"] = top[int(winner[3:])][1]
            for name, k in rep.items():
                if name.startswith("top"):
                    continue
                row[f"{name}_{threads}t"] = k.get("gflops", float("nan"))
                row[f"{name}_{threads}t_spread"] = k.get("spread", float("nan"))
                row[f"{name}_{threads}t_best"] = k.get("best_gflops", float("nan"))
        row["peak_1t"], row["peak_2t"] = ceiling.gflops(1), ceiling.gflops(2)
        row["tuned_share_of_peak_1t"] = row.get("tuned_1t", float("nan")) / row["peak_1t"]
        row["tuned_share_of_peak_2t"] = row.get("tuned_2t", float("nan")) / row["peak_2t"]
        row["tuned_vs_numpy_1t"] = row.get("tuned_1t", float("nan")) / row["numpy_1t"]
        row["tuned_vs_numpy_2t"] = row.get("tuned_2t", float("nan")) / row["numpy_2t"]
        row["tuned_vs_naive_1t"] = row.get("tuned_1t", float("nan")) / row["naive_1t"]
        summary.append(row)
    summary_df = pd.DataFrame(summary)

    # trials to reach 90% of the best found at 512^3 by any run
    best512 = max(np.nanmax(v) for runs in search.values() for v in runs)
    target = 0.9 * best512
    search_rows = []
    for name, runs in search.items():
        for seed, values in zip(seeds, runs):
            n = trials_to_reach(values, target)
            search_rows.append(dict(tuner=name, seed=seed, budget=len(values), trials_to_90=n,
                                    reached=n is not None, best=float(np.nanmax(values))))
    search_df = pd.DataFrame(search_rows)

    # cost model transfer: fit on the 256 + 1024 trials, rank shapes it never saw
    def records(label):
        op, shape = SHAPES[label]
        dims = tuple(int(x) for x in shape.split(","))
        return [KernelRecord(op, dims, r["config"], r["gflops"]) for r in bench.rows
                if r["shape"] == label and r["threads"] == 1 and math.isfinite(r["gflops"])]

    cm = KernelCostModel().fit(records("mm256") + records("mm1024"))
    transfer = {label: cm.ranking_quality(records(label)) for label in ("mm512", "mm128x1000x512")
                if len(records(label)) >= 3}

    trials_df = pd.DataFrame(bench.rows)
    trials_df["config"] = trials_df["config"].map(str)
    summary_df.to_csv(out / "kernel_schedule_summary.csv", index=False)
    search_df.to_csv(out / "kernel_schedule_search.csv", index=False)
    trials_df.to_csv(out / "kernel_schedule_trials.csv", index=False)
    _plot(summary_df, search, best512, out / "kernel_schedule.png")

    print()
    load = os.getloadavg()
    print(f"GFLOP/s, measured side by side ({'quick' if args.quick else 'full'} run, {time.perf_counter() - t0:.0f} s;"
          f" load average at start {load0[0]:.1f}, at end {load[0]:.1f} on {os.cpu_count()} CPUs)")
    print("median of 7 samples; 1 thread: thread CPU time; 2 threads: wall time (best sample in *_2t_best)")
    print(f"measured fp32 peak ({ceiling.isa}): {ceiling.gflops(1):.1f} GFLOP/s on one core, {ceiling.gflops(2):.1f} on two "
          "(adapters/kernels/peak.py)")
    cols = ["shape", "naive_1t", "tuned_1t", "numpy_1t", "peak_1t", "tuned_vs_numpy_1t", "tuned_2t", "numpy_2t", "peak_2t",
            "tuned_vs_numpy_2t", "tuned_2t_best", "numpy_2t_best", "tuned_vs_naive_1t"]
    print(summary_df[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print()
    print(f"512^3: trials to reach 90% of the best found ({best512:.1f} GFLOP/s, target {target:.1f}); "
          "not reached counts as budget + 1")
    med = {}
    for name, group in search_df.groupby("tuner", sort=False):
        counts = [b + 1 if n is None or n != n else n for n, b in zip(group["trials_to_90"], group["budget"])]
        med[name] = float(np.median(counts))
        print(f"  {name:15s} per seed {list(group['trials_to_90'])}  median {med[name]:.1f}"
              f"  (reached {int(group['reached'].sum())}/{len(group)}, budget {int(group['budget'].iloc[0])})")
    if med.get("random"):
        print(f"  model / random = {med['model'] / med['random']:.2f}   (target: <= 0.5)")
        print(f"  model+transfer / random = {med['model+transfer'] / med['random']:.2f}")
    for label, q in transfer.items():
        print(f"cost model trained on 256^3+1024^3, ranking {label} ({q['n']} trials): "
              f"pairwise accuracy {q['pairwise_accuracy']:.2f}, Kendall tau {q['kendall_tau']:.2f}")
    r512 = summary_df.set_index("shape").loc["mm512"]
    print(f"target: tuned matmul at 512 >= 80% of numpy single-thread -> {r512['tuned_vs_numpy_1t']:.0%}")
    print(f"wrote {out}/kernel_schedule_{{summary,search,trials}}.csv and kernel_schedule.png")
    return 0


def ways_to_split(space2, config: dict) -> list[dict]:
    """A one-thread schedule with each way of splitting its work that the two-thread space offers for it
    (`par`, or a conv2d matmul's `gemm_par`; none to choose: the schedule as it is)."""
    for knob in ("par", "gemm_par"):
        if knob in space2 and space2.is_active(knob, {**config, knob: space2[knob].choices[0]}):
            return [dict(config, **{knob: choice}) for choice in space2[knob].choices]
    return [dict(config)]


def _plot(summary: pd.DataFrame, search: dict[str, list[list[float]]], best: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    x = np.arange(len(summary))
    bars = [("naive_1t", "naive, 1 thread"), ("tuned_1t", "tuned, 1 thread"), ("numpy_1t", "numpy, 1 thread"),
            ("tuned_2t", "tuned, 2 threads"), ("numpy_2t", "numpy, 2 threads")]
    width = 0.16
    for i, (col, name) in enumerate(bars):
        ax1.bar(x + (i - 2) * width, summary[col], width, label=name)
    ax1.set_xticks(x, summary["shape"], rotation=15)
    ax1.set_ylabel("GFLOP/s")
    ax1.set_title("Tuned schedules vs numpy (OpenBLAS) and naive")
    ax1.legend(fontsize=8)
    for name, runs in search.items():
        curves = np.array([np.fmax.accumulate(np.nan_to_num(np.asarray(v), nan=0.0)) for v in runs])
        ax2.plot(np.arange(1, curves.shape[1] + 1), np.median(curves, axis=0), label=f"{name} (median of {len(runs)})")
    ax2.axhline(0.9 * best, color="gray", ls="--", label="90% of best found")
    ax2.set_xlabel("trial")
    ax2.set_ylabel("best GFLOP/s so far")
    ax2.set_title("matmul 512^3, one thread")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
