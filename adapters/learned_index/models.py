"""The small models a learned index is made of, fitted in groups with numpy.

Every model maps a key (as float64) to a predicted position. Models are
anchored at a key `x0` of their own, pos = c0 + c1*t (+ c2*t^2 + c3*t^3) with
t = (x - x0) * s, so that 64-bit keys far from zero keep their precision.

Layouts (one row per model, float64):
- linear / linear_spline: [x0, c0, c1]                 (s = 1)
- cubic:                  [x0, s, c0, c1, c2, c3]
"""

from __future__ import annotations

import warnings

import numpy as np

LINEAR_KINDS = ("linear", "linear_spline")
LEAF_KINDS = ("linear", "linear_spline", "cubic")
ROOT_KINDS = ("linear", "linear_spline", "cubic", "radix")
TRANSFORMS = ("identity", "log")

_SIGN = np.uint64(2**63)


def float_bits(x: np.ndarray) -> np.ndarray:
    """An order-preserving uint64 image of float64 values (IEEE bits, sign folded)."""
    b = (np.asarray(x, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into +0.0
    return np.where(b & _SIGN, ~b, b | _SIGN)


def radix_bits(keys: np.ndarray, transform: str) -> np.ndarray:
    """What a radix model reads: the key's own bits (uint64 keys, identity) or its float image."""
    if keys.dtype.kind == "u" and transform == "identity":
        return keys
    return float_bits(keys.astype(np.float64))


def root_input(x: np.ndarray, transform: str, xmin: float) -> np.ndarray:
    """The value a non-radix root model reads: the key, or log1p(key - min key)."""
    if transform == "log":
        return np.log1p(np.maximum(x - xmin, 0.0))
    return x


def clip_index(pred: np.ndarray, n: int, count: int) -> np.ndarray:
    """Map predicted positions in [0, n] to model numbers in [0, count)."""
    if count <= 1 or n == 0:
        return np.zeros(pred.shape, dtype=np.int64)
    t = np.clip(np.nan_to_num(pred, nan=0.0), 0.0, float(n)) * (count / n)
    return np.minimum(t.astype(np.int64), count - 1)


# --------------------------------------------------------------------------- single (root) models


def fit_root(kind: str, u: np.ndarray, y: np.ndarray, sample: int = 1_000_000) -> np.ndarray:
    """One model over all keys, in the cubic layout [x0, s, c0, c1, c2, c3] (radix excluded)."""
    if u.size == 0:
        return np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    u0, u1 = float(u[0]), float(u[-1])
    span = u1 - u0
    s = 1.0 / span if span > 0 else 1.0
    if u.size > sample:
        pick = np.linspace(0, u.size - 1, sample).astype(np.int64)
        u, y = u[pick], y[pick]
    t = (u - u0) * s
    if kind == "linear_spline" or span == 0:
        coef = [float(y[0]), float(y[-1] - y[0]) if span > 0 else 0.0, 0.0, 0.0]
    elif kind in ("linear", "cubic"):
        with warnings.catch_warnings():  # few distinct keys: a poorly conditioned fit is still a fit
            warnings.simplefilter("ignore")
            c = np.polyfit(t, y, 1 if kind == "linear" else 3)[::-1]
        coef = [*map(float, c), 0.0, 0.0][:4]
    else:
        raise ValueError(f"unknown root model {kind!r}; choose one of {', '.join(ROOT_KINDS)}")
    return np.array([u0, s, *coef], dtype=np.float64)


def eval_root(params: np.ndarray, u: np.ndarray) -> np.ndarray:
    t = (u - params[0]) * params[1]
    return params[2] + t * (params[3] + t * (params[4] + t * params[5]))


def radix_shift(lo: int, hi: int, count: int) -> int:
    """The smallest shift that maps [lo, hi] into fewer than `count` buckets."""
    span = int(hi) - int(lo)
    shift = 0
    while (span >> shift) >= count:
        shift += 1
    return shift


# --------------------------------------------------------------------------- grouped models


def group_starts(g: np.ndarray, count: int) -> np.ndarray:
    """For sorted group numbers: start offset of each group (count + 1 entries)."""
    return np.searchsorted(g, np.arange(count + 1), side="left")


def fit_groups(kind: str, x: np.ndarray, y: np.ndarray, g: np.ndarray, count: int, moments=None) -> np.ndarray:
    """Fit one model per group; `g` (group of each key) must be non-decreasing.

    An empty group gets a constant model predicting the position where its
    keys would be, so a query routed there lands next to its answer.
    """
    starts = group_starts(g, count)
    first, end = starts[:-1], starts[1:]
    size = (end - first).astype(np.float64)
    empty = size == 0
    safe_first = np.minimum(first, max(x.size - 1, 0))
    safe_last = np.maximum(end - 1, 0)
    if x.size == 0:
        width = 3 if kind in LINEAR_KINDS else 6
        out = np.zeros((count, width))
        if width == 6:
            out[:, 1] = 1.0
        return out
    x0 = x[safe_first]
    x1 = x[safe_last]
    y0 = y[safe_first]
    if kind == "linear_spline":
        dx = x1 - x0
        slope = np.where((dx > 0) & ~empty, (y[safe_last] - y0) / np.where(dx > 0, dx, 1.0), 0.0)
        c0 = np.where(empty, first.astype(np.float64), y0)
        return np.column_stack([np.where(empty, 0.0, x0), c0, slope])
    if kind == "linear":
        dx = x - x0[g]
        dy = y - y0[g]
        cnt = np.maximum(size, 1.0)
        mx = np.bincount(g, dx, count) / cnt
        my = np.bincount(g, dy, count) / cnt
        cx = dx - mx[g]
        sxx = np.bincount(g, cx * cx, count)
        sxy = np.bincount(g, cx * (dy - my[g]), count)
        slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
        c0 = y0 + my - slope * mx
        c0 = np.where(empty, first.astype(np.float64), c0)
        return np.column_stack([np.where(empty, 0.0, x0), c0, np.where(empty, 0.0, slope)])
    if kind == "cubic":
        span = x1 - x0
        s = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 1.0)
        if moments is not None:  # a compiled pass (see compiled.cubic_moments_sorted); y must be positions
            moments, rhs = moments(np.where(empty, 0.0, x0), s)
        else:
            t = (x - x0[g]) * s[g]
            dy = y - y0[g]
            powers = [np.ones_like(t)]
            for _ in range(6):
                powers.append(powers[-1] * t)
            moments = np.stack([np.bincount(g, p, count) for p in powers], axis=1)  # count x 7
            rhs = np.stack([np.bincount(g, dy * powers[k], count) for k in range(4)], axis=1)
        gram = np.stack([moments[:, i : i + 4] for i in range(4)], axis=1)  # count x 4 x 4
        ridge = 1e-9 * (np.trace(gram, axis1=1, axis2=2) + 1.0)
        gram = gram + ridge[:, None, None] * np.eye(4)
        coef = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
        coef[:, 0] += y0
        coef[empty] = 0.0
        coef[empty, 0] = first[empty]
        return np.column_stack([np.where(empty, 0.0, x0), s, coef])
    raise ValueError(f"unknown leaf model {kind!r}; choose one of {', '.join(LEAF_KINDS)}")


def eval_groups(params: np.ndarray, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Predicted positions for keys `x` with model numbers `g`."""
    rows = params[g]
    if params.shape[1] == 3:
        return rows[:, 1] + rows[:, 2] * (x - rows[:, 0])
    t = (x - rows[:, 0]) * rows[:, 1]
    return rows[:, 2] + t * (rows[:, 3] + t * (rows[:, 4] + t * rows[:, 5]))
