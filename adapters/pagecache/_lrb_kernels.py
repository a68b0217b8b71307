"""Compiled core of the fast LRB-style policy (Song et al., NSDI 2020), driven chunk by chunk by lrb.run_lrb.

Per page the kernel keeps its last access time, the log of its last K
inter-access gaps and the log of its access count (`fx`, one row per page:
column 0 is filled with log1p(age) at evaluation time). On a miss with a full
cache it samples `m` cached pages and evicts the one whose predicted log time
to next access is largest; before the first model it evicts the oldest sample
(sampled LRU). Every `sample_every`-th eviction the first sampled page's
features become a training sample, labelled later (by the driver) with the
distance to that page's next request.

Speed: the other features change only on an access, and the model's
prediction changes with age only where a tree's path turns left at a split on
age (log1p(age) <= threshold) and the age passes that threshold. So each
page's prediction is cached, per cache slot, with the last time at which it
stays valid (the smallest such threshold on its paths, as an integer age;
reset on an access and when the model is retrained), and an eviction
recomputes only stale candidates. `use_cache=False` recomputes every
candidate and must give the identical miss sequence (a test checks it).
Candidates are drawn as cache slots, so a candidate with a valid cached
prediction costs one memory access.
"""

from __future__ import annotations

import numpy as np
from numba import njit


#: log1p of a gap never observed (fewer than K earlier accesses)
MISSING_GAP = float(np.log1p(1e9))
_NEVER = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def rand_below(rng, n):
    """xorshift64* draw in [0, n) for n < 2**32 (multiply-shift, no division): cheap, seeded, portable."""
    x = rng[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[0] = x
    r = (x * np.uint64(2685821657736338717)) >> np.uint64(32)
    return np.int64((r * np.uint64(n)) >> np.uint64(32))


@njit(cache=True)
def age_limits(thresholds):
    """For each split threshold th on log1p(age): the largest integer age a with log1p(a) <= th (-1 if none)."""
    out = np.empty(len(thresholds), np.int64)
    for i in range(len(thresholds)):
        th = thresholds[i]
        if th < 0.0:
            out[i] = -1
            continue
        a = np.int64(np.floor(np.expm1(min(th, 40.0))))
        while a >= 0 and np.log1p(float(a)) > th:
            a -= 1
        while np.log1p(float(a + 1)) <= th:
            a += 1
        out[i] = a
    return out


def node_age_limits(feature: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Per node of a CompleteForest: the largest age that still goes left at a split on age (feature 0);
    the int64 maximum at every other node (padding included)."""
    out = np.full(feature.shape, _NEVER, np.int64)
    real = (feature == 0) & np.isfinite(threshold)
    out[real] = age_limits(threshold[real])
    return out


@njit(cache=True)
def predict_until(f, idx, feature, threshold, value, base, node_lim):
    """(prediction, largest age for which it holds) of a CompleteForest at feature vector f (f[0] = log1p(age))."""
    n_trees, n_internal = feature.shape
    for k in range(n_trees):
        idx[k] = 0
    lim = _NEVER
    while idx[0] < n_internal:
        for k in range(n_trees):
            i = idx[k]
            right = f[feature[k, i]] > threshold[k, i]
            if not right and node_lim[k, i] < lim:
                lim = node_lim[k, i]
            idx[k] = 2 * i + 1 + np.int64(right)
    s = base
    for k in range(n_trees):
        s += value[k, idx[k] - n_internal]
    return s, lim


@njit(cache=True, inline="always")
def _touch(x, t, last, fx, freq):
    k_last = fx.shape[1] - 1
    if last[x] >= 0:
        for k in range(k_last - 1, 1, -1):
            fx[x, k] = fx[x, k - 1]
        fx[x, 1] = np.log1p(float(t - last[x]))
    freq[x] += 1
    fx[x, k_last] = np.log1p(float(freq[x]))
    last[x] = t


@njit(cache=True)
def lrb_chunk(ids, nxt, t, t_end, cap, m, cache, where, slot_meta, size, last, fx, freq, miss, rng,
              trained, feature, threshold, value, base, node_lim, use_cache, sample_every, sx, snext, st, stats):
    """Simulate requests [t, t_end) with the model as a CompleteForest (feature, threshold, value, base); returns the next t.

    Per cache slot, slot_meta holds (last access time, time until which the cached
    prediction holds (-1 = none), the prediction): a sampled candidate costs one
    memory access unless its prediction must be recomputed.
    stats (int64): [0] evictions, [1] model evaluations, [2] training samples written
    (the ring sx/snext/st holds the latest len(sx)), [3] evictions since the last sample.
    """
    n_feat = fx.shape[1]
    f = np.empty(n_feat)
    idx = np.empty(feature.shape[0], np.int64)
    ring = sx.shape[0]
    while t < t_end:
        x = ids[t]
        j = where[x]
        if j >= 0:
            _touch(x, t, last, fx, freq)
            slot_meta[j, 0] = t
            slot_meta[j, 1] = -1.0
            t += 1
            continue
        miss[t] = 1
        if size[0] < cap:
            slot = size[0]
            size[0] += 1
        else:
            n_cached = size[0]
            slot = -1
            best_s = -np.inf
            take = sample_every > 0 and stats[3] + 1 >= sample_every
            for c in range(m):
                j = rand_below(rng, n_cached)
                age = t - slot_meta[j, 0]
                if not trained:
                    s = age
                elif use_cache and t <= slot_meta[j, 1]:
                    s = slot_meta[j, 2]
                else:
                    y = cache[j]
                    f[0] = np.log1p(age)
                    for k in range(1, n_feat):
                        f[k] = fx[y, k]
                    s, lim = predict_until(f, idx, feature, threshold, value, base, node_lim)
                    stats[1] += 1
                    slot_meta[j, 2] = s
                    slot_meta[j, 1] = slot_meta[j, 0] + lim if lim < _NEVER else np.inf
                if take and c == 0:
                    y = cache[j]
                    k = stats[2] % ring
                    sx[k, 0] = np.log1p(age)
                    for q in range(1, n_feat):
                        sx[k, q] = fx[y, q]
                    snext[k] = nxt[last[y]]
                    st[k] = t
                    stats[2] += 1
                if s > best_s:
                    best_s = s
                    slot = j
            stats[3] = 0 if take else stats[3] + 1
            where[cache[slot]] = -1
            stats[0] += 1
        cache[slot] = x
        where[x] = slot
        _touch(x, t, last, fx, freq)
        slot_meta[slot, 0] = t
        slot_meta[slot, 1] = -1.0
        t += 1
    return t
