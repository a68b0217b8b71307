"""RL tuner vs random search where each step may only move one knob by one notch.

The setting is the online one an embedded agent faces: the system runs at its
current config and each step may move one knob by one notch (a big jump is
unsafe on a live system), so reaching a good config takes a sequence of
decisions. `autosys.online.envs.SystemEnv(action="knob")` is that MDP. Compared, in
lock-step (one evaluation per method in turn, so drift hits all alike):

- rl:            `RLTuner(action="knob")` acting on the env (fitted Q-iteration);
- random-walk:   random actions on the same env — random search under the same rules;
- random-search: `RandomSearch` jumping anywhere (NOT bound by the one-notch rule),
                 as the reference an offline study would use;
- hill-climb:    a classic greedy local search under the same rules (try a random
                 untried move; keep it if better, else step back), as an honest
                 non-learning reference for the knob MDP.

Part A: BBOB functions (ioh, known optimum; 4-D, domain [-5, 5], start at the
centre, 10 notches per knob) over several seeds and instances; regret = f - f*.
Part B: a real system, the generated C matmul kernel (autosys_adapters.kernels.system,
128^3, GFLOP/s measured for real), a few seeds.

    python experiments/rl_vs_random.py            # ~10 min on 2 cores
    python experiments/rl_vs_random.py --quick    # ~2 min

Prints a table (median and interquartile range over seeds) and writes
experiments/results/rl_vs_random.csv and .png.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys.online.envs import SystemEnv  # noqa: E402
from autosys.core.space import Float, Space  # noqa: E402
from autosys.core.system import Measurement, Objective, System  # noqa: E402
from autosys.core.trial import Result  # noqa: E402
from autosys.tuners.random_search import RandomSearch  # noqa: E402
from autosys.tuners.rl import RLTuner  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RL_MODEL = ["gp"]  # set from --rl-model
METHODS = ("rl", "random-walk", "random-search", "hill-climb")
BBOB = {1: "sphere", 2: "ellipsoid", 3: "rastrigin", 6: "attractive-sector", 8: "rosenbrock", 10: "ellipsoid-rot", 14: "diff-powers", 15: "rastrigin-rot"}


class BBOBSystem(System):
    """A BBOB function (ioh) as a deterministic System: knobs x0..x{d-1} in [-5, 5], default at the centre."""

    name = "bbob"

    def __init__(self, fid: int = 1, instance: int = 1, dim: int = 4):
        import ioh

        self.problem = ioh.get_problem(fid, instance, dim, ioh.ProblemClass.REAL)
        self.dim = dim
        self.optimum = float(self.problem.optimum.y)

    def space(self) -> Space:
        return Space([Float(f"x{i}", -5.0, 5.0, default=0.0) for i in range(self.dim)])

    @property
    def objective(self) -> Objective:
        return Objective("f", "minimize")

    def evaluate(self, config) -> Measurement:
        f = float(self.problem([config[f"x{i}"] for i in range(self.dim)]))
        return Measurement({"f": f, "regret": f - self.optimum})

    def grid_floor(self, notches: int) -> float:
        """The lowest regret on the grid of configs reachable by notch moves from the default (brute force)."""
        import itertools

        axis = sorted({min(max(0.5 + k / notches, 0.0), 1.0) for k in range(-notches, notches + 1)})
        values = [-5.0 + 10.0 * u for u in axis]
        return min(float(self.problem(list(x))) for x in itertools.product(values, repeat=self.dim)) - self.optimum


# --------------------------------------------------------------------------- the three methods (generators of values)


def run_rl(make: Callable[[], System], seed: int, budget: int, notches: int) -> Iterator[float | None]:
    env = SystemEnv(make(), action="knob", notches=notches, max_steps=budget)
    _, info = env.reset(seed=seed)
    yield info.get("value")
    tuner = RLTuner(env.tuning_space, direction=env.objective.direction, seed=seed, notches=notches, model=RL_MODEL[0])
    if "value" in info and info["value"] is not None:
        tuner.warm_start([(info["config"], Result.complete(info["value"], info["metrics"]))])
    for _ in range(budget):
        trial = tuner.ask()
        _, _, _, _, info = env.step(env.action_to(trial.config))
        ok = "error" not in info
        tuner.tell(trial, Result.complete(info["value"], info["metrics"]) if ok else Result.failed(info["error"]))
        yield info["value"] if ok else None
    env.close()


def run_walk(make: Callable[[], System], seed: int, budget: int, notches: int) -> Iterator[float | None]:
    env = SystemEnv(make(), action="knob", notches=notches, max_steps=budget)
    _, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    yield info.get("value")
    for _ in range(budget):
        _, _, _, _, info = env.step(env.action_space.sample())
        yield info.get("value") if "error" not in info else None
    env.close()


def run_hill(make: Callable[[], System], seed: int, budget: int, notches: int) -> Iterator[float | None]:
    env = SystemEnv(make(), action="knob", notches=notches, max_steps=2 * budget + 2)
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    sign = 1.0 if env.objective.direction == "maximize" else -1.0
    here, value = info["config"], info.get("value")
    yield value
    tried: set[int] = set()
    steps = 0
    while steps < budget:
        untried = [a for a in range(env.action_space.n) if a not in tried]
        if not untried:  # a local optimum on the notch grid: take a random step out
            tried.clear()
            untried = list(range(env.action_space.n))
        action = int(rng.choice(untried))
        tried.add(action)
        _, _, _, _, info = env.step(action)
        steps += 1
        new = info.get("value") if "error" not in info else None
        yield new
        if info["config"] == here:
            continue  # failed or clamped: nothing moved
        if value is None or (new is not None and sign * (new - value) > 0):
            here, value = info["config"], new
            tried.clear()
            continue
        if steps < budget:  # worse: step back (a real move on a live system, so it counts)
            _, _, _, _, info = env.step(action ^ 1)
            steps += 1
            yield info.get("value") if "error" not in info else None
            tried.add(action)
    env.close()


def run_random(make: Callable[[], System], seed: int, budget: int, notches: int) -> Iterator[float | None]:
    system = make()
    system.setup()
    tuner = RandomSearch(system.space(), direction=system.objective.direction, seed=seed)
    tuner.enqueue(system.default(), source="default")
    try:
        for _ in range(budget + 1):
            trial = tuner.ask()
            try:
                value = system.evaluate(trial.config).metrics[system.objective.metric]
                tuner.tell(trial, Result.complete(value))
            except Exception as exc:  # a failed trial is recorded, never fatal
                tuner.tell(trial, Result.failed(str(exc)))
                value = None
            yield value
    finally:
        system.teardown()


RUNNERS = {"rl": run_rl, "random-walk": run_walk, "random-search": run_random, "hill-climb": run_hill}


def lockstep(make: Callable[[], System], seed: int, budget: int, notches: int) -> dict[str, dict]:
    """Run every method for one seed, one evaluation each in turn; values and CPU seconds per method."""
    gens = {m: RUNNERS[m](make, seed, budget, notches) for m in METHODS}
    values: dict[str, list] = {m: [] for m in METHODS}
    cpu = {m: 0.0 for m in METHODS}
    for _ in range(budget + 1):
        for m in METHODS:
            t = time.process_time()
            values[m].append(next(gens[m]))
            cpu[m] += time.process_time() - t
    return {m: {"values": values[m], "cpu": cpu[m]} for m in METHODS}


def best_so_far(values: list, maximize: bool) -> np.ndarray:
    worst = -np.inf if maximize else np.inf
    filled = np.array([worst if v is None else v for v in values], dtype=float)
    return np.maximum.accumulate(filled) if maximize else np.minimum.accumulate(filled)


def summary(xs) -> str:
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return f"{med:9.3g} [{q1:.3g}, {q3:.3g}]"


# --------------------------------------------------------------------------- parts


def part_bbob(seeds: int, budget: int, dim: int, notches: int, fids, rows: list, curves: dict) -> None:
    print(f"\nPart A: BBOB, {dim}-D, start at the centre, {notches} notches per knob, {budget} steps, {seeds} seeds "
          "(seed s uses instance s+1)")
    header = f"{'function':18} " + " ".join(f"{m + ' best regret':>30}" for m in METHODS) + "   rl wins vs walk, random, hill"
    print(header)
    for fid in fids:
        finals = {m: [] for m in METHODS}
        online = {m: [] for m in METHODS}
        for seed in range(seeds):
            optimum = BBOBSystem(fid, seed + 1, dim).optimum
            out = lockstep(lambda: BBOBSystem(fid, seed + 1, dim), seed, budget, notches)
            for m in METHODS:
                curve = best_so_far(out[m]["values"], maximize=False) - optimum
                curves.setdefault(BBOB[fid], {}).setdefault(m, []).append(curve)
                vals = np.array([np.nan if v is None else v - optimum for v in out[m]["values"]])
                finals[m].append(curve[-1])
                online[m].append(float(np.nanmean(vals)))
                rows.append(["bbob", BBOB[fid], m, seed, curve[-1], online[m][-1], out[m]["cpu"]])
        floor = float(np.median([BBOBSystem(fid, s + 1, dim).grid_floor(notches) for s in range(seeds)]))
        wins_walk = sum(a < b for a, b in zip(finals["rl"], finals["random-walk"]))
        wins_rand = sum(a < b for a, b in zip(finals["rl"], finals["random-search"]))
        wins_hill = sum(a < b for a, b in zip(finals["rl"], finals["hill-climb"]))
        print(f"{BBOB[fid]:18} " + " ".join(f"{summary(finals[m]):>30}" for m in METHODS)
              + f"   {wins_walk}/{seeds}, {wins_rand}/{seeds}, {wins_hill}/{seeds}")
        print(f"{'  mean regret/step':18} " + " ".join(f"{summary(online[m]):>30}" for m in METHODS))
        print(f"{'  grid floor':18} {floor:9.3g} (median over instances: the best regret a notch walk can reach)")


def part_kernel(seeds: int, budget: int, shape: str, rows: list, curves: dict) -> None:
    try:
        from autosys_adapters.kernels.system import KernelSchedule
    except ImportError as exc:
        print(f"\nPart B skipped: the kernel adapter is not importable ({exc})")
        return
    cache = tempfile.mkdtemp(prefix="autosys-rl-kernel-")
    print(f"\nPart B: real matmul kernel {shape} (GFLOP/s, higher is better), 1 thread, {budget} steps, {seeds} seeds")
    finals = {m: [] for m in METHODS}
    defaults = {m: [] for m in METHODS}
    for seed in range(seeds):
        make = lambda: KernelSchedule(op="matmul", shape=shape, repeats=3, cache_dir=cache)  # noqa: E731
        try:
            out = lockstep(make, seed, budget, notches=10)
        except Exception as exc:  # no compiler, sandbox refused: say so, do not fake numbers
            print(f"  seed {seed}: the kernel system failed: {type(exc).__name__}: {exc}")
            return
        for m in METHODS:
            curve = best_so_far(out[m]["values"], maximize=True)
            curves.setdefault(f"kernel {shape}", {}).setdefault(m, []).append(curve)
            finals[m].append(curve[-1])
            defaults[m].append(out[m]["values"][0] or np.nan)
            fails = sum(v is None for v in out[m]["values"])
            rows.append(["kernel", shape, m, seed, curve[-1], float(np.nanmean([np.nan if v is None else v for v in out[m]["values"]])), out[m]["cpu"]])
            print(f"  seed {seed} {m:14} default {out[m]['values'][0]:7.1f}  best {curve[-1]:7.1f} GFLOP/s  failed {fails}")
    print(f"{'kernel':18} " + " ".join(f"{m + ' best GFLOP/s':>30}" for m in METHODS))
    print(f"{shape:18} " + " ".join(f"{summary(finals[m]):>30}" for m in METHODS))
    ratio = {m: np.median(np.array(finals[m]) / np.array(defaults[m])) for m in METHODS}
    print("  median best/default: " + ", ".join(f"{m} {ratio[m]:.2f}x" for m in METHODS))


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(curves)
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for m, runs in curves[name].items():
            arr = np.vstack(runs)
            ax.plot(np.median(arr, axis=0), label=m)
            ax.fill_between(range(arr.shape[1]), *np.percentile(arr, [25, 75], axis=0), alpha=0.2)
        ax.set_title(name)
        ax.set_xlabel("step")
        if not name.startswith("kernel"):
            ax.set_yscale("log")
            ax.set_ylabel("best regret")
        else:
            ax.set_ylabel("best GFLOP/s")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version (~2 min)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--notches", type=int, default=10)
    parser.add_argument("--kernel-seeds", type=int, default=None)
    parser.add_argument("--kernel-budget", type=int, default=None)
    parser.add_argument("--kernel-shape", default="128,128,128")
    parser.add_argument("--no-kernel", action="store_true", help="skip the real kernel part")
    parser.add_argument("--rl-model", choices=("gp", "trees"), default="gp", help="the RL tuner's Q approximator")
    parser.add_argument("--tag", default="", help="suffix for the output files (e.g. _trees)")
    args = parser.parse_args(argv)
    RL_MODEL[0] = args.rl_model
    print(f"RL tuner: model={args.rl_model} (RLTuner defaults otherwise)")
    seeds = args.seeds or (3 if args.quick else 10)
    budget = args.budget or (50 if args.quick else 100)
    fids = (1, 3, 8) if args.quick else (1, 2, 3, 6, 8, 14, 15)
    warnings.filterwarnings("ignore")
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list = []
    curves: dict = {}
    start = time.time()
    part_bbob(seeds, budget, args.dim, args.notches, fids, rows, curves)
    if not args.no_kernel:
        part_kernel(args.kernel_seeds or (1 if args.quick else 3), args.kernel_budget or (15 if args.quick else 40),
                    args.kernel_shape, rows, curves)
    with open(RESULTS / f"rl_vs_random{args.tag}.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["part", "problem", "method", "seed", "best", "mean_value", "cpu_s"])
        writer.writerows(rows)
    plot(curves, RESULTS / f"rl_vs_random{args.tag}.png")
    print(f"\nwrote {RESULTS / f'rl_vs_random{args.tag}.csv'} and .png in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
