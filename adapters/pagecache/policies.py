"""Classic replacement policies as compiled (numba) simulation kernels.

Each kernel takes dense object ids (0..n_obj-1, int32), the number of distinct
objects and the capacity in pages, plus its knobs, and returns a uint8 array
with 1 where the request missed. Capacity counts objects (pages), which is the
page-cache model; byte miss ratios weight the misses by request size.
Every policy inserts the requested page on a miss (demand paging), so Belady's
MIN without bypass is the optimum they are measured against.

Where a policy has a libCacheSim counterpart the kernel follows it to the miss
(tests/test_libcachesim_equality.py): ARC, 2Q and S3-FIFO size their queues in
bytes there, so their kernels take the page size in bytes and reproduce
libCacheSim's byte arithmetic (`queue_bytes` truncates as its C code does).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from autosys_adapters.pagecache._lists import (
    h_push,
    h_remove,
    h_update,
    l_back,
    l_init,
    l_push_front,
    l_remove,
    sieve_victim,
)

DEFAULT_PAGE_BYTES = 4096


def page_bytes(sizes: np.ndarray) -> int:
    """The page size libCacheSim would see for a page trace: the request size if all are equal, else 4096."""
    if len(sizes) and int(sizes.min()) == int(sizes.max()) and int(sizes[0]) > 0:
        return int(sizes[0])
    return DEFAULT_PAGE_BYTES


def queue_bytes(cap: int, page: int, ratio: float) -> int:
    """A queue's share of a cache of `cap` pages, in bytes, as libCacheSim computes it: (int64)(bytes * ratio)."""
    if not ratio >= 0:
        raise ValueError(f"a queue ratio must be non-negative, got {ratio}")
    return int(float(int(cap) * int(page)) * float(ratio))


@njit(cache=True, inline="always")
def _ghost_push(prev, nxt, where, ghost, tag, v, n_ghost, page, ghost_bytes):
    """Put evicted page `v` at the front of a ghost list bounded in bytes (its oldest ghosts dropped first), as
    libCacheSim sizes 2Q's A1out and S3-FIFO's ghost queue; a page larger than the list is not kept. Returns
    the list's new length."""
    if page > ghost_bytes:
        return n_ghost
    while (n_ghost + 1) * page > ghost_bytes:
        g = l_back(prev, ghost)
        l_remove(prev, nxt, g)
        where[g] = 0
        n_ghost -= 1
    l_push_front(prev, nxt, ghost, v)
    where[v] = tag
    return n_ghost + 1

@njit(cache=True)
def lru(ids, n_obj, cap):
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 1, np.int32)
    nxt = np.empty(n_obj + 1, np.int32)
    s = n_obj
    l_init(prev, nxt, s)
    inc = np.zeros(n_obj, np.bool_)
    size = 0
    for t in range(n):
        x = ids[t]
        if inc[x]:
            if nxt[s] != x:
                l_remove(prev, nxt, x)
                l_push_front(prev, nxt, s, x)
        else:
            miss[t] = 1
            if size >= cap:
                v = l_back(prev, s)
                l_remove(prev, nxt, v)
                inc[v] = False
                size -= 1
            l_push_front(prev, nxt, s, x)
            inc[x] = True
            size += 1
    return miss


@njit(cache=True)
def fifo(ids, n_obj, cap):
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    ring = np.empty(cap, np.int32)
    inc = np.zeros(n_obj, np.bool_)
    head = 0
    size = 0
    for t in range(n):
        x = ids[t]
        if not inc[x]:
            miss[t] = 1
            if size >= cap:
                inc[ring[head]] = False
            else:
                size += 1
            ring[head] = x
            inc[x] = True
            head += 1
            if head == cap:
                head = 0
    return miss


@njit(cache=True)
def clock(ids, n_obj, cap, bits):
    """CLOCK with a `bits`-bit reference counter (bits=1 is second chance)."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    top = (1 << bits) - 1
    ring = np.empty(cap, np.int32)
    cnt = np.zeros(n_obj, np.int32)
    inc = np.zeros(n_obj, np.bool_)
    hand = 0
    size = 0
    for t in range(n):
        x = ids[t]
        if inc[x]:
            if cnt[x] < top:
                cnt[x] += 1
        else:
            miss[t] = 1
            if size < cap:
                ring[size] = x
                size += 1
            else:
                while cnt[ring[hand]] > 0:
                    cnt[ring[hand]] -= 1
                    hand += 1
                    if hand == cap:
                        hand = 0
                inc[ring[hand]] = False
                ring[hand] = x
                hand += 1
                if hand == cap:
                    hand = 0
            inc[x] = True
            cnt[x] = 0
    return miss


@njit(cache=True)
def lfu(ids, n_obj, cap, dynamic_aging, keep_history):
    """LFU (ties broken by recency). With dynamic aging (LFU-DA) a page's key is
    its count plus the key of the last victim, so old popularity fades; with
    `keep_history` counts survive eviction (perfect LFU) instead of restarting at 1."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    heap = np.empty(cap + 1, np.int32)
    pos = np.full(n_obj, -1, np.int32)
    k1 = np.zeros(n_obj, np.float64)
    k2 = np.zeros(n_obj, np.int64)
    cnt = np.zeros(n_obj, np.float64)
    size = 0
    age = 0.0
    for t in range(n):
        x = ids[t]
        cnt[x] += 1.0
        if pos[x] >= 0:
            k1[x] = cnt[x] + age
            k2[x] = t
            h_update(heap, pos, k1, k2, size, x)
        else:
            miss[t] = 1
            if size >= cap:
                v = heap[0]
                if dynamic_aging:
                    age = k1[v]
                size = h_remove(heap, pos, k1, k2, size, v)
                if not keep_history:
                    cnt[v] = 0.0
            k1[x] = cnt[x] + age
            k2[x] = t
            size = h_push(heap, pos, k1, k2, size, x)
    return miss


@njit(cache=True)
def belady(ids, nxt_access, n_obj, cap):
    """Belady's MIN: evict the cached page whose next request is furthest away."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    heap = np.empty(cap + 1, np.int32)
    pos = np.full(n_obj, -1, np.int32)
    k1 = np.zeros(n_obj, np.int64)  # minus next access: the furthest is on top
    k2 = np.zeros(n_obj, np.int64)
    size = 0
    for t in range(n):
        x = ids[t]
        if pos[x] >= 0:
            k1[x] = -nxt_access[t]
            h_update(heap, pos, k1, k2, size, x)
        else:
            miss[t] = 1
            if size >= cap:
                size = h_remove(heap, pos, k1, k2, size, heap[0])
            k1[x] = -nxt_access[t]
            size = h_push(heap, pos, k1, k2, size, x)
    return miss


@njit(cache=True)
def arc(ids, n_obj, cap, page):
    """ARC (Megiddo & Modha 2003) as libCacheSim's ARC.c: T1/T2 resident, B1/B2 ghosts, adaptive target p.

    libCacheSim keeps sizes and the target p in bytes and moves p by
    max(|B2|/|B1|, 1) *bytes* per ghost hit, so with `page`-byte pages p moves
    delta/page pages; `page=1` gives the published ARC (p moves delta pages).
    """
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 4, np.int32)
    nxt = np.empty(n_obj + 4, np.int32)
    T1, T2, B1, B2 = n_obj, n_obj + 1, n_obj + 2, n_obj + 3
    for s in range(n_obj, n_obj + 4):
        l_init(prev, nxt, s)
    where = np.zeros(n_obj, np.int8)  # 0 none, 1 T1, 2 T2, 3 B1, 4 B2
    cnt = np.zeros(4, np.int64)  # pages in T1, T2, B1, B2
    p = 0.0  # target size of T1, in bytes
    c_bytes = float(cap) * page
    for t in range(n):
        x = ids[t]
        w = where[x]
        if w == 1 or w == 2:
            l_remove(prev, nxt, x)
            cnt[w - 1] -= 1
            l_push_front(prev, nxt, T2, x)
            cnt[1] += 1
            where[x] = 2
            continue
        miss[t] = 1
        ghost_hit = w == 3 or w == 4
        if w == 3:
            p = min(p + max(cnt[3] / cnt[2], 1.0), c_bytes)
        elif w == 4:
            p = max(p - max(cnt[2] / cnt[3], 1.0), 0.0)
        if ghost_hit:
            l_remove(prev, nxt, x)
            cnt[w - 1] -= 1
            where[x] = 0
        if cnt[0] + cnt[1] >= cap:  # full: one eviction makes room for one page
            if ghost_hit:
                _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, page, w == 4)
            elif cnt[0] + cnt[2] >= cap:  # |T1| + |B1| = c
                if cnt[2] > 0:
                    v = l_back(prev, B1)
                    l_remove(prev, nxt, v)
                    where[v] = 0
                    cnt[2] -= 1
                    _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, page, False)
                else:
                    v = l_back(prev, T1)
                    l_remove(prev, nxt, v)
                    where[v] = 0
                    cnt[0] -= 1
            else:
                if cnt[0] + cnt[1] + cnt[2] + cnt[3] >= 2 * cap and cnt[3] > 0:
                    v = l_back(prev, B2)
                    l_remove(prev, nxt, v)
                    where[v] = 0
                    cnt[3] -= 1
                _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, page, False)
        if ghost_hit:
            l_push_front(prev, nxt, T2, x)
            cnt[1] += 1
            where[x] = 2
        else:
            l_push_front(prev, nxt, T1, x)
            cnt[0] += 1
            where[x] = 1
    return miss


@njit(cache=True)
def _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, page, in_b2):
    t1 = float(cnt[0] * page)
    if (cnt[0] > 0 and (t1 > p or (t1 == p and in_b2))) or cnt[1] == 0:
        v = l_back(prev, T1)
        l_remove(prev, nxt, v)
        cnt[0] -= 1
        l_push_front(prev, nxt, B1, v)
        cnt[2] += 1
        where[v] = 3
    else:
        v = l_back(prev, T2)
        l_remove(prev, nxt, v)
        cnt[1] -= 1
        l_push_front(prev, nxt, B2, v)
        cnt[3] += 1
        where[v] = 4


@njit(cache=True)
def two_q(ids, n_obj, cap, page, ain_bytes, aout_bytes):
    """2Q (Johnson & Shasha 1994) as libCacheSim's TwoQ.c: A1in FIFO, A1out ghost FIFO, Am LRU.

    Sizes are in bytes of `page`-byte pages, as libCacheSim sizes them: the
    cache holds cap * page bytes; A1in may exceed `ain_bytes` (it is the
    eviction victim only while it does); a page back from A1out enters Am,
    which then evicts its own LRU page if it would exceed cap * page -
    ain_bytes; A1out keeps `aout_bytes` of ids. A page larger than A1in
    (ain_bytes < page) is never cached.
    """
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 3, np.int32)
    nxt = np.empty(n_obj + 3, np.int32)
    AIN, AOUT, AM = n_obj, n_obj + 1, n_obj + 2
    for s in range(n_obj, n_obj + 3):
        l_init(prev, nxt, s)
    where = np.zeros(n_obj, np.int8)  # 0 none, 1 A1in, 2 A1out, 3 Am
    cap_bytes = np.int64(cap) * page
    am_bytes = cap_bytes - ain_bytes
    n_in = 0
    n_out = 0
    n_m = 0
    for t in range(n):
        x = ids[t]
        w = where[x]
        if w == 1:
            continue
        if w == 3:
            l_remove(prev, nxt, x)
            l_push_front(prev, nxt, AM, x)
            continue
        miss[t] = 1
        ghost_hit = w == 2
        if ghost_hit:
            l_remove(prev, nxt, x)
            where[x] = 0
            n_out -= 1
        if page > ain_bytes or page > cap_bytes:
            continue
        while (n_in + n_m + 1) * page > cap_bytes:
            if n_in * page > ain_bytes or n_m == 0:
                v = l_back(prev, AIN)
                l_remove(prev, nxt, v)
                n_in -= 1
                where[v] = 0
                n_out = _ghost_push(prev, nxt, where, AOUT, 2, v, n_out, page, aout_bytes)
            else:
                v = l_back(prev, AM)
                l_remove(prev, nxt, v)
                where[v] = 0
                n_m -= 1
        if ghost_hit:
            if page > am_bytes:
                continue
            while (n_m + 1) * page > am_bytes:
                v = l_back(prev, AM)
                l_remove(prev, nxt, v)
                where[v] = 0
                n_m -= 1
            l_push_front(prev, nxt, AM, x)
            where[x] = 3
            n_m += 1
        else:
            l_push_front(prev, nxt, AIN, x)
            where[x] = 1
            n_in += 1
    return miss


@njit(cache=True)
def s3fifo(ids, n_obj, cap, page, small_bytes, ghost_bytes, move_threshold, max_freq):
    """S3-FIFO (Yang et al. 2023) as libCacheSim's S3FIFO.c: small FIFO S, main FIFO M with reinsertion, ghost FIFO G.

    Sizes are in bytes of `page`-byte pages, as libCacheSim sizes them: S's
    share is `small_bytes` of the cap * page bytes, G keeps `ghost_bytes` of ids.
    A new page enters S (M if it is in G, or if S is full before the first
    eviction); a hit adds one to its count. An eviction takes from M while M
    is over its share (or S is empty), else from S: S's oldest page moves to
    M if counted at least `move_threshold` times, else its id goes to G. M
    reinserts a counted page with min(count, max_freq) - 1 (a 2-bit clock at
    max_freq=3). A page as large as S (small_bytes <= page) is never cached
    unless it comes back from G, which only S feeds: such a cache stays empty.
    """
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 3, np.int32)
    nxt = np.empty(n_obj + 3, np.int32)
    S, M, G = n_obj, n_obj + 1, n_obj + 2
    for s in range(n_obj, n_obj + 3):
        l_init(prev, nxt, s)
    where = np.zeros(n_obj, np.int8)  # 0 none, 1 S, 2 M, 3 G
    freq = np.zeros(n_obj, np.int32)
    cap_bytes = np.int64(cap) * page
    main_bytes = cap_bytes - small_bytes
    n_s = 0
    n_m = 0
    n_g = 0
    has_evicted = False
    for t in range(n):
        x = ids[t]
        w = where[x]
        if w == 1 or w == 2:
            if freq[x] < 1 << 30:
                freq[x] += 1
            continue
        miss[t] = 1
        ghost_hit = w == 3
        if ghost_hit:  # a ghost hit forgets the ghost entry, then the page enters M
            l_remove(prev, nxt, x)
            where[x] = 0
            n_g -= 1
        if page > small_bytes or page > cap_bytes:
            continue
        while (n_s + n_m + 1) * page > cap_bytes:
            has_evicted = True
            if n_m * page > main_bytes or n_s == 0:
                while n_m > 0:
                    v = l_back(prev, M)
                    l_remove(prev, nxt, v)
                    if freq[v] >= 1:
                        freq[v] = min(freq[v], max_freq) - 1
                        l_push_front(prev, nxt, M, v)
                    else:
                        where[v] = 0
                        n_m -= 1
                        break
            else:
                while n_s > 0:
                    v = l_back(prev, S)
                    l_remove(prev, nxt, v)
                    n_s -= 1
                    if freq[v] >= move_threshold:
                        l_push_front(prev, nxt, M, v)
                        where[v] = 2
                        freq[v] = 0
                        n_m += 1
                    else:
                        where[v] = 0
                        n_g = _ghost_push(prev, nxt, where, G, 3, v, n_g, page, ghost_bytes)
                        break
        if not ghost_hit and page >= small_bytes:
            continue  # libCacheSim admits no page as large as S (after evicting for it)
        freq[x] = 0
        if ghost_hit or (not has_evicted and n_s * page >= small_bytes):
            l_push_front(prev, nxt, M, x)
            where[x] = 2
            n_m += 1
        else:
            l_push_front(prev, nxt, S, x)
            where[x] = 1
            n_s += 1
    return miss


@njit(cache=True)
def sieve(ids, n_obj, cap):
    """SIEVE (Zhang et al. 2024): FIFO order, a visited bit and a hand that moves from old to new."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 1, np.int32)
    nxt = np.empty(n_obj + 1, np.int32)
    s = n_obj
    l_init(prev, nxt, s)
    inc = np.zeros(n_obj, np.bool_)
    visited = np.zeros(n_obj, np.bool_)
    hand = s
    size = 0
    for t in range(n):
        x = ids[t]
        if inc[x]:
            visited[x] = True
            continue
        miss[t] = 1
        if size >= cap:
            o, hand = sieve_victim(prev, nxt, visited, hand, s)
            l_remove(prev, nxt, o)
            inc[o] = False
            size -= 1
        l_push_front(prev, nxt, s, x)
        inc[x] = True
        visited[x] = False
        size += 1
    return miss


@njit(cache=True)
def tinylfu(ids, n_obj, cap, window, reset_period):
    """W-TinyLFU with exact counters (Einziger et al. 2017): new pages enter a small LRU
    window; the window's victim replaces the main cache's least-frequent page only
    if it has been requested more often. Every `reset_period` requests all counts
    halve, so popularity that has drifted away fades (the TinyLFU reset)."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    window = min(max(window, 1), cap)
    main_cap = cap - window
    prev = np.empty(n_obj + 1, np.int32)
    nxt = np.empty(n_obj + 1, np.int32)
    W = n_obj
    l_init(prev, nxt, W)
    in_win = np.zeros(n_obj, np.bool_)
    n_win = 0
    heap = np.empty(main_cap + 1, np.int32)
    pos = np.full(n_obj, -1, np.int32)
    cnt = np.zeros(n_obj, np.float64)  # heap key 1: the count itself, so halving keeps the heap valid
    last = np.zeros(n_obj, np.int64)
    size = 0
    ops = 0
    for t in range(n):
        x = ids[t]
        cnt[x] += 1.0
        last[x] = t
        ops += 1
        if ops >= reset_period:
            cnt *= 0.5
            ops = 0
        if in_win[x]:
            l_remove(prev, nxt, x)
            l_push_front(prev, nxt, W, x)
            continue
        if pos[x] >= 0:
            h_update(heap, pos, cnt, last, size, x)
            continue
        miss[t] = 1
        l_push_front(prev, nxt, W, x)
        in_win[x] = True
        n_win += 1
        if n_win > window:
            v = l_back(prev, W)
            l_remove(prev, nxt, v)
            in_win[v] = False
            n_win -= 1
            if size < main_cap:
                size = h_push(heap, pos, cnt, last, size, v)
            elif main_cap > 0:
                m = heap[0]
                if cnt[v] > cnt[m]:
                    size = h_remove(heap, pos, cnt, last, size, m)
                    size = h_push(heap, pos, cnt, last, size, v)
    return miss
