"""PGM-style piecewise-linear segmentation (the shrinking cone), in plain Python so numba can
compile the very same function (`_kernels`)."""

from __future__ import annotations

import math

import numpy as np


def cone_segments_py(x: np.ndarray, y: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy shrinking cone: (start index, slope) of segments keeping |line - y| <= eps.

    Plain Python so numba can compile the very same function (see _kernels).
    """
    n = x.shape[0]
    starts = np.empty(n, dtype=np.int64)
    slopes = np.empty(n, dtype=np.float64)
    k = 0
    i = 0
    while i < n:
        x0 = x[i]
        y0 = y[i]
        lo = 0.0
        hi = math.inf
        j = i + 1
        while j < n:
            dx = x[j] - x0
            dy = y[j] - y0
            if dx == 0.0:
                if abs(dy) > eps:
                    break
                j += 1
                continue
            a = (dy - eps) / dx
            b = (dy + eps) / dx
            new_lo = max(lo, a)
            new_hi = min(hi, b)
            if new_lo > new_hi:
                break
            lo = new_lo
            hi = new_hi
            j += 1
        starts[k] = i
        slopes[k] = lo if hi == math.inf else 0.5 * (lo + hi)
        k += 1
        i = j
    return starts[:k], slopes[:k]
