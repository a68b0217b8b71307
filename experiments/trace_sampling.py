"""SHARDS-style spatial sampling error on the recorded real traces.

For every recorded trace in experiments/results/page_traces/ (the ones with a
`.json` description: PostgreSQL, MariaDB, RocksDB, SQLite ...) and cache sizes
of 1, 2, 5, 10 and 20% of the footprint, each policy's miss ratio on the full
trace is compared with its estimate from a spatial sample at rates 10% and 1%
(3 hash seeds): pages kept when hash(id) mod P < T, the cache scaled by the
rate, misses divided by the requests a rate-R sample should hold (SHARDS_adj,
exactly what PagePolicySystem's "sample" fidelity does). Objects count as one
page each (the page-policy model); the RocksDB block trace is simulated in
objects too.

    nice -n 10 .venv/bin/python experiments/trace_sampling.py
    nice -n 10 .venv/bin/python experiments/trace_sampling.py --traces a.oracleGeneral --max-requests 1000000

Prints the error table (absolute miss-ratio error, in points) and how often the
sample picks the same best policy as the full trace; writes
experiments/results/trace_sampling.csv and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache.simulator import PreparedTrace, capacity_of, simulate  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
TRACES = RESULTS / "page_traces"
POLICIES = ("lru", "fifo", "sieve", "s3fifo", "arc")
CACHES = (0.01, 0.02, 0.05, 0.1, 0.2)
RATES = (0.1, 0.01)


def recorded_traces() -> list[Path]:
    return sorted(p for p in TRACES.glob("*.oracleGeneral") if p.with_name(p.name + ".json").exists())


def measure(path: Path, max_requests: int, seeds: int) -> list[dict]:
    trace = T.read_trace(path)
    if max_requests and len(trace) > max_requests:
        trace = trace.head(max_requests)
    full = PreparedTrace.of(trace)
    rows = []
    for cache in CACHES:
        cap = capacity_of(cache, full.n_obj)
        for policy in POLICIES:
            exact = simulate(full, cap, policy).miss_ratio
            rows.append(dict(trace=path.stem, requests=len(full), footprint=full.n_obj, cache=cache, policy=policy,
                             rate=1.0, seed=0, sample_requests=len(full), miss_ratio=exact, full=exact, error=0.0))
    for rate in RATES:
        for seed in range(seeds):
            sample = T.spatial_sample(trace, rate, seed=seed)
            used = sample.meta.get("sample_rate", 1.0)
            ps = PreparedTrace.of(sample)
            scale = len(ps) / (used * len(full))  # SHARDS_adj
            for cache in CACHES:
                cap = capacity_of(cache, full.n_obj)
                scap = max(1, int(round(cap * used)))
                for policy in POLICIES:
                    est = min(1.0, simulate(ps, scap, policy).miss_ratio * scale)
                    exact = next(r["full"] for r in rows if r["rate"] == 1.0 and r["cache"] == cache and r["policy"] == policy)
                    rows.append(dict(trace=path.stem, requests=len(full), footprint=full.n_obj, cache=cache,
                                     policy=policy, rate=rate, seed=seed, sample_requests=len(ps), miss_ratio=est,
                                     full=exact, error=est - exact))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=Path, nargs="*", default=None, help="oracleGeneral files (default: the recorded ones)")
    ap.add_argument("--max-requests", type=int, default=0, help="use only the first N requests of each trace (0 = all)")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    import pandas as pd

    paths = args.traces or recorded_traces()
    if not paths:
        raise SystemExit(f"no recorded traces in {TRACES}: record some with `autosys trace record ...`")
    rows = []
    for path in paths:
        desc = path.with_name(path.name + ".json")
        what = json.loads(desc.read_text()).get("source", "?") if desc.exists() else "?"
        print(f"{path.name} ({what})", flush=True)
        rows += measure(path, args.max_requests, args.seeds)
    df = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "trace_sampling.csv", index=False)
    sampled = df[df.rate < 1].copy()
    sampled["abs_points"] = sampled.error.abs() * 100
    table = (sampled.groupby(["trace", "rate"])
             .agg(requests=("requests", "first"), footprint=("footprint", "first"),
                  sample_requests=("sample_requests", "median"), mean_abs_err=("abs_points", "mean"),
                  p90_abs_err=("abs_points", lambda v: float(np.percentile(v, 90))), max_abs_err=("abs_points", "max"))
             .reset_index())

    def best_agrees(g) -> float:
        full = df[(df.trace == g.name[0]) & (df.rate == 1.0)]
        hits = []
        for (cache, seed), s in g.groupby(["cache", "seed"]):
            f = full[full.cache == cache]
            hits.append(s.loc[s.miss_ratio.idxmin(), "policy"] == f.loc[f.miss_ratio.idxmin(), "policy"])
        return float(np.mean(hits))

    agree = sampled.groupby(["trace", "rate"]).apply(best_agrees).rename("same_best_policy").reset_index()
    table = table.merge(agree, on=["trace", "rate"])
    print("\nabsolute miss-ratio error of the spatial sample, in points, over caches "
          f"{', '.join(f'{c:.0%}' for c in CACHES)} x policies {', '.join(POLICIES)} x {args.seeds} seeds:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    by_cache = sampled.groupby(["rate", "cache"]).abs_points.mean().unstack("cache")
    print("\nmean absolute error (points) by cache size, all traces:")
    print(by_cache.to_string(float_format=lambda v: f"{v:.2f}"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(df.trace))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        lru = df[(df.trace == name) & (df.policy == "lru")]
        for rate, g in lru.groupby("rate"):
            m = g.groupby("cache").miss_ratio.mean()
            ax.plot(m.index * 100, m.values, marker="o", label="full" if rate == 1 else f"sample {rate:g}")
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("cache (% of footprint)")
        ax.set_ylabel("LRU miss ratio")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "trace_sampling.png", dpi=110)


if __name__ == "__main__":
    main()
