"""Non-learned searches that a learned index has to beat, behind one small interface.

Each baseline is built once from sorted keys (`build(keys)`) and answers a
batch of queries with `lookup(queries)`: the int64 positions that
`numpy.searchsorted(keys, queries, side='left')` returns, exactly (present and
absent keys, duplicates, queries outside the key range, empty key arrays).

- ``binary``: full-range binary search compiled with numba, `batch` queries in
  lock-step (the kernel the learned indexes use for their last mile).
- ``eytzinger``: the keys in BFS order (Eytzinger layout), padded to a
  complete tree, branch-free descent in lock-step, with optional software
  prefetching `prefetch` levels ahead (an llvm.prefetch intrinsic).
- ``kary``: a compiled static B+tree (S-tree): nodes of `node_keys` keys, one
  or two cache lines each, stored level by level.
- ``btrees``: the `BTrees` package's QQBTree (key -> first position); one
  Python call per query (it has no batch lookup). Needs the `index` extra.
- ``pgm``: the PGM-index authors' binding (`pygm`); one Python call per
  query (no batch lookup, about 1 us each). Needs the `index` extra.

The compiled ones need numba (the `compiled` extra). `unavailable(name)` says
why a baseline cannot run here, or returns None.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Protocol

import numpy as np

from autosys_adapters.learned_index import compiled
from autosys_adapters.learned_index.models import float_bits


class Baseline(Protocol):
    name: str

    def build(self, keys: np.ndarray) -> "Baseline": ...

    def lookup(self, queries: np.ndarray) -> np.ndarray: ...

    @property
    def size_bytes(self) -> int: ...


def _keys(keys: np.ndarray) -> np.ndarray:
    keys = np.ascontiguousarray(keys)
    if keys.ndim != 1 or keys.dtype.kind not in "uf":
        raise ValueError(f"keys must be a 1-d uint64 or float64 array, not {keys.dtype}{list(keys.shape)}")
    return keys


def _queries(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(queries, dtype=keys.dtype)


def _pad_value(dtype: np.dtype):
    """The largest value of a key dtype: padding never sits below a query."""
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def _aligned_empty(size: int, dtype: np.dtype, align: int = 64) -> np.ndarray:
    """An uninitialised array whose first element sits on an `align`-byte boundary (cache lines)."""
    dtype = np.dtype(dtype)
    raw = np.empty(size * dtype.itemsize + align, dtype=np.uint8)
    skip = (-raw.ctypes.data) % align
    return raw[skip: skip + size * dtype.itemsize].view(dtype)


class BinarySearch:
    """Full-range compiled binary search, `batch` queries in lock-step."""

    name = "binary"

    def __init__(self, batch: int = 16):
        self.batch = int(batch)
        self.keys = np.empty(0, dtype=np.uint64)

    def build(self, keys: np.ndarray) -> "BinarySearch":
        self.keys = _keys(keys)
        return self

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        return compiled.binary_search(self.keys, _queries(self.keys, queries), self.batch)

    @property
    def size_bytes(self) -> int:
        return 0  # searches the keys in place


class Eytzinger:
    """BFS-order layout of a complete tree; `prefetch` = levels ahead to prefetch (0: none)."""

    name = "eytzinger"

    def __init__(self, batch: int = 8, prefetch: int = 4):
        if prefetch and not 3 <= prefetch <= 6:
            raise ValueError(f"prefetch must be 0 or 3..6 levels ahead, not {prefetch}")
        self.batch, self.prefetch = int(batch), int(prefetch)
        self.n, self.height = 0, 0
        self.tree = np.zeros(1, dtype=np.uint64)

    def build(self, keys: np.ndarray) -> "Eytzinger":
        keys = _keys(keys)
        self.n = keys.size
        self.height = max(0, math.ceil(math.log2(keys.size + 1)))
        slots = (1 << self.height) - 1
        padded = np.full(slots, _pad_value(keys.dtype), dtype=keys.dtype)
        padded[: keys.size] = keys
        self.tree = _aligned_empty(slots + 1, keys.dtype)
        self.tree[0] = padded[0] if slots else 0
        if slots:
            compiled.kernels().eytzinger_fill(padded, self.tree, 0, 1)
        return self

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        q = _queries(self.tree, queries)
        out = np.empty(q.size, dtype=np.int64)
        compiled.kernels().eytzinger_search(self.tree, self.height, self.n, q, out, self.batch, self.prefetch)
        return out

    @property
    def size_bytes(self) -> int:
        return self.tree.nbytes


class KaryTree:
    """A static B+tree of `node_keys` keys a node (fanout node_keys + 1), compiled lookups."""

    name = "kary"

    def __init__(self, node_keys: int = 16, batch: int = 8):
        if node_keys < 2:
            raise ValueError(f"node_keys must be >= 2, not {node_keys}")
        self.node_keys, self.batch = int(node_keys), int(batch)
        self.n = 0
        self.levels = np.zeros(0, dtype=np.uint64)
        self.offsets = np.zeros(1, dtype=np.int64)

    def build(self, keys: np.ndarray) -> "KaryTree":
        keys = _keys(keys)
        b, pad = self.node_keys, _pad_value(keys.dtype)
        self.n = keys.size
        blocks = max(1, -(-keys.size // b))
        leaf = np.full(blocks * b, pad, dtype=keys.dtype)
        leaf[: keys.size] = keys
        # first key of every subtree at the current level, and the levels above, bottom-up
        firsts, above = leaf[::b], []
        while firsts.size > 1:
            nodes = -(-firsts.size // (b + 1))
            grid = np.full((nodes, b + 1), pad, dtype=keys.dtype)
            grid.reshape(-1)[: firsts.size] = firsts
            above.append(grid[:, 1:].reshape(-1))  # separators: first keys of children 1..b
            firsts = grid[:, 0]
        parts = above[::-1] + [leaf]
        self.offsets = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
        self.levels = _aligned_empty(int(self.offsets[-1]), keys.dtype)
        for part, start in zip(parts, self.offsets):
            self.levels[start: start + part.size] = part
        return self

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        q = _queries(self.levels, queries)
        out = np.empty(q.size, dtype=np.int64)
        compiled.kernels().kary_search(self.levels, self.offsets, self.node_keys + 1, self.n, q, out, self.batch)
        return out

    @property
    def size_bytes(self) -> int:
        return self.levels.nbytes - min(self.n, self.levels.size) * self.levels.itemsize  # beyond the keys


class BTreesSearch:
    """BTrees' QQBTree mapping each distinct key (float keys: their order-preserving bits) to its first position."""

    name = "btrees"

    def __init__(self):
        self.tree = None
        self.n = 0
        self.float_keys = False

    def build(self, keys: np.ndarray) -> "BTreesSearch":
        from BTrees.QQBTree import QQBTree

        keys = _keys(keys)
        self.n, self.float_keys = keys.size, keys.dtype.kind == "f"
        image = float_bits(keys) if self.float_keys else keys
        first = np.flatnonzero(np.r_[True, image[1:] != image[:-1]]) if image.size else np.empty(0, np.int64)
        self.tree = QQBTree()
        for start in range(0, first.size, 1 << 20):  # in chunks: 10M Python tuples at once would take GBs
            part = first[start: start + (1 << 20)]
            self.tree.update(list(zip(image[part].tolist(), part.tolist())))
        return self

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float64 if self.float_keys else np.uint64)
        image = float_bits(q) if self.float_keys else q
        tree, n = self.tree, self.n
        out = np.empty(q.size, dtype=np.int64)
        for i, x in enumerate(image.tolist()):
            try:
                out[i] = tree[tree.minKey(x)]
            except ValueError:  # no key >= x
                out[i] = n
        return out

    @property
    def size_bytes(self) -> int:
        return 16 * len(self.tree) if self.tree is not None else 0  # keys + values, ignoring node overhead


class PGMSearch:
    """The PGM-index binding `pygm`: one bisect_left call per query."""

    name = "pgm"

    def __init__(self):
        self.index = None
        self.n = 0
        self.dtype = np.dtype(np.uint64)

    def build(self, keys: np.ndarray) -> "PGMSearch":
        import pygm

        keys = _keys(keys)
        self.n, self.dtype = keys.size, keys.dtype
        self.index = pygm.SortedList(keys) if keys.size else None
        if keys.size:
            self.first, self.last = keys[0], keys[-1]
        return self

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=self.dtype)
        if self.index is None:
            return np.zeros(q.size, dtype=np.int64)
        # pygm 1.x answers wrongly far above the last key (2**62 over 100 small keys gave 66, not 100):
        # queries are clipped into [first, last] and those above the last key answered n here
        clipped = np.clip(q, self.first, self.last)
        bisect = self.index.bisect_left
        out = np.fromiter((bisect(x) for x in clipped.tolist()), dtype=np.int64, count=q.size)
        out[q > self.last] = self.n
        return out

    @property
    def size_bytes(self) -> int:
        return 0  # pygm does not report its segments' size


FACTORIES = {
    "binary": BinarySearch,
    "eytzinger": Eytzinger,
    "kary": KaryTree,
    "btrees": BTreesSearch,
    "pgm": PGMSearch,
}
COMPILED = ("binary", "eytzinger", "kary")


def unavailable(name: str) -> str | None:
    """Why baseline `name` cannot run here (a missing package), or None when it can."""
    if name not in FACTORIES:
        raise ValueError(f"unknown baseline {name!r}; choose one of: {', '.join(FACTORIES)}")
    needs = {"btrees": ("BTrees", "index"), "pgm": ("pygm", "index")}.get(name, ("numba", "compiled"))
    if importlib.util.find_spec(needs[0]) is None:
        return f"{name} needs the {needs[0]} package (pip install 'autosys-toolkit[{needs[1]}]')"
    return None


def make(name: str, **options) -> Baseline:
    """A fresh, unbuilt baseline by name; raises ValueError when its package is missing."""
    reason = unavailable(name)
    if reason:
        raise ValueError(reason)
    return FACTORIES[name](**options)
