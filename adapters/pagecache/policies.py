"""Classic replacement policies as compiled (numba) simulation kernels.

Each kernel takes dense object ids (0..n_obj-1, int32), the number of distinct
objects and the capacity in pages, plus its knobs, and returns a uint8 array
with 1 where the request missed. Capacity counts objects (pages), which is the
page-cache model; byte miss ratios weight the misses by request size.
Every policy inserts the requested page on a miss (demand paging), so Belady's
MIN without bypass is the optimum they are measured against.
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
def arc(ids, n_obj, cap):
    """ARC (Megiddo & Modha 2003): T1/T2 resident, B1/B2 ghosts, adaptive target p."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 4, np.int32)
    nxt = np.empty(n_obj + 4, np.int32)
    T1, T2, B1, B2 = n_obj, n_obj + 1, n_obj + 2, n_obj + 3
    for s in range(n_obj, n_obj + 4):
        l_init(prev, nxt, s)
    where = np.zeros(n_obj, np.int8)  # 0 none, 1 T1, 2 T2, 3 B1, 4 B2
    cnt = np.zeros(4, np.int64)  # sizes of T1, T2, B1, B2
    p = 0.0
    c = cap
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
        if w == 3 or w == 4:
            if w == 3:
                p = min(float(c), p + max(cnt[3] / cnt[2], 1.0))
            else:
                p = max(0.0, p - max(cnt[2] / cnt[3], 1.0))
            l_remove(prev, nxt, x)
            cnt[w - 1] -= 1
            where[x] = 0
            if cnt[0] + cnt[1] >= c:
                _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, w == 4)
            l_push_front(prev, nxt, T2, x)
            cnt[1] += 1
            where[x] = 2
            continue
        # a page in no list
        if cnt[0] + cnt[2] >= c:
            if cnt[0] < c:
                v = l_back(prev, B1)
                l_remove(prev, nxt, v)
                where[v] = 0
                cnt[2] -= 1
                if cnt[0] + cnt[1] >= c:
                    _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, False)
            else:
                v = l_back(prev, T1)
                l_remove(prev, nxt, v)
                where[v] = 0
                cnt[0] -= 1
        else:
            total = cnt[0] + cnt[1] + cnt[2] + cnt[3]
            if total >= c:
                if total >= 2 * c:
                    v = l_back(prev, B2)
                    l_remove(prev, nxt, v)
                    where[v] = 0
                    cnt[3] -= 1
                if cnt[0] + cnt[1] >= c:
                    _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, False)
        l_push_front(prev, nxt, T1, x)
        cnt[0] += 1
        where[x] = 1
    return miss


@njit(cache=True)
def _arc_replace(prev, nxt, where, cnt, T1, T2, B1, B2, p, in_b2):
    if cnt[0] > 0 and (cnt[0] > p or (in_b2 and cnt[0] == p) or cnt[1] == 0):
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
def two_q(ids, n_obj, cap, kin, kout):
    """Full 2Q (Johnson & Shasha 1994): A1in FIFO of `kin` pages, A1out ghost FIFO of `kout` ids, Am LRU."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 3, np.int32)
    nxt = np.empty(n_obj + 3, np.int32)
    AIN, AOUT, AM = n_obj, n_obj + 1, n_obj + 2
    for s in range(n_obj, n_obj + 3):
        l_init(prev, nxt, s)
    where = np.zeros(n_obj, np.int8)  # 0 none, 1 A1in, 2 A1out, 3 Am
    n_in = 0
    n_out = 0
    n_m = 0
    for t in range(n):
        x = ids[t]
        w = where[x]
        if w == 3:
            l_remove(prev, nxt, x)
            l_push_front(prev, nxt, AM, x)
            continue
        if w == 1:
            continue
        miss[t] = 1
        if n_in + n_m >= cap:
            if n_in > kin or (n_m == 0):
                v = l_back(prev, AIN)
                l_remove(prev, nxt, v)
                n_in -= 1
                l_push_front(prev, nxt, AOUT, v)
                where[v] = 2
                n_out += 1
                if n_out > kout:
                    g = l_back(prev, AOUT)
                    l_remove(prev, nxt, g)
                    where[g] = 0
                    n_out -= 1
            else:
                v = l_back(prev, AM)
                l_remove(prev, nxt, v)
                where[v] = 0
                n_m -= 1
        if where[x] == 2:
            l_remove(prev, nxt, x)
            n_out -= 1
            l_push_front(prev, nxt, AM, x)
            where[x] = 3
            n_m += 1
        else:
            l_push_front(prev, nxt, AIN, x)
            where[x] = 1
            n_in += 1
    return miss


@njit(cache=True)
def s3fifo(ids, n_obj, cap, small_size, ghost_size, move_threshold, max_freq):
    """S3-FIFO (Yang et al. 2023): small FIFO S, main FIFO M with reinsertion, ghost FIFO G."""
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    prev = np.empty(n_obj + 3, np.int32)
    nxt = np.empty(n_obj + 3, np.int32)
    S, M, G = n_obj, n_obj + 1, n_obj + 2
    for s in range(n_obj, n_obj + 3):
        l_init(prev, nxt, s)
    where = np.zeros(n_obj, np.int8)  # 0 none, 1 S, 2 M, 3 G
    freq = np.zeros(n_obj, np.int32)
    cnt = np.zeros(3, np.int64)
    for t in range(n):
        x = ids[t]
        w = where[x]
        if w == 1 or w == 2:
            if freq[x] < max_freq:
                freq[x] += 1
            continue
        miss[t] = 1
        while cnt[0] + cnt[1] >= cap:
            if cnt[0] >= small_size or cnt[1] == 0:
                # evict from S: promote pages seen often enough, ghost the rest
                done = False
                while not done and cnt[0] > 0:
                    v = l_back(prev, S)
                    l_remove(prev, nxt, v)
                    cnt[0] -= 1
                    if freq[v] >= move_threshold:
                        l_push_front(prev, nxt, M, v)
                        where[v] = 2
                        freq[v] = 0
                        cnt[1] += 1
                    else:
                        l_push_front(prev, nxt, G, v)
                        where[v] = 3
                        cnt[2] += 1
                        if cnt[2] > ghost_size:
                            g = l_back(prev, G)
                            l_remove(prev, nxt, g)
                            where[g] = 0
                            cnt[2] -= 1
                        done = True
                if done:
                    continue
            # evict from M: reinsert pages with frequency left, decrementing it
            while cnt[1] > 0:
                v = l_back(prev, M)
                l_remove(prev, nxt, v)
                if freq[v] > 0:
                    freq[v] -= 1
                    l_push_front(prev, nxt, M, v)
                else:
                    where[v] = 0
                    cnt[1] -= 1
                    break
        freq[x] = 0
        if w == 3:
            l_remove(prev, nxt, x)
            cnt[2] -= 1
            l_push_front(prev, nxt, M, x)
            where[x] = 2
            cnt[1] += 1
        else:
            l_push_front(prev, nxt, S, x)
            where[x] = 1
            cnt[0] += 1
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
