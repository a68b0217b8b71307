"""Monitors: named metrics sampled with timestamps, and a background sampler.

A `Monitor` returns one reading (`{metric: value}`) each time it is sampled;
counters are turned into rates by the monitor itself, so a reading always
describes the interval since the previous one. A `Sampler` samples monitors
on a background thread into a bounded buffer and flushes batches to a study's
storage; agents and learners read windows of it back as pandas frames.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

# the contract and the host monitors live in core (the study loop samples them too); re-exported here
from autosys.core.monitor import Monitor, ProcessMonitor, Rates, SystemMonitor, host_monitors  # noqa: F401


class CounterMonitor(Monitor):
    """Reads counters and latency samples that an application records itself.

    The application calls `record(op, seconds)` (thread-safe, cheap); each
    `sample()` reports per-op rates, total throughput and latency percentiles
    since the previous sample. This is how an embedded agent sees its host.
    """

    def __init__(self, name: str = "app", max_latencies: int = 100_000):
        self.name = name
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._latencies: list[float] = []
        self._max = max_latencies
        self._since = time.monotonic()
        self._gauges: dict[str, float] = {}

    def record(self, op: str, seconds: float) -> None:
        with self._lock:
            self._counts[op] += 1
            if len(self._latencies) < self._max:
                self._latencies.append(seconds)

    def gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = float(value)

    def sample(self) -> dict[str, float]:
        with self._lock:
            counts, latencies, gauges = self._counts, self._latencies, dict(self._gauges)
            self._counts, self._latencies = collections.Counter(), []
            now = time.monotonic()
            elapsed, self._since = max(now - self._since, 1e-9), now
        total = sum(counts.values())
        out = {"throughput": total / elapsed, **gauges}
        for op, n in counts.items():
            out[f"{op}_per_s"] = n / elapsed
            out[f"{op}_fraction"] = n / total
        if latencies:
            arr = np.asarray(latencies) * 1e3
            out["p50_latency_ms"] = float(np.percentile(arr, 50))
            out["p95_latency_ms"] = float(np.percentile(arr, 95))
            out["p99_latency_ms"] = float(np.percentile(arr, 99))
        return out


class ObservationSink(Protocol):
    def add_observations(self, source: str, rows: list[tuple[float, Mapping[str, float]]]) -> None: ...


class Sampler:
    """Samples monitors every `interval` seconds on a daemon thread.

    Readings go to a bounded in-memory buffer (oldest dropped first) and, if a
    `sink` (a study's storage) is given, are flushed to it in batches. A
    monitor that raises is recorded as an `error` reading, never kills the
    thread.
    """

    def __init__(
        self,
        monitors: Sequence[Monitor],
        *,
        interval: float = 1.0,
        buffer: int = 3600,
        sink: ObservationSink | None = None,
        flush_every: int = 10,
    ):
        if interval <= 0:
            raise ValueError("sampling interval must be positive")
        self.monitors = list(monitors)
        self.interval = interval
        self.sink = sink
        self.flush_every = flush_every
        self.buffer: collections.deque[tuple[float, str, dict[str, float]]] = collections.deque(maxlen=buffer)
        self._pending: list[tuple[float, str, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors = 0
        self.last_error: str | None = None

    def sample_once(self) -> list[tuple[float, str, dict[str, float]]]:
        now = time.time()
        rows = []
        for monitor in self.monitors:
            try:
                reading = {k: float(v) for k, v in monitor.sample().items()}
            except Exception as exc:  # a broken monitor is data, not a crash
                self.errors += 1
                self.last_error = f"{monitor.name}: {type(exc).__name__}: {exc}"
                reading = {"error": 1.0}
            rows.append((now, monitor.name, reading))
        with self._lock:
            self.buffer.extend(rows)
            self._pending.extend(rows)
            if self.sink is not None and len(self._pending) >= self.flush_every * max(len(self.monitors), 1):
                self._flush_locked()
        return rows

    def _flush_locked(self) -> None:
        if self.sink is None or not self._pending:
            return
        by_source: dict[str, list[tuple[float, dict]]] = collections.defaultdict(list)
        for t, source, reading in self._pending:
            by_source[source].append((t, reading))
        for source, rows in by_source.items():
            self.sink.add_observations(source, rows)
        self._pending = []

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _run(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_time += self.interval
            self._stop.wait(max(next_time - time.monotonic(), 0.0))

    def start(self) -> "Sampler":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="autosys-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def frame(self, source: str | None = None, since: float | None = None) -> pd.DataFrame:
        """Buffered readings as a frame: one row per reading, a `time` and a `source` column."""
        with self._lock:
            rows = list(self.buffer)
        records = [
            {"time": t, "source": s, **r} for t, s, r in rows if (source is None or s == source) and (since is None or t >= since)
        ]
        return pd.DataFrame.from_records(records)


def window_features(frame: pd.DataFrame, metrics: Iterable[str] | None = None) -> dict[str, float]:
    """Mean of each metric over a window of readings (the context a learner sees)."""
    if frame.empty:
        return {}
    columns = [c for c in (metrics or frame.columns) if c in frame and c not in ("time", "source")]
    return {c: float(frame[c].astype(float).mean()) for c in columns}
