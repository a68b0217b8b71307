"""Cacheus (Rodriguez et al., FAST 2021), compiled with numba.

Two experts over the same cached pages, mixed by regret as in LeCaR:

- SR-LRU (scan-resistant LRU): the cache is split into SR (new and demoted
  pages) and R (pages reused while cached). A new page enters SR's MRU end; a
  hit in SR moves the page to R's MRU end; when R is over its target size its
  LRU page is demoted to SR's MRU end. SR-LRU's victim is SR's LRU page. The
  split adapts: a hit on a demoted page in SR shrinks SR's target (R was too
  small), and a page evicted while new and requested again from the history H
  grows it (SR was too small). H remembers the last `cap` evicted pages and
  their access counts; a page back from H enters R.
- CR-LFU (churn-resistant LFU): the least frequently used page, ties broken
  toward the most recently used one (so a churning working set larger than
  the cache keeps a stable part); counts come back from H.

On a miss with a full cache one expert is drawn by weight (if both name the
same page, it is evicted without blame); the victim goes to that expert's
ghost list (each `cap / 2` pages, FIFO). A miss on a page in an expert's
ghost list multiplies that expert's weight by exp(-lr) (weights kept within
[0.01, 0.99], as the authors' code does). The learning rate adapts every
`cap` requests by the sign of (change in hit rate) x (change in learning
rate), within [0.001, 1], and restarts at random after 10 periods without
improvement.

Differences from libCacheSim's Cacheus (compared in experiments/page_policy_speed.py):
the cache always holds exactly `cap` pages (libCacheSim's SR list can evict on
its own when over target), and the hit rate for the learning-rate update is a
fraction (libCacheSim's integer division makes it 0 until every request hits).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from autosys_adapters.pagecache._lists import h_push, h_remove, h_update, l_back, l_init, l_push_front, l_remove
from autosys_adapters.pagecache._lrb_kernels import rand_below


@njit(cache=True)
def _uniform(rng):
    return rand_below(rng, 1 << 30) / float(1 << 30)


@njit(cache=True)
def cacheus_kernel(ids, n_obj, cap, ghost_cap, lr0, rng):
    n = len(ids)
    miss = np.zeros(n, np.uint8)
    # cache lists SR (sentinel n_obj) and R (n_obj + 1)
    cprev = np.empty(n_obj + 2, np.int32)
    cnext = np.empty(n_obj + 2, np.int32)
    SR, R = n_obj, n_obj + 1
    l_init(cprev, cnext, SR)
    l_init(cprev, cnext, R)
    where = np.zeros(n_obj, np.int8)  # 0 absent, 1 SR, 2 R
    demoted = np.zeros(n_obj, np.bool_)
    new = np.zeros(n_obj, np.bool_)
    n_sr = 0
    n_r = 0
    sr_target = cap / 2.0
    c_demoted = 0  # demoted pages in SR
    c_new = 0  # pages in H evicted while new
    # history H (sentinel n_obj) with each page's count
    hprev = np.empty(n_obj + 1, np.int32)
    hnext = np.empty(n_obj + 1, np.int32)
    l_init(hprev, hnext, n_obj)
    in_h = np.zeros(n_obj, np.bool_)
    n_h = 0
    # ghost lists of the two experts (sentinels n_obj, n_obj + 1)
    gprev = np.empty(n_obj + 2, np.int32)
    gnext = np.empty(n_obj + 2, np.int32)
    l_init(gprev, gnext, n_obj)
    l_init(gprev, gnext, n_obj + 1)
    ghost = np.full(n_obj, -1, np.int8)
    n_g = np.zeros(2, np.int64)
    # CR-LFU heap: (count, -time the page reached that count): fewest uses, then most recent
    heap = np.empty(cap + 1, np.int32)
    pos = np.full(n_obj, -1, np.int32)
    k1 = np.zeros(n_obj, np.int64)
    k2 = np.zeros(n_obj, np.int64)
    freq = np.zeros(n_obj, np.int64)
    size = 0
    w_lru = 0.5
    w_lfu = 0.5
    lr = lr0
    lr_prev = 0.0
    hr_prev = 0.0
    hits = 0
    unlearn = 0
    for t in range(n):
        if t > 0 and t % cap == 0:  # adapt the learning rate once per cache-size requests
            hr = hits / cap
            d_hr = hr - hr_prev
            d_lr = lr - lr_prev
            lr_prev = lr
            hr_prev = hr
            if d_lr != 0.0:
                sign = 1.0 if d_hr * d_lr > 0 else -1.0
                lr = min(1.0, max(0.001, lr + sign * abs(lr * d_lr)))  # the authors' code bounds it too
                unlearn = 0
            else:
                if hr == 0.0 or d_hr <= 0.0:
                    unlearn += 1
                if unlearn >= 10:
                    unlearn = 0
                    lr = 0.001 + 0.999 * _uniform(rng)
            hits = 0
        x = ids[t]
        if where[x] != 0:
            hits += 1
            freq[x] += 1
            k1[x] = freq[x]
            k2[x] = -t
            h_update(heap, pos, k1, k2, size, x)
            l_remove(cprev, cnext, x)
            if where[x] == 2:
                l_push_front(cprev, cnext, R, x)
                continue
            # hit in SR: to R's MRU end
            n_sr -= 1
            if demoted[x]:  # R was too small
                sr_target = max(1.0, sr_target - max(1.0, c_new / max(c_demoted, 1)))
                demoted[x] = False
                c_demoted -= 1
            new[x] = False
            l_push_front(cprev, cnext, R, x)
            where[x] = 2
            n_r += 1
            while n_r > max(1.0, cap - sr_target):
                y = l_back(cprev, R)
                l_remove(cprev, cnext, y)
                n_r -= 1
                l_push_front(cprev, cnext, SR, y)
                where[y] = 1
                n_sr += 1
                if not demoted[y]:
                    demoted[y] = True
                    c_demoted += 1
            continue
        miss[t] = 1
        g = ghost[x]
        if g >= 0:  # the expert that evicted x regrets it
            l_remove(gprev, gnext, x)
            n_g[g] -= 1
            ghost[x] = -1
            if g == 0:
                w_lru *= np.exp(-lr)
            else:
                w_lfu *= np.exp(-lr)
            total = w_lru + w_lfu
            w_lru = min(0.99, max(0.01, w_lru / total))  # as the authors' code: neither expert is ever silenced
            w_lfu = 1.0 - w_lru
        if size >= cap:
            v_lru = l_back(cprev, SR) if n_sr > 0 else l_back(cprev, R)
            v_lfu = heap[0]
            if v_lru == v_lfu:
                v, expert = v_lru, -1
            elif _uniform(rng) < w_lru:
                v, expert = v_lru, 0
            else:
                v, expert = v_lfu, 1
            # remove v from the cache
            l_remove(cprev, cnext, v)
            if where[v] == 1:
                n_sr -= 1
                if demoted[v]:
                    demoted[v] = False
                    c_demoted -= 1
            else:
                n_r -= 1
            where[v] = 0
            size = h_remove(heap, pos, k1, k2, size, v)
            # into H (remembering the count and whether it left while new)
            l_push_front(hprev, hnext, n_obj, v)
            in_h[v] = True
            n_h += 1
            if new[v]:
                c_new += 1
            while n_h > cap:
                o = l_back(hprev, n_obj)
                l_remove(hprev, hnext, o)
                in_h[o] = False
                n_h -= 1
                if new[o]:
                    new[o] = False
                    c_new -= 1
            if expert >= 0:
                s = n_obj + expert
                l_push_front(gprev, gnext, s, v)
                ghost[v] = expert
                n_g[expert] += 1
                if n_g[expert] > ghost_cap:
                    o = l_back(gprev, s)
                    l_remove(gprev, gnext, o)
                    ghost[o] = -1
                    n_g[expert] -= 1
        # insert x
        if in_h[x]:  # back from the history: keeps its count, enters R
            l_remove(hprev, hnext, x)
            in_h[x] = False
            n_h -= 1
            freq[x] += 1
            if new[x]:  # evicted while new and wanted again: SR was too small
                new[x] = False
                c_new -= 1
                sr_target = min(cap - 1.0, sr_target + max(1.0, c_demoted / max(c_new, 1)))
            l_push_front(cprev, cnext, R, x)
            where[x] = 2
            n_r += 1
            while n_r > max(1.0, cap - sr_target):
                y = l_back(cprev, R)
                l_remove(cprev, cnext, y)
                n_r -= 1
                l_push_front(cprev, cnext, SR, y)
                where[y] = 1
                n_sr += 1
                if not demoted[y]:
                    demoted[y] = True
                    c_demoted += 1
        else:
            freq[x] = 1
            new[x] = True
            l_push_front(cprev, cnext, SR, x)
            where[x] = 1
            n_sr += 1
        k1[x] = freq[x]
        k2[x] = -t
        size = h_push(heap, pos, k1, k2, size, x)
    return miss


def run_cacheus(tr, cap, ghost: float = 0.5, learning_rate: float = 0.0, seed: int = 0, **_) -> np.ndarray:
    """Cacheus over a PreparedTrace with `cap` pages; each ghost list holds `ghost` x cap pages; the first
    learning rate is `learning_rate`, or (0) drawn uniformly from [0.001, 1) as libCacheSim does."""
    from autosys_adapters.pagecache.lrb import seed_state

    cap = int(cap)
    if cap < 1:
        raise ValueError(f"cacheus: capacity must be at least one page, got {cap}")
    if not ghost > 0:
        raise ValueError(f"cacheus: ghost (history size as a fraction of the cache) must be positive, got {ghost}")
    if learning_rate < 0:
        raise ValueError(f"cacheus: learning_rate must be >= 0 (0 = random start), got {learning_rate}")
    rng = seed_state(seed)
    lr0 = float(learning_rate) if learning_rate > 0 else 0.001 + 0.999 * float(_uniform(rng))
    return cacheus_kernel(tr.ids, tr.n_obj, cap, max(1, int(round(ghost * cap))), lr0, rng)
