"""A group-level learned policy in the style of GL-Cache (Yang et al., FAST 2023), compiled with numba.

Pages are grouped by insertion time: each miss appends the page to the open
group, which closes after `group_size` pages. When the cache is full, a whole
closed group is evicted: the one whose predicted utility is lowest (before the
first model: the oldest, i.e. group-FIFO). A group's features are cheap
running counters: log age, log requests to its pages since it was created,
the request rate per live page, the live fraction, the cache's miss ratio
when it was created, and the mean access count its pages had when inserted.

The utility of a group at time t is GL-Cache's: the sum over its pages of
1 / (time to the page's next request); pages not requested again within a
horizon (half the retraining interval) add nothing. Snapshots of groups'
features are taken at evictions; their labels are computed when the horizon
has passed (from requests already seen, nothing from the future), and a
gradient-boosted model (squared loss on
log(utility)) is refitted every `retrain` requests by the compiled trainer
(gbdt_train) and walked inside numba. Simplifications: groups are evicted whole (GL-Cache merges
groups and keeps their most useful pages), and every page is one page in size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from autosys_adapters.pagecache._lrb_kernels import rand_below
from autosys_adapters.pagecache.gbdt_export import complete, complete_predict, empty_forest

N_GROUP_FEATURES = 6
_EPS = 1e-6


@njit(cache=True)
def _group_features(g, t, cap, gsize, gcreate, greq, glive, gmiss0, gfreq0, gcount, out):
    age = t - gcreate[g]
    out[0] = np.log1p(age)
    out[1] = np.log1p(greq[g])
    out[2] = np.log1p(greq[g] * cap / ((age + 1.0) * max(glive[g], 1)))
    out[3] = glive[g] / gsize
    out[4] = gmiss0[g]
    out[5] = np.log1p(gfreq0[g] / max(gcount[g], 1))


@njit(cache=True)
def glcache_chunk(ids, nxt, t, t_end, cap, gsize, horizon, where, members, gcount, glive, gcreate, greq, gmiss0,
                  gfreq0, gopen, gserial, free_slots, state, last, freq, miss, rng,
                  trained, feature, threshold, value, base, snap_every, sx, sy, st, stats):
    """Simulate requests [t, t_end); returns the next t.

    state (float64): [0] pages cached, [1] open group slot, [2] free slots on the stack, [3] miss-ratio EMA.
    stats (int64): [0] group evictions, [1] model evaluations, [2] snapshots written (ring sx/sy/st).
    """
    n_slots = gcount.shape[0]
    f = np.empty(N_GROUP_FEATURES)
    idx = np.empty(feature.shape[0], np.int64)
    ring = sx.shape[0]
    alpha = 1.0 / cap
    while t < t_end:
        x = ids[t]
        g = where[x]
        if g >= 0:
            greq[g] += 1
            freq[x] += 1
            last[x] = t
            state[3] *= 1.0 - alpha
            t += 1
            continue
        miss[t] = 1
        state[3] = state[3] * (1.0 - alpha) + alpha
        if state[0] >= cap:  # evict the closed group of least predicted utility
            best = -1
            best_s = np.inf
            take = snap_every > 0 and t + horizon < t_end and (stats[0] % snap_every) == 0
            for h in range(n_slots):
                if not gopen[h] or h == int(state[1]) or glive[h] == 0:
                    continue
                if trained:
                    _group_features(h, t, cap, gsize, gcreate, greq, glive, gmiss0, gfreq0, gcount, f)
                    s = complete_predict(f, idx, feature, threshold, value, base)
                    stats[1] += 1
                else:
                    s = float(gserial[h])  # oldest first
                if take and rand_below(rng, 4) == 0:
                    k = stats[2] % ring
                    _group_features(h, t, cap, gsize, gcreate, greq, glive, gmiss0, gfreq0, gcount, sx[k])
                    # the label: every request it counts happens before t_end, when the driver retrains
                    u = 0.0
                    for i in range(gcount[h]):
                        m = members[h, i]
                        if where[m] == h:
                            d = nxt[last[m]] - t  # last[m] <= t is m's latest request: this is its next one
                            if d <= horizon:
                                u += 1.0 / d
                    sy[k] = u
                    st[k] = t
                    stats[2] += 1
                if s < best_s:
                    best_s = s
                    best = h
            if best < 0:
                raise RuntimeError("glcache: no closed group to evict (group_size too large for the cache)")
            for i in range(gcount[best]):
                m = members[best, i]
                if where[m] == best:
                    where[m] = -1
                    state[0] -= 1
            gopen[best] = False
            glive[best] = 0
            free_slots[int(state[2])] = best
            state[2] += 1
            stats[0] += 1
        o = int(state[1])
        if o < 0 or gcount[o] >= gsize:  # open a new group
            state[2] -= 1
            o = free_slots[int(state[2])]
            state[1] = o
            gopen[o] = True
            gcount[o] = 0
            glive[o] = 0
            gcreate[o] = t
            greq[o] = 0
            gmiss0[o] = state[3]
            gfreq0[o] = 0.0
            gserial[o] = t
        members[o, gcount[o]] = x
        gcount[o] += 1
        glive[o] += 1
        gfreq0[o] += freq[x]
        where[x] = o
        freq[x] += 1
        last[x] = t
        state[0] += 1
        t += 1
    return t


@dataclass
class GLCacheRun:
    miss: np.ndarray
    simulate_seconds: float
    train_seconds: float
    retrains: int
    group_evictions: int
    model_evaluations: int


def run_glcache_detailed(tr, cap, groups: int = 32, group_size: int = 0, retrain: int = 0, trees: int = 16,
                         depth: int = 4, seed: int = 0, **_) -> GLCacheRun:
    """GL-Cache-style group eviction over a PreparedTrace with `cap` pages, in about `groups` groups
    (or of `group_size` pages each when given)."""
    from autosys_adapters.pagecache.gbdt_train import fit_complete_forest
    from autosys_adapters.pagecache.lrb import auto_retrain, seed_state

    n = len(tr)
    cap = int(cap)
    if cap < 2:
        raise ValueError(f"glcache: the cache must hold at least two pages, got {cap}")
    if int(groups) < 2:
        raise ValueError(f"glcache: groups must be at least 2, got {groups}")
    gsize = int(group_size) if group_size else max(1, cap // int(groups))
    if not 1 <= gsize <= cap // 2:
        raise ValueError(f"glcache: group_size must be between 1 and half the cache ({cap // 2}), got {gsize}")
    retrain = auto_retrain(n) if not retrain else max(1_000, int(retrain))
    horizon = retrain // 2
    n_slots = cap // gsize + 3
    where = np.full(tr.n_obj, -1, np.int32)
    members = np.full((n_slots, gsize), -1, np.int32)
    gcount = np.zeros(n_slots, np.int64)
    glive = np.zeros(n_slots, np.int64)
    gcreate = np.zeros(n_slots, np.int64)
    greq = np.zeros(n_slots, np.float64)
    gmiss0 = np.zeros(n_slots)
    gfreq0 = np.zeros(n_slots)
    gopen = np.zeros(n_slots, np.bool_)
    gserial = np.zeros(n_slots, np.int64)
    free_slots = np.arange(n_slots, dtype=np.int64)[::-1].copy()
    state = np.array([0.0, -1.0, float(n_slots), 1.0])
    last = np.full(tr.n_obj, -1, np.int64)
    freq = np.zeros(tr.n_obj, np.float64)
    miss = np.zeros(n, np.uint8)
    rng = seed_state(seed)
    ring = 8_000
    sx = np.zeros((ring, N_GROUP_FEATURES))
    sy = np.zeros(ring)
    st = np.zeros(ring, np.int64)
    stats = np.zeros(3, np.int64)
    forest = complete(empty_forest(), 0)
    trained = False
    sim_s = train_s = 0.0
    retrains = 0
    snap_every = 1
    t = 0
    while t < n:
        t_end = min(n, t + retrain)
        ev0, c0 = stats[0], time.thread_time()
        s0 = stats[2]
        t = glcache_chunk(tr.ids, tr.nxt, t, t_end, cap, gsize, horizon, where, members, gcount, glive, gcreate, greq,
                          gmiss0, gfreq0, gopen, gserial, free_slots, state, last, freq, miss, rng,
                          trained, *forest.arrays, snap_every, sx, sy, st, stats)
        sim_s += time.thread_time() - c0
        if t >= n:
            break
        c0 = time.thread_time()
        new = int(stats[2] - s0)
        if new >= 100:  # fit on this chunk's snapshots
            rows = np.arange(stats[2] - min(new, ring), stats[2]) % ring
            y = np.log(_EPS + sy[rows])
            forest = fit_complete_forest(sx[rows], y, int(trees), int(depth), bins=32)
            trained = True
            retrains += 1
        evs = int(stats[0] - ev0)
        snap_every = max(1, evs * max(1, cap // gsize) // (4 * 4_000))
        train_s += time.thread_time() - c0
    return GLCacheRun(miss, sim_s, train_s, retrains, int(stats[0]), int(stats[1]))


def run_glcache(tr, cap, **knobs) -> np.ndarray:
    """GL-Cache-style policy's miss flag per request (the simulator's runner signature)."""
    return run_glcache_detailed(tr, cap, **knobs).miss
