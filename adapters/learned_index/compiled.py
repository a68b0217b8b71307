"""The compiled lookup path (numba, an optional extra), loaded only when asked for.

The kernels mirror the numpy path exactly (same routing arithmetic, same
windows), then search each query's window with a branch-free binary search
run in lock-step over a group of queries, so that the memory loads of
different queries overlap. An answer that fails the lower-bound check is
repaired in place by galloping from it, so a lookup is exact whatever the
model did; the kernels return how many they repaired.
"""

from __future__ import annotations

import importlib.util

import numpy as np


def available() -> bool:
    return importlib.util.find_spec("numba") is not None


def resolve_backend(backend: str) -> str:
    """'auto' -> numba when installed, else numpy; an explicit 'numba' must be installed."""
    if backend == "auto":
        return "numba" if available() else "numpy"
    if backend == "numba" and not available():
        raise ValueError("backend 'numba' needs the numba package (pip install 'autosys-toolkit[compiled]')")
    if backend not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', not {backend!r}")
    return backend


_kernels = None


def kernels():
    """Import the numba kernels on first use (compiling or loading them from numba's cache)."""
    global _kernels
    if _kernels is None:
        from autosys_adapters.learned_index import _kernels as module

        _kernels = module
    return _kernels


SEARCH_CODES = {"binary": 0, "linear": 1, "exponential": 2}


def rmi_lookup(index, q: np.ndarray) -> tuple[np.ndarray, int]:
    k = kernels()
    cfg = index.config
    out = np.empty(q.size, dtype=np.int64)
    errors = index.errors if index.errors.shape[0] else np.zeros((1, 2), dtype=np.int32)
    repairs = k.rmi_lookup(
        index.keys,
        q,
        out,
        *_root_args(index),
        index.n_mid,
        index.mid_params,
        index.n_leaves,
        index.leaf_params,
        errors,
        SEARCH_CODES[cfg.search],
        cfg.batch,
    )
    return out, int(repairs)


def _root_args(index) -> tuple:
    cfg = index.config
    return (
        index.keys.dtype.kind == "u",
        1 if cfg.root == "radix" else 0,
        1 if cfg.transform == "log" else 0,
        index.xmin,
        index.root_params,
        np.uint64(index.radix_min),
        np.uint64(index.radix_shift),
    )


def rmi_route(index, n_mid: int, mid: np.ndarray, n_leaves: int) -> np.ndarray:
    """Model numbers of every key (the root's alone with n_mid=0), as the lookup kernel routes them."""
    out = np.empty(index.keys.size, dtype=np.int64)
    kernels().rmi_route(index.keys, out, *_root_args(index), n_mid, mid, n_leaves)
    return out


def fit_linear_sorted(keys: np.ndarray, g: np.ndarray, count: int) -> np.ndarray:
    out = np.empty((count, 3), dtype=np.float64)
    kernels().fit_linear_sorted(keys, g, count, out)
    return out


def cubic_moments_sorted(keys, g, count, x0, scale) -> tuple[np.ndarray, np.ndarray]:
    moments = np.zeros((count, 7))
    rhs = np.zeros((count, 4))
    kernels().cubic_moments_sorted(keys, g, count, x0, scale, moments, rhs)
    return moments, rhs


def leaf_errors(keys: np.ndarray, g: np.ndarray, leaf: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.zeros(count, dtype=np.int64)
    hi = np.zeros(count, dtype=np.int64)
    kernels().leaf_errors(keys, g, leaf, count, lo, hi)
    return lo, hi


def pgm_lookup(index, q: np.ndarray) -> tuple[np.ndarray, int]:
    k = kernels()
    out = np.empty(q.size, dtype=np.int64)
    repairs = k.pgm_lookup(
        index.keys,
        q,
        out,
        index.seg_keys,
        index.seg_p0,
        index.seg_slope,
        index.level_offsets,
        index.config.epsilon,
        index.config.epsilon_recursive,
        SEARCH_CODES[index.config.search],
        index.config.batch,
        index.config.top == "binary",
    )
    return out, int(repairs)


def binary_search(keys: np.ndarray, q: np.ndarray, batch: int = 16) -> np.ndarray:
    """Full-range binary search compiled the same way, `batch` queries in lock-step (a baseline)."""
    out = np.empty(q.size, dtype=np.int64)
    kernels().full_binary(keys, q, out, batch)
    return out


def cone_segments(x: np.ndarray, y: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    return kernels().cone_segments(x, y, float(eps))
