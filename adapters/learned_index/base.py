"""What every learned index here shares: checked sorted keys, a timed build, exact lookups.

Subclasses set `config_class` and implement `_build`, `_lookup_numpy` and
`_lookup_compiled`; each lookup returns the answers and how many of them had
to be repaired because a model's error bound missed (0 when the bounds hold).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from autosys_adapters.learned_index import compiled


class SortedKeyIndex:
    """Build with `Index(keys, config)`; `lookup(queries)` equals numpy.searchsorted(keys, queries)."""

    config_class: type = object

    def __init__(self, keys: np.ndarray, config: Any = None, backend: str = "auto"):
        self.config = config or self.config_class()
        self.keys = _check_keys(keys)
        self.backend = compiled.resolve_backend(backend)
        self.n = int(self.keys.size)
        started = time.perf_counter()
        self._build()
        self.build_seconds = time.perf_counter() - started
        #: how many answers the last lookup had to repair (a model bound missed)
        self.last_repairs = 0

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Lower-bound positions of `queries` (same dtype kind as the keys), exact."""
        q = _check_queries(queries, self.keys)
        if self.n == 0:
            return np.zeros(q.size, dtype=np.int64)
        if self.backend == "numba":
            out, repairs = self._lookup_compiled(q)
        else:
            out, repairs = self._lookup_numpy(q)
        self.last_repairs = repairs
        return out

    def _build(self) -> None:
        raise NotImplementedError

    def _lookup_numpy(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def _lookup_compiled(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        raise NotImplementedError


def _check_keys(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.ndim != 1:
        raise ValueError(f"keys must be a 1-d array, not shape {keys.shape}")
    if keys.dtype == np.uint64 or keys.dtype == np.float64:
        pass
    elif keys.dtype.kind == "u":
        keys = keys.astype(np.uint64)
    elif keys.dtype.kind == "f":
        keys = keys.astype(np.float64)
    else:
        raise ValueError(f"keys must be uint64 or float64 (see keys.as_key_array), not {keys.dtype}")
    if keys.dtype.kind == "f" and keys.size and not np.isfinite(keys).all():
        raise ValueError("keys must be finite (no NaN or infinity)")
    if keys.size > 1 and bool(np.any(keys[1:] < keys[:-1])):
        raise ValueError("keys must be sorted ascending")
    return np.ascontiguousarray(keys)


def _check_queries(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    q = np.asarray(queries)
    if q.ndim != 1:
        q = q.reshape(-1)
    if q.dtype == keys.dtype:
        return np.ascontiguousarray(q)
    if keys.dtype.kind == "u" and q.dtype.kind in "iu" and q.dtype != bool:
        if q.dtype.kind == "i" and q.size and q.min() < 0:
            raise ValueError("negative queries against uint64 keys: compare as floats by indexing float64 keys")
        return q.astype(np.uint64)
    if keys.dtype.kind == "f" and q.dtype.kind in "iuf" and q.dtype != bool:
        return q.astype(np.float64)
    raise ValueError(f"queries of dtype {q.dtype} cannot be looked up in {keys.dtype} keys")
