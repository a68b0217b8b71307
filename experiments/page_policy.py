"""Page replacement on every trace the team has, judged on held-out requests.

Traces (`TRACES`): three synthetic (zipf 0.8; a scan + loop + hot-set mixture;
a 10M-request four-phase trace, `page_policy_study_10m.synthetic_phases`) and
five recorded from real software: SQLite under a YCSB-like mix, a TPC-C-like
mix, an index-heavy analytic mix and a scan mix (every page SQLite reads or
writes, logged by an apsw VFS with SQLite's own cache at 2 pages,
`adapters/pagecache/recorder.py`), and RocksDB's block reads (pread64 of .sst
files recorded with strace under zipfian gets and short scans, 8 MB block
cache, split into 4 KB pages, `server_traces.record_rocksdb`). Recorded traces
are cached under experiments/results/page_traces/ with a `.json` description.

Judging: each trace is split at `--tune-share` (default half). The autosys
policy is chosen on the first part only (policy + knobs, by `--tuner` over
`policy_space()` with every policy's defaults and textbook variants first,
`--budget` more trials, 30 by default), run cold on that part. Every policy -- the chosen one,
autosys's defaults, every libCacheSim policy, LRU and Belady -- is then run
over the WHOLE trace from a cold cache and only its misses on the held-out
remainder are counted: the tuning part warms the cache for everyone alike.
For autosys's simulator the per-request miss array gives that directly. For
libCacheSim, one cache processes the tuning part (`process_trace(reader, 0,
split)`) and then the rest, whose miss ratio is the held-out one;
tests/test_page_policy_heldout.py checks it equals the simulator's count for
LRU, ARC and S3-FIFO. Belady (MIN over the whole
trace) is the bound; gap closed = (LRU - policy) / (LRU - Belady) on the
held-out part. The cache is a fraction of the whole trace's distinct pages.

Sampled tuning: the same search on a SHARDS spatial sample of the tuning part
(`--sample-rate`, 1%) with the cache scaled by the sampling rate; the choice
is judged on the held-out part of the full trace like the other, and the
difference in gap closed is reported (page_policy_sampled.csv).

libCacheSim policies: every one the issue names that the installed binding has
(`LCS_POLICIES`; plus its 2Q and 3L-Cache), each at its defaults. LRB runs only
on traces of at most `LCS_MAX_REQUESTS["LRB"]` requests (about 20k requests/s:
25 CPU s per 500k requests, too slow for this
run on a shared 2-core host); skipped runs are logged and absent from the CSV.

    .venv/bin/python experiments/page_policy.py --quick      # small traces, minutes
    .venv/bin/python experiments/page_policy.py              # full size: 40 min at nice 10 on 2 busy cores
    .venv/bin/python experiments/page_policy.py --traces phases-10m --tag _10m   # one trace in parallel, then
    .venv/bin/python experiments/page_policy.py --resume --merge _10m            # fold it in, run the rest

Writes experiments/results/page_policy.csv (every policy, held-out),
page_policy_summary.csv (autosys vs the best libCacheSim policy),
page_policy_sampled.csv and page_policy.png.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "experiments"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from autosys_adapters.pagecache.system import policy_space, sampled_knobs, simulator_args  # noqa: E402
from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache.simulator import POLICIES, PreparedTrace, capacity_of, gap_closed, simulate  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
TRACE_DIR = RESULTS / "page_traces"
SIZES = (0.01, 0.1)
#: autosys's own policies at their defaults, reported for reference (the tuner chooses among them)
OURS = ["fifo", "clock", "lfu", "arc", "2q", "s3fifo", "sieve", "tinylfu", "lecar", "lrb", "cacheus", "glcache"]
#: the issue's list -> the binding's class names; 2Q and 3L-Cache are extra
LCS_WANTED = {"LRU": "LRU", "ARC": "ARC", "LIRS": "LIRS", "S3-FIFO": "S3FIFO", "SIEVE": "Sieve", "TinyLFU": "WTinyLFU",
              "LeCaR": "LeCaR", "Cacheus": "Cacheus", "LHD": "LHD", "LRB": "LRB", "GLCache": "GLCache",
              "2Q": "TwoQ", "3L-Cache": "ThreeLCache"}
LCS_MAX_REQUESTS = {"LRB": 400_000}
#: well-known variants tried before the search: W-TinyLFU with rare and frequent resets,
#: perfect LFU, LFU-DA with history, 3-4 expert mixtures
TEXTBOOK = [
    {"policy": "tinylfu", "tinylfu_window": 0.01, "tinylfu_reset": 1000.0},
    {"policy": "tinylfu", "tinylfu_window": 0.01, "tinylfu_reset": 20.0},
    {"policy": "lfu", "lfu_aging": False, "lfu_history": True},
    {"policy": "lfu", "lfu_aging": True, "lfu_history": True},
    {"policy": "lecar", "lecar_learning_rate": 0.45, "lecar_experts": "lru,lfu,fifo", "lecar_history": 1.0},
    {"policy": "lecar", "lecar_learning_rate": 0.45, "lecar_experts": "lru,lfu,fifo,mru", "lecar_history": 1.0},
]


def lcs_policies() -> tuple[dict[str, str], list[str]]:
    """(label -> binding class for those the installed libcachesim has, labels it lacks)."""
    try:
        import libcachesim as lcs
    except ImportError:
        return {}, list(LCS_WANTED)
    have = {label: cls for label, cls in LCS_WANTED.items() if hasattr(lcs, cls)}
    return have, [label for label in LCS_WANTED if label not in have]


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class TraceSpec:
    """A named trace: recorded from real software or synthetic, and how to make it (quick, seed) -> Trace."""

    name: str
    real: bool
    what: str
    make: Callable[[bool, int], T.Trace]


def _sqlite(workload: str, full: tuple[int, int], quick: tuple[int, int]) -> Callable[[bool, int], T.Trace]:
    def make(is_quick: bool, seed: int) -> T.Trace:
        from autosys_adapters.pagecache.recorder import record_sqlite

        ops, scale = quick if is_quick else full
        # SQLite's own cache at its minimum: the trace is (nearly) SQLite's full page reference string
        return record_sqlite(workload, ops=ops, seed=seed, scale=scale, sqlite_cache_pages=2)

    return make


def _rocksdb(is_quick: bool, seed: int) -> T.Trace:
    from autosys_adapters.pagecache.server_traces import record_rocksdb

    ops, keys, cache_mb = (100_000, 200_000, 2) if is_quick else (1_000_000, 1_000_000, 8)
    rec = record_rocksdb(ops=ops, keys=keys, block_cache_mb=cache_mb, seed=seed)
    trace = rec.reads.pages(4096, name="rocksdb-zipf")
    trace.meta["description"] = {**rec.description, "unit": "4 KB page touched by a read", "requests": len(trace),
                                 "distinct_objects": trace.footprint}
    return trace


def _phases(is_quick: bool, seed: int) -> T.Trace:
    from page_policy_study_10m import synthetic_phases

    return synthetic_phases(1_000_000 if is_quick else 10_000_000, seed=seed)


TRACES = [
    TraceSpec("sqlite-ycsb", True, "SQLite, YCSB-A-like zipfian reads/updates (apsw VFS log)",
              _sqlite("ycsb", (60_000, 4), (20_000, 2))),
    TraceSpec("sqlite-tpcc", True, "SQLite, TPC-C-like mix (apsw VFS log)", _sqlite("tpcc", (5_000, 4), (1_500, 2))),
    TraceSpec("rocksdb-zipf", True, "RocksDB .sst reads (strace pread64), zipf gets + 5% scans, 8 MB block cache",
              _rocksdb),
    TraceSpec("sqlite-analytic", True, "SQLite, index-heavy reporting mix: range aggregates, joins (apsw VFS log)",
              _sqlite("analytic", (600, 8), (150, 2))),
    TraceSpec("zipf0.8", False, "zipf 0.8 over 20k pages, 1M requests",
              lambda q, s: T.zipf(100_000 if q else 1_000_000, 2_000 if q else 20_000, 0.8, seed=s)),
    TraceSpec("scan_loop_hot", False, "hot set + loop + one-off scans in four phases, 600k requests",
              lambda q, s: T.scan_loop_hot(100_000 if q else 600_000, seed=s)),
    TraceSpec("sqlite-scan", True, "SQLite, zipfian point reads + 5% range scans (apsw VFS log)",
              _sqlite("scan", (40_000, 4), (10_000, 2))),
    TraceSpec("phases-10m", False, "four phases of zipf hot sets, a loop and scans, 10M requests", _phases),
]


def trace_path(spec: TraceSpec, quick: bool, seed: int) -> Path:
    return TRACE_DIR / f"{spec.name}-{'quick' if quick else 'full'}-s{seed}.oracleGeneral"


def load_trace(spec: TraceSpec, quick: bool, seed: int) -> T.Trace:
    """The cached trace file, made (recorded or generated) and written with a .json description if missing."""
    path = trace_path(spec, quick, seed)
    if not path.exists():
        TRACE_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        trace = spec.make(quick, seed)
        tmp = path.with_name(path.name + ".partial")
        T.write_oracle_general(trace, tmp)
        tmp.replace(path)
        desc = {"name": spec.name, "recorded_from_real_software": spec.real, "what": spec.what,
                "requests": len(trace), "distinct_pages": trace.footprint, "seed": seed,
                "made_in_s": round(time.monotonic() - t0, 1),
                **{k: v for k, v in trace.meta.items() if isinstance(v, (int, float, str, bool, dict))}}
        path.with_name(path.name + ".json").write_text(json.dumps(desc, indent=2, sort_keys=True, default=str) + "\n")
        print(f"made {path.name}: {len(trace):,} requests, {trace.footprint:,} pages in {desc['made_in_s']} s", flush=True)
    trace = T.read_trace(path)
    trace.name = spec.name
    return trace


# --------------------------------------------------------------------------- held-out judging


def tuning_split(n_requests: int, share: float) -> int:
    """Requests [0, split) tune, [split, n) are held out; both parts non-empty."""
    if not 0 < share < 1:
        raise ValueError(f"the tuning share must be in (0, 1), got {share}")
    if n_requests < 2:
        raise ValueError("a trace needs at least two requests to hold some out")
    return min(n_requests - 1, max(1, int(n_requests * share)))


def held_out_miss_ratio(tr: PreparedTrace, split: int, cap: int, policy: str, **knobs) -> float:
    """Miss ratio on requests [split, n) of one cold-start run over the whole trace."""
    miss = POLICIES[policy](tr, int(cap), **knobs)
    return float(np.asarray(miss[split:], dtype=np.float64).mean())


def lcs_held_out(path: Path, split: int, cls: str, cap_bytes: int) -> float:
    """libCacheSim's miss ratio on requests [split, n) of `path`, its cache warmed by requests [0, split).

    One cache and one reader: `process_trace(reader, 0, split)` runs the tuning
    part, `process_trace(reader, split)` the rest, whose miss ratio is returned
    (tests/test_page_policy_heldout.py checks it equals the simulator's count).
    """
    import libcachesim as lcs

    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
    cache = getattr(lcs, cls)(int(cap_bytes), hashpower=20)
    cache.process_trace(reader, 0, split)
    return float(cache.process_trace(reader, split, -1)[0])  # readers are never closed: close + GC double-frees


# --------------------------------------------------------------------------- tuning


def tune(trace: T.Trace, cap: int, budget: int, seed: int, tuner_name: str, rate: float = 1.0) -> tuple[str, dict, float]:
    """Search policy + knobs on `trace` (cold start, all of it) at `cap` pages; (policy, knobs, its miss ratio).

    `rate`: the trace is a spatial sample at this rate; periods counted in requests are simulated scaled by
    it (`sampled_knobs`), and the knobs returned are the full trace's."""
    from autosys.core.trial import Result
    from autosys.tuners import make_tuner

    tr = PreparedTrace.of(trace)
    space = policy_space()
    tuner = make_tuner(tuner_name, space, direction="minimize", seed=seed)
    for choice in space["policy"].choices:  # every policy's defaults first, then the search
        config = {"policy": choice}
        config.update({p.name: p.default_value() for p in space if p.name != "policy" and space.is_active(p.name, config)})
        tuner.enqueue(config, "default")
    for variant in TEXTBOOK:
        tuner.enqueue(variant, "textbook")
    best = (float("inf"), "lru", {})
    for _ in range(budget + len(space["policy"].choices) + len(TEXTBOOK)):
        trial = tuner.ask()
        policy, knobs = simulator_args(space.validate(trial.config))
        try:
            miss = simulate(tr, cap, policy, **sampled_knobs(policy, knobs, rate)).miss_ratio
        except ValueError as exc:  # a policy that cannot run at this size (GL-Cache needs two pages)
            tuner.tell(trial, Result.failed(str(exc)))
            continue
        tuner.tell(trial, Result.complete(miss, {"miss_ratio": miss}))
        if miss < best[0]:
            best = (miss, policy, knobs)
    return best[1], best[2], best[0]


def _short(knobs: dict) -> str:
    return ",".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items())


def evaluate_trace(spec: TraceSpec, trace: T.Trace, sizes, args, lcs_have: dict[str, str]) -> tuple[list, list]:
    """All rows (every policy, held-out) and the sampled-tuning rows for one trace."""
    n = len(trace)
    split = tuning_split(n, args.tune_share)
    tr = PreparedTrace.of(trace)
    part = trace.head(split)
    sample = T.spatial_sample(part, args.sample_rate, seed=args.seed)
    rate = sample.meta.get("sample_rate", 1.0)
    page_sizes = trace.size_array()
    if (page_sizes != page_sizes[0]).any():
        raise ValueError(f"{spec.name}: objects of different sizes; this experiment counts pages")
    page_size = int(page_sizes[0])
    full_path = TRACE_DIR / f"_{spec.name}.oracleGeneral"
    T.write_oracle_general(trace, full_path)
    print(f"\n== {spec.name} ({'real' if spec.real else 'synthetic'}): {n:,} requests, {tr.n_obj:,} pages; "
          f"tune on the first {split:,}, judge on {n - split:,}; 1% sample: {len(sample):,} requests, "
          f"{sample.footprint:,} pages (rate {rate:.4f})", flush=True)
    base = dict(trace=spec.name, real=spec.real, requests=n, tune_requests=split, held_out_requests=n - split,
                pages=tr.n_obj)
    rows, sampled = [], []
    for frac in sizes:
        cap = capacity_of(frac, tr.n_obj)
        res: dict[str, tuple[str, float, float, str]] = {}  # policy -> (source, held-out miss, cpu s, detail)
        for name in ["lru", "belady"] + OURS:
            t0 = time.process_time()
            try:
                res[name] = ("bound" if name == "belady" else "autosys-default",
                             held_out_miss_ratio(tr, split, cap, name), time.process_time() - t0, "")
            except ValueError as exc:
                print(f"  {frac:.0%}: {name} cannot run: {exc}", flush=True)
        t0 = time.process_time()
        policy, knobs, tune_miss = tune(part, cap, args.budget, args.seed, args.tuner)
        tune_cpu = time.process_time() - t0
        t0 = time.process_time()
        res["autosys"] = ("autosys", held_out_miss_ratio(tr, split, cap, policy, **knobs), tune_cpu,
                          f"{policy} {_short(knobs)}")
        run_cpu = time.process_time() - t0
        cap_s = max(1, int(round(cap * rate)))
        t0 = time.process_time()
        s_policy, s_knobs, _ = tune(sample, cap_s, args.budget, args.seed, args.tuner, rate)
        s_cpu = time.process_time() - t0
        res["autosys-sampled"] = ("autosys", held_out_miss_ratio(tr, split, cap, s_policy, **s_knobs), s_cpu,
                                  f"{s_policy} {_short(s_knobs)}")
        for label, cls in lcs_have.items():
            limit = LCS_MAX_REQUESTS.get(cls)
            if limit is not None and n > limit:
                print(f"  {frac:.0%}: skipped libCacheSim {label} ({n:,} requests > {limit:,}; too slow)", flush=True)
                continue
            t0 = time.process_time()
            res[f"lcs:{label}"] = ("libcachesim", lcs_held_out(full_path, split, cls, cap * page_size),
                                   time.process_time() - t0, "")
            gc.collect()
        lru, opt = res["lru"][1], res["belady"][1]
        for name, (source, miss, cpu, detail) in res.items():
            rows.append(dict(base, cache=frac, cache_pages=cap, source=source, policy=name, held_out_miss_ratio=miss,
                             gap_closed=gap_closed(miss, lru, opt), cpu_s=round(cpu, 3), detail=detail))
        full_gap = gap_closed(res["autosys"][1], lru, opt)
        s_gap = gap_closed(res["autosys-sampled"][1], lru, opt)
        sampled.append(dict(trace=spec.name, real=spec.real, cache=frac, cache_pages=cap, sample_rate=rate,
                            sample_requests=len(sample), sample_pages=sample.footprint, sample_cache_pages=cap_s,
                            full_choice=res["autosys"][3], full_gap=full_gap, full_tune_cpu_s=round(tune_cpu, 2),
                            sample_choice=res["autosys-sampled"][3], sample_gap=s_gap,
                            sample_tune_cpu_s=round(s_cpu, 2), diff_points=100 * (s_gap - full_gap)))
        lcs = {k: v for k, v in res.items() if k.startswith("lcs:")}
        best = max(lcs, key=lambda k: gap_closed(lcs[k][1], lru, opt)) if lcs else None
        print(f"  {frac:>4.0%} cap={cap}: LRU {lru:.4f} Belady {opt:.4f} | autosys {full_gap:.1%} "
              f"({res['autosys'][3]}; tuning miss {tune_miss:.4f}, {tune_cpu:.0f}+{run_cpu:.0f} CPU s) | "
              f"sampled {s_gap:.1%} ({res['autosys-sampled'][3]}, {s_cpu:.1f} CPU s)", flush=True)
        print("        libCacheSim: " + "  ".join(f"{k[4:]}={gap_closed(v[1], lru, opt):.1%}" for k, v in lcs.items())
              + (f"  -> best {best[4:]}" if best else ""), flush=True)
        print("        autosys defaults: " + "  ".join(
            f"{k}={gap_closed(v[1], lru, opt):.1%}" for k, v in res.items() if v[0] == "autosys-default" and k != "lru"),
            flush=True)
    full_path.unlink(missing_ok=True)
    return rows, sampled


# --------------------------------------------------------------------------- summary and plot


def summarize(df):
    """Per trace and cache: autosys's held-out gap closed vs the best libCacheSim policy's."""
    import pandas as pd

    out = []
    for (trace, cache), sub in df.groupby(["trace", "cache"], sort=False):
        sub = sub.set_index("policy")
        lcs = sub[sub.source == "libcachesim"]
        best = lcs.gap_closed.idxmax() if len(lcs) else None
        ours = float(sub.loc["autosys", "gap_closed"])
        out.append(dict(trace=trace, real=bool(sub.real.iloc[0]), requests=int(sub.requests.iloc[0]), cache=cache,
                        autosys_gap=ours, autosys_choice=sub.loc["autosys", "detail"],
                        best_lcs=best[4:] if best else "", best_lcs_gap=float(lcs.gap_closed.max()) if best else np.nan,
                        margin_points=100 * (ours - float(lcs.gap_closed.max())) if best else np.nan,
                        lcs_policies=len(lcs)))
    return pd.DataFrame(out)


def report(summary, sampled) -> None:
    n = len(summary)
    beat = int((summary.margin_points > 0).sum())
    avg = float(summary.margin_points.mean())
    half = int((summary.autosys_gap >= 0.5).sum())
    traces = summary.trace.nunique()
    print("\nheld-out share of the LRU->Belady gap closed, autosys vs the best libCacheSim policy:")
    print(summary[["trace", "cache", "autosys_gap", "best_lcs", "best_lcs_gap", "margin_points"]].round(3).to_string(index=False))
    print(f"traces: {traces} ({int(summary.groupby('trace').real.first().sum())} recorded from real software, "
          f"largest {summary.requests.max():,} requests)")
    print(f"beats the best libCacheSim policy on {beat}/{n} trace x size: {'MET' if beat == n else 'NOT MET'}")
    print(f"average margin {avg:+.1f} points (target >= +10): {'MET' if avg >= 10 else 'NOT MET'}")
    print(f">= 50% of the gap on {half}/{n}: {'MET' if half > n / 2 else 'NOT MET'} (target: most)")
    if len(sampled):
        worst = float(sampled.diff_points.abs().max())
        within = int((sampled.diff_points.abs() <= 2).sum())
        print(f"sampled tuning: within 2 points of the full-trace choice on {within}/{len(sampled)}; worst "
              f"{worst:.1f} points: {'MET' if within == len(sampled) else 'NOT MET'}")


def plot(df, path: Path | None = None) -> None:
    """Held-out gap closed per trace at each cache size: autosys (solid) vs every libCacheSim policy (hatched)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    caches = sorted(df.cache.unique())
    names = list(dict.fromkeys(df.trace))
    show = ["autosys", "autosys-sampled"] + [p for p in dict.fromkeys(df[df.source == "libcachesim"].policy) if p != "lcs:LRU"]
    fig, axes = plt.subplots(len(caches), 1, figsize=(max(10, 1.6 * len(names)), 3.8 * len(caches)), squeeze=False)
    width = 0.85 / len(show)
    for ax, cache in zip(axes[:, 0], caches):
        sub = df[df.cache == cache]
        for i, pol in enumerate(show):
            vals = [sub[(sub.trace == t) & (sub.policy == pol)].gap_closed.mean() for t in names]
            ax.bar(np.arange(len(names)) + i * width, np.clip(vals, -0.3, None), width, label=pol,
                   color="k" if pol == "autosys" else ("0.45" if pol == "autosys-sampled" else plt.cm.tab20(i % 20)),
                   hatch="//" if pol.startswith("lcs:") else None)
        ax.axhline(0.5, color="k", ls="--", lw=0.8)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_xticks(np.arange(len(names)) + 0.42, names, fontsize=8)
        ax.set_ylabel(f"gap closed, held out ({cache:.0%})")
        ax.set_ylim(-0.3, 1.0)  # values below -30% are clipped
    axes[0, 0].legend(ncol=8, fontsize=7)
    fig.tight_layout()
    fig.savefig(path or RESULTS / "page_policy.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small traces and a smaller tuning budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=None, help="tuning trials after the defaults and textbook variants (30; quick 10)")
    ap.add_argument("--tuner", default="random")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--tune-share", type=float, default=0.5, help="the first share of each trace tunes")
    ap.add_argument("--sample-rate", type=float, default=0.01, help="spatial sampling rate for sampled tuning")
    ap.add_argument("--traces", default="", help="comma-separated trace names (default: all)")
    ap.add_argument("--record-only", action="store_true", help="make the trace files and stop")
    ap.add_argument("--resume", action="store_true", help="keep traces already in the partial CSVs")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG and summary from the last CSV")
    ap.add_argument("--tag", default="", help="suffix of the output files (run traces in parallel, then --merge)")
    ap.add_argument("--merge", default="", help="comma-separated tags whose partial CSVs join this run's (with --resume)")
    args = ap.parse_args(argv)
    import pandas as pd

    tag = ("_quick" if args.quick else "") + args.tag
    csv, scsv = RESULTS / f"page_policy{tag}.csv", RESULTS / f"page_policy_sampled{tag}.csv"
    if args.plot_only:
        df = pd.read_csv(csv)
        plot(df, RESULTS / f"page_policy{tag}.png")
        report(summarize(df), pd.read_csv(scsv) if scsv.exists() else pd.DataFrame())
        return 0
    args.budget = args.budget if args.budget is not None else (10 if args.quick else 30)
    sizes = [float(s) for s in args.sizes.split(",")]
    specs = [s for s in TRACES if not args.traces or s.name in args.traces.split(",")]
    if args.traces and len(specs) != len(args.traces.split(",")):
        raise SystemExit(f"unknown trace in {args.traces!r}; known: {', '.join(s.name for s in TRACES)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.record_only:
        for spec in specs:
            load_trace(spec, args.quick, args.seed)
        return 0
    from autosys_adapters.pagecache.simulator import warmup

    warmup()
    have, lacks = lcs_policies()
    print(f"libCacheSim policies: {', '.join(have) or 'none (libcachesim not installed)'}; "
          f"the binding lacks: {', '.join(lacks) or 'none'}", flush=True)
    part_csv, part_scsv = RESULTS / f"page_policy{tag}.partial.csv", RESULTS / f"page_policy_sampled{tag}.partial.csv"
    done: set[str] = set()
    for other in filter(None, args.merge.split(",")):
        if not args.resume:
            raise SystemExit("--merge needs --resume (it adds to this run's partial CSVs)")
        for mine, theirs in ((part_csv, RESULTS / f"page_policy{tag}{other}.partial.csv"),
                             (part_scsv, RESULTS / f"page_policy_sampled{tag}{other}.partial.csv")):
            if not theirs.exists():
                raise SystemExit(f"nothing to merge: no {theirs.name}")
            add = pd.read_csv(theirs)
            if mine.exists():
                old = pd.read_csv(mine)
                add = pd.concat([old[~old.trace.isin(set(add.trace))], add])
            add.to_csv(mine, index=False)
    if args.resume and part_csv.exists() and part_scsv.exists():
        done = set(pd.read_csv(part_csv).trace) & set(pd.read_csv(part_scsv).trace)
        print(f"resuming: {', '.join(sorted(done)) or 'nothing'} already done", flush=True)
    else:
        part_csv.unlink(missing_ok=True)
        part_scsv.unlink(missing_ok=True)
    for spec in specs:
        if spec.name in done:
            continue
        rows, sampled = evaluate_trace(spec, load_trace(spec, args.quick, args.seed), sizes, args, have)
        for frame, path in ((rows, part_csv), (sampled, part_scsv)):
            pd.DataFrame(frame).to_csv(path, mode="a", header=not path.exists(), index=False)
    names = [s.name for s in specs]
    df = pd.read_csv(part_csv)
    df = df[df.trace.isin(names)]
    sdf = pd.read_csv(part_scsv)
    sdf = sdf[sdf.trace.isin(names)]
    df.to_csv(csv, index=False)
    sdf.to_csv(scsv, index=False)
    summary = summarize(df)
    summary.to_csv(RESULTS / f"page_policy_summary{tag}.csv", index=False)
    report(summary, sdf)
    plot(df, RESULTS / f"page_policy{tag}.png")
    print(f"wrote {csv.name}, {scsv.name}, page_policy_summary{tag}.csv and page_policy{tag}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
