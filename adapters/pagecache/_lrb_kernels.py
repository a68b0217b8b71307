"""Compiled core of the fast LRB-style policy (Song et al., NSDI 2020), driven chunk by chunk by lrb.run_lrb.

Features are one-byte log codes (`log_code`: 8 steps per doubling, computed
with integer instructions, no logarithm): per page the codes of its last K
inter-access gaps (columns 1..K; a gap never seen is MISSING_CODE) and of its
access count (column K+1); column 0, the code of the page's age, is computed
at evaluation time. A cached page's codes, last access and count live in its
cache slot (see lrb_chunk); evicted pages keep theirs in per-page arrays. On
a miss with a full cache the kernel samples `m` cached pages and evicts the
one whose predicted log time to next access is largest; before the first
model it evicts the oldest sample (sampled LRU). Every `sample_every`-th
eviction the first sampled page's codes become a training sample, labelled
later (by the driver) with the distance to that page's next request.

The model is evaluated in the QuickScorer layout (gbdt_export.BitForest):
because every feature is a code below 256, `rows[j, code]` holds the mask row
of feature j for that code, so a prediction is one table look-up and one
AND over the trees per feature, then one bit scan per tree: no branch
depends on the data.

Speed: the codes other than age change only on an access, and a prediction
changes with age only where a tree's exit path turns left at a split on age
(code <= threshold) and the age passes it. So each page's prediction is
cached, per cache slot, with the last age at which it holds (`leaf_lim`: per
tree and exit leaf, the smallest such age on its path), reset on an access
and when the model changes, and an eviction recomputes only stale
candidates. `use_cache=False` recomputes every candidate and must give the
identical miss sequence (a test checks it). Candidates are drawn as cache
slots, so a candidate with a valid cached prediction costs one memory access.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from autosys_adapters.pagecache.gbdt_export import BitForest, CompleteForest, trailing_zeros

#: codes are uint8: 8 per doubling covers values up to 2**32
N_CODES = 256
#: the code of a gap never observed (fewer than K earlier accesses): above every real gap's code
MISSING_CODE = N_CODES - 1
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


@intrinsic
def _leading_zeros(typingctx, x):
    """Leading zero bits of a uint64 (64 for 0): one instruction (LLVM ctlz)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@njit(cache=True, inline="always")
def log_code(v):
    """The code of an integer v >= 0: 8 x floor(log2(v + 1)) plus the next 3 bits of v + 1, capped at 254.

    Monotone in v, exact for v < 15, about 9% resolution above: a log scale without a logarithm."""
    u = np.uint64(v + 1)
    e = np.int64(63 - _leading_zeros(u))
    if e >= 3:
        top = np.int64(u >> np.uint64(e - 3)) & 7
    else:
        top = np.int64(u << np.uint64(3 - e)) & 7
    return min(8 * e + top, MISSING_CODE - 1)


@njit(cache=True)
def log_codes(values):
    """`log_code` of every element (int64 array) as uint8."""
    out = np.empty(len(values), np.uint8)
    for i in range(len(values)):
        out[i] = log_code(values[i])
    return out


@lru_cache(maxsize=1)
def code_age_ends() -> np.ndarray:
    """ends[c] = the largest integer v >= 0 with log_code(v) <= c (int64 max where no v exceeds c)."""
    top = np.int64(1) << 40
    c = np.arange(N_CODES, dtype=np.int64)
    lo = np.zeros(N_CODES, np.int64)  # log_code(lo) <= c always (log_code(0) = 0)
    hi = np.full(N_CODES, top, np.int64)
    for _ in range(41):  # binary search on the monotone code, every c at once
        mid = (lo + hi + 1) // 2
        ok = log_codes(mid) <= c
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid - 1)
    return np.where(lo >= top, _NEVER, lo)


@njit(cache=True)
def _leaf_limits(feature, threshold, ends, depth, age_feature):
    n_trees, n_int = feature.shape
    n_leaves = n_int + 1
    out = np.full((n_trees, n_leaves), _NEVER, np.int64)
    for k in range(n_trees):
        for leaf in range(n_leaves):
            node = 0
            for level in range(depth):
                right = (leaf >> (depth - 1 - level)) & 1
                th = threshold[k, node]
                if right == 0 and feature[k, node] == age_feature and np.isfinite(th):
                    lim = np.int64(-1) if th < 0 else ends[min(np.int64(np.floor(th)), ends.shape[0] - 1)]
                    if lim < out[k, leaf]:
                        out[k, leaf] = lim
                node = 2 * node + 1 + right
    return out


def leaf_age_limits(forest: CompleteForest, age_feature: int = 0) -> np.ndarray:
    """Per tree and leaf: the largest age whose code still takes every left turn on age along the leaf's path
    (int64 max where the path has none): the prediction holds until the age passes the smallest of these."""
    return _leaf_limits(forest.feature, forest.threshold, code_age_ends(), forest.depth, age_feature)


def code_rows(bits: BitForest) -> np.ndarray:
    """rows[j, c] = the mask row of feature j for code c (c = 0..N_CODES-1): offsets[j] + j + #thresholds below c."""
    n_feat = len(bits.offsets) - 1
    codes = np.arange(N_CODES, dtype=np.float64)
    rows = np.empty((n_feat, N_CODES), np.int64)
    for j in range(n_feat):
        u = bits.thresholds[bits.offsets[j]:bits.offsets[j + 1]]
        rows[j] = bits.offsets[j] + j + np.searchsorted(u, codes, side="left")
    return rows


@njit(cache=True, inline="always")
def predict_coded(age_code, fx, y, rows, masks, value, base, leaf_lim, acc):
    """(prediction, largest age for which it holds) for page y's codes (row y of fx) and its age's code."""
    n_trees = masks.shape[1]
    r = rows[0, age_code]
    for k in range(n_trees):
        acc[k] = masks[r, k]
    for q in range(1, fx.shape[1]):
        r = rows[q, fx[y, q]]
        for k in range(n_trees):
            acc[k] &= masks[r, k]
    s = base
    lim = _NEVER
    for k in range(n_trees):
        leaf = np.int64(trailing_zeros(acc[k]))
        s += value[k, leaf]
        lim = min(lim, leaf_lim[k, leaf])
    return s, lim


@njit(cache=True)
def predict_code_rows(X, rows, masks, value, base):
    """The model's prediction for every row of code features X (uint8, column 0 = the age's code)."""
    n_trees = masks.shape[1]
    acc = np.empty(n_trees, np.uint64)
    lim = np.full((n_trees, value.shape[1]), _NEVER, np.int64)
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = predict_coded(X[i, 0], X, i, rows, masks, value, base, lim, acc)[0]
    return out


#: predictions are kept as int32 fixed point (2**-24 steps: far below any difference that matters)
SCORE_SCALE = float(2 ** 24)
_I32_MAX = np.iinfo(np.int32).max


@njit(cache=True, inline="always")
def _touch(j, t, slot_key, slot_meta, slot_fx):
    """An access at time t to the page in slot j: shift in the new gap, count it, reset its age and score."""
    k_last = slot_fx.shape[1] - 1
    if slot_meta[j, 0] >= 0:
        for k in range(k_last - 1, 1, -1):
            slot_fx[j, k] = slot_fx[j, k - 1]
        slot_fx[j, 1] = log_code(t - slot_meta[j, 0])
    slot_meta[j, 1] += 1
    slot_fx[j, k_last] = log_code(slot_meta[j, 1])
    slot_meta[j, 0] = t
    slot_key[j, 0] = -1


@njit(cache=True)
def lrb_chunk(ids, nxt, t, t_end, cap, m, cache, where, slot_key, slot_meta, slot_fx, size, last, fx, freq, miss, rng,
              trained, rows, masks, value, base, leaf_lim, use_cache, sample_every, sx, snext, st, stats):
    """Simulate requests [t, t_end) with the model (rows, masks, value, base, leaf_lim); returns the next t.

    A cached page's state lives in its slot, so a hit and a sampled candidate
    touch only slot memory (the cache's size, not the footprint's):
    slot_key (int32) holds the time until which the slot's score holds (-1 =
    none) and the score, the eviction priority (the prediction in fixed point;
    before the first model minus the last access time, so the oldest
    goes): a candidate whose score holds costs one 8-byte read. slot_meta
    (int64) holds the last access time and access count, slot_fx the codes.
    The per-page arrays (last, fx, freq: the history of pages not cached) are
    read when a page is inserted and written back when it is evicted.
    stats (int64): [0] evictions, [1] model evaluations, [2] training samples written
    (the ring sx/snext/st holds the latest len(sx)), [3] evictions since the last sample.
    """
    n_feat = fx.shape[1]
    acc = np.empty(masks.shape[1], np.uint64)
    ring = sx.shape[0]
    while t < t_end:
        x = ids[t]
        j = where[x]
        if j >= 0:
            _touch(j, t, slot_key, slot_meta, slot_fx)
            t += 1
            continue
        miss[t] = 1
        if size[0] < cap:
            slot = size[0]
            size[0] += 1
        else:
            n_cached = size[0]
            slot = -1
            best = np.int64(-(2 ** 62))
            take = sample_every > 0 and stats[3] + 1 >= sample_every
            for c in range(m):
                j = rand_below(rng, n_cached)
                if use_cache and t <= slot_key[j, 0]:
                    s = np.int64(slot_key[j, 1])
                elif not trained:
                    s = -slot_meta[j, 0]
                    slot_key[j, 0] = _I32_MAX
                    slot_key[j, 1] = s
                else:
                    age = t - slot_meta[j, 0]
                    p, lim = predict_coded(log_code(age), slot_fx, j, rows, masks, value, base, leaf_lim, acc)
                    stats[1] += 1
                    s = min(max(np.int64(np.floor(p * SCORE_SCALE + 0.5)), -_I32_MAX), _I32_MAX)
                    slot_key[j, 0] = min(slot_meta[j, 0] + lim, _I32_MAX) if lim < _NEVER else _I32_MAX
                    slot_key[j, 1] = s
                if take and c == 0:
                    k = stats[2] % ring
                    sx[k, 0] = log_code(t - slot_meta[j, 0])
                    for q in range(1, n_feat):
                        sx[k, q] = slot_fx[j, q]
                    snext[k] = nxt[slot_meta[j, 0]]
                    st[k] = t
                    stats[2] += 1
                if s > best:
                    best = s
                    slot = j
            stats[3] = 0 if take else stats[3] + 1
            y = cache[slot]  # write the evicted page's state back
            where[y] = -1
            last[y] = slot_meta[slot, 0]
            freq[y] = slot_meta[slot, 1]
            for q in range(1, n_feat):
                fx[y, q] = slot_fx[slot, q]
            stats[0] += 1
        cache[slot] = x
        where[x] = slot
        slot_meta[slot, 0] = last[x]
        slot_meta[slot, 1] = freq[x]
        for q in range(1, n_feat):
            slot_fx[slot, q] = fx[x, q]
        _touch(slot, t, slot_key, slot_meta, slot_fx)
        t += 1
    return t
