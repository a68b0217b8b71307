"""Run a replacement policy over a trace and report miss ratios and speed.

`simulate(trace, capacity, "s3fifo", small_ratio=0.1)` dispatches to a compiled
kernel (autosys_adapters.pagecache.policies) or a learned policy
(autosys_adapters.pagecache.learned). `PreparedTrace` caches what every run needs
(dense ids, next-access indices, sizes) so a study of many configs pays once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from autosys_adapters.pagecache import policies as P
from autosys_adapters.pagecache.traces import PreparedTrace, Trace


@dataclass
class SimResult:
    policy: str
    capacity: int
    requests: int
    misses: int
    miss_ratio: float
    byte_miss_ratio: float
    seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("inf")


def capacity_of(cache_size: float, footprint: int) -> int:
    """Pages for `cache_size`: a fraction of the footprint if < 1, else a page count."""
    if not cache_size > 0:
        raise ValueError(f"cache_size must be positive, got {cache_size}")
    pages = int(round(cache_size * footprint)) if cache_size < 1 else int(cache_size)
    return max(1, pages)


def _lru(tr, cap, **_):
    return P.lru(tr.ids, tr.n_obj, cap)


def _fifo(tr, cap, **_):
    return P.fifo(tr.ids, tr.n_obj, cap)


def _clock(tr, cap, bits: int = 1, **_):
    return P.clock(tr.ids, tr.n_obj, cap, int(bits))


def _lfu(tr, cap, aging: bool = True, history: bool = False, **_):
    return P.lfu(tr.ids, tr.n_obj, cap, bool(aging), bool(history))


def _arc(tr, cap, p_unit: int | None = None, **_):
    # p_unit: bytes per unit of ARC's target p; libCacheSim's is the page size, 1 is the published ARC
    return P.arc(tr.ids, tr.n_obj, cap, int(p_unit) if p_unit else P.page_bytes(tr.sizes))


def _two_q(tr, cap, kin: float = 0.25, kout: float = 0.5, **_):
    page = P.page_bytes(tr.sizes)
    return P.two_q(tr.ids, tr.n_obj, cap, page, P.queue_bytes(cap, page, kin), P.queue_bytes(cap, page, kout))


def _s3fifo(tr, cap, small_ratio: float = 0.1, ghost_ratio: float = 0.9, move_threshold: int = 2, max_freq: int = 3, **_):
    page = P.page_bytes(tr.sizes)
    return P.s3fifo(tr.ids, tr.n_obj, cap, page, P.queue_bytes(cap, page, small_ratio), P.queue_bytes(cap, page, ghost_ratio),
                    int(move_threshold), int(max_freq))


def _sieve(tr, cap, **_):
    return P.sieve(tr.ids, tr.n_obj, cap)


def _tinylfu(tr, cap, window_ratio: float = 0.01, reset: float = 10.0, **_):
    window = max(1, int(round(window_ratio * cap)))
    return P.tinylfu(tr.ids, tr.n_obj, cap, window, max(1, int(round(reset * cap))))


def _belady(tr, cap, **_):
    return P.belady(tr.ids, tr.nxt, tr.n_obj, cap)


def _learned(kind: str) -> Callable:
    def run(tr, cap, **knobs):
        if kind == "rl":
            from autosys_adapters.pagecache.gym_env import run_rl

            return run_rl(tr, cap, **knobs)
        from autosys_adapters.pagecache import learned

        return learned.RUNNERS[kind](tr, cap, **knobs)

    return run


#: policy name -> runner(prepared_trace, capacity, **knobs) -> miss array
POLICIES: dict[str, Callable[..., np.ndarray]] = {
    "lru": _lru,
    "fifo": _fifo,
    "clock": _clock,
    "lfu": _lfu,
    "arc": _arc,
    "2q": _two_q,
    "s3fifo": _s3fifo,
    "sieve": _sieve,
    "tinylfu": _tinylfu,
    "belady": _belady,
    "lecar": _learned("lecar"),
    "lrb": _learned("lrb"),
    "cacheus": _learned("cacheus"),
    "glcache": _learned("glcache"),
    "rl": _learned("rl"),
}


def simulate(trace: Trace | PreparedTrace, capacity: int, policy: str = "lru", **knobs: Any) -> SimResult:
    """Run `policy` with `knobs` over `trace` with a cache of `capacity` pages."""
    tr = trace if isinstance(trace, PreparedTrace) else PreparedTrace.of(trace)
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    capacity = int(capacity)
    if capacity < 1:
        raise ValueError(f"capacity must be at least one page, got {capacity}")
    start = time.perf_counter()
    miss = POLICIES[policy](tr, capacity, **knobs)
    seconds = time.perf_counter() - start
    misses = int(miss.sum())
    missed = miss.astype(bool)
    total_bytes = float(tr.sizes.sum())
    return SimResult(
        policy=policy,
        capacity=capacity,
        requests=len(tr),
        misses=misses,
        miss_ratio=misses / len(tr),
        byte_miss_ratio=float(tr.sizes[missed].sum()) / total_bytes if total_bytes else 0.0,
        seconds=seconds,
    )


def gap_closed(miss: float, lru_miss: float, belady_miss: float) -> float:
    """Share of the LRU-to-Belady miss-ratio gap that `miss` closes (1 = optimal, 0 = LRU, <0 worse)."""
    gap = lru_miss - belady_miss
    if gap <= 0:
        return 0.0 if miss >= lru_miss else 1.0
    return (lru_miss - miss) / gap


def warmup() -> None:
    """Compile every classic kernel once on a tiny trace (numba caches to disk)."""
    tr = PreparedTrace.of(Trace(np.arange(64) % 9))
    for name in ("lru", "fifo", "clock", "lfu", "arc", "2q", "s3fifo", "sieve", "tinylfu", "belady"):
        simulate(tr, 4, name)
