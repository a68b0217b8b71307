"""A compiled B+tree that takes inserts and deletes: the like-for-like anchor of the updatable learned index.

Same key/payload contract and the same op-stream interface as
`updatable.UpdatableIndex` (`run(kinds, keys, values)`, one numba call for a
whole stream), so the two are compared without Python per-op overhead on
either side. Leaves hold up to `leaf_keys` sorted keys (padding 2**64 - 1) and
are linked left to right; inner nodes hold up to `inner_keys` separators
(child j holds the keys in [sep[j-1], sep[j])). Within a node the position is
found by counting keys below the query over the whole padded node, a
branch-free loop the compiler vectorises. Full leaves and inner nodes split in
half on insert; deletes remove the key from its leaf and never merge (lazy
deletion, as PostgreSQL's B-tree does between vacuums), so an emptied leaf
stays linked. Bulk loading fills nodes to `fill`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from autosys_adapters.learned_index._updatable_kernels import charge, cycle_counter, now
from autosys_adapters.learned_index.updatable import MAX_KEY, check_keys, new_cycles, op_stream

MAX = MAX_KEY
LEAF_N, INNER_N, ROOT, HEIGHT, KEYS, SPLITS = 0, 1, 2, 3, 4, 5


class DynamicBTree:
    """A B+tree with compiled batched operations (see the module docstring)."""

    name = "btree"

    def __init__(self, leaf_keys: int = 32, inner_keys: int = 16, fill: float = 0.8):
        if not 4 <= leaf_keys <= 1024 or not 3 <= inner_keys <= 1024:
            raise ValueError(f"leaf_keys must be in [4, 1024] and inner_keys in [3, 1024], not {leaf_keys}, {inner_keys}")
        if not 0.5 <= fill <= 1.0:
            raise ValueError(f"fill must be in [0.5, 1], not {fill}")
        self.leaf_keys, self.inner_keys, self.fill = int(leaf_keys), int(inner_keys), float(fill)
        self.cycles = new_cycles()
        self.counts = np.zeros(4, dtype=np.int64)
        self.bulk_load(np.empty(0, dtype=np.uint64))

    def _allocate(self, leaves: int, inners: int) -> tuple:
        return (
            np.full((leaves, self.leaf_keys), MAX, dtype=np.uint64),  # leaf keys
            np.empty((leaves, self.leaf_keys), dtype=np.uint64),  # leaf payloads
            np.zeros(leaves, dtype=np.int64),  # leaf key count
            np.full(leaves, -1, dtype=np.int64),  # next leaf
            np.full((inners, self.inner_keys), MAX, dtype=np.uint64),  # separators
            np.zeros((inners, self.inner_keys + 1), dtype=np.int64),  # children
            np.zeros(inners, dtype=np.int64),  # children count
            np.zeros(8, dtype=np.int64),  # counters: leaves, inners, root, height, keys, splits
            np.zeros((2, 64), dtype=np.int64),  # scratch: an insert's path and child slots
        )

    def bulk_load(self, keys: np.ndarray, values: np.ndarray | None = None) -> "DynamicBTree":
        """Replace the contents with sorted, distinct `keys` (values default to the keys)."""
        keys = check_keys(keys)
        if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
            raise ValueError("bulk_load needs sorted, distinct keys")
        values = keys if values is None else np.ascontiguousarray(values, dtype=np.uint64)
        per_leaf = max(1, min(self.leaf_keys - 1, int(self.leaf_keys * self.fill)))
        per_inner = max(2, min(self.inner_keys + 1, int((self.inner_keys + 1) * self.fill)))
        leaves = max(1, -(-keys.size // per_leaf))
        inners, level = 1, leaves
        while level > 1:
            level = -(-level // per_inner)
            inners += level
        self.state = self._allocate(int(leaves * 1.3) + 16, int(inners * 1.3) + 16)
        _bulk_load(keys, values, per_leaf, per_inner, self.state)
        return self

    def _grow(self) -> None:
        counters = self.state[7]
        leaves = max(int(counters[LEAF_N]) * 3 // 2, int(counters[LEAF_N]) + 64)
        inners = max(int(counters[INNER_N]) * 3 // 2, int(counters[INNER_N]) + 64)
        old, self.state = self.state, self._allocate(leaves, inners)
        nl, ni = int(counters[LEAF_N]), int(counters[INNER_N])
        for new, was, n in zip(self.state, old, (nl, nl, nl, nl, ni, ni, ni)):
            new[:n] = was[:n]
        self.state[7][:] = old[7]

    def copy(self) -> "DynamicBTree":
        other = DynamicBTree.__new__(DynamicBTree)
        other.leaf_keys, other.inner_keys, other.fill = self.leaf_keys, self.inner_keys, self.fill
        other.cycles, other.counts = new_cycles(), np.zeros(4, dtype=np.int64)
        other.state = tuple(a.copy() for a in self.state)
        return other

    def run(self, kinds, keys, values=None, timed: bool = False) -> np.ndarray:
        """Execute an op stream in order; answers as `UpdatableIndex.run`."""
        kinds, keys, values = op_stream(kinds, keys, values)
        out = np.empty(keys.size, dtype=np.uint64)
        done = 0
        while done < keys.size:
            done = _run_ops(kinds, keys, values, out, done, timed, self.cycles, self.state)
            if done < keys.size:
                c0 = now()
                self._grow()
                if timed:
                    self.cycles[kinds[done]] += now() - c0
        if timed:
            self.counts += np.bincount(kinds, minlength=4)[:4]
        return out

    def lookup(self, keys) -> np.ndarray:
        keys = check_keys(keys)
        return self.run(np.zeros(keys.size, np.uint8), keys)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        return _items(self.state)

    def __len__(self) -> int:
        return int(self.state[7][KEYS])

    @property
    def height(self) -> int:
        return int(self.state[7][HEIGHT])

    @property
    def size_bytes(self) -> int:
        """Bytes of the nodes in use (leaves with keys and payloads, inner nodes with separators and children)."""
        c = self.state[7]
        return int(c[LEAF_N]) * (self.leaf_keys * 16 + 16) + int(c[INNER_N]) * (self.inner_keys * 16 + 16)

    def describe(self) -> str:
        return f"btree(leaf {self.leaf_keys}, inner {self.inner_keys}, fill {self.fill:.2f})"


# --------------------------------------------------------------------------- kernels


@njit(cache=True)
def _bulk_load(keys, values, per_leaf, per_inner, state):
    lkeys, lvals, lcount, lnext, ikeys, ichild, icount, counters = state[:8]
    n = keys.size
    n_leaves = max(1, (n + per_leaf - 1) // per_leaf)
    firsts = np.empty(n_leaves, dtype=np.uint64)
    ids = np.empty(n_leaves, dtype=np.int64)
    for i in range(n_leaves):
        lo = i * per_leaf
        hi = min(n, lo + per_leaf)
        for j in range(hi - lo):
            lkeys[i, j] = keys[lo + j]
            lvals[i, j] = values[lo + j]
        lcount[i] = hi - lo
        lnext[i] = i + 1 if i + 1 < n_leaves else -1
        firsts[i] = keys[lo] if lo < n else MAX
        ids[i] = i
    counters[:] = 0
    counters[LEAF_N] = n_leaves
    counters[KEYS] = n
    height = 0
    level = n_leaves
    inner = 0
    while level > 1:  # one level of inner nodes over the current level's nodes
        parents = (level + per_inner - 1) // per_inner
        for p in range(parents):
            lo = p * per_inner
            hi = min(level, lo + per_inner)
            node = inner + p
            for j in range(hi - lo):
                ichild[node, j] = ids[lo + j]
                if j > 0:
                    ikeys[node, j - 1] = firsts[lo + j]
            icount[node] = hi - lo
            firsts[p] = firsts[lo]
            ids[p] = node
        inner += parents
        level = parents
        height += 1
    counters[INNER_N] = inner
    counters[ROOT] = ids[0]
    counters[HEIGHT] = height


@njit(cache=True, inline="always")
def _count_le(row, k):
    c = 0
    for j in range(row.size):
        c += row[j] <= k
    return c


@njit(cache=True, inline="always")
def _count_lt(row, k):
    c = 0
    for j in range(row.size):
        c += row[j] < k
    return c


@njit(cache=True, inline="always")
def _leaf_of(state, k):
    ikeys, ichild, counters = state[4], state[5], state[7]
    node = counters[ROOT]
    for _ in range(counters[HEIGHT]):
        node = ichild[node, _count_le(ikeys[node], k)]
    return node


@njit(cache=True, inline="always")
def _lookup(state, k):
    lkeys, lvals = state[0], state[1]
    leaf = _leaf_of(state, k)
    pos = _count_lt(lkeys[leaf], k)
    if pos < lkeys.shape[1] and lkeys[leaf, pos] == k:
        return lvals[leaf, pos]
    return MAX


@njit(cache=True, inline="always")
def _lower_bound(state, k):
    lkeys, lcount, lnext = state[0], state[2], state[3]
    leaf = _leaf_of(state, k)
    pos = _count_lt(lkeys[leaf], k)
    while pos >= lcount[leaf]:
        leaf = lnext[leaf]
        if leaf < 0:
            return MAX
        pos = 0
    return lkeys[leaf, pos]


@njit(cache=True)
def _insert(state, k, value):
    """1 if inserted, 0 if the payload was replaced, -1 if out of nodes (nothing changed)."""
    lkeys, lvals, lcount, lnext, ikeys, ichild, icount, counters, scratch = state
    height = counters[HEIGHT]
    if counters[LEAF_N] + 1 > lkeys.shape[0] or counters[INNER_N] + height + 1 > ikeys.shape[0]:
        return -1
    path = scratch[0]
    slot = scratch[1]
    node = counters[ROOT]
    for d in range(height):
        j = _count_le(ikeys[node], k)
        path[d] = node
        slot[d] = j
        node = ichild[node, j]
    leaf = node
    L = lkeys.shape[1]
    n = lcount[leaf]
    pos = _count_lt(lkeys[leaf], k)
    if pos < n and lkeys[leaf, pos] == k:
        lvals[leaf, pos] = value
        return 0
    counters[KEYS] += 1
    if n < L:
        for t in range(n, pos, -1):
            lkeys[leaf, t] = lkeys[leaf, t - 1]
            lvals[leaf, t] = lvals[leaf, t - 1]
        lkeys[leaf, pos] = k
        lvals[leaf, pos] = value
        lcount[leaf] = n + 1
        return 1
    # split the full leaf: the upper half moves to a new leaf, then the key goes into its half
    counters[SPLITS] += 1
    new = counters[LEAF_N]
    counters[LEAF_N] += 1
    half = L // 2
    for t in range(half, L):
        lkeys[new, t - half] = lkeys[leaf, t]
        lvals[new, t - half] = lvals[leaf, t]
        lkeys[leaf, t] = MAX
    for t in range(L - half, L):
        lkeys[new, t] = MAX
    lcount[leaf] = half
    lcount[new] = L - half
    lnext[new] = lnext[leaf]
    lnext[leaf] = new
    target, tpos = (leaf, pos) if pos <= half else (new, pos - half)
    tn = lcount[target]
    for t in range(tn, tpos, -1):
        lkeys[target, t] = lkeys[target, t - 1]
        lvals[target, t] = lvals[target, t - 1]
    lkeys[target, tpos] = k
    lvals[target, tpos] = value
    lcount[target] = tn + 1
    sep = lkeys[new, 0]
    child = new
    # insert (sep, child) into the parents, splitting full ones upward
    F = ikeys.shape[1]  # separators per inner node; children = F + 1
    for d in range(height - 1, -1, -1):
        node = path[d]
        j = slot[d]  # child j was split; the new child goes at j + 1, its separator at j
        c = icount[node]
        if c < F + 1:
            for t in range(c - 1, j, -1):
                ichild[node, t + 1] = ichild[node, t]
                ikeys[node, t] = ikeys[node, t - 1]
            ichild[node, j + 1] = child
            ikeys[node, j] = sep
            icount[node] = c + 1
            return 1
        # full: gather F + 2 children and F + 1 separators, split them over two nodes
        kids = np.empty(F + 2, dtype=np.int64)
        seps = np.empty(F + 1, dtype=np.uint64)
        for t in range(F + 2):
            if t <= j:
                kids[t] = ichild[node, t]
            elif t == j + 1:
                kids[t] = child
            else:
                kids[t] = ichild[node, t - 1]
        for t in range(F + 1):
            if t < j:
                seps[t] = ikeys[node, t]
            elif t == j:
                seps[t] = sep
            else:
                seps[t] = ikeys[node, t - 1]
        left = (F + 2) // 2  # children kept; seps[left - 1] moves up
        sibling = counters[INNER_N]
        counters[INNER_N] += 1
        for t in range(F):
            ikeys[node, t] = MAX
            ikeys[sibling, t] = MAX
        for t in range(left):
            ichild[node, t] = kids[t]
            if t > 0:
                ikeys[node, t - 1] = seps[t - 1]
        for t in range(F + 2 - left):
            ichild[sibling, t] = kids[left + t]
            if t > 0:
                ikeys[sibling, t - 1] = seps[left + t - 1]
        icount[node] = left
        icount[sibling] = F + 2 - left
        sep = seps[left - 1]
        child = sibling
    # the root split (or the tree was one leaf): a new root over the old one and `child`
    root = counters[INNER_N]
    counters[INNER_N] += 1
    for t in range(F):
        ikeys[root, t] = MAX
    ichild[root, 0] = counters[ROOT] if height > 0 else leaf
    ichild[root, 1] = child
    ikeys[root, 0] = sep
    icount[root] = 2
    counters[ROOT] = root
    counters[HEIGHT] = height + 1
    return 1


@njit(cache=True)
def _delete(state, k):
    lkeys, lvals, lcount, counters = state[0], state[1], state[2], state[7]
    leaf = _leaf_of(state, k)
    n = lcount[leaf]
    pos = _count_lt(lkeys[leaf], k)
    if pos >= n or lkeys[leaf, pos] != k:
        return 0
    for t in range(pos, n - 1):
        lkeys[leaf, t] = lkeys[leaf, t + 1]
        lvals[leaf, t] = lvals[leaf, t + 1]
    lkeys[leaf, n - 1] = MAX
    lcount[leaf] = n - 1
    counters[KEYS] -= 1
    return 1


@njit(cache=True)
def _run_ops(kinds, keys, values, out, first, timed, cycles, state):
    for t in range(first, keys.size):
        kind = kinds[t]
        if timed:
            c0 = cycle_counter()
        if kind == 0:
            out[t] = _lookup(state, keys[t])
        elif kind == 1:
            r = _insert(state, keys[t], values[t])
            if r < 0:
                return t
            out[t] = r
        elif kind == 2:
            out[t] = _delete(state, keys[t])
        else:
            out[t] = _lower_bound(state, keys[t])
        if timed:  # as the updatable index's run_ops: an op over cycles[4] was descheduled, not counted
            charge(cycles, kind, c0)
    return keys.size


@njit(cache=True)
def _items(state):
    lkeys, lvals, lcount, lnext, counters = state[0], state[1], state[2], state[3], state[7]
    n = counters[KEYS]
    ks = np.empty(n, dtype=np.uint64)
    vs = np.empty(n, dtype=np.uint64)
    leaf = _leaf_of(state, np.uint64(0))
    j = 0
    while leaf >= 0:
        for t in range(lcount[leaf]):
            ks[j] = lkeys[leaf, t]
            vs[j] = lvals[leaf, t]
            j += 1
        leaf = lnext[leaf]
    return ks, vs


__all__ = ["DynamicBTree"]
