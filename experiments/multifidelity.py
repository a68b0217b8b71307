"""Multi-fidelity vs full-fidelity tuning: wall seconds until a study's answer is within 5% of the best known config.

For each system (sqlite, kv, page-policy, learned-index) one run:

1. a long full-fidelity reference study (the default tuner, `meta`) finds a
   reference config;
2. for each seed, two studies with the same time budget run one after the
   other: the default tuner at full fidelity, and the default tuner with
   multi-fidelity scheduling (`Study.create(multifidelity=...)`: successive
   halving up the system's declared fidelity rungs, losers pruned). After every
   finished trial the study's *answer* (`Study.best`: what it would hand the
   user then) is recorded with the elapsed seconds;
3. the answers are judged side by side with the reference config: paired,
   interleaved full-fidelity runs, the median ratio of each pair
   (>= 0.95 means within 5%; a config better than the reference counts too).

Multi-fidelity uses the schedule's defaults (eta 3; below `min_peers` values
at a rung a trial worse than the study's answer stops: `guard`; the default
is measured at the lowest rung too: `anchor`; rungs that could not judge a
trial are skipped: `leap`), plus a system's own `Setup.schedule`: SQLite races
below full fidelity (`race_below`: at the lowest rung that orders the pair as
full fidelity does), since its default runs into its time cap and each race
re-run of it cost 3 s.

The time to target of a study is the elapsed time of the first answer within
5%; a study that never holds one is censored at its budget (shown as ">T").
The table gives the median over seeds per system and method and the ratio
MF / full (the issue's target: at most 0.5 on every system).

    nice python experiments/multifidelity.py             # 5 seeds, ~40 minutes on 2 idle cores
    python experiments/multifidelity.py --quick          # 2 seeds, short budgets (a few minutes)
    python experiments/multifidelity.py --systems sqlite,kv   # re-run some; the others' rows are kept
    python experiments/multifidelity.py --systems kv --seconds 60   # another time budget per study
    python experiments/multifidelity.py --systems kv --reuse-reference   # the last run's reference config (saved in
                                                                          # multifidelity_reference.json)

Writes experiments/results/multifidelity{_quick}.csv (one row per study),
multifidelity{_quick}_answers.csv (every judged answer), a PNG, and the
reference configs (multifidelity{_quick}_reference.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autosys.core.registry import make_system  # noqa: E402
from autosys.run.study import Study  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
TUNER = "meta"  # the CLI's default tuner
WITHIN = 0.05


@dataclass
class Setup:
    """One system of the comparison: its options, the time budget per study and the reference study's length."""

    name: str
    options: dict[str, Any]
    seconds: float
    reference_trials: int
    pairs: int  # paired runs per judged answer (1 for a deterministic simulator)
    eta: float = 3.0
    schedule: dict[str, Any] = field(default_factory=dict)  # more multi-fidelity settings (autosys/run/multifidelity.py)


SETUPS = {
    # 60 s was too short for the full-fidelity runs to reach the target at all (censored in 5/5 seeds)
    # races at the rung below full: the default runs into its 1 s time cap, so each of its race re-runs cost 3 s
    "sqlite": Setup("sqlite", {}, seconds=90, reference_trials=40, pairs=3, schedule={"race_below": True}),
    "kv": Setup("kv", {"workload": "ycsb-a"}, seconds=40, reference_trials=40, pairs=3),
    # 3M requests over 300k pages: with the compiled LRB and LeCaR a 300k-request trace cost 0.005-0.3 s a
    # trial, and the full-fidelity study held a config within 5% after ~1 s (3 trials), less than one
    # successive-halving bracket (MF/full 0.86-1.17 there: nothing for cheaper rungs to save). Real block and CDN
    # traces are 10-100M requests. Races below full fidelity (SHARDS samples scaled to the full trace).
    "page-policy": Setup("page-policy", {"requests": 3_000_000, "pages": 300_000}, seconds=40, reference_trials=60, pairs=1,
                           schedule={"race_below": True}),
    "learned-index": Setup("learned-index", {}, seconds=40, reference_trials=30, pairs=3),
}
QUICK = {"seconds": 20, "reference_trials": 15}


@dataclass
class Timeline:
    """What a study held as its answer after each finished trial."""

    system: str
    method: str
    seed: int
    budget: float
    points: list[tuple[float, dict | None]] = field(default_factory=list)
    trials: int = 0
    pruned: int = 0


def run_study(setup: Setup, method: str, seed: int, seconds: float, root: Path) -> Timeline:
    """One time-budgeted study of the default tuner, at full fidelity or multi-fidelity; its answers over time."""
    system = make_system(setup.name, setup.options)
    schedule = {"eta": setup.eta, **setup.schedule} if method == "multi-fidelity" else None
    study = Study.create(root / f"{setup.name}-{method}-{seed}", system, tuner=TUNER, budget=None, seconds=seconds,
                         seed=seed, multifidelity=schedule)
    timeline = Timeline(setup.name, method, seed, seconds)
    start = time.monotonic()

    def record(study_: Study, trial) -> None:
        best = study_.best
        timeline.points.append((time.monotonic() - start, None if best is None else dict(best.config)))

    study.run(callback=record)
    summary = study.summary()["trials"]
    timeline.trials = sum(summary[k] for k in ("complete", "failed", "timed_out", "pruned"))
    timeline.pruned = summary["pruned"]
    study.close()
    return timeline


def reference_config(setup: Setup, trials: int, root: Path) -> dict:
    """The answer of a long full-fidelity study of the default tuner (intensified: raced in paired re-runs)."""
    system = make_system(setup.name, setup.options)
    study = Study.create(root / f"{setup.name}-reference", system, tuner=TUNER, budget=trials, seed=1000)
    study.run()
    best = study.best
    study.close()
    if best is None:
        raise SystemExit(f"{setup.name}: the reference study found no feasible config")
    return dict(best.config)


class Judge:
    """Judges configs against the reference in paired, interleaved full-fidelity runs (cached per config)."""

    def __init__(self, setup: Setup, reference: dict):
        self.setup, self.reference = setup, reference
        self.system = make_system(setup.name, setup.options)
        self.system.setup()
        self.direction = self.system.objective.direction
        self.metric = self.system.objective.metric
        self.cache: dict[str, float] = {}
        self._reference_value: float | None = None

    def _value(self, config: dict) -> float:
        return float(self.system.evaluate(self.system.space().validate(config)).metrics[self.metric])

    def quality(self, config: dict) -> float:
        """Median over pairs of value ratios, oriented so that 1.0 is the reference and above is better."""
        key = json.dumps(config, sort_keys=True, default=str)
        if key == json.dumps(self.reference, sort_keys=True, default=str):
            return 1.0  # the reference itself: re-measuring it against itself only adds noise (KV's dict read 0.81 of itself)
        if key not in self.cache:
            ratios = []
            for i in range(self.setup.pairs):
                if self.setup.pairs == 1:  # a deterministic simulator: the reference's value never changes
                    if self._reference_value is None:
                        self._reference_value = self._value(self.reference)
                    ref, mine = self._reference_value, self._value(config)
                elif i % 2 == 0:
                    ref, mine = self._value(self.reference), self._value(config)
                else:
                    mine, ref = self._value(config), self._value(self.reference)
                ratios.append(mine / ref if self.direction == "maximize" else ref / mine)
            self.cache[key] = statistics.median(ratios)
        return self.cache[key]

    def time_to_target(self, timeline: Timeline) -> tuple[float | None, list[tuple[float, float]]]:
        """The elapsed seconds of the first answer within 5% (None: never), and the answers judged on the way."""
        judged = []
        last_key = None
        for elapsed, config in timeline.points:
            if config is None:
                continue
            key = json.dumps(config, sort_keys=True, default=str)
            if key == last_key:
                continue
            last_key = key
            quality = self.quality(config)
            judged.append((elapsed, quality))
            if quality >= 1.0 - WITHIN:
                return elapsed, judged
        return None, judged

    def close(self) -> None:
        self.system.teardown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 s studies, short reference studies")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5, quick 2)")
    parser.add_argument("--systems", default=",".join(SETUPS), help=f"comma-separated, of: {', '.join(SETUPS)}")
    parser.add_argument("--seconds", type=float, default=None, help="time budget of every study (default: per system)")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="take each system's reference config from the last run's multifidelity*_reference.json "
                             "(same options and reference length) instead of running the reference study again")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        parser.error(f"unknown system(s): {', '.join(unknown)}; known: {', '.join(SETUPS)}")
    seeds = args.seeds or (2 if args.quick else 5)
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)

    import pandas as pd

    rows, answers = [], []
    reference_file = RESULTS / f"multifidelity{suffix}_reference.json"
    references = json.loads(reference_file.read_text()) if reference_file.exists() else {}
    root = Path(tempfile.mkdtemp(prefix="autosys-mf-"))
    try:
        for name in names:
            setup = SETUPS[name]
            seconds = args.seconds or (QUICK["seconds"] if args.quick else setup.seconds)
            ref_trials = QUICK["reference_trials"] if args.quick else setup.reference_trials
            t0 = time.monotonic()
            stored = references.get(name)
            if args.reuse_reference and stored and stored["options"] == setup.options and stored["trials"] == ref_trials:
                reference = stored["config"]
                print(f"{name}: reference config of the last run's {ref_trials}-trial reference study: {reference}", flush=True)
            else:
                reference = reference_config(setup, ref_trials, root)
                print(f"{name}: reference config after {ref_trials} full-fidelity trials "
                      f"({time.monotonic() - t0:.0f} s): {reference}", flush=True)
                references[name] = {"options": setup.options, "trials": ref_trials, "config": reference}
                reference_file.write_text(json.dumps(references, indent=1, sort_keys=True, default=str))
            timelines = []
            for seed in range(seeds):
                for method in (("full", "multi-fidelity") if seed % 2 == 0 else ("multi-fidelity", "full")):
                    timeline = run_study(setup, method, seed, seconds, root)
                    timelines.append(timeline)
                    print(f"  {name} seed {seed} {method:14s} trials {timeline.trials:3d} pruned {timeline.pruned:3d}",
                          flush=True)
            judge = Judge(setup, reference)
            try:
                for timeline in timelines:
                    reached, judged = judge.time_to_target(timeline)
                    rows.append({"system": name, "method": timeline.method, "seed": timeline.seed,
                                 "budget_s": timeline.budget, "trials": timeline.trials, "pruned": timeline.pruned,
                                 "seconds_to_within_5pct": reached,
                                 "final_quality": judged[-1][1] if judged else None})
                    answers += [{"system": name, "method": timeline.method, "seed": timeline.seed, "elapsed_s": e,
                                 "quality_vs_reference": q} for e, q in judged]
            finally:
                judge.close()
            done = sorted({row["system"] for row in rows})  # not the systems still to run: a crash keeps their old rows
            _save(pd.DataFrame(rows), RESULTS / f"multifidelity{suffix}.csv", done)
            _save(pd.DataFrame(answers), RESULTS / f"multifidelity{suffix}_answers.csv", done)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    every = pd.read_csv(RESULTS / f"multifidelity{suffix}.csv")  # this run's systems and earlier runs' others
    table = summarize(every)
    print()
    print(table.to_string(index=False))
    plot(every, RESULTS / f"multifidelity{suffix}.png")
    print(f"\nwrote {RESULTS / f'multifidelity{suffix}.csv'} and .png")


def _save(df, path: Path, systems: list[str]) -> None:
    """Write this run's rows, keeping the rows an earlier run wrote for systems not run now (`--systems`)."""
    import pandas as pd

    if path.exists():
        earlier = pd.read_csv(path)
        df = pd.concat([earlier[~earlier.system.isin(systems)], df], ignore_index=True)
    df.to_csv(path, index=False)


def summarize(df):
    """Median seconds to within 5% per system and method (censored studies count at their budget), and MF / full."""
    import pandas as pd

    out = []
    for system, group in df.groupby("system", sort=False):
        med = {}
        censored = {}
        for method in ("full", "multi-fidelity"):
            sub = group[group.method == method]
            times = [t if pd.notna(t) else b for t, b in zip(sub.seconds_to_within_5pct, sub.budget_s)]
            med[method] = statistics.median(times) if times else float("nan")
            censored[method] = int(sub.seconds_to_within_5pct.isna().sum())
        out.append({
            "system": system,
            "full_median_s": round(med["full"], 1),
            "full_never": censored["full"],
            "mf_median_s": round(med["multi-fidelity"], 1),
            "mf_never": censored["multi-fidelity"],
            "mf_over_full": round(med["multi-fidelity"] / med["full"], 2) if med["full"] else float("nan"),
            "target_met": med["multi-fidelity"] <= 0.5 * med["full"],
            "seeds": int((group.method == "full").sum()),
        })
    return pd.DataFrame(out)


def plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    systems = list(dict.fromkeys(df.system))
    fig, axes = plt.subplots(1, len(systems), figsize=(4 * len(systems), 3.5), squeeze=False)
    for ax, system in zip(axes[0], systems):
        group = df[df.system == system]
        for i, method in enumerate(("full", "multi-fidelity")):
            sub = group[group.method == method]
            times = [t if pd.notna(t) else b for t, b in zip(sub.seconds_to_within_5pct, sub.budget_s)]
            never = [pd.isna(t) for t in sub.seconds_to_within_5pct]
            ax.scatter([i] * len(times), times, c=["red" if n else "C0" for n in never], alpha=0.7)
            if times:
                ax.hlines(statistics.median(times), i - 0.25, i + 0.25, colors="k")
        ax.set_xticks([0, 1], ["full", "multi-fidelity"])
        ax.set_title(system)
        ax.set_ylabel("seconds to within 5% of reference")
    fig.suptitle("Time to a config within 5% of the reference best (red: never, at budget); bar = median")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
