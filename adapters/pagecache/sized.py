"""Replacement policies over objects of different sizes with a capacity in bytes (compiled with numba).

Each kernel is resumable: its state lives in arrays (`SizedState`), it consumes
one chunk of requests (dense ids, sizes, and for Belady next-access indices)
and adds the chunk's misses and missed bytes to `out`. Feeding a trace in
chunks therefore gives exactly the counts of feeding it whole, which is how
`formats.simulate_stream` runs traces larger than memory.

Semantics follow libCacheSim's `cache_get_base`: a hit changes no size; on a
miss an object larger than the cache is not admitted, otherwise objects are
evicted until the new one fits and then it is inserted. An object keeps the
size it had when admitted. Belady here is libCacheSim's (evict the object
whose next request is furthest), the usual bound for sized caches though not
optimal for them (that problem is NP-hard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from autosys_adapters.pagecache._lists import h_push, h_remove, h_update, l_back, l_init, l_push_front, l_remove, sieve_victim

SIZED_POLICIES = ("lru", "fifo", "sieve", "s3fifo", "belady")
NEVER = np.iinfo(np.int64).max // 4  # "no next request" for Belady


@njit(cache=True)
def _list_run(ids, sizes, cap, prev, nxt, inc, osize, sc, out, promote):
    """LRU (promote on hit) or FIFO (no promotion)."""
    s = len(inc)
    used = sc[0]
    misses = 0
    mbytes = 0
    for t in range(len(ids)):
        x = ids[t]
        if inc[x]:
            if promote:
                l_remove(prev, nxt, x)
                l_push_front(prev, nxt, s, x)
            continue
        z = sizes[t]
        misses += 1
        mbytes += z
        if z > cap:
            continue
        while used + z > cap:
            v = l_back(prev, s)
            l_remove(prev, nxt, v)
            inc[v] = False
            used -= osize[v]
        l_push_front(prev, nxt, s, x)
        inc[x] = True
        osize[x] = z
        used += z
    sc[0] = used
    out[0] += misses
    out[1] += mbytes


@njit(cache=True)
def _sieve_run(ids, sizes, cap, prev, nxt, inc, visited, osize, sc, out):
    """SIEVE: FIFO order, a visited bit, a hand moving from old to new that skips (and clears) visited objects."""
    s = len(inc)
    used = sc[0]
    hand = sc[1]
    misses = 0
    mbytes = 0
    for t in range(len(ids)):
        x = ids[t]
        if inc[x]:
            visited[x] = True
            continue
        z = sizes[t]
        misses += 1
        mbytes += z
        if z > cap:
            continue
        while used + z > cap:
            o, hand = sieve_victim(prev, nxt, visited, hand, s)
            l_remove(prev, nxt, o)
            inc[o] = False
            used -= osize[o]
        l_push_front(prev, nxt, s, x)
        inc[x] = True
        visited[x] = False
        osize[x] = z
        used += z
    sc[0] = used
    sc[1] = hand
    out[0] += misses
    out[1] += mbytes


@njit(cache=True)
def _s3fifo_run(ids, sizes, cap, small_cap, ghost_cap, move_threshold, max_freq, prev, nxt, where, freq, osize, sc, out):
    """S3-FIFO in bytes, as libCacheSim's S3FIFO.c: small FIFO S, main FIFO M (2-bit clock reinsertion), ghost G.

    where: 0 absent, 1 S, 2 M, 3 G; sc = [bytes in S, bytes in M, bytes in G, evicted yet (0/1)].
    Until the first eviction a miss that finds S full goes straight to M.
    """
    n_obj = len(where)
    S, M, G = n_obj, n_obj + 1, n_obj + 2
    main_cap = cap - small_cap
    misses = 0
    mbytes = 0
    for t in range(len(ids)):
        x = ids[t]
        w = where[x]
        if w == 1 or w == 2:
            if freq[x] < max_freq:
                freq[x] += 1
            continue
        z = sizes[t]
        misses += 1
        mbytes += z
        ghost_hit = False
        if w == 3:  # a ghost hit: forget the ghost entry, admit to M
            l_remove(prev, nxt, x)
            sc[2] -= osize[x]
            where[x] = 0
            ghost_hit = True
        if z > small_cap or z > cap:
            continue
        while sc[0] + sc[1] + z > cap:
            sc[3] = 1
            if sc[1] > main_cap or sc[0] == 0:
                while sc[1] > 0:
                    v = l_back(prev, M)
                    l_remove(prev, nxt, v)
                    if freq[v] >= 1:
                        freq[v] = min(freq[v], 3) - 1
                        l_push_front(prev, nxt, M, v)
                    else:
                        where[v] = 0
                        sc[1] -= osize[v]
                        break
            else:
                while sc[0] > 0:
                    v = l_back(prev, S)
                    l_remove(prev, nxt, v)
                    sc[0] -= osize[v]
                    if freq[v] >= move_threshold:
                        l_push_front(prev, nxt, M, v)
                        where[v] = 2
                        freq[v] = 0
                        sc[1] += osize[v]
                    else:
                        where[v] = 0
                        if osize[v] <= ghost_cap:
                            while sc[2] + osize[v] > ghost_cap:
                                g = l_back(prev, G)
                                l_remove(prev, nxt, g)
                                where[g] = 0
                                sc[2] -= osize[g]
                            l_push_front(prev, nxt, G, v)
                            where[v] = 3
                            sc[2] += osize[v]
                        break
        if not ghost_hit and z == small_cap:
            continue  # libCacheSim admits no object as large as S (after evicting for it)
        freq[x] = 0
        osize[x] = z
        if ghost_hit or (sc[3] == 0 and sc[0] >= small_cap):
            l_push_front(prev, nxt, M, x)
            where[x] = 2
            sc[1] += z
        else:
            l_push_front(prev, nxt, S, x)
            where[x] = 1
            sc[0] += z
    out[0] += misses
    out[1] += mbytes


@njit(cache=True)
def _belady_run(ids, sizes, nxt_access, cap, heap, pos, k1, k2, osize, sc, out):
    """Evict the cached object requested furthest in the future (ties: the earliest admitted) until the new one fits."""
    used = sc[0]
    size = sc[1]
    clock = sc[2]
    misses = 0
    mbytes = 0
    for t in range(len(ids)):
        x = ids[t]
        na = nxt_access[t]
        key = -(na if na >= 0 else NEVER)
        if pos[x] >= 0:
            k1[x] = key
            h_update(heap, pos, k1, k2, size, x)
            continue
        z = sizes[t]
        misses += 1
        mbytes += z
        if z > cap:
            continue
        while used + z > cap:
            v = heap[0]
            size = h_remove(heap, pos, k1, k2, size, v)
            used -= osize[v]
        k1[x] = key
        k2[x] = clock
        clock += 1
        osize[x] = z
        size = h_push(heap, pos, k1, k2, size, x)
        used += z
    sc[0] = used
    sc[1] = size
    sc[2] = clock
    out[0] += misses
    out[1] += mbytes


# --------------------------------------------------------------------------- state and driver


@dataclass
class SizedState:
    """One policy's cache state over `n_obj` dense ids, with `capacity` bytes; `out` = [misses, missed bytes]."""

    policy: str
    n_obj: int
    capacity: int
    knobs: dict[str, Any]
    arrays: tuple
    out: np.ndarray
    requests: int = 0
    bytes_requested: int = 0

    @classmethod
    def new(cls, policy: str, n_obj: int, capacity: int, **knobs: Any) -> "SizedState":
        if policy not in SIZED_POLICIES:
            raise ValueError(f"unknown sized policy {policy!r}; choose one of: {', '.join(SIZED_POLICIES)}")
        if int(capacity) < 1:
            raise ValueError(f"the byte capacity must be at least 1, got {capacity}")
        if n_obj < 1:
            raise ValueError(f"n_obj must be at least 1, got {n_obj}")
        lists = 3 if policy == "s3fifo" else 1
        prev = np.empty(n_obj + lists, np.int32)
        nxt = np.empty(n_obj + lists, np.int32)
        for s in range(n_obj, n_obj + lists):
            prev[s] = nxt[s] = s
        osize = np.zeros(n_obj, np.int64)
        sc = np.zeros(4, np.int64)
        if policy in ("lru", "fifo"):
            arrays = (prev, nxt, np.zeros(n_obj, np.bool_), osize, sc)
        elif policy == "sieve":
            sc[1] = n_obj  # the hand starts at the list head (none)
            arrays = (prev, nxt, np.zeros(n_obj, np.bool_), np.zeros(n_obj, np.bool_), osize, sc)
        elif policy == "s3fifo":
            allowed = {"small_ratio", "ghost_ratio", "move_threshold", "max_freq"}
            if set(knobs) - allowed:
                raise ValueError(f"s3fifo knobs are {sorted(allowed)}, got {sorted(knobs)}")
            small = float(knobs.get("small_ratio", 0.1))
            ghost = float(knobs.get("ghost_ratio", 0.9))
            if not (0 < small < 1 and ghost >= 0):
                raise ValueError(f"s3fifo needs 0 < small_ratio < 1 and ghost_ratio >= 0, got {small}, {ghost}")
            knobs = {"small_cap": max(1, int(small * capacity)), "ghost_cap": int(ghost * capacity),  # floors, as libCacheSim
                     "move_threshold": int(knobs.get("move_threshold", 2)), "max_freq": int(knobs.get("max_freq", 3))}
            arrays = (prev, nxt, np.zeros(n_obj, np.int8), np.zeros(n_obj, np.int32), osize, sc)
        else:
            heap = np.empty(n_obj + 1, np.int32)
            arrays = (heap, np.full(n_obj, -1, np.int32), np.zeros(n_obj, np.int64), np.zeros(n_obj, np.int64), osize, sc)
        if policy != "s3fifo" and knobs:
            raise ValueError(f"{policy} takes no knobs, got {sorted(knobs)}")
        return cls(policy, int(n_obj), int(capacity), knobs, arrays, np.zeros(2, np.int64))

    def feed(self, ids: np.ndarray, sizes: np.ndarray, nxt: np.ndarray | None = None) -> None:
        """Process one chunk: dense int32 ids, int64 sizes and (Belady) absolute next-access indices (-1 = never)."""
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        sizes = np.ascontiguousarray(sizes, dtype=np.int64)
        if len(ids) != len(sizes):
            raise ValueError(f"{len(ids)} ids but {len(sizes)} sizes")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n_obj):
            raise ValueError(f"ids must be dense in [0, {self.n_obj})")
        if len(sizes) and sizes.min() < 1:
            raise ValueError("object sizes must be at least 1 byte")
        cap = self.capacity
        a = self.arrays
        if self.policy == "lru" or self.policy == "fifo":
            _list_run(ids, sizes, cap, *a[:4], a[4], self.out, self.policy == "lru")
        elif self.policy == "sieve":
            _sieve_run(ids, sizes, cap, *a, self.out)
        elif self.policy == "s3fifo":
            k = self.knobs
            _s3fifo_run(ids, sizes, cap, k["small_cap"], k["ghost_cap"], k["move_threshold"], k["max_freq"], *a, self.out)
        else:
            if nxt is None or len(nxt) != len(ids):
                raise ValueError("belady needs next-access indices for every request of the chunk")
            _belady_run(ids, sizes, np.ascontiguousarray(nxt, dtype=np.int64), cap, *a, self.out)
        self.requests += len(ids)
        self.bytes_requested += int(sizes.sum())

    @property
    def misses(self) -> int:
        return int(self.out[0])

    @property
    def miss_bytes(self) -> int:
        return int(self.out[1])

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.requests if self.requests else 0.0

    @property
    def byte_miss_ratio(self) -> float:
        return self.miss_bytes / self.bytes_requested if self.bytes_requested else 0.0


def byte_capacity(cache_size: float, footprint_bytes: int) -> int:
    """Bytes for `cache_size`: a fraction of the footprint in bytes if < 1, else bytes."""
    if not cache_size > 0:
        raise ValueError(f"cache_size must be positive, got {cache_size}")
    return max(1, int(round(cache_size * footprint_bytes)) if cache_size < 1 else int(cache_size))


def footprint_bytes(ids: np.ndarray, sizes: np.ndarray, n_obj: int) -> int:
    """Sum over distinct objects of the size of their first request."""
    first = np.full(n_obj, -1, np.int64)
    order = np.arange(len(ids) - 1, -1, -1)
    first[ids[order]] = order  # the last write wins: the earliest request
    return int(sizes[first[first >= 0]].sum())


def simulate_sized(ids: np.ndarray, sizes: np.ndarray, n_obj: int, capacity: int, policy: str = "lru",
                   nxt: np.ndarray | None = None, **knobs: Any) -> SizedState:
    """Run `policy` over a whole in-memory trace (dense ids) with a cache of `capacity` bytes."""
    state = SizedState.new(policy, n_obj, capacity, **knobs)
    if policy == "belady" and nxt is not None:
        nxt = np.where(nxt >= len(ids), -1, nxt)  # PreparedTrace marks "never" as len(trace)
    state.feed(ids, sizes, nxt)
    return state
