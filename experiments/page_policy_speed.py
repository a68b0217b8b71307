"""Simulator speed table: every page-replacement policy's requests per second, ours and libCacheSim's.

On a seeded zipf trace (default 1M requests, 100k pages, alpha 0.8) at a 10%
cache, every policy of autosys_adapters.pagecache (classic, Belady, and the
learned LeCaR, Cacheus, LRB-style and GL-Cache-style) and every policy of the
libCacheSim binding that is present is run `--rounds` times, interleaved (a
fresh random order each round), timing CPU seconds of this process
(`time.process_time`: the machine is shared, so waiting for a core is not
counted, but contention for caches and hyperthreads is). For the learned
policies the CPU seconds of training (labelling, fitting, exporting the model)
are reported apart from simulation (evictions and hits), with the number of
model fits; `lrb_refit_always` is the LRB-style policy refitting at every
check (`stale=0`, the first version's schedule). libCacheSim's
numbers include reading its oracleGeneral trace file. The first LRB-style
version (`learned.run_lrb_reference`) runs on a prefix only: it is slow.

Output: a table on stdout, experiments/results/page_policy_speed_table.csv
(one row per policy and round) and ..._table.png (median requests per CPU
second, log scale, with the 1M/s line). Paired: `vs_lru` is the policy's
speed over our LRU's in the same round; its 95% interval is a t-interval on
the log-ratios over rounds.

    nice -n 10 .venv/bin/python experiments/page_policy_speed.py [--requests 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
if str(ROOT / "adapters") not in sys.path:  # running from a checkout without the editable install
    sys.path.insert(0, str(ROOT))

OURS = ["lru", "fifo", "clock", "lfu", "arc", "2q", "s3fifo", "sieve", "tinylfu", "belady",
        "lecar", "cacheus", "lrb", "glcache"]
LCS = ["LRU", "FIFO", "Clock", "LFU", "ARC", "TwoQ", "S3FIFO", "Sieve", "WTinyLFU", "LIRS", "LHD",
       "LeCaR", "Cacheus", "LRB", "GLCache", "ThreeLCache", "Belady"]
LEARNED = {"lrb", "glcache"}


def run_ours(tr, cap, name):
    """(miss ratio, total CPU s, training CPU s or nan, model fits or nan)."""
    from autosys_adapters.pagecache.glcache import run_glcache_detailed
    from autosys_adapters.pagecache.lrb import run_lrb_detailed
    from autosys_adapters.pagecache.simulator import simulate

    t0 = time.process_time()
    if name in ("lrb", "lrb_refit_always"):
        r = run_lrb_detailed(tr, cap, **({"stale": 0.0} if name == "lrb_refit_always" else {}))
        return float(r.miss.mean()), time.process_time() - t0, r.train_seconds, float(r.retrains)
    if name == "glcache":
        r = run_glcache_detailed(tr, cap)
        return float(r.miss.mean()), time.process_time() - t0, r.train_seconds, float("nan")
    res = simulate(tr, cap, name)
    return res.miss_ratio, time.process_time() - t0, float("nan"), float("nan")


def run_lcs(lcs, path, cap, name):
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
    cache = getattr(lcs, name)(cap * 4096, hashpower=20)
    t0 = time.process_time()
    ratio = cache.process_trace(reader)[0]  # readers are never closed: close + GC double-frees (FIELD-NOTES)
    return float(ratio), time.process_time() - t0, float("nan")


def ci_ratio(ratios: np.ndarray) -> tuple[float, float, float]:
    """Geometric mean and 95% t-interval of paired speed ratios."""
    from scipy import stats

    logs = np.log(ratios)
    m = float(logs.mean())
    if len(logs) < 2:
        return float(np.exp(m)), float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs)))
    return float(np.exp(m)), float(np.exp(m - h)), float(np.exp(m + h))


def plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = df.groupby(["source", "policy"]).requests_per_cpu_second.median().sort_values()
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(med) + 1.2))
    colors = ["tab:blue" if s == "autosys" else "tab:gray" for s, _ in med.index]
    ax.barh([f"{p}" if s == "autosys" else f"lcs:{p}" for s, p in med.index], med.values, color=colors)
    ax.axvline(1e6, color="k", ls="--", lw=1, label="1M requests/s")
    ax.set_xscale("log")
    ax.set_xlabel("requests per CPU second (median over rounds; blue = autosys, gray = libCacheSim)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--pages", type=int, default=0, help="distinct pages (0 = requests / 10)")
    ap.add_argument("--cache", type=float, default=0.1, help="cache as a fraction of the footprint")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reference-requests", type=int, default=100_000, help="prefix for the first LRB version")
    ap.add_argument("--no-libcachesim", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    import pandas as pd

    from autosys_adapters.pagecache import traces as T
    from autosys_adapters.pagecache.learned import run_lrb_reference
    from autosys_adapters.pagecache.simulator import PreparedTrace, capacity_of, simulate

    trace = T.zipf(args.requests, args.pages or args.requests // 10, 0.8, seed=args.seed)
    tr = PreparedTrace.of(trace)
    cap = capacity_of(args.cache, tr.n_obj)
    small = PreparedTrace.of(trace.head(args.reference_requests))
    lcs = None
    if not args.no_libcachesim:
        try:
            import libcachesim as lcs
        except ImportError:
            print("libcachesim is not installed: its policies are left out", flush=True)
    tmp = Path(tempfile.mkdtemp())
    path = T.write_oracle_general(trace, tmp / "speed.oracleGeneral")
    jobs = [("autosys", p) for p in OURS] + [("autosys", "lrb_refit_always"), ("autosys", "lrb_reference")]
    if lcs is not None:
        jobs += [("libcachesim", p) for p in LCS if hasattr(lcs, p)]

    # compile every kernel before timing (numba caches to disk; the first call still loads it)
    tiny = PreparedTrace.of(trace.head(20_000))
    for p in OURS:
        simulate(tiny, capacity_of(args.cache, tiny.n_obj), p)
    run_lrb_reference(tiny, capacity_of(args.cache, tiny.n_obj), retrain=5_000)

    rows = []
    rng = random.Random(args.seed)
    for rnd in range(args.rounds):
        order = jobs[:]
        rng.shuffle(order)
        for source, name in order:
            if source == "autosys" and name == "lrb_reference":
                t0 = time.process_time()
                miss = run_lrb_reference(small, capacity_of(args.cache, small.n_obj))
                mr, cpu, n = float(miss.mean()), time.process_time() - t0, len(small)
                train = fits = float("nan")
            elif source == "autosys":
                (mr, cpu, train, fits), n = run_ours(tr, cap, name), len(tr)
            else:
                (mr, cpu, train), n = run_lcs(lcs, path, cap, name), len(tr)
                fits = float("nan")
            rows.append(dict(round=rnd, source=source, policy=name, requests=n, cache_pages=cap, miss_ratio=mr,
                             cpu_seconds=cpu, train_cpu_seconds=train, model_fits=fits,
                             simulate_cpu_seconds=cpu - train if train == train else cpu,
                             requests_per_cpu_second=n / cpu if cpu > 0 else float("inf")))
            print(f"round {rnd} {source:>11} {name:>16}: {n / max(cpu, 1e-9) / 1e6:8.3f} M req/CPU-s  miss {mr:.4f}",
                  flush=True)
        gc.collect()
    df = pd.DataFrame(rows)
    lru = df[(df.source == "autosys") & (df.policy == "lru")].set_index("round").requests_per_cpu_second
    df["vs_lru"] = df.requests_per_cpu_second / df["round"].map(lru)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "page_policy_speed_table.csv", index=False)
    plot(df, RESULTS / "page_policy_speed_table.png")

    print(f"\n{len(tr):,}-request zipf(0.8) trace, {tr.n_obj:,} pages, cache {cap:,} pages; {args.rounds} interleaved "
          f"rounds; CPU time of this process on this machine (load average: {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'source':>11} {'policy':>16} {'M req/CPU-s':>11} {'sim only':>9} {'train s':>8} {'fits':>5} "
          f"{'vs LRU (95% CI)':>24} {'miss':>7}")
    for (source, name), g in df.groupby(["source", "policy"], sort=False):
        sim_rps = g.requests / g.simulate_cpu_seconds
        gm, lo, hi = ci_ratio(g.vs_lru.to_numpy())
        train, fits = g.train_cpu_seconds.median(), g.model_fits.median()
        print(f"{source:>11} {name:>16} {g.requests_per_cpu_second.median() / 1e6:11.3f} {sim_rps.median() / 1e6:9.3f} "
              f"{'' if train != train else f'{train:8.2f}':>8} {'' if fits != fits else f'{fits:5.0f}':>5} "
              f"{f'{gm:.4f} [{lo:.4f}, {hi:.4f}]':>24} {g.miss_ratio.median():7.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
