"""Parallel trials: throughput of 1 vs 2 workers (local pool, subprocesses, Dask), and tuning quality.

Throughput: a study of 1-second trials (the objective sleeps, so the figure is
the executors' overhead, not CPU contention on this 2-core machine) runs
inline (one worker), on a local pool of 2 processes, on 2 fresh subprocesses
per trial, and on a 2-worker local Dask cluster. Executors are started (and
timed) before the clock starts; modes are interleaved over rounds and the
median trials/minute is reported as a ratio to one worker.

Quality: Bayesian optimization (GP, pending trials as kriging-believer
fantasies) on the Branin function, sequential vs 2 parallel workers, same
trial count, over seeds: the best value found, median and spread.

    python experiments/parallel_speedup.py            # about 4 minutes
    python experiments/parallel_speedup.py --quick    # about 1.5 minutes
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys.executors import DaskExecutor, Executor, InlineExecutor, PoolExecutor, SubprocessExecutor  # noqa: E402
from autosys.core.space import Float, Space  # noqa: E402
from autosys.storage import SQLiteStorage  # noqa: E402
from autosys.run.study import Budget, Study  # noqa: E402
from autosys.core.system import Measurement, Objective, System  # noqa: E402
from autosys.tuners.bayes import BayesOpt  # noqa: E402
from autosys.tuners.random_search import RandomSearch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class SleepyBranin(System):
    """Branin over [-5, 10] x [0, 15] (minimum 0.397887), after sleeping `seconds`."""

    name = "sleepy-branin"

    def __init__(self, seconds: float = 1.0):
        self.seconds = seconds

    def space(self) -> Space:
        return Space([Float("x1", -5.0, 10.0, default=0.0), Float("x2", 0.0, 15.0, default=0.0)])

    @property
    def objective(self) -> Objective:
        return Objective("branin", "minimize")

    def evaluate(self, config):
        time.sleep(self.seconds)
        x1, x2 = config["x1"], config["x2"]
        b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
        value = (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10
        return Measurement({"branin": value})


def make_study(directory: Path, system: System, tuner_name: str, trials: int, seed: int,
               batch: str = "kriging_believer") -> Study:
    space = system.space()
    if tuner_name == "bo":
        tuner = BayesOpt(space, direction="minimize", seed=seed, batch=batch)
    else:
        tuner = RandomSearch(space, direction="minimize", seed=seed)
    storage = SQLiteStorage(directory)
    spec = {"system": "sleepy-branin", "system_options": {}, "tuner": tuner_name, "tuner_options": {}, "seed": seed,
            "budget": {"trials": trials, "seconds": None}, "fixed": {}, "objective": system.objective.to_json(),
            "space": space.to_json(), "evaluate_default": False}
    storage.save_spec(spec)
    storage.save_tuner_state(tuner.state_dict())
    return Study(system, tuner, storage, budget=Budget(trials, None), spec=spec, directory=directory)


def start_executor(mode: str) -> tuple[Executor, float]:
    t0 = time.perf_counter()
    if mode == "inline":
        executor: Executor = InlineExecutor()
    elif mode == "pool-2":
        executor = PoolExecutor(2)
        futures = [executor.submit(time.sleep, 0.3) for _ in range(2)]  # both workers up before the clock
        [f.result() for f in futures]
    elif mode == "subprocess-2":
        executor = SubprocessExecutor(2)
    elif mode == "dask-2":
        executor = DaskExecutor(2)
    else:
        raise ValueError(mode)
    return executor, time.perf_counter() - t0


def throughput(modes: list[str], trials: int, seconds: float, rounds: int, tmp: Path) -> pd.DataFrame:
    rows = []
    for r in range(rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:  # interleaved, alternating order
            executor, startup = start_executor(mode)
            try:
                study = make_study(tmp / f"tp-{mode}-{r}", SleepyBranin(seconds), "random", trials, seed=r)
                t0 = time.perf_counter()
                study.run(executor=executor)
                wall = time.perf_counter() - t0
            finally:
                executor.shutdown()
            done = study.n_finished()
            complete = sum(t.state.value == "complete" for t in study.trials())
            rows.append({"round": r, "mode": mode, "trials": done, "complete": complete, "wall_s": wall,
                         "startup_s": startup, "trials_per_min": 60 * done / wall})
            print(f"  round {r} {mode:>13}: {done} trials in {wall:5.1f} s ({60 * done / wall:5.1f}/min), "
                  f"executor start {startup:4.1f} s", flush=True)
            study.close()
    return pd.DataFrame(rows)


def quality(seeds: int, trials: int, seconds: float, tmp: Path, batch: str) -> pd.DataFrame:
    rows = []
    for seed in range(seeds):
        for mode in ("inline", "pool-2"):
            executor, _ = start_executor(mode)
            try:
                study = make_study(tmp / f"q-{mode}-{seed}", SleepyBranin(seconds), "bo", trials, seed=100 + seed,
                                   batch=batch)
                study.run(executor=executor)
            finally:
                executor.shutdown()
            best = study.best.value if study.best else float("nan")
            rows.append({"seed": seed, "mode": mode, "trials": study.n_finished(), "best": best,
                         "regret": best - 0.397887})
            print(f"  seed {seed} {mode:>13}: best {best:.4f} after {study.n_finished()} trials", flush=True)
            study.close()
        best = ideal_batch(seed, trials, batch)
        rows.append({"seed": seed, "mode": "ideal-batch-2", "trials": trials, "best": best, "regret": best - 0.397887})
        print(f"  seed {seed} {'ideal-batch-2':>13}: best {best:.4f} after {trials} trials", flush=True)
    return pd.DataFrame(rows)


def ideal_batch(seed: int, trials: int, batch: str) -> float:
    """The same BO with 2 trials always pending, asked and told in this process (no executor, no storage).

    It separates what batching costs the tuner from anything the executors add.
    """
    from autosys.core.trial import Result

    system = SleepyBranin(0.0)
    tuner = BayesOpt(system.space(), direction="minimize", seed=100 + seed, batch=batch)
    pending, asked, best = [tuner.ask(), tuner.ask()], 2, math.inf
    while pending:
        trial = pending.pop(0)
        value = system.evaluate(trial.config).metrics["branin"]
        best = min(best, value)
        tuner.tell(trial, Result.complete(value))
        if asked < trials:
            pending.append(tuner.ask())
            asked += 1
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials, rounds and seeds")
    parser.add_argument("--trial-seconds", type=float, default=1.0)
    parser.add_argument("--batch", default="kriging_believer",
                        help="how BO treats pending trials: kriging_believer, cl_min, cl_mean, cl_max")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for the quality comparison")
    args = parser.parse_args()
    trials, rounds, seeds, q_trials = (8, 1, 3, 16) if args.quick else (12, 2, 8, 24)
    seeds = args.seeds or seeds
    modes = ["inline", "pool-2", "subprocess-2", "dask-2"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autosys-speedup-") as tmp_:
        tmp = Path(tmp_)
        print(f"throughput: {trials} trials of {args.trial_seconds} s, {rounds} round(s)")
        tp = throughput(modes, trials, args.trial_seconds, rounds, tmp)
        print(f"quality: BO on Branin, {q_trials} trials, {seeds} seeds, sequential vs 2 workers")
        q = quality(seeds, q_trials, 0.05, tmp, args.batch)
    tp.to_csv(RESULTS / "parallel_speedup_throughput.csv", index=False)
    q.to_csv(RESULTS / "parallel_speedup_quality.csv", index=False)

    base = tp[tp["mode"] == "inline"]["trials_per_min"].median()
    summary = tp.groupby("mode", sort=False).agg(trials_per_min=("trials_per_min", "median"),
                                                 startup_s=("startup_s", "median"))
    summary["speedup_vs_1"] = summary["trials_per_min"] / base
    print("\nthroughput (median over rounds; executor start-up not included):")
    print(summary.round(2).to_string())
    qs = q.groupby("mode", sort=False)["regret"].agg(["median", "mean", "std", "min", "max"])
    print("\nBranin regret after equal trial counts (lower is better):")
    print(qs.to_string(float_format=lambda v: f"{v:.4f}"))
    seq, par = q[q["mode"] == "inline"]["regret"].tolist(), q[q["mode"] == "pool-2"]["regret"].tolist()
    from scipy.stats import mannwhitneyu, wilcoxon

    # one-sided: is the 2-worker regret larger than sequential's? unpaired, and paired by seed
    p_worse = mannwhitneyu(par, seq, alternative="greater").pvalue
    p_paired = wilcoxon([math.log(p) - math.log(s) for s, p in zip(seq, par)], alternative="greater").pvalue
    print(f"2 workers worse than sequential (BO batch={args.batch}): Mann-Whitney p = {p_worse:.3f}, "
          f"paired Wilcoxon on log regret p = {p_paired:.3f} "
          f"({'worse beyond noise' if min(p_worse, p_paired) < 0.05 else 'not worse beyond noise'})")
    wins = sum(p <= s for s, p in zip(seq, par))
    print(f"2 workers as good or better than sequential on {wins}/{len(seq)} seeds; "
          f"median regret ratio par/seq = {statistics.median(par) / max(statistics.median(seq), 1e-12):.2f}")
    ideal = q[q["mode"] == "ideal-batch-2"]["regret"].tolist()
    same = sum(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(par, ideal))
    print(f"2 workers through the pool equal the in-process batch-2 tuner on {same}/{len(par)} seeds "
          f"(so any gap to sequential is the tuner's batching, not the executor)")
    for mode in ("pool-2", "dask-2"):
        s = summary.loc[mode, "speedup_vs_1"]
        print(f"target >= 1.8x for {mode}: {s:.2f}x -> {'met' if s >= 1.8 else 'NOT met'}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.bar(summary.index, summary["speedup_vs_1"], color=["grey", "tab:blue", "tab:orange", "tab:green"][: len(summary)])
    a.axhline(1.8, ls="--", color="red", label="target 1.8x")
    a.set_ylabel("trials/min relative to one worker")
    a.set_title(f"{args.trial_seconds:g}-second trials")
    a.legend()
    b.boxplot([seq, par, ideal], tick_labels=["sequential", "2 workers", "batch-2 in-process"])
    b.set_yscale("log")
    b.set_ylabel(f"Branin regret after {q_trials} trials")
    b.set_title(f"BO quality over {seeds} seeds")
    fig.tight_layout()
    fig.savefig(RESULTS / "parallel_speedup.png", dpi=120)
    print(f"\nwrote {RESULTS / 'parallel_speedup_throughput.csv'}, parallel_speedup_quality.csv, parallel_speedup.png")


if __name__ == "__main__":
    main()
