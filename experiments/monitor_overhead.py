"""Cost of monitoring: CPU share of one core used by the sampler thread at a given rate.

Samples a SystemMonitor (machine + this process) and a CounterMonitor fed by a
busy application loop, and reads the sampler thread's own CPU time from the OS
(psutil per-thread times), so the figure is the sampler's, not the app's.

    python experiments/monitor_overhead.py --seconds 30 --hz 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autosys.online.monitor import CounterMonitor, Sampler, SystemMonitor  # noqa: E402
from autosys.storage import SQLiteStorage  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def thread_cpu_seconds(native_id: int) -> float:
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return float("nan")


def measure(hz: float, seconds: float) -> dict:
    counter = CounterMonitor("app")
    with tempfile.TemporaryDirectory() as tmp:
        storage = SQLiteStorage(Path(tmp) / "s")
        sampler = Sampler([SystemMonitor(pid=os.getpid()), counter], interval=1.0 / hz, sink=storage, flush_every=10)
        sampler.start()
        native = sampler._thread.native_id
        stop = threading.Event()

        def app():
            while not stop.is_set():
                t0 = time.perf_counter()
                sum(range(2000))
                counter.record("op", time.perf_counter() - t0)

        worker = threading.Thread(target=app, daemon=True)
        worker.start()
        start_cpu, start = thread_cpu_seconds(native), time.monotonic()
        time.sleep(seconds)
        cpu, wall = thread_cpu_seconds(native) - start_cpu, time.monotonic() - start
        stop.set()
        worker.join()
        sampler.stop()
        readings = sum(1 for _ in storage.observations())
        storage.close()
    return {"hz": hz, "seconds": round(wall, 1), "sampler_cpu_s": round(cpu, 4),
            "percent_of_core": round(100 * cpu / wall, 3), "readings_stored": readings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hz", type=float, nargs="+", default=[1.0, 10.0])
    args = parser.parse_args()
    table = pd.DataFrame([measure(hz, args.seconds) for hz in args.hz])
    print(table.to_string(index=False))
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "monitor_overhead.csv", index=False)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([f"{h:g} Hz" for h in table["hz"]], table["percent_of_core"])
    ax.axhline(1.0, color="red", ls="--", label="1% of a core")
    ax.set_ylabel("% of one core")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "monitor_overhead.png", dpi=110)


if __name__ == "__main__":
    main()
