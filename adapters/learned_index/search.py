"""Vectorized last-mile searches: find the exact answer near a model's guess.

All functions work on whole query batches with numpy. `bounded` searches a
window [lo, hi) per query; `exponential` gallops out from a guess with no
window at all. `repair` checks every answer against the definition of a lower
bound (keys[r-1] < q <= keys[r]) and recomputes the few that a model's bound
missed, so a lookup is exact whatever the model did.
"""

from __future__ import annotations

import numpy as np

#: a linear scan is used only for windows up to this many slots; wider ones are binary-searched
LINEAR_MAX = 64


def _less(arr: np.ndarray, idx: np.ndarray, q: np.ndarray, side: str) -> np.ndarray:
    """arr[idx] < q (side left) or arr[idx] <= q (side right)."""
    value = arr[idx]
    return value < q if side == "left" else value <= q


def bounded_binary(arr: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray, side: str = "left") -> np.ndarray:
    """First index in [lo, hi) whose key is >= q (> q for side right), else hi."""
    lo = lo.astype(np.int64, copy=True)
    length = hi.astype(np.int64) - lo
    if arr.size == 0:
        return lo
    while True:
        active = length > 0
        if not active.any():
            return lo
        half = length >> 1
        mid = np.minimum(lo + half, arr.size - 1)
        go = _less(arr, mid, q, side) & active
        lo = np.where(go, mid + 1, lo)
        length = np.where(go, length - half - 1, half)


def bounded_linear(arr: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray, side: str = "left") -> np.ndarray:
    """Scan each window from lo; windows wider than LINEAR_MAX are binary-searched."""
    lo = lo.astype(np.int64, copy=True)
    hi = hi.astype(np.int64)
    wide = (hi - lo) > LINEAR_MAX
    r = lo
    if wide.any():
        r[wide] = bounded_binary(arr, q[wide], lo[wide], hi[wide], side)
    scan = ~wide
    if arr.size == 0:
        return r
    for _ in range(LINEAR_MAX):
        step = scan & (r < hi)
        if not step.any():
            break
        step &= _less(arr, np.minimum(r, arr.size - 1), q, side)
        r += step
        scan = step
    return r


def exponential(arr: np.ndarray, q: np.ndarray, guess: np.ndarray, side: str = "left") -> np.ndarray:
    """Gallop from `guess` (1, 2, 4, ... slots) until the answer is bracketed, then binary search."""
    n = arr.size
    guess = np.clip(guess.astype(np.int64), 0, n)
    if n == 0:
        return guess
    # answer >= guess when arr[guess-1] < q (or guess == 0); otherwise it is below guess
    right = (guess == 0) | _less(arr, np.maximum(guess - 1, 0), q, side)
    lo = np.where(right, guess, 0)
    hi = np.where(right, n, guess)
    step = np.ones_like(guess)
    open_ = np.ones(guess.shape, dtype=bool)
    while open_.any():
        # right: probe guess+step-1; if arr[probe] >= q the answer is in (.., probe]
        probe_r = guess + step - 1
        probe_l = guess - step
        in_r = right & open_ & (probe_r < n)
        in_l = ~right & open_ & (probe_l >= 0)
        found_r = in_r & ~_less(arr, np.clip(probe_r, 0, n - 1), q, side)
        found_l = in_l & _less(arr, np.clip(probe_l, 0, n - 1), q, side)
        hi = np.where(found_r, probe_r, hi)
        lo = np.where(in_r & ~found_r, probe_r + 1, lo)
        lo = np.where(found_l, probe_l + 1, lo)
        hi = np.where(in_l & ~found_l, probe_l, hi)
        open_ = (in_r & ~found_r) | (in_l & ~found_l)
        step <<= 1
    return bounded_binary(arr, q, lo, hi, side)


def is_answer(arr: np.ndarray, q: np.ndarray, r: np.ndarray, side: str = "left") -> np.ndarray:
    """True where r is exactly searchsorted(arr, q, side)."""
    n = arr.size
    if n == 0:
        return r == 0
    below_ok = (r == 0) | _less(arr, np.clip(r - 1, 0, n - 1), q, side)
    above_ok = (r == n) | ~_less(arr, np.clip(r, 0, n - 1), q, side)
    return below_ok & above_ok


def repair(arr: np.ndarray, q: np.ndarray, r: np.ndarray, side: str = "left") -> tuple[np.ndarray, int]:
    """Replace wrong answers (a model bound that missed) by a full search; returns (r, #repaired)."""
    bad = ~is_answer(arr, q, r, side)
    count = int(bad.sum())
    if count:
        r = r.copy()
        r[bad] = np.searchsorted(arr, q[bad], side=side)
    return r, count


def last_mile(kind: str, arr: np.ndarray, q: np.ndarray, guess: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Dispatch to one of the last-mile searches by name: binary, linear or exponential."""
    if kind == "binary":
        return bounded_binary(arr, q, lo, hi)
    if kind == "linear":
        return bounded_linear(arr, q, lo, hi)
    if kind == "exponential":
        return exponential(arr, q, guess)
    raise ValueError(f"unknown last-mile search {kind!r}; choose binary, linear or exponential")


SEARCHES = ("binary", "exponential", "linear")
