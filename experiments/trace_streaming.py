"""Peak memory of simulating a trace streamed from disk vs loaded whole, as the trace grows.

A sized zipf trace (0.8, 200,000 objects of 64 B-64 KB) of N requests is written
to oracleGeneral in chunks (never whole in memory). Each measurement runs in a
fresh Python process that imports numpy + numba kernels, compiles the kernels
on a tiny trace, then either streams the file (`formats.simulate_stream`,
256K-request chunks, LRU + S3-FIFO + SIEVE in one pass) or loads it whole
(`traces.read_trace` + `PreparedTrace` + the same sized kernels), and reports
its peak RSS during the run (VmHWM, reset after compiling) and wall time. Bounded means the streamed
peak stays flat as N grows while the whole-trace peak grows with N.

    nice -n 10 .venv/bin/python experiments/trace_streaming.py             # 5M and 20M requests
    nice -n 10 .venv/bin/python experiments/trace_streaming.py --sizes 1000000 5000000

Writes experiments/results/trace_streaming.csv and .png. The traces are written
under experiments/results/page_traces/ (not committed) and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "experiments" / "results"
OBJECTS = 200_000

CHILD = r"""
import json, sys, time
import numpy as np
from autosys_adapters.pagecache import formats as F, traces as T
from autosys_adapters.pagecache.sized import SizedState, byte_capacity, footprint_bytes, simulate_sized
mode, path = sys.argv[1], sys.argv[2]
simulate_sized(np.array([0, 1, 0], np.int32), np.array([1, 1, 1]), 2, 1, "s3fifo")  # compile first
for p in ("lru", "sieve"):
    simulate_sized(np.array([0, 1, 0], np.int32), np.array([1, 1, 1]), 2, 1, p)
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak RSS (VmHWM): the numba compile above must not count
base = F.current_rss_bytes()
t0 = time.perf_counter()
if mode == "stream":
    st = F.simulate_stream(path, 0.1, ("lru", "s3fifo", "sieve"), chunk=1 << 18)
    out = {p: s.miss_ratio for p, s in st.items()}
else:
    p = T.PreparedTrace.of(T.read_trace(path))
    cap = byte_capacity(0.1, footprint_bytes(p.ids, p.sizes, p.n_obj))
    out = {name: simulate_sized(p.ids, p.sizes, p.n_obj, cap, name).miss_ratio for name in ("lru", "s3fifo", "sieve")}
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss": F.peak_rss_bytes(), "base_rss": base, **out}))
"""


def write_trace(path: Path, n: int, seed: int = 0) -> None:
    from autosys_adapters.pagecache import formats as F

    rng = np.random.default_rng(seed)
    per_object = rng.integers(64, 65_536, OBJECTS)
    p = 1.0 / np.arange(1, OBJECTS + 1) ** 0.8
    cdf = np.cumsum(p / p.sum())

    def chunks():
        for lo in range(0, n, 1 << 20):
            m = min(1 << 20, n - lo)
            ids = np.minimum(np.searchsorted(cdf, rng.random(m)), OBJECTS - 1)
            yield ids, per_object[ids]

    F.write_oracle_stream(chunks(), path)


def measure(mode: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True, timeout=3600,
                          cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5_000_000, 20_000_000])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import pandas as pd

    work = RESULTS / "page_traces"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        path = work / f"streaming-zipf-{n}.oracleGeneral"
        t0 = time.perf_counter()
        write_trace(path, n)
        print(f"wrote {path.name}: {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s", flush=True)
        try:
            for rep in range(args.repeats):  # interleaved: stream, whole, stream, whole
                for mode in ("stream", "whole"):
                    r = measure(mode, path)
                    rows.append(dict(requests=n, mode=mode, repeat=rep, file_mb=path.stat().st_size / 1e6,
                                     peak_rss_mb=r["peak_rss"] / 1e6, base_rss_mb=r["base_rss"] / 1e6,
                                     seconds=r["seconds"], lru=r["lru"], s3fifo=r["s3fifo"], sieve=r["sieve"]))
                    print(f"  {mode:6s} rep {rep}: peak RSS {r['peak_rss'] / 1e6:7.0f} MB (after imports "
                          f"{r['base_rss'] / 1e6:.0f} MB), {r['seconds']:.1f} s, LRU miss {r['lru']:.4f}", flush=True)
        finally:
            path.unlink(missing_ok=True)
    df = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "trace_streaming.csv", index=False)
    table = df.groupby(["requests", "mode"]).agg(file_mb=("file_mb", "first"), peak_rss_mb=("peak_rss_mb", "median"),
                                                 seconds=("seconds", "median"), lru=("lru", "first")).reset_index()
    print("\npeak RSS (median of repeats; taken on a shared, loaded 2-core machine: times are noisy):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    same = df.groupby("requests").apply(lambda g: g[["lru", "s3fifo", "sieve"]].nunique().max() == 1)
    print("stream and whole give identical miss ratios:", bool(same.all()))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, g in table.groupby("mode"):
        ax.plot(g["requests"] / 1e6, g["peak_rss_mb"], marker="o", label=mode)
    ax.set_xlabel("trace length (M requests)")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_title("sized LRU+S3-FIFO+SIEVE: streamed vs whole trace")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "trace_streaming.png", dpi=120)


if __name__ == "__main__":
    main()
