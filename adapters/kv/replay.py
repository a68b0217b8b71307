"""The timed replay of a prepared workload against one engine.

On a shared machine the wall clock also counts the time this thread sat
ready to run while other jobs held the CPUs. Linux reports that time per
thread (/proc/thread-self/schedstat, second field: run-queue wait), so the
throughput here divides by wall time minus that wait: the time the stream
was running or blocked on its own I/O, fsyncs and locks. Waits the engine
causes (an fsync, a write stall) still count; other people's jobs do not.
It is never counted below the thread's own CPU time (a preemption at the
edge of the window could otherwise charge a wait from outside it and give
an absurd rate). Where schedstat is missing it falls back to plain wall time. The plain
wall-clock figure is reported too (`throughput_wall`). The cyclic garbage
collector is paused while the clock runs (as `timeit` does): a collection
of the benchmark's own objects is not a cost of the engine, and one pause
of a few ms decided 30% of a 15 ms dict run.

The host itself also changes speed in phases of a few seconds (see
autosys/hostspeed.py): a calibration loop runs just before and after the
replay, and with `normalize` (the default) the on-CPU part of the busy time
is rescaled to the speed the process saw when it first calibrated. The
figure before that rescaling is `throughput_raw`; the slowdown is reported
as `host_slowdown`. It is the smaller of the two calibrations, not their
mean: a preemption (or the engine's own background threads: RocksDB's
flushes after the load) slows one short calibration loop, never speeds one
up, while a host phase of a few seconds slows both. With the mean, one
calibration read 2.8x slow on a loaded host put a dict run at 5.0M ops/s
(2.6M raw), and RocksDB defaults read 3-7x their re-measured rate; one such
run, the study's first, set a bar that no config passed in 30 trials.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from autosys_adapters.kv.engines import KVEngine
from autosys.run.hostspeed import HostSpeed, normalised_seconds
from autosys_adapters.kv.workloads import PreparedWorkload
from autosys_adapters.workloads.ycsb import DELETE, INSERT, READ, RMW, SCAN, UPDATE


def run_queue_wait_ns() -> int | None:
    """Nanoseconds this thread has waited on a run queue (None where Linux schedstat is absent)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def replay(engine: KVEngine, prepared: PreparedWorkload, seconds: float, normalize: bool = True) -> dict[str, Any]:
    """Run the operations in order until done or `seconds` of wall time passed.

    Engines with a memory probe (`KVEngine.memory_probe`) have it sampled
    every `PROBE_EVERY` operations: `memory_peak` is the highest reading (0
    without a probe).

    Returns throughput (operations per second of wall time less run-queue
    wait, and with `normalize` at reference host speed; see the module doc),
    throughput_raw, throughput_wall, p95 latency (wall) in microseconds,
    how many operations ran, and checksums of what was read (read_hits,
    scanned) that must agree across engines for the same stream.
    """
    get, put, delete, scan = engine.get, engine.put, engine.delete, engine.scan
    ops, keys, values = prepared.ops, prepared.keys, prepared.values
    scan_length = prepared.workload.base.scan_length
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = HostSpeed.slowdown() if normalize else 1.0
        result = _timed(get, put, delete, scan, ops, keys, values, scan_length, seconds, engine.memory_probe())
        slowdown = min(before, HostSpeed.slowdown()) if normalize else 1.0
    finally:
        if gc_was_enabled:
            gc.enable()
    busy_s, cpu_s = result.pop("busy_s"), result.pop("cpu_s")
    result["throughput_raw"] = result["throughput"]
    result["host_slowdown"] = slowdown
    if normalize and busy_s > 0:
        result["throughput"] = result["done"] / normalised_seconds(busy_s, cpu_s, slowdown)
    return result


PROBE_EVERY = 256  # operations between two samples of an engine's memory probe (`KVEngine.memory_probe`)


def _timed(get, put, delete, scan, ops, keys, values, scan_length, seconds, probe=None) -> dict[str, Any]:
    latencies = np.empty(len(ops), dtype=np.int64)
    clock = time.perf_counter_ns
    read_hits = scanned = done = 0
    n = len(ops)
    # without a probe one chunk: the inner loop is the whole replay, as before
    chunk = PROBE_EVERY if probe is not None else max(1, n)
    peak = 0
    over = False
    # the wall interval encloses the wait interval, so wait <= wall; on-CPU time bounds it from below
    start = clock()
    cpu0 = time.thread_time_ns()
    waited0 = run_queue_wait_ns()
    deadline = start + int(seconds * 1e9)
    for lo in range(0, n, chunk):
        for i in range(lo, min(lo + chunk, n)):
            op = ops[i]
            t0 = clock()
            if op == READ:
                if get(keys[i]) is not None:
                    read_hits += 1
            elif op == UPDATE or op == INSERT:
                put(keys[i], values[i])
            elif op == SCAN:
                scanned += len(scan(keys[i], scan_length))
            elif op == RMW:
                if get(keys[i]) is not None:
                    read_hits += 1
                put(keys[i], values[i])
            elif op == DELETE:
                delete(keys[i])
            t1 = clock()
            latencies[i] = t1 - t0
            done += 1
            if t1 >= deadline:
                over = True
                break
        if probe is not None:
            peak = max(peak, int(probe()))  # a few microseconds per chunk (three RocksDB properties)
        if over:
            break
    waited1 = run_queue_wait_ns()
    cpu_ns = time.thread_time_ns() - cpu0
    wall_ns = clock() - start
    busy_ns = wall_ns - (waited1 - waited0) if waited0 is not None and waited1 is not None else wall_ns
    busy_ns = min(max(busy_ns, cpu_ns), wall_ns)
    elapsed = wall_ns / 1e9
    return {
        "throughput": done / (busy_ns / 1e9) if busy_ns > 0 else float("nan"),
        "throughput_wall": done / elapsed if elapsed > 0 else float("nan"),
        "p95_latency_us": float(np.percentile(latencies[:done], 95) / 1e3) if done else float("nan"),
        "done": done,
        "read_hits": read_hits,
        "scanned": scanned,
        "elapsed": elapsed,
        "busy_s": busy_ns / 1e9,
        "cpu_s": cpu_ns / 1e9,
        "memory_peak": peak,  # 0 without a probe
    }
