"""CPU cost of sampling each system's monitors during trials, at 1 Hz (target: under 1% of one core).

For every registered system (server systems only when their server is up),
the script sets the system up as a study does and runs the study's trial
sampler (`autosys.run.monitoring.TrialSampler`, the code every trial runs)
over its `monitors()` at `--hz`. All samplers run side by side in this
process, their starts staggered, while the main thread runs a busy loop (a
trial competing for the interpreter). Each sampler thread's own CPU time is
read from its POSIX thread CPU clock (nanosecond resolution; not wall time),
so the figure is the sampler's alone, and it is taken in `--windows` windows
of `--seconds` each: the table gives the median share of one core over the
windows with a 95% bootstrap interval, and the CPU milliseconds per reading.

For PostgreSQL the server backend that answers the monitor's queries is
charged too (its process CPU time over the whole run, `server_percent`; 10 ms ticks); MariaDB runs its
connections as threads of one process, which this does not separate.

    nice -n 10 python experiments/monitor_overhead.py --seconds 10 --windows 6 --hz 1

Writes experiments/results/monitor_overhead.csv and .png.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys.core.monitor import DeferredMonitor, MonitorWarning  # noqa: E402
from autosys.core.registry import available_systems, make_system  # noqa: E402
from autosys.run.monitoring import TrialSampler, has_monitors  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = {"postgres": 5432, "mysql": 3306}


def _up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def thread_cpu(ident: int) -> float:
    """CPU seconds a thread of this process has used (its POSIX CPU-time clock)."""
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


class Tracked:
    """One system's trial sampler, with the monitors it built kept for inspection."""

    def __init__(self, name: str, system, interval: float):
        self.name, self.system = name, system
        self.monitors: list = []

        def build():
            self.monitors = list(system.monitors())
            return self.monitors

        self.sampler = TrialSampler(build, interval=interval, stop_deadline=10.0)

    def start(self) -> None:
        self.sampler.start()
        deadline = time.monotonic() + 30
        while self.sampler.native_id is None and time.monotonic() < deadline:
            time.sleep(0.01)
        self.ident = self.sampler._thread.ident  # noqa: SLF001 - the thread whose CPU clock we read

    def readings(self) -> int:
        with self.sampler._lock:  # noqa: SLF001
            return self.sampler._readings.samples  # noqa: SLF001

    def server_process(self) -> psutil.Process | None:
        for monitor in self.monitors:
            inner = monitor._monitor if isinstance(monitor, DeferredMonitor) else monitor  # noqa: SLF001
            conn = getattr(inner, "_conn", None)
            pid = getattr(getattr(conn, "info", None), "backend_pid", None)  # psycopg: the PostgreSQL backend
            if pid:
                return psutil.Process(pid)
        return None


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    if len(values) < 2:
        return float("nan"), float("nan")
    medians = np.median(rng.choice(values, size=(n, len(values)), replace=True), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one measurement window")
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--hz", type=float, default=1.0)
    parser.add_argument("--systems", nargs="*", default=None, help="registered names (default: all)")
    args = parser.parse_args()
    warnings.simplefilter("default", MonitorWarning)

    names = args.systems or sorted(available_systems())
    tracked: list[Tracked] = []
    skipped: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="autosys-monitor-overhead-"))
    for name in names:
        if name in SERVERS and not _up(SERVERS[name]):
            skipped[name] = f"no server at 127.0.0.1:{SERVERS[name]}"
            continue
        try:
            system = make_system(name, {})
            system.workdir = workdir / name
            system.setup()
        except Exception as exc:  # an extra or a tool missing here
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        if not has_monitors(system):
            skipped[name] = "no monitors"
            system.teardown()
            continue
        tracked.append(Tracked(name, system, 1.0 / args.hz))

    stop = threading.Event()

    def trial_like_load() -> None:  # the main work of a trial, competing for the interpreter
        while not stop.is_set():
            sum(i * i for i in range(20_000))
            time.sleep(0.001)

    load = threading.Thread(target=trial_like_load, daemon=True)
    load.start()
    for i, t in enumerate(tracked):
        t.start()
        time.sleep(1.0 / args.hz / max(len(tracked), 1))  # staggered, so readings do not all coincide
    time.sleep(1.0 / args.hz)  # past the priming reading
    loadavg = os.getloadavg()
    rows = []
    servers = {t.name: t.server_process() for t in tracked}
    servers = {n: p for n, p in servers.items() if p is not None}
    start_srv = {n: (p.cpu_times().user + p.cpu_times().system) for n, p in servers.items()}
    first = time.monotonic()
    for window in range(args.windows):
        start_cpu = {t.name: thread_cpu(t.ident) for t in tracked}
        start_n = {t.name: t.readings() for t in tracked}
        start = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - start
        for t in tracked:
            cpu = thread_cpu(t.ident) - start_cpu[t.name]
            n = t.readings() - start_n[t.name]
            row = {"system": t.name, "window": window, "wall_s": wall, "cpu_s": cpu, "readings": n,
                   "percent_of_core": 100 * cpu / wall, "ms_per_reading": 1e3 * cpu / n if n else float("nan")}
            rows.append(row)
    # a server process's CPU time ticks in 10 ms steps: charged over the whole run, not per window
    server_percent = {n: 100 * ((p.cpu_times().user + p.cpu_times().system) - start_srv[n]) / (time.monotonic() - first)
                      for n, p in servers.items()}
    stop.set()
    errors = {}
    metrics = {}
    for t in tracked:
        readings = t.sampler.stop()
        errors[t.name] = "; ".join(f"{k}: {v}" for k, v in readings.errors.items())
        metrics[t.name] = len(readings.summary())
        t.system.teardown()
    loadavg_end = os.getloadavg()

    raw = pd.DataFrame(rows)
    rng = np.random.default_rng(0)
    table = []
    for name, group in raw.groupby("system", sort=False):
        pct = group["percent_of_core"].to_numpy()
        lo, hi = bootstrap_ci(pct, rng)
        entry = {
            "system": name,
            "monitors": ", ".join(m.name for m in next(t for t in tracked if t.name == name).monitors),
            "metrics": metrics[name],
            "hz": args.hz,
            "windows": len(group),
            "readings": int(group["readings"].sum()),
            "percent_of_core": round(float(np.median(pct)), 4),
            "ci95_low": round(lo, 4),
            "ci95_high": round(hi, 4),
            "ms_per_reading": round(float(np.nanmedian(group["ms_per_reading"])), 3),
            "under_1_percent": bool(hi < 1.0) if not math.isnan(hi) else bool(np.median(pct) < 1.0),
        }
        if name in server_percent:
            entry["server_percent"] = round(server_percent[name], 4)
        if errors.get(name):
            entry["errors"] = errors[name]
        table.append(entry)
    out = pd.DataFrame(table)
    pd.set_option("display.width", 200)
    print(out.drop(columns=["monitors"]).to_string(index=False))
    print(f"\nmonitors per system: " + "; ".join(f"{r['system']}: {r['monitors']}" for r in table))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print(f"host: {psutil.cpu_count()} CPUs; load average {loadavg[0]:.2f} at the start, {loadavg_end[0]:.2f} at the end "
          f"(measured under that load, alongside other work); {args.windows} windows of {args.seconds:g} s; the "
          f"figure is each sampler thread's own CPU clock, so other load slows it but is not charged to it")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.to_csv(RESULTS / "monitor_overhead.csv", index=False)
    raw.to_csv(RESULTS / "monitor_overhead_windows.csv", index=False)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(out))
    err = np.vstack([out["percent_of_core"] - out["ci95_low"], out["ci95_high"] - out["percent_of_core"]]).clip(0)
    ax.bar(x, out["percent_of_core"], yerr=err, capsize=3, color="#4c72b0", label="trial sampler thread")
    if "server_percent" in out:
        ax.bar(x, out["server_percent"].fillna(0), bottom=out["percent_of_core"], color="#dd8452",
               label="PostgreSQL backend answering it")
    ax.axhline(1.0, color="red", ls="--", label="1% of a core (target)")
    ax.set_xticks(x, out["system"], rotation=30, ha="right")
    ax.set_ylabel(f"% of one core at {args.hz:g} Hz")
    ax.set_title("Cost of sampling each system's monitors during trials")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "monitor_overhead.png", dpi=110)


if __name__ == "__main__":
    main()
