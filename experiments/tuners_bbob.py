"""autosys's tuners vs Optuna TPE, Optuna GPSampler, scikit-optimize and random search on BBOB.

One run compares, side by side, the simple regret (best value found minus the
known optimum) after 50 and 100 evaluations on BBOB functions from `ioh` in
2, 5 and 10 dimensions, plus Branin and Hartmann6, over several seeds; then
the CPU seconds per ask+tell at 50 and 200 observations in 10-D.

    OPENBLAS_NUM_THREADS=1 python experiments/tuners_bbob.py            # full (~15-20 min on 2 cores)
    python experiments/tuners_bbob.py --quick                           # a few minutes
    python experiments/tuners_bbob.py --extra-path /opt/torch-site      # where torch lives, for optuna-gp

Writes experiments/results/tuners_bbob_{runs,median,timing}.csv and
tuners_bbob.png, and prints the tables. Optuna's GPSampler needs torch; when it
cannot be imported the method is reported as such, not silently dropped, and
only its rows from `--reuse` (if any) are shown.
scikit-optimize's gp_minimize costs seconds per call in 10-D, so by default it
runs in 2-D and 6-D on one seed, and GPSampler on one seed (the table prints
the seeds per cell). `--reuse RUNS_CSV` reuses peer rows of an earlier run.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: timings are per core, BLAS unpinned is chaos here

import argparse
import math
import multiprocessing as mp
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "experiments" / "results"
AUTOSYS_METHODS = {
    "autosys-meta": "meta",
    "autosys-bo": "bo",
    "autosys-bo-rf": "bo-rf",
    "autosys-turbo": "autosys.tuners.trust_region:TrustRegionBO",
    "autosys-tpe": "tpe",  # autosys's own numpy TPE (a meta member): should track optuna-tpe
}
PEERS = ("optuna-tpe", "optuna-gp", "skopt-gp", "random")
DEFAULT = "autosys-meta"


# ----------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    name: str  # e.g. "f21-d10" or "branin"
    kind: str  # "bbob" | "branin" | "hartmann6"
    fid: int
    dim: int

    def bounds(self) -> list[tuple[float, float]]:
        if self.kind == "branin":
            return [(-5.0, 10.0), (0.0, 15.0)]
        if self.kind == "hartmann6":
            return [(0.0, 1.0)] * 6
        return [(-5.0, 5.0)] * self.dim

    def make(self):
        """(f(x) -> float, optimum value)."""
        if self.kind == "branin":
            return _branin, 0.39788735772973816
        if self.kind == "hartmann6":
            return _hartmann6, -3.3223680114155147
        import ioh

        problem = ioh.get_problem(self.fid, 1, self.dim)
        return (lambda x: float(problem(list(x)))), float(problem.optimum.y)


def _branin(x) -> float:
    x1, x2 = x
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann6(x) -> float:
    x = np.asarray(x, float)
    return float(-(_H6_ALPHA * np.exp(-(_H6_A * (x - _H6_P) ** 2).sum(1))).sum())


# ----------------------------------------------------------------------------- methods


def old_meta(space, direction="minimize", seed=0, **options):
    """The meta-tuner as it was before issue 17's change: BO, local and random search under the AUC bandit."""
    from autosys.tuners.bandit import MetaTuner

    return MetaTuner(space, direction=direction, seed=seed, members=("bo", "local", "random"), policy="auc",
                     prior=(1.0, 0.0, 0.0), **options)


AUTOSYS_METHODS["autosys-meta-old"] = old_meta  # side by side with the default it was replaced by


def _extend_path(paths: list[str]) -> None:
    """Append extra import locations (e.g. a separate torch install for GPSampler), after site-packages."""
    for path in paths:
        if path and path not in sys.path:
            sys.path.append(path)


def _torch_ok() -> bool:
    try:
        import torch  # noqa: F401

        return True
    except Exception:
        return False


def run_method(method: str, problem: Problem, budget: int, seed: int) -> list[float]:
    """Every objective value in evaluation order (len == budget)."""
    f, _ = problem.make()
    bounds = problem.bounds()
    d = len(bounds)
    values: list[float] = []

    def evaluate(x) -> float:
        y = f(x)
        values.append(y)
        return y

    warnings.filterwarnings("ignore")
    if method in AUTOSYS_METHODS:
        from autosys.run.optimize import build_tuner
        from autosys.core.space import Float, Space
        from autosys.core.trial import Result

        space = Space([Float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)])
        tuner = build_tuner(AUTOSYS_METHODS[method], space, "minimize", seed)
        for _ in range(budget):
            trial = tuner.ask()
            tuner.tell(trial, Result.complete(evaluate([trial.config[f"x{i}"] for i in range(d)])))
    elif method in ("optuna-tpe", "optuna-gp"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if method == "optuna-tpe":
            sampler = optuna.samplers.TPESampler(seed=seed)
        else:
            import torch

            torch.set_num_threads(1)
            sampler = optuna.samplers.GPSampler(seed=seed)
        study = optuna.create_study(sampler=sampler)
        dists = {f"x{i}": optuna.distributions.FloatDistribution(lo, hi) for i, (lo, hi) in enumerate(bounds)}
        for _ in range(budget):
            trial = study.ask(dists)
            study.tell(trial, evaluate([trial.params[f"x{i}"] for i in range(d)]))
    elif method == "skopt-gp":
        from skopt import gp_minimize

        gp_minimize(evaluate, bounds, n_calls=budget, random_state=seed)
    elif method == "random":
        rng = np.random.default_rng(seed)
        lo, hi = np.array(bounds).T
        for _ in range(budget):
            evaluate(lo + rng.random(d) * (hi - lo))
    else:
        raise ValueError(f"unknown method {method!r}")
    return values[:budget]


def _job(args):
    method, problem, budget, seed = args
    start = time.process_time()
    values = run_method(method, problem, budget, seed)
    cpu = time.process_time() - start
    _, optimum = problem.make()
    best = np.minimum.accumulate(values)
    row = {"problem": problem.name, "dim": problem.dim, "method": method, "seed": seed, "cpu_s": cpu}
    for b in (50, 100):
        if b <= budget:
            row[f"regret_{b}"] = max(float(best[b - 1] - optimum), 0.0)
    return row


# ----------------------------------------------------------------------------- CPU cost per ask+tell


def _random_history(d: int, n: int, rng: np.random.Generator):
    import ioh

    problem = ioh.get_problem(21, 1, d)
    X = rng.uniform(-5, 5, (n, d))
    return X, np.array([problem(list(x)) for x in X])


def time_ask_tell(method: str, d: int, n_obs: int, reps: int, seed: int = 0) -> float:
    """Mean CPU seconds of one ask+tell after `n_obs` random observations in `d` dimensions."""
    rng = np.random.default_rng(seed)
    X, y = _random_history(d, n_obs + reps, rng)
    warnings.filterwarnings("ignore")
    if method in AUTOSYS_METHODS:
        from autosys.run.optimize import build_tuner
        from autosys.core.space import Float, Space
        from autosys.core.trial import Result

        space = Space([Float(f"x{i}", -5.0, 5.0) for i in range(d)])
        tuner = build_tuner(AUTOSYS_METHODS[method], space, "minimize", seed)
        tuner.warm_start([({f"x{i}": float(v) for i, v in enumerate(x)}, Result.complete(v)) for x, v in zip(X[:n_obs], y[:n_obs])])
        tuner.ask()  # the first model-based ask after a warm start fits from scratch; time steady state
        tuner.pending.clear()
        start = time.process_time()
        for k in range(reps):
            trial = tuner.ask()
            tuner.tell(trial, Result.complete(float(y[n_obs + k])))
        return (time.process_time() - start) / reps
    if method in ("optuna-tpe", "optuna-gp"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if method == "optuna-tpe":
            sampler = optuna.samplers.TPESampler(seed=seed)
        else:
            import torch

            torch.set_num_threads(1)
            sampler = optuna.samplers.GPSampler(seed=seed)
        study = optuna.create_study(sampler=sampler)
        dists = {f"x{i}": optuna.distributions.FloatDistribution(-5.0, 5.0) for i in range(d)}
        study.add_trials(
            [
                optuna.trial.create_trial(params={f"x{i}": float(v) for i, v in enumerate(x)}, distributions=dists, value=float(v))
                for x, v in zip(X[:n_obs], y[:n_obs])
            ]
        )
        start = time.process_time()
        for k in range(reps):
            trial = study.ask(dists)
            study.tell(trial, float(y[n_obs + k]))
        return (time.process_time() - start) / reps
    if method == "skopt-gp":
        from skopt import Optimizer

        opt = Optimizer([(-5.0, 5.0)] * d, random_state=seed)
        opt.tell([list(x) for x in X[:n_obs]], [float(v) for v in y[:n_obs]])
        start = time.process_time()
        for k in range(reps):
            x = opt.ask()
            opt.tell(x, float(y[n_obs + k]))
        return (time.process_time() - start) / reps
    if method == "random":
        return 0.0
    raise ValueError(method)


def _timing_job(args):
    method, d, n_obs, reps = args
    return {"method": method, "dim": d, "n_obs": n_obs, "reps": reps, "cpu_s_per_ask_tell": time_ask_tell(method, d, n_obs, reps)}


# ----------------------------------------------------------------------------- report


def summarize(runs: pd.DataFrame, methods: list[str]) -> tuple[pd.DataFrame, list[str]]:
    lines = []
    med = runs.groupby(["problem", "dim", "method"])[["regret_50", "regret_100"]].median().reset_index()
    counts = runs.groupby(["problem", "method"]).size()
    for budget in (50, 100):
        col = f"regret_{budget}"
        table = med.pivot_table(index=["dim", "problem"], columns="method", values=col)
        table = table[[m for m in methods if m in table.columns]]
        lines.append(f"\nMedian simple regret at budget {budget} (seeds per cell: " + ", ".join(
            f"{m}={int(counts.xs(m, level='method').median())}" for m in table.columns) + ")")
        lines.append(table.to_string(float_format=lambda v: f"{v:.3g}"))
    lines.append(f"\nWins / losses / ties of {DEFAULT} (median regret per function) against each peer")
    for budget in (50, 100):
        col = f"regret_{budget}"
        for dims, label in (((10,), "10-D"), ((2, 5, 6, 10), "all dims")):
            sub = med[med["dim"].isin(dims)].pivot_table(index="problem", columns="method", values=col)
            if DEFAULT not in sub:
                continue
            parts = []
            for peer in [m for m in methods if m != DEFAULT and m in sub.columns]:
                both = sub[[DEFAULT, peer]].dropna()
                a, b = both[DEFAULT], both[peer]
                tol = 1e-9 * (1 + np.abs(b))
                wins, losses = int((a < b - tol).sum()), int((a > b + tol).sum())
                parts.append(f"{peer}: {wins}/{losses}/{len(both) - wins - losses}")
            lines.append(f"  budget {budget}, {label}: " + "; ".join(parts))
    return med, lines


def target_check(runs: pd.DataFrame, default: str = DEFAULT, dim: int = 10, budget: int = 100) -> list[str]:
    """Issue 17's bar on BBOB in `dim`-D: per function, the median regret of every method, the seed spread
    (interquartile range over seeds) of the default and of random search, whether the default beats TPE,
    and whether it is worse than random by more than its own seed spread."""
    col = f"regret_{budget}"
    sub = runs[(runs["dim"] == dim) & runs["problem"].str.startswith("f")]
    if default not in set(sub["method"]):
        return []
    g = sub.groupby(["problem", "method"])[col]
    med = g.median().unstack()
    iqr = (g.quantile(0.75) - g.quantile(0.25)).unstack()
    n = g.size().unstack()
    order = sorted(med.index, key=lambda p: int(p.split("-")[0][1:]))
    med, iqr, n = med.loc[order], iqr.loc[order], n.loc[order]
    table = med.copy()
    table[f"spread:{default}"] = iqr[default]
    lines = [f"\nIssue 17 target, BBOB {dim}-D, budget {budget}: median regret per function "
             "(spread = interquartile range over seeds; seeds per method: "
             + ", ".join(f"{m}={int(n[m].median())}" for m in med.columns) + ")"]
    verdicts = []
    for p in order:
        v = []
        if "optuna-tpe" in med:
            v.append("beats TPE" if med.loc[p, default] < med.loc[p, "optuna-tpe"] else "TPE better")
        if "random" in med:
            gap = med.loc[p, default] - med.loc[p, "random"]
            v.append("WORSE than random beyond spread" if gap > iqr.loc[p, default] else "")
        verdicts.append("; ".join(x for x in v if x))
    if "random" in iqr:
        table["spread:random"] = iqr["random"]
    table["verdict"] = verdicts
    lines.append(table.to_string(float_format=lambda v: f"{v:.3g}"))
    if "optuna-tpe" in med:
        wins = int((med[default] < med["optuna-tpe"]).sum())
        lines.append(f"{default} lower median regret than optuna-tpe on {wins}/{len(med)} functions (target >= 18/24): "
                     + ("met" if wins >= 18 and len(med) >= 24 else "NOT met"))
    for peer in ("optuna-gp", "random"):
        if peer in med:
            both = med[[default, peer]].dropna()
            lines.append(f"{default} lower median regret than {peer} on "
                         f"{int((both[default] < both[peer]).sum())}/{len(both)} functions")
    if "random" in med:
        worse = [p for p in order if med.loc[p, default] - med.loc[p, "random"] > iqr.loc[p, default]]
        lines.append(f"worse than random by more than its seed spread on {len(worse)} functions "
                     f"{worse if worse else ''} (target: none): " + ("met" if not worse else "NOT met"))
    return lines


def pending_side_by_side(functions: list[int], dim: int, budget: int, seeds: int,
                         strategies: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    """autosys-bo with 2 trials always pending (each `batch` strategy) vs sequential, same seeds, same functions.

    Batch-2 decides with less information than sequential, so even a perfect strategy loses some
    pairs; what a better fantasy buys is fewer losses and a smaller regret ratio.

    Counts, per strategy, the (function, seed) pairs on which batch-2 is at least as good as sequential.
    """
    from autosys.core.space import Float, Space
    from autosys.core.trial import Result
    from autosys.tuners.bayes import BayesOpt

    warnings.filterwarnings("ignore")
    rows = []
    for fid in functions:
        problem = Problem(f"f{fid}-d{dim}", "bbob", fid, dim)
        for seed in range(seeds):
            for mode in ("sequential",) + strategies:
                f, optimum = problem.make()
                space = Space([Float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(problem.bounds())])
                batch, _, noisy = mode.partition(":")  # "kriging_believer:noisy" = fantasies with the fitted noise
                tuner = BayesOpt(space, seed=seed, batch="kriging_believer" if mode == "sequential" else batch,
                                 exact_fantasies=not noisy)
                best, asked = math.inf, 0
                pending = []
                width = 1 if mode == "sequential" else 2
                while asked < budget or pending:
                    while len(pending) < width and asked < budget:
                        pending.append(tuner.ask())
                        asked += 1
                    trial = pending.pop(0)  # the oldest finishes first; the other stays pending
                    y = f([trial.config[f"x{i}"] for i in range(dim)])
                    best = min(best, y)
                    tuner.tell(trial, Result.complete(y))
                rows.append({"problem": problem.name, "seed": seed, "mode": mode, "regret": max(best - optimum, 0.0)})
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["problem", "seed"], columns="mode", values="regret")
    lines = [f"\nPending trials: autosys-bo sequential vs 2 always pending, {dim}-D, budget {budget}, {seeds} seeds "
             "(median regret per function)"]
    lines.append(df.pivot_table(index="problem", columns="mode", values="regret", aggfunc="median")
                 [["sequential", *strategies]].to_string(float_format=lambda v: f"{v:.3g}"))
    for mode in strategies:
        ok = int((wide[mode] <= wide["sequential"] * (1 + 1e-9)).sum())
        ratio = float(np.exp(np.median(np.log(np.maximum(wide[mode], 1e-12) / np.maximum(wide["sequential"], 1e-12)))))
        lines.append(f"  batch={mode}: as good as or better than sequential on {ok}/{len(wide)} (function, seed) pairs; "
                     f"median regret ratio batch/sequential {ratio:.2f}")
    return df, lines


def plot(med: pd.DataFrame, methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted(med["dim"].unique())
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4.5), squeeze=False)
    for ax, d in zip(axes[0], dims):
        sub = med[med["dim"] == d].pivot_table(index="problem", columns="method", values="regret_100")
        sub = sub[[m for m in methods if m in sub.columns]]
        logv = np.log10(sub.clip(lower=1e-8))
        x = np.arange(len(sub))
        width = 0.8 / max(len(sub.columns), 1)
        for i, m in enumerate(sub.columns):
            ax.bar(x + i * width, logv[m], width, label=m)
        ax.set_xticks(x + 0.4 - width / 2)
        ax.set_xticklabels(sub.index, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{d}-D: log10 median regret at 100 evals (lower is better)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few functions and seeds, budget 50/100 still")
    parser.add_argument("--suite", choices=("bbob24",), default=None,
                        help="bbob24: issue 17's bar, all 24 BBOB functions in 10-D, 5 seeds, autosys-meta vs "
                             "optuna-tpe, optuna-gp and random (no Branin/Hartmann6)")
    parser.add_argument("--pending-seeds", type=int, default=0,
                        help="also compare BO with 2 pending trials against sequential BO on this many seeds")
    parser.add_argument("--pending-functions", default="1,7,15,21")
    parser.add_argument("--pending-strategies", default="kriging_believer:noisy,kriging_believer,cl_min",
                        help="BayesOpt batch strategies; ':noisy' = fantasies conditioned with the fitted noise "
                             "(the behaviour before exact fantasies)")
    parser.add_argument("--functions", default=None, help="BBOB function ids, comma-separated")
    parser.add_argument("--dims", default="2,5,10")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--methods", default="autosys-meta,autosys-bo,optuna-tpe,optuna-gp,skopt-gp,random")
    parser.add_argument("--skopt-seeds", type=int, default=None, help="seeds for gp_minimize (slow in 10-D)")
    parser.add_argument("--gp-seeds", type=int, default=None, help="seeds for Optuna's GPSampler")
    parser.add_argument("--skopt-dims", default=None, help="dims where gp_minimize runs (default 2,6)")
    parser.add_argument("--gp-dims", default=None, help="dims where Optuna's GPSampler runs (default 2,6,10)")
    parser.add_argument("--reuse", default=None,
                        help="a runs CSV from an earlier invocation: its rows for peer methods are reused, not rerun")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "tuners_bbob"))
    parser.add_argument("--extra-path", action="append", default=[],
                        help="append a folder to sys.path (e.g. where torch is installed for optuna-gp)")
    parser.add_argument("--summarize", default=None, metavar="RUNS_CSV",
                        help="only print the tables for an existing runs CSV (e.g. a cut-short run's .partial.csv)")
    args = parser.parse_args(argv)
    _extend_path(args.extra_path)
    if args.suite == "bbob24":
        args.functions = args.functions or ",".join(str(f) for f in range(1, 25))
        args.dims = "10"
        args.seeds = args.seeds or 5
        if args.methods == parser.get_default("methods"):
            args.methods = "autosys-meta,optuna-tpe,optuna-gp,random"
        args.gp_dims = "10"
    if args.summarize:
        runs = pd.read_csv(args.summarize)
        present = [m for m in args.methods.split(",") if m in set(runs["method"])]
        present += sorted(set(runs["method"]) - set(present))
        print("\n".join(summarize(runs, present)[1] + target_check(runs)))
        return 0

    # defaults sized to ~15-20 min on 2 shared cores: sphere, Rosenbrock, Rastrigin and Gallagher
    # (smooth, valley, multimodal, rugged), GPSampler on 1 seed, gp_minimize (minutes per 10-D run) in 2-D/6-D only
    functions = [int(f) for f in (args.functions or ("1,21" if args.quick else "1,8,15,21")).split(",")]
    dims = [int(d) for d in (args.dims if not args.quick or args.dims != "2,5,10" else "2,10").split(",")]
    seeds = args.seeds or (2 if args.quick else 3)
    skopt_seeds = args.skopt_seeds or 1
    gp_seeds = args.gp_seeds or 1
    if args.skopt_dims is None:
        args.skopt_dims = "2" if args.quick else "2,6"
    if args.gp_dims is None:
        args.gp_dims = "2,10" if args.quick else "2,6,10"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    # a method that cannot run here is not run; its rows from --reuse (if any) still count
    cannot_run = set()
    if "optuna-gp" in methods and not _torch_ok():
        print("optuna-gp: cannot run here (Optuna's GPSampler needs torch, which does not import here); "
              "only rows reused from --reuse are shown")
        cannot_run.add("optuna-gp")

    problems = [Problem(f"f{fid}-d{d}", "bbob", fid, d) for d in dims for fid in functions]
    if not args.suite:
        problems += [Problem("branin", "branin", 0, 2), Problem("hartmann6", "hartmann6", 0, 6)]
    limit_dims = {
        "skopt-gp": [int(d) for d in args.skopt_dims.split(",")] if args.skopt_dims else None,
        "optuna-gp": [int(d) for d in args.gp_dims.split(",")] if args.gp_dims else None,
    }
    reused = pd.read_csv(args.reuse) if args.reuse else pd.DataFrame(columns=["problem", "method", "seed"])
    reused = reused[
        reused["method"].isin([m for m in methods if m not in AUTOSYS_METHODS])
        & reused["problem"].isin([p.name for p in problems])
    ].copy()
    reused["invocation"] = "reused"
    done = {(r.problem, r.method, int(r.seed)) for r in reused.itertuples()}
    methods = [m for m in methods if m not in cannot_run or m in set(reused["method"])]
    jobs = []
    for method in [m for m in methods if m not in cannot_run]:
        n = {"skopt-gp": skopt_seeds, "optuna-gp": gp_seeds}.get(method, seeds)
        for problem in problems:
            allowed = limit_dims.get(method)
            if allowed is not None and problem.dim not in allowed:
                continue
            for seed in range(n):
                if (problem.name, method, seed) not in done:
                    jobs.append((method, problem, args.budget, seed))
    # the headline (10-D) first, the slowest peers last, so a run cut short still answers the main question
    slow = {"skopt-gp": 2, "optuna-gp": 1}
    jobs.sort(key=lambda j: (-j[1].dim, slow.get(j[0], 0)))
    print(f"{len(jobs)} runs: {len(problems)} problems x methods {methods}; seeds {seeds} "
          f"(skopt-gp {skopt_seeds}, optuna-gp {gp_seeds}); budget {args.budget}; {args.workers} workers")
    if len(reused):
        print(f"reusing {len(reused)} peer runs from {args.reuse}")
    t0 = time.time()
    rows = reused.to_dict("records")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{out}_runs.partial.csv")  # every finished run, as it finishes
    columns = ["problem", "dim", "method", "seed", "cpu_s", "regret_50", "regret_100", "invocation"]
    pd.DataFrame(rows, columns=columns).to_csv(partial, index=False)
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_extend_path, initargs=(args.extra_path,), maxtasksperchild=20) as pool:
        for i, row in enumerate(pool.imap_unordered(_job, jobs), 1):
            row["invocation"] = "this"
            rows.append(row)
            pd.DataFrame([row], columns=columns).to_csv(partial, mode="a", header=False, index=False)
            if i % 25 == 0 or i == len(jobs):
                print(f"  {i}/{len(jobs)} runs done, {time.time() - t0:.0f} s", flush=True)
    runs = pd.DataFrame(rows)
    runs = runs.sort_values(["dim", "problem", "method", "seed"])
    runs.to_csv(f"{out}_runs.csv", index=False)
    med, lines = summarize(runs, methods)
    lines += target_check(runs)
    med.to_csv(f"{out}_median.csv", index=False)
    cpu = runs.groupby(["method", "dim"])["cpu_s"].median().unstack()
    lines.append("\nMedian CPU seconds per whole run (budget %d):" % args.budget)
    lines.append(cpu.to_string(float_format=lambda v: f"{v:.2f}"))

    if not args.no_timing:
        tjobs = []
        for method in methods:
            if method == "random" or method in cannot_run:
                continue
            for n_obs in (50, 200):
                # the meta-tuner's asks go to members of very different cost: average over enough of them
                reps = {"skopt-gp": 2 if n_obs == 50 else 1, "optuna-gp": 5}.get(method, 30 if method in AUTOSYS_METHODS else 10)
                tjobs.append((method, 10, n_obs, reps))
        with ctx.Pool(args.workers, initializer=_extend_path, initargs=(args.extra_path,)) as pool:
            timing = pd.DataFrame(pool.map(_timing_job, tjobs))
        timing.to_csv(f"{out}_timing.csv", index=False)
        table = timing.pivot_table(index="method", columns="n_obs", values="cpu_s_per_ask_tell")
        lines.append("\nCPU seconds per ask+tell in 10-D (OPENBLAS_NUM_THREADS=1), after N observations:")
        lines.append(table.to_string(float_format=lambda v: f"{v:.3f}"))
        if DEFAULT in table.index and 200 in table.columns:
            c = table.loc[DEFAULT, 200]
            lines.append(f"  {DEFAULT} at 200 observations: {c:.3f} CPU s per ask+tell (target <= 0.05): "
                         + ("met" if c <= 0.05 else "NOT met") + " (a shared host: noisy)")
        if "autosys-bo" in table.index:
            for peer in table.index:
                if peer != "autosys-bo":
                    ratio = table.loc[peer, 200] / table.loc["autosys-bo", 200]
                    lines.append(f"  at 200 observations {peer} costs {ratio:.1f}x autosys-bo")
    if args.pending_seeds:
        strategies = tuple(x for x in args.pending_strategies.split(",") if x)
        pend, plines = pending_side_by_side([int(f) for f in args.pending_functions.split(",")], 10, args.budget,
                                            args.pending_seeds, strategies)
        pend.to_csv(f"{out}_pending.csv", index=False)
        lines += plines
    plot(med, methods, Path(f"{out}.png"))
    lines.append(f"\nwrote {out}_runs.csv, {out}_median.csv, {out}.png; total {time.time() - t0:.0f} s wall")
    text = "\n".join(lines)
    print(text)
    Path(f"{out}_summary.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
