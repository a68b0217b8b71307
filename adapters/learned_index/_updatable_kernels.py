"""numba kernels of the updatable learned index (import only through `updatable`).

`state` is the tuple `UpdatableIndex._allocate` builds: (slot keys, slot
payloads, node start, node capacity, node key count, slope, intercept, base
key, pivot, counters). All key arithmetic stays in uint64: numba turns
uint64-with-int64 mixes into floats.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

MAX = np.uint64(2**64 - 1)
NODES, USED, KEYS, SPLITS, EXPANSIONS, SHIFTS, CONTRACTIONS = 0, 1, 2, 3, 4, 5, 6
MIN_CAP = 8


@intrinsic
def cycle_counter(typingctx):
    """llvm.readcyclecounter (rdtsc on x86): a cheap, unserialised time stamp."""

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", (), fnty)
        return builder.call(fn, [])

    return types.int64(), codegen


# --------------------------------------------------------------------------- node search


@njit(cache=True, inline="always")
def _find_node(pivots, n_nodes, k):
    """The last node whose pivot is <= k (pivot 0 is 0, so there always is one)."""
    lo = 0
    n = n_nodes
    while n > 1:
        half = n >> 1
        if pivots[lo + half] <= k:
            lo += half
        n -= half
    return lo


@njit(cache=True, inline="always")
def _predict(slope, icpt, base, k, cap):
    if k >= base:
        x = float(k - base)
    else:
        x = -float(base - k)
    p = slope * x + icpt
    if not p > 0.0:  # also NaN
        return 0
    if p >= cap - 1:
        return cap - 1
    return int(p)


@njit(cache=True, inline="always")
def _above(v, k, strict):
    if strict:
        return v > k
    return v >= k


@njit(cache=True)
def _search(slots, b, cap, k, p, strict):
    """First slot s in [0, cap] of the node at b whose key is > k (strict) or >= k, searched outward from p."""
    if _above(slots[b + p], k, strict):
        hi = p
        step = 1
        while True:
            lo = hi - step
            if lo < 0:
                lo = -1
                break
            if not _above(slots[b + lo], k, strict):
                break
            hi = lo
            step *= 2
    else:
        lo = p
        step = 1
        while True:
            hi = lo + step
            if hi >= cap:
                hi = cap
                break
            if _above(slots[b + hi], k, strict):
                break
            lo = hi
            step *= 2
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if _above(slots[b + mid], k, strict):
            hi = mid
        else:
            lo = mid
    return hi


@njit(cache=True, inline="always")
def _occupied(slots, b, cap, s):
    nxt = slots[b + s + 1] if s + 1 < cap else MAX
    return slots[b + s] != nxt


# --------------------------------------------------------------------------- building nodes


@njit(cache=True)
def _write_node(src_keys, src_vals, lo, hi, state, i, cap, model, even):
    """Fit node i's model to src[lo:hi] and place the keys model-based into `cap` fresh slots at the pool's end."""
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    b = counters[USED]
    counters[USED] += cap
    start[i] = b
    caps[i] = cap
    n = hi - lo
    count[i] = n
    if n == 0:
        slope[i] = 0.0
        icpt[i] = 0.0
        base[i] = pivots[i]
        for s in range(cap):
            slots[b + s] = MAX
        return
    k0 = src_keys[lo]
    base[i] = k0
    if n == 1:
        a, c = 0.0, 0.0
    elif model == 1:  # endpoints: the line through the first and last key
        a = (n - 1) / float(src_keys[hi - 1] - k0)
        c = 0.0
    else:  # least squares of rank on key
        mx = 0.0
        for j in range(n):
            mx += float(src_keys[lo + j] - k0)
        mx /= n
        my = (n - 1) / 2.0
        sxy = 0.0
        sxx = 0.0
        for j in range(n):
            dx = float(src_keys[lo + j] - k0) - mx
            sxy += dx * (j - my)
            sxx += dx * dx
        a = sxy / sxx if sxx > 0.0 else 0.0
        c = my - a * mx
    scale = cap / float(n)
    slope[i] = a * scale
    icpt[i] = c * scale
    # model-based placement: each key at its predicted slot, pushed right past the previous one,
    # and never so far right that the keys after it would not fit; "even" spreads the gaps evenly instead
    pos = np.empty(n, dtype=np.int64)
    prev = -1
    for j in range(n):
        if even:
            p = (j * cap) // n
        else:
            p = _predict(slope[i], icpt[i], k0, src_keys[lo + j], cap)
        if p <= prev:
            p = prev + 1
        if p > cap - (n - j):
            p = cap - (n - j)
        pos[j] = p
        prev = p
    j = n - 1
    nxt = MAX
    for s in range(cap - 1, -1, -1):
        if j >= 0 and pos[j] == s:
            nxt = src_keys[lo + j]
            slots[b + s] = nxt
            vals[b + s] = src_vals[lo + j]
            j -= 1
        else:
            slots[b + s] = nxt


@njit(cache=True)
def _cap_for(n, density, max_slots):
    cap = int(np.ceil(n / density))
    if cap < MIN_CAP:
        cap = MIN_CAP
    if cap > max_slots:
        cap = max_slots
    return cap


@njit(cache=True)
def bulk_load(keys, values, per_node, state, params):
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    n = keys.size
    n_nodes = max(1, (n + per_node - 1) // per_node)
    counters[:] = 0
    counters[NODES] = n_nodes
    counters[KEYS] = n
    max_slots = int(params[2])
    for i in range(n_nodes):
        lo = i * per_node
        hi = min(n, lo + per_node)
        pivots[i] = keys[lo] if i > 0 else np.uint64(0)
        _write_node(keys, values, lo, hi, state, i, _cap_for(hi - lo, params[0], max_slots), int(params[3]), params[4] > 0)


@njit(cache=True)
def _node_items(state, i):
    slots, vals, start, caps, count = state[0], state[1], state[2], state[3], state[4]
    n = count[i]
    ks = np.empty(n, dtype=np.uint64)
    vs = np.empty(n, dtype=np.uint64)
    _copy_live(slots, vals, start[i], caps[i], ks, vs, 0)
    return ks, vs


@njit(cache=True)
def _copy_live(slots, vals, b, cap, ks, vs, j):
    """Copy a node's live (key, value) pairs, in order, into ks/vs from index j; returns the next free index."""
    for s in range(cap):
        if _occupied(slots, b, cap, s):
            ks[j] = slots[b + s]
            vs[j] = vals[b + s]
            j += 1
    return j


@njit(cache=True)
def _rebuild(state, params, i, extra):
    """Rebuild node i with room for `extra` more keys: expand or contract it, or split it into equal parts.

    Returns False (changing nothing) when the pool or the node table lacks room.
    """
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    n = count[i]
    dinit = params[0]
    max_slots = int(params[2])
    need = int(np.ceil((n + extra) / dinit))
    parts = 1
    if need > max_slots:
        parts = (need + max_slots - 1) // max_slots
        if parts < 2:
            parts = 2
    per = (n + parts - 1) // parts  # the largest part; parts are n*p//parts .. n*(p+1)//parts, none empty
    cap = _cap_for(per + extra, dinit, max_slots)
    n_nodes = counters[NODES]
    if counters[USED] + parts * cap > slots.size or n_nodes + parts - 1 > start.size:
        return False
    ks, vs = _node_items(state, i)
    if parts > 1:
        move = parts - 1
        for j in range(n_nodes - 1, i, -1):
            start[j + move] = start[j]
            caps[j + move] = caps[j]
            count[j + move] = count[j]
            slope[j + move] = slope[j]
            icpt[j + move] = icpt[j]
            base[j + move] = base[j]
            pivots[j + move] = pivots[j]
        counters[NODES] += move
        counters[SPLITS] += 1
    elif cap > caps[i]:
        counters[EXPANSIONS] += 1
    else:
        counters[CONTRACTIONS] += 1
    for p in range(parts):
        lo = n * p // parts
        hi = n * (p + 1) // parts
        if p > 0:
            pivots[i + p] = ks[lo]
        _write_node(ks, vs, lo, hi, state, i + p, cap, int(params[3]), params[4] > 0)
    return True


# --------------------------------------------------------------------------- operations


@njit(cache=True, inline="always")
def _lookup(state, k):
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    i = _find_node(pivots, counters[NODES], k)
    b = start[i]
    cap = caps[i]
    s = _search(slots, b, cap, k, _predict(slope[i], icpt[i], base[i], k, cap), True) - 1
    if s >= 0 and slots[b + s] == k:
        return vals[b + s]
    return MAX


@njit(cache=True, inline="always")
def _lower_bound(state, k):
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    n_nodes = counters[NODES]
    i = _find_node(pivots, n_nodes, k)
    b = start[i]
    cap = caps[i]
    s = _search(slots, b, cap, k, _predict(slope[i], icpt[i], base[i], k, cap), False)
    v = slots[b + s] if s < cap else MAX
    while v == MAX and i + 1 < n_nodes:
        i += 1
        v = slots[start[i]]
    return v


@njit(cache=True)
def _insert(state, params, k, value):
    """1 if inserted, 0 if the key was there (its payload replaced), -1 if out of room (nothing changed)."""
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    i = _find_node(pivots, counters[NODES], k)
    b = start[i]
    cap = caps[i]
    ub = _search(slots, b, cap, k, _predict(slope[i], icpt[i], base[i], k, cap), True)
    if ub > 0 and slots[b + ub - 1] == k:
        vals[b + ub - 1] = value
        return 0
    if count[i] + 1 > params[1] * cap:
        if not _rebuild(state, params, i, 1):
            return -1
        i = _find_node(pivots, counters[NODES], k)
        b = start[i]
        cap = caps[i]
        ub = _search(slots, b, cap, k, _predict(slope[i], icpt[i], base[i], k, cap), True)
    # slot ub-1 (if any) holds a smaller real key; ub is the first slot above k
    if ub < cap and not _occupied(slots, b, cap, ub):
        slots[b + ub] = k
        vals[b + ub] = value
    else:
        d = 1
        while True:
            r = ub + d
            if r < cap and not _occupied(slots, b, cap, r):
                for t in range(r, ub, -1):
                    slots[b + t] = slots[b + t - 1]
                    vals[b + t] = vals[b + t - 1]
                slots[b + ub] = k
                vals[b + ub] = value
                break
            left = ub - 1 - d
            if left >= 0 and not _occupied(slots, b, cap, left):
                for t in range(left, ub - 1):
                    slots[b + t] = slots[b + t + 1]
                    vals[b + t] = vals[b + t + 1]
                slots[b + ub - 1] = k
                vals[b + ub - 1] = value
                break
            d += 1
        counters[SHIFTS] += d
    count[i] += 1
    counters[KEYS] += 1
    return 1


@njit(cache=True)
def _delete(state, params, k):
    """1 if removed, 0 if absent, -1 if a contraction found no room (the key is removed all the same)."""
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    i = _find_node(pivots, counters[NODES], k)
    b = start[i]
    cap = caps[i]
    s = _search(slots, b, cap, k, _predict(slope[i], icpt[i], base[i], k, cap), True) - 1
    if s < 0 or slots[b + s] != k:
        return 0
    nxt = slots[b + s + 1] if s + 1 < cap else MAX
    t = s
    while t >= 0 and slots[b + t] == k:
        slots[b + t] = nxt
        t -= 1
    count[i] -= 1
    counters[KEYS] -= 1
    if cap > 4 * MIN_CAP and count[i] < cap * params[1] * 0.25:
        _rebuild(state, params, i, 0)  # no room: simply stay sparse until the next growth
    return 1


@njit(cache=True)
def run_ops(kinds, keys, values, out, first, timed, cycles, state, params):
    """Run ops first.. in order; returns the index of the first op not run (== len when all ran).

    Timed: cycles[kind] += each op's cycles, except an op over cycles[4] cycles (the thread was
    descheduled in it), which is only counted in cycles[5].
    """
    for t in range(first, keys.size):
        kind = kinds[t]
        if timed:
            c0 = cycle_counter()
        if kind == 0:
            out[t] = _lookup(state, keys[t])
        elif kind == 1:
            r = _insert(state, params, keys[t], values[t])
            if r < 0:
                return t
            out[t] = r
        elif kind == 2:
            out[t] = _delete(state, params, keys[t])
        else:
            out[t] = _lower_bound(state, keys[t])
        if timed:
            charge(cycles, kind, c0)
    return keys.size


@njit(cache=True)
def charge(cycles, kind, started):
    """Add an op's cycles since `started` to its kind's total; one over cycles[4] was descheduled: counted in cycles[5]."""
    spent = cycle_counter() - started
    if spent < cycles[4]:
        cycles[kind] += spent
    else:
        cycles[5] += 1


# --------------------------------------------------------------------------- maintenance


@njit(cache=True)
def compact(old_slots, old_vals, old_start, slots, vals, start, caps, n_nodes, counters):
    """Copy every live node into the new pool back to back; sets the new starts and the pool's use."""
    b = 0
    for i in range(n_nodes):
        a = old_start[i]
        for s in range(caps[i]):
            slots[b + s] = old_slots[a + s]
            vals[b + s] = old_vals[a + s]
        start[i] = b
        b += caps[i]
    counters[USED] = b


@njit(cache=True)
def now():
    return cycle_counter()


@njit(cache=True)
def items(state):
    slots, vals, start, caps, count, slope, icpt, base, pivots, counters = state
    n = counters[KEYS]
    ks = np.empty(n, dtype=np.uint64)
    vs = np.empty(n, dtype=np.uint64)
    j = 0
    for i in range(counters[NODES]):
        j = _copy_live(slots, vals, start[i], caps[i], ks, vs, j)
    return ks, vs
