"""Run a benchmark's operation stream from N client threads, each with its own connection.

Operations are dealt round-robin to the clients; each client stops when its
share is done, when the measured window ends, or when any client hits a fatal
error (a lost connection, a statement timeout), which stops all of them and is
re-raised to the caller. Deadlocks and serialization failures are retried a
bounded number of times and counted. Nothing waits without a deadline: the
threads are joined against `seconds + grace`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from autosys_adapters.workloads.base import Benchmark, Session


class ClientError(RuntimeError):
    """A client could not go on (connection lost, statement timed out, ...)."""


class StreamExhausted(RuntimeError):
    """The measured window was too short to trust: the operation stream ran out early."""


@dataclass
class RunStats:
    done: int
    elapsed: float
    latencies: np.ndarray
    retries: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else float("nan")

    def p95_ms(self) -> float:
        return float(np.percentile(self.latencies, 95) * 1e3) if len(self.latencies) else float("nan")

    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies, 50) * 1e3) if len(self.latencies) else float("nan")


def run_clients(
    open_session: Callable[[int], Session],
    bench: Benchmark,
    items: list[tuple],
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 0.0,
    retryable: Callable[[BaseException], bool] = lambda exc: False,
    max_retries: int = 5,
    grace: float = 30.0,
) -> RunStats:
    """Run `items` over `concurrency` sessions for at most `warmup + seconds` seconds.

    `open_session(client_index)` opens one client's session (and its knobs);
    operations that start during the first `warmup` seconds are not counted.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    stop = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    kinds: list[dict[str, int]] = [{} for _ in range(concurrency)]
    retries = [0] * concurrency
    last_end = [0.0] * concurrency
    ready = threading.Barrier(concurrency + 1, timeout=grace)
    clock = time.perf_counter
    window: dict[str, float] = {}

    def client(ci: int) -> None:
        session = None
        try:
            session = open_session(ci)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            with lock:
                errors.append(exc)
            stop.set()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            stop.set()
        if session is None or stop.is_set():
            _close(session)
            return
        measure_from, deadline = window["measure_from"], window["deadline"]
        try:
            for i in range(ci, len(items), concurrency):
                if stop.is_set():
                    break
                t0 = clock()
                if t0 >= deadline:
                    break
                for attempt in range(max_retries + 1):
                    try:
                        bench.execute(session, items[i], i)
                        break
                    except BaseException as exc:  # noqa: BLE001
                        if attempt < max_retries and retryable(exc):
                            retries[ci] += 1
                            continue
                        raise
                t1 = clock()
                if t0 >= measure_from:
                    lat[ci].append(t1 - t0)
                    kind = items[i][0]
                    kinds[ci][kind] = kinds[ci].get(kind, 0) + 1
                    last_end[ci] = t1
        except BaseException as exc:  # noqa: BLE001
            with lock:
                errors.append(exc)
            stop.set()
        finally:
            _close(session)

    threads = [threading.Thread(target=client, args=(ci,), name=f"bench-client-{ci}", daemon=True) for ci in range(concurrency)]
    for t in threads:
        t.start()
    start = clock()
    window["measure_from"] = start + warmup
    window["deadline"] = start + warmup + seconds
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    join_deadline = time.monotonic() + warmup + seconds + grace
    for t in threads:
        t.join(timeout=max(join_deadline - time.monotonic(), 0.0))
    if any(t.is_alive() for t in threads):
        stop.set()
        raise ClientError(f"benchmark clients did not finish within {warmup + seconds + grace:.0f} s (server hung?)")
    if errors:
        exc = errors[0]
        raise ClientError(f"{type(exc).__name__}: {str(exc).strip() or 'no message'}") from exc
    latencies = np.array([x for per in lat for x in per], dtype=float)
    end = max([e for e in last_end if e > 0] or [window["measure_from"]])
    elapsed = max(end - window["measure_from"], 1e-9)
    if len(latencies) == 0 or (elapsed < 0.5 * seconds and len(latencies) < 0.5 * len(items)):
        # the warm-up used up most of the stream: a rate over the sliver left (or over nothing)
        # would be reported as if it were real. A stream run to the end inside the window is fine.
        raise StreamExhausted(
            f"only {len(latencies)} operations were measured, over {elapsed:.2f} s of the {seconds:g}-s window: "
            f"the stream of {len(items)} operations ran out (raise `operations`), or one operation takes longer "
            "than the window"
        )
    by_kind: dict[str, int] = {}
    for per in kinds:
        for k, v in per.items():
            by_kind[k] = by_kind.get(k, 0) + v
    return RunStats(done=len(latencies), elapsed=elapsed, latencies=latencies, retries=sum(retries), by_kind=by_kind)


def _close(session: Session | None) -> None:
    if session is None:
        return
    try:
        session.conn.close()
    except Exception:  # already gone
        pass


def run_serial(session: Session, bench: Benchmark, items: list[tuple], seconds: float) -> dict[str, float]:
    """Run `items` in order on one session until done or `seconds` pass (the embedded-database loop)."""
    latencies = np.empty(len(items), dtype=float)
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    done = 0
    for i, item in enumerate(items):
        t0 = clock()
        bench.execute(session, item, i)
        t1 = clock()
        latencies[i] = t1 - t0
        done += 1
        if t1 >= deadline:
            break
    elapsed = clock() - start
    return {
        "throughput": done / elapsed,
        "p95_latency_ms": float(np.percentile(latencies[:done], 95) * 1e3) if done else float("nan"),
        "done": done,
    }
