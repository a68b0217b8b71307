"""numba kernels for the compiled lookup path (import only through `compiled.kernels()`).

Mirrors the numpy routing in `models` / `rmi` / `pgm` operation for operation,
so a key is routed to the same leaf it was fitted in. All uint64 arithmetic is
kept in uint64 explicitly: numba turns uint64-with-int64 mixes into floats.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from autosys_adapters.learned_index.segments import cone_segments_py

LINEAR_MAX = 64
#: a batch's binary windows share one width when they are (nearly) equal, the widest at most 5/4 of
#: their mean + 8 slots (full-range search, PGM, global bounds), or all within UNIFORM_MAX slots (a
#: few cache lines); otherwise (per-leaf bounds) each is halved on its own, so a narrow window never
#: probes lines outside itself
UNIFORM_MAX = 64
_SIGN = np.uint64(2**63)


@intrinsic
def _bitcast_u64(typingctx, x):
    """Reinterpret a float64's bits as uint64 (an LLVM bitcast, no memory round trip)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint64))

    return types.uint64(types.float64), codegen


@intrinsic
def _prefetch(typingctx, arr, idx):
    """llvm.prefetch(&arr[idx]) for reading, high locality; a hint, so an address past the end is harmless."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])  # not inbounds: may point past the array
        i8p = ir.PointerType(ir.IntType(8))
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@njit(cache=True, inline="always")
def _float_bits(x):
    """Order-preserving uint64 image of a float64, as models.float_bits."""
    b = _bitcast_u64(x + 0.0)  # -0.0 -> +0.0
    if b & _SIGN:
        return ~b
    return b | _SIGN


@njit(cache=True, inline="always")
def _clip_index(pred, nf, count):
    if count <= 1:
        return np.int64(0)
    if pred != pred:
        pred = 0.0
    t = min(max(pred, 0.0), nf) * (count / nf)
    return min(np.int64(t), np.int64(count - 1))


@njit(cache=True, inline="always")
def _less(v, q, right):
    if right:
        return v <= q
    return v < q


@njit(cache=True)
def _gallop(arr, q, r, right):
    """Exact searchsorted(arr, q) by galloping out from r (used to repair and for exponential)."""
    n = arr.shape[0]
    if r < 0:
        r = 0
    if r > n:
        r = n
    if r == 0 or _less(arr[r - 1], q, right):
        lo = r
        hi = n
        step = 1
        while True:
            probe = r + step - 1
            if probe >= n:
                break
            if not _less(arr[probe], q, right):
                hi = probe
                break
            lo = probe + 1
            step *= 2
    else:
        lo = 0
        hi = r - 1
        step = 1
        while True:
            probe = r - step
            if probe < 0:
                break
            if _less(arr[probe], q, right):
                lo = probe + 1
                break
            hi = probe
            step *= 2
    while lo < hi:
        mid = (lo + hi) >> 1
        if _less(arr[mid], q, right):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _is_answer(arr, q, r, right):
    n = arr.shape[0]
    if r > 0 and not _less(arr[r - 1], q, right):
        return False
    if r < n and _less(arr[r], q, right):
        return False
    return True


@njit(cache=True, inline="always")
def _linear(arr, q, lo, hi, right):
    r = lo
    while r < hi and _less(arr[r], q, right):
        r += 1
    return r


@njit(cache=True)
def _uniform_search(keys, qs, los, his, cnt, width, out, base):
    """Branch-free lock-step binary search with one width for the whole batch. Returns #repairs.

    Each query's window [los, his) is widened to `width` slots around its middle and kept inside the
    array, so every query takes the same steps: the inner loop is a load, a compare and a select, and
    many queries' loads are in flight at once. The search itself proves the answer unless it lands on
    an end of the widened window; only then are the neighbours checked (and a miss repaired).
    """
    n = keys.shape[0]
    for k in range(cnt):
        lo = los[k] - ((width - (his[k] - los[k])) >> 1)
        lo = min(max(lo, 0), n - width)
        los[k] = lo
        his[k] = lo
    ln = width
    while ln > 1:
        half = ln >> 1
        for k in range(cnt):
            lo = los[k]
            los[k] = lo + half if keys[lo + half - 1] < qs[k] else lo
        ln -= half
    repairs = 0
    for k in range(cnt):
        r = los[k]
        q = qs[k]
        if keys[r] < q:
            r += 1
        start = his[k]
        if (r == start and r > 0 and not keys[r - 1] < q) or (r == start + width and r < n and keys[r] < q):
            r = _gallop(keys, q, r, False)
            repairs += 1
        out[base + k] = r
    return repairs


@njit(cache=True)
def _window_search(keys, qs, los, his, guesses, cnt, search, out, base, lens):
    """Search each query's window; binary windows in lock-step. Returns #repairs."""
    repairs = 0
    if search == 0:
        width = 0
        total = 0
        for k in range(cnt):
            width = max(width, his[k] - los[k])
            total += his[k] - los[k]
        if width > 0 and (width <= UNIFORM_MAX or 4 * width * cnt <= 5 * total + 32 * cnt):
            return _uniform_search(keys, qs, los, his, cnt, width, out, base)
        # windows of different widths (per-leaf bounds): each query halves its own window; one
        # whose window is down to one slot keeps probing keys[lo - 1] (in cache; index -1 wraps
        # harmlessly) and stays put, so the loop stays branch-free
        for k in range(cnt):
            lens[k] = his[k] - los[k]
        ln = width
        while ln > 1:
            for k in range(cnt):
                lk = lens[k]
                half = lk >> 1
                lo = los[k]
                los[k] = lo + half if keys[lo + half - 1] < qs[k] else lo
                lens[k] = lk - half
            ln -= ln >> 1
        for k in range(cnt):
            r = los[k]
            if lens[k] == 1 and keys[r] < qs[k]:
                r += 1
            guesses[k] = r
    elif search == 1:
        for k in range(cnt):
            if his[k] - los[k] <= LINEAR_MAX:
                guesses[k] = _linear(keys, qs[k], los[k], his[k], False)
            else:
                lo = los[k]
                hi = his[k]
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if keys[mid] < qs[k]:
                        lo = mid + 1
                    else:
                        hi = mid
                guesses[k] = lo
    else:
        for k in range(cnt):
            guesses[k] = _gallop(keys, qs[k], guesses[k], False)
    for k in range(cnt):
        r = guesses[k]
        if not _is_answer(keys, qs[k], r, False):
            r = _gallop(keys, qs[k], r, False)
            repairs += 1
        out[base + k] = r
    return repairs


@njit(cache=True, inline="always")
def _route(q, x, key_is_uint, root_radix, log_transform, xmin, rp, radix_min, radix_shift,
           n_mid, mid, n_leaves, nf, first_count):
    """The model number a key is routed to (the root alone when n_mid == 0 and first_count == n_leaves)."""
    if root_radix:
        if key_is_uint and not log_transform:
            bits = np.uint64(q)
        else:
            bits = _float_bits(x)
        if bits < radix_min:
            j = np.int64(0)
        else:
            j = np.int64(min((bits - radix_min) >> radix_shift, np.uint64(first_count - 1)))
    else:
        u = x
        if log_transform:
            u = math.log1p(max(x - xmin, 0.0))
        t = (u - rp[0]) * rp[1]
        j = _clip_index(rp[2] + t * (rp[3] + t * (rp[4] + t * rp[5])), nf, first_count)
    if n_mid > 0:
        j = _clip_index(mid[j, 1] + mid[j, 2] * (x - mid[j, 0]), nf, n_leaves)
    return j


@njit(cache=True, inline="always")
def _leaf_guess(leaf, j, x, nf):
    if leaf.shape[1] == 6:
        t = (x - leaf[j, 0]) * leaf[j, 1]
        pred = leaf[j, 2] + t * (leaf[j, 3] + t * (leaf[j, 4] + t * leaf[j, 5]))
    else:
        pred = leaf[j, 1] + leaf[j, 2] * (x - leaf[j, 0])
    if pred != pred:
        pred = 0.0
    return np.int64(min(max(pred, 0.0), nf))


@njit(cache=True)
def rmi_route(keys, out, key_is_uint, root_radix, log_transform, xmin, rp, radix_min, radix_shift,
              n_mid, mid, n_leaves):
    """Route every key (build time), with exactly the arithmetic of `rmi_lookup`."""
    nf = float(keys.shape[0])
    first_count = n_mid if n_mid > 0 else n_leaves
    for i in range(keys.shape[0]):
        q = keys[i]
        out[i] = _route(q, float(q), key_is_uint, root_radix, log_transform, xmin, rp, radix_min, radix_shift,
                        n_mid, mid, n_leaves, nf, first_count)


@njit(cache=True)
def fit_linear_sorted(keys, g, count, out):
    """Least-squares line per group for non-decreasing g; empty groups predict their start."""
    n = keys.shape[0]
    i = 0
    for j in range(count):
        start = i
        while i < n and g[i] == j:
            i += 1
        size = i - start
        if size == 0:
            out[j, 0] = 0.0
            out[j, 1] = float(start)
            out[j, 2] = 0.0
            continue
        x0 = float(keys[start])
        mx = 0.0
        my = 0.0
        for k in range(start, i):
            mx += float(keys[k]) - x0
            my += float(k - start)
        mx /= size
        my /= size
        sxx = 0.0
        sxy = 0.0
        for k in range(start, i):
            cx = float(keys[k]) - x0 - mx
            sxx += cx * cx
            sxy += cx * (float(k - start) - my)
        slope = sxy / sxx if sxx > 0.0 else 0.0
        out[j, 0] = x0
        out[j, 1] = float(start) + my - slope * mx
        out[j, 2] = slope


@njit(cache=True)
def cubic_moments_sorted(keys, g, count, x0, scale, moments, rhs):
    """Per-group sums of t^0..t^6 and (pos - first pos) * t^0..t^3, t = (x - x0) * scale, sorted g."""
    first = -1
    prev = -1
    for i in range(keys.shape[0]):
        j = g[i]
        if j != prev:
            first = i
            prev = j
        t = (float(keys[i]) - x0[j]) * scale[j]
        dy = float(i - first)
        p = 1.0
        for k in range(7):
            moments[j, k] += p
            if k < 4:
                rhs[j, k] += dy * p
            p *= t


@njit(cache=True)
def leaf_errors(keys, g, leaf, count, lo, hi):
    """Per-leaf min and max of (position - guess), with exactly the lookup's guess arithmetic."""
    nf = float(keys.shape[0])
    seen = np.zeros(count, dtype=np.bool_)
    for i in range(keys.shape[0]):
        j = g[i]
        e = i - _leaf_guess(leaf, j, float(keys[i]), nf)
        if not seen[j]:
            seen[j] = True
            lo[j] = e
            hi[j] = e
        else:
            if e < lo[j]:
                lo[j] = e
            if e > hi[j]:
                hi[j] = e


@njit(cache=True)
def rmi_lookup(keys, queries, out, key_is_uint, root_radix, log_transform, xmin, rp, radix_min, radix_shift,
               n_mid, mid, n_leaves, leaf, errors, search, group):
    """Each stage runs as its own tight loop over a group of queries, with the mode tests outside
    the loops: one loop body holding every mode's code made LLVM evaluate log1p for every query."""
    n = keys.shape[0]
    nf = float(n)
    m = queries.shape[0]
    first_count = n_mid if n_mid > 0 else n_leaves
    per_leaf = errors.shape[0] > 1
    cubic = leaf.shape[1] == 6
    raw_bits = key_is_uint and not log_transform
    los = np.empty(group, dtype=np.int64)
    his = np.empty(group, dtype=np.int64)
    guesses = np.empty(group, dtype=np.int64)
    lens = np.empty(group, dtype=np.int64)
    js = np.empty(group, dtype=np.int64)
    xs = np.empty(group, dtype=np.float64)
    qs = np.empty(group, dtype=keys.dtype)
    last = np.uint64(first_count - 1)
    repairs = 0
    for base in range(0, m, group):
        cnt = min(group, m - base)
        for k in range(cnt):
            qs[k] = queries[base + k]
            xs[k] = float(qs[k])
        # --- root
        if root_radix:
            if raw_bits:
                for k in range(cnt):
                    bits = np.uint64(qs[k])
                    js[k] = np.int64(min((bits - radix_min) >> radix_shift, last)) if bits >= radix_min else 0
            else:
                for k in range(cnt):
                    bits = _float_bits(xs[k])
                    js[k] = np.int64(min((bits - radix_min) >> radix_shift, last)) if bits >= radix_min else 0
        elif log_transform:
            for k in range(cnt):
                t = (math.log1p(max(xs[k] - xmin, 0.0)) - rp[0]) * rp[1]
                js[k] = _clip_index(rp[2] + t * (rp[3] + t * (rp[4] + t * rp[5])), nf, first_count)
        else:
            for k in range(cnt):
                t = (xs[k] - rp[0]) * rp[1]
                js[k] = _clip_index(rp[2] + t * (rp[3] + t * (rp[4] + t * rp[5])), nf, first_count)
        # --- middle stage
        if n_mid > 0:
            for k in range(cnt):
                j = js[k]
                js[k] = _clip_index(mid[j, 1] + mid[j, 2] * (xs[k] - mid[j, 0]), nf, n_leaves)
        # --- leaves
        if cubic:
            for k in range(cnt):
                j = js[k]
                t = (xs[k] - leaf[j, 0]) * leaf[j, 1]
                pred = leaf[j, 2] + t * (leaf[j, 3] + t * (leaf[j, 4] + t * leaf[j, 5]))
                if pred != pred:
                    pred = 0.0
                guesses[k] = np.int64(min(max(pred, 0.0), nf))
        else:
            for k in range(cnt):
                j = js[k]
                pred = leaf[j, 1] + leaf[j, 2] * (xs[k] - leaf[j, 0])
                guesses[k] = np.int64(min(max(pred, 0.0), nf))
        if search != 2:
            for k in range(cnt):
                e = js[k] if per_leaf else 0
                guess = guesses[k]
                hi = min(max(guess + errors[e, 1] + 1, 0), n)
                los[k] = min(min(max(guess + errors[e, 0], 0), n), hi)
                his[k] = hi
        repairs += _window_search(keys, qs, los, his, guesses, cnt, search, out, base, lens)
    return repairs


@njit(cache=True)
def pgm_lookup(keys, queries, out, seg_keys, seg_p0, seg_slope, offsets, eps, eps_rec, search, group, top_binary):
    """Levels are walked in lock-step over a group of queries, so their loads overlap; with
    `top_binary` the bottom level's segment keys are binary-searched instead (branch-free, lock-step)."""
    n = keys.shape[0]
    m = queries.shape[0]
    levels = offsets.shape[0] - 1
    los = np.empty(group, dtype=np.int64)
    his = np.empty(group, dtype=np.int64)
    guesses = np.empty(group, dtype=np.int64)
    lens = np.empty(group, dtype=np.int64)
    ss = np.empty(group, dtype=np.int64)
    xs = np.empty(group, dtype=np.float64)
    qs = np.empty(group, dtype=keys.dtype)
    repairs = 0
    for base in range(0, m, group):
        cnt = min(group, m - base)
        for k in range(cnt):
            qs[k] = queries[base + k]
            xs[k] = float(qs[k])
            ss[k] = 0
        if top_binary:
            # last segment whose first key is <= q (segment 0 for a q below every key)
            ln = offsets[1] - offsets[0]
            while ln > 1:
                half = ln >> 1
                for k in range(cnt):
                    s = ss[k]
                    ss[k] = s + half if seg_keys[s + half] <= qs[k] else s
                ln -= half
        for lev in range(levels - 1 if not top_binary else 0, 0, -1):
            off = offsets[lev]
            child = offsets[lev - 1]
            size = off - child
            # the child segment holding q lies in a window of one width for every query: search it
            # branch-free in lock-step (side right), then check it and fall back to the whole level
            width = min(2 * eps_rec + 3, size)
            for k in range(cnt):
                seg = off + ss[k]
                pred = seg_p0[seg] + seg_slope[seg] * (xs[k] - float(seg_keys[seg]))
                guess = np.int64(min(max(pred, 0.0), float(size)))
                los[k] = child + min(max(guess - eps_rec - 1, 0), size - width)
            ln = width
            while ln > 1:
                half = ln >> 1
                for k in range(cnt):
                    lo = los[k]
                    los[k] = lo + half if seg_keys[lo + half - 1] <= qs[k] else lo
                ln -= half
            for k in range(cnt):
                q = qs[k]
                u = los[k] - child
                if seg_keys[child + u] <= q:
                    u += 1
                if not ((u == 0 or seg_keys[child + u - 1] <= q) and (u == size or seg_keys[child + u] > q)):
                    lo2 = 0
                    hi2 = size
                    while lo2 < hi2:
                        mid = (lo2 + hi2) >> 1
                        if seg_keys[child + mid] <= q:
                            lo2 = mid + 1
                        else:
                            hi2 = mid
                    u = lo2
                ss[k] = max(u - 1, 0)
        for k in range(cnt):
            seg = offsets[0] + ss[k]
            pred = seg_p0[seg] + seg_slope[seg] * (xs[k] - float(seg_keys[seg]))
            guess = np.int64(min(max(pred, 0.0), float(n)))
            guesses[k] = guess
            _prefetch(keys, guess)
            los[k] = min(max(guess - eps - 1, 0), n)
            his[k] = min(max(guess + eps + 2, 0), n)
        repairs += _window_search(keys, qs, los, his, guesses, cnt, search, out, base, lens)
    return repairs


@njit(cache=True)
def full_binary(keys, queries, out, group):
    n = keys.shape[0]
    m = queries.shape[0]
    los = np.zeros(group, dtype=np.int64)
    his = np.full(group, n, dtype=np.int64)
    guesses = np.empty(group, dtype=np.int64)
    lens = np.empty(group, dtype=np.int64)
    qs = np.empty(group, dtype=keys.dtype)
    for base in range(0, m, group):
        cnt = min(group, m - base)
        for k in range(cnt):
            qs[k] = queries[base + k]
            los[k] = 0
            his[k] = n
        _window_search(keys, qs, los, his, guesses, cnt, 0, out, base, lens)


cone_segments = njit(cache=True)(cone_segments_py)


# --------------------------------------------------------------------------- non-learned baselines


@njit(cache=True)
def eytzinger_fill(src, out, i, k):
    """In-order fill of the 1-based BFS layout: out[k] gets src[i] in sorted order; returns the next i."""
    n = out.shape[0]
    # iterative in-order walk (recursion depth would be the height only, but numba caches iterative code better)
    stack = np.empty(64, dtype=np.int64)
    top = 0
    while True:
        while k < n:
            stack[top] = k
            top += 1
            k = 2 * k
        if top == 0:
            return i
        top -= 1
        k = stack[top]
        out[k] = src[i]
        i += 1
        k = 2 * k + 1


@njit(cache=True)
def eytzinger_search(tree, height, n, queries, out, group, ahead):
    """Lower bound of each query in a complete BFS-order tree of 2**height - 1 slots (tree[0] unused).

    Branch-free: every query descends exactly `height` levels, `group` queries in
    lock-step; the external node reached, minus 2**height, is the number of
    slots < q, clipped to n (the padding holds the dtype's maximum). `ahead` > 0
    prefetches the cache lines of the node's descendants that many levels down.
    """
    m = queries.shape[0]
    ks = np.empty(group, dtype=np.int64)
    qs = np.empty(group, dtype=tree.dtype)
    width = np.int64(1) << ahead
    leaf = np.int64(1) << height
    for base in range(0, m, group):
        cnt = min(group, m - base)
        for j in range(cnt):
            qs[j] = queries[base + j]
            ks[j] = 1
        for _ in range(height):
            if ahead > 0:
                for j in range(cnt):
                    k = ks[j]
                    first = k * width
                    for line in range(0, width, 8):  # 8 eight-byte keys per 64-byte line
                        _prefetch(tree, first + line)
                    ks[j] = 2 * k + (not (qs[j] <= tree[k]))  # not(q <= key): a NaN query goes right
            else:
                for j in range(cnt):
                    k = ks[j]
                    ks[j] = 2 * k + (not (qs[j] <= tree[k]))
        for j in range(cnt):
            out[base + j] = min(ks[j] - leaf, n)


@njit(cache=True)
def kary_search(levels, offsets, fanout, n, queries, out, group):
    """Lower bound in a static k-ary search tree stored level by level (a compiled B+tree, read-only).

    Level L (0 = root) holds, for each node, `fanout - 1` separator keys; a
    query counts the separators < q in its node (branch-free, one or two cache
    lines) and descends to that child. The last level is the sorted keys padded
    with the dtype's maximum to a multiple of fanout - 1.
    """
    m = queries.shape[0]
    depth = offsets.shape[0] - 1
    sep = fanout - 1
    ns = np.empty(group, dtype=np.int64)
    qs = np.empty(group, dtype=levels.dtype)
    for base in range(0, m, group):
        cnt = min(group, m - base)
        for j in range(cnt):
            qs[j] = queries[base + j]
            ns[j] = 0
        for lev in range(depth):
            off = offsets[lev]
            for j in range(cnt):
                start = off + ns[j] * sep
                q = qs[j]
                c = 0
                for s in range(sep):
                    c += not (q <= levels[start + s])
                ns[j] = ns[j] * fanout + c if lev < depth - 1 else ns[j] * sep + c
        for j in range(cnt):
            out[base + j] = min(ns[j], n)
