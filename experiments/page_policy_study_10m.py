"""A 30-trial page-policy study on a 10M-request trace, timed: does it finish in under 10 minutes on 2 cores?

Runs `autosys tune page-policy --trace TRACE --budget 30` (the default tuner,
full fidelity: every trial simulates the whole trace) as a child process and
measures its wall time, its CPU time and the load average of the machine
while it runs (sampled every 5 s). The trace is the first
experiments/results/page_traces/rocksdb-zipf*.oracleGeneral with at least
`--requests` requests if one was recorded (`autosys trace record rocksdb`),
else a synthetic one written there once (gitignored): 10M requests in four
phases over about 1.6M distinct pages (zipf hot sets that move, a loop and
one-off scans; seeded), so that a learned policy has phase changes to follow.

Output: experiments/results/page_policy_study_10m.csv (one row per trial:
policy, knobs, miss ratio, gap closed, seconds of the trial) and
..._summary.csv (wall and CPU seconds of the whole study, load averages, trials
per policy, seconds per policy).

    nice -n 10 .venv/bin/python experiments/page_policy_study_10m.py [--budget 30] [--trace PATH] [-- TUNE OPTIONS]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
TRACES = RESULTS / "page_traces"
if str(ROOT / "adapters") not in sys.path:  # running from a checkout without the editable install
    sys.path.insert(0, str(ROOT))


def synthetic_phases(n_requests: int, seed: int = 0):
    """Four phases: a zipf hot set with scans; the hot set moves and a loop runs; a wider, flatter zipf; a hot
    set over other pages. About 1.6M distinct pages at 10M requests."""
    from autosys_adapters.pagecache import traces as T

    q = n_requests // 4
    scale = max(1, n_requests // 10_000_000)
    pages = 500_000 * scale
    phases = [
        {"n": q, "parts": [(0.9, "zipf", {"pages": pages, "alpha": 0.9, "base": 0}),
                           (0.1, "scan", {"base": 100_000_000})]},
        {"n": q, "parts": [(0.8, "zipf", {"pages": pages, "alpha": 0.9, "base": pages // 2}),
                           (0.2, "loop", {"pages": pages // 4, "base": 50_000_000})]},
        {"n": q, "parts": [(0.95, "zipf", {"pages": 2 * pages, "alpha": 0.7, "base": 0}),
                           (0.05, "scan", {"base": 100_000_000})]},
        {"n": n_requests - 3 * q, "parts": [(1.0, "zipf", {"pages": pages, "alpha": 1.0, "base": 3 * pages})]},
    ]
    trace = T.mixture(phases, seed=seed, name="synthetic-phases")
    # shuffle the id space so ids say nothing about phases or popularity
    ids, inverse = np.unique(trace.ids, return_inverse=True)
    perm = np.random.default_rng(seed + 1).permutation(len(ids))
    return T.Trace(perm[inverse].astype(np.int64), name=f"synthetic-phases-{n_requests // 1_000_000}m")


def find_trace(requests: int) -> tuple[Path, str]:
    """(path, description) of the trace to tune on: a recorded RocksDB trace if there is one, else the synthetic."""
    from autosys_adapters.pagecache import traces as T

    for path in sorted(TRACES.glob("rocksdb-zipf*.oracleGeneral")):
        n = path.stat().st_size // 24  # 24-byte records
        if n >= requests:
            return path, f"recorded RocksDB reads ({n:,} requests)"
    path = TRACES / f"synthetic-phases-{requests // 1_000_000}m.oracleGeneral"
    if not path.exists():
        TRACES.mkdir(parents=True, exist_ok=True)
        t0 = time.process_time()
        trace = synthetic_phases(requests)
        tmp = path.with_suffix(".partial")
        T.write_oracle_general(trace, tmp)
        tmp.replace(path)
        print(f"wrote {path.name}: {len(trace):,} requests in {time.process_time() - t0:.0f} CPU s", flush=True)
    return path, f"synthetic: 4 phases of zipf hot sets, a loop and scans ({path.stat().st_size // 24:,} requests)"


class LoadSampler:
    """The 1-minute load average every `every` seconds in a background thread, until stopped."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.every)


def tune_command(trace: Path, budget: int, cache: float, seed: int, study_dir: Path, summary: Path,
                 extra: list[str]) -> list[str]:
    exe = shutil.which("autosys", path=str(Path(sys.executable).parent)) or shutil.which("autosys")
    head = [exe] if exe else [sys.executable, "-m", "autosys"]
    return [*head, "tune", "page-policy", "--trace", str(trace), "--cache-size", str(cache), "--budget", str(budget),
            "--seed", str(seed), "--dir", str(study_dir), "--json", str(summary), "--quiet", "--kb", "off",
            "--warm-start", "none", *extra]


def trial_rows(study_dir: Path) -> list[dict]:
    from autosys.storage import open_storage

    storage = open_storage(study_dir, create=False)
    try:
        trials = storage.trials()
    finally:
        storage.close()
    rows = []
    for t in trials:
        config = dict(t.config)
        policy = config.pop("policy", "?")
        rows.append(dict(trial=t.number, state=t.state.name.lower(), source=t.source, policy=policy,
                         knobs=json.dumps(config, sort_keys=True), miss_ratio=t.metrics.get("miss_ratio"),
                         gap_closed=t.metrics.get("gap_closed"),
                         requests_per_second=t.metrics.get("requests_per_second"),
                         seconds=(t.finished_at - t.started_at) if t.finished_at and t.started_at else None))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", help="a trace file (default: a recorded RocksDB trace, else the synthetic one)")
    ap.add_argument("--requests", type=int, default=10_000_000, help="the least requests a found trace must have")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--cache", type=float, default=0.1, help="cache as a fraction of the footprint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=600.0, help="the wall-time target in seconds")
    ap.add_argument("--out", default=str(RESULTS / "page_policy_study_10m.csv"))
    ap.add_argument("extra", nargs="*", help="more `autosys tune` options, after --")
    args = ap.parse_args(argv)

    import pandas as pd

    trace, what = (Path(args.trace), f"given: {args.trace}") if args.trace else find_trace(args.requests)
    work = Path(tempfile.mkdtemp(prefix="page-study-10m-"))
    study_dir, summary = work / "study", work / "summary.json"
    cmd = tune_command(trace, args.budget, args.cache, args.seed, study_dir, summary, args.extra)
    print("running:", " ".join(cmd), flush=True)
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with LoadSampler() as load:
        t0 = time.monotonic()
        # a deadline: three times the target, so a runaway study cannot hang the experiment
        proc = subprocess.run(cmd, cwd=ROOT, timeout=3 * args.limit, capture_output=True, text=True)
        wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        raise SystemExit(f"autosys tune exited with {proc.returncode}")

    rows = trial_rows(study_dir)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    result = json.loads(summary.read_text())
    best = result.get("best")
    per_policy = df.groupby("policy").seconds.agg(["count", "sum", "median"]).sort_values("sum", ascending=False)
    loads = load.samples or [float("nan")]
    srow = dict(trace=trace.name, trace_kind=what, requests=trace.stat().st_size // 24, budget=args.budget,
                cache=args.cache, tuner=result.get("tuner"), trials_complete=result["trials"]["complete"],
                wall_seconds=round(wall, 1), cpu_seconds=round(cpu, 1), trial_seconds=round(float(df.seconds.sum()), 1),
                under_limit=wall < args.limit, limit_seconds=args.limit, load_before=round(load_before[0], 2),
                load_mean=round(float(np.mean(loads)), 2), load_max=round(float(np.max(loads)), 2),
                load_after=round(os.getloadavg()[0], 2), best=str(best)[:300],
                per_policy=json.dumps({p: [int(r["count"]), round(float(r["sum"]), 1)]
                                       for p, r in per_policy.iterrows()}))
    pd.DataFrame([srow]).to_csv(out.with_name(out.stem + "_summary.csv"), index=False)
    shutil.rmtree(work, ignore_errors=True)

    print(df.to_string(index=False, max_colwidth=60))
    print(f"\n{srow['trials_complete']} trials on {trace.name} ({srow['requests']:,} requests; {what}), cache "
          f"{args.cache:g}: wall {wall:.0f} s, CPU {cpu:.0f} s (target < {args.limit:.0f} s: "
          f"{'met' if wall < args.limit else 'MISSED'}); load average before {load_before[0]:.2f}, during mean "
          f"{srow['load_mean']}, max {srow['load_max']}")
    print("seconds per policy (trials, total):", srow["per_policy"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
