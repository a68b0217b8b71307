"""The timed replay of a prepared workload against one engine."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from adapters.kv.engines import KVEngine
from adapters.kv.workloads import PreparedWorkload
from adapters.workloads.ycsb import DELETE, INSERT, READ, RMW, SCAN, UPDATE


def replay(engine: KVEngine, prepared: PreparedWorkload, seconds: float) -> dict[str, Any]:
    """Run the operations in order until done or `seconds` of wall time passed.

    Returns throughput (operations per wall second), p95 latency in
    microseconds, how many operations ran, and checksums of what was read
    (read_hits, scanned) that must agree across engines for the same stream.
    """
    get, put, delete, scan = engine.get, engine.put, engine.delete, engine.scan
    ops, keys, values = prepared.ops, prepared.keys, prepared.values
    scan_length = prepared.workload.base.scan_length
    latencies = np.empty(len(ops), dtype=np.int64)
    clock = time.perf_counter_ns
    read_hits = scanned = done = 0
    start = clock()
    deadline = start + int(seconds * 1e9)
    for i in range(len(ops)):
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
            break
    elapsed = (clock() - start) / 1e9
    return {
        "throughput": done / elapsed if elapsed > 0 else float("nan"),
        "p95_latency_us": float(np.percentile(latencies[:done], 95) / 1e3) if done else float("nan"),
        "done": done,
        "read_hits": read_hits,
        "scanned": scanned,
        "elapsed": elapsed,
    }
