"""Key sets for learned indexes: SOSD-style generators, user key files, query mixes.

Every generator is seeded and returns a sorted uint64 array (duplicates are
allowed and kept: lookups are lower bounds, so duplicates are legitimate
input). `load_keys` reads the user's own keys from `.npy` or a text file with
one key a line, sorts them, and rejects NaN, infinities and non-numeric input
with an error that names the file and the offending line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

_MAX = np.uint64(2**63 - 1)


def _to_u64(values: np.ndarray) -> np.ndarray:
    """Clip non-negative floats into [0, 2**63) and convert to sorted uint64."""
    values = np.clip(np.floor(values), 0.0, float(2**63 - 4096))
    return np.sort(values.astype(np.uint64))


def lognormal(n: int, rng: np.random.Generator) -> np.ndarray:
    """SOSD lognormal(0, 2) scaled by 1e9: a heavy right tail, dense head."""
    return _to_u64(np.exp(rng.normal(0.0, 2.0, n)) * 1e9)


def normal(n: int, rng: np.random.Generator) -> np.ndarray:
    """Normal keys centred in the uint64 range."""
    return _to_u64(rng.normal(0.0, 1.0, n) * 1e15 + 2.0**62)


def uniform_dense(n: int, rng: np.random.Generator) -> np.ndarray:
    """Nearly consecutive integers (about 5% gaps), like dense surrogate ids."""
    steps = 1 + (rng.random(n) < 0.05).astype(np.uint64)
    return np.cumsum(steps, dtype=np.uint64) + np.uint64(1_000)


def uniform_sparse(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random keys over [0, 2**63)."""
    return np.sort(rng.integers(0, 2**63 - 1, n, dtype=np.uint64))


def osm(n: int, rng: np.random.Generator) -> np.ndarray:
    """Clustered keys in the manner of OpenStreetMap cell ids.

    Clusters of heavy-tailed size sit at random places; inside each, keys come
    in sub-clusters whose gap scale varies over orders of magnitude, so the
    CDF is smooth nowhere at any single scale.
    """
    n_clusters = max(1, n // 2_000)
    sizes = rng.pareto(1.2, n_clusters) + 1.0
    counts = np.maximum(1, np.round(sizes / sizes.sum() * n)).astype(np.int64)
    counts[-1] += n - counts.sum()
    while counts[-1] < 1:  # rounding overshoot: take keys back from the largest cluster
        big = int(np.argmax(counts[:-1]))
        counts[big] -= 1 - counts[-1]
        counts[-1] = 1
    centres = (np.sort(rng.random(n_clusters)) * 2.0**61).astype(np.uint64)
    owner = np.repeat(np.arange(n_clusters), counts)
    # sub-clusters: runs of about 64 keys share a gap scale drawn log-uniformly
    sub = np.arange(n) // 64
    gap_scale = np.exp(rng.uniform(np.log(2.0), np.log(1e6), sub[-1] + 1))[sub]
    gaps = rng.exponential(1.0, n) * gap_scale
    # jumps between sub-clusters of the same cluster
    gaps[::64] *= np.exp(rng.uniform(0.0, 8.0, gaps[::64].size))
    offsets = np.cumsum(gaps)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offsets -= np.repeat(offsets[start], counts)
    # integer offsets: adding small gaps to floats near 2**61 would round many keys together
    return np.sort(np.repeat(centres, counts) + np.floor(offsets).astype(np.uint64))


def fb(n: int, rng: np.random.Generator) -> np.ndarray:
    """Facebook-id-like keys: dense-ish ids below 2**40 plus a few huge outliers."""
    n_out = max(1, n // 100_000) if n > 1 else 0
    body = rng.integers(0, 2**40, n - n_out, dtype=np.uint64)
    outliers = rng.integers(2**60, 2**63 - 1, n_out, dtype=np.uint64)
    return np.sort(np.concatenate([body, outliers]))


GENERATORS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "lognormal": lognormal,
    "normal": normal,
    "uniform_dense": uniform_dense,
    "uniform_sparse": uniform_sparse,
    "osm": osm,
    "fb": fb,
}


def generate(distribution: str, n: int, seed: int = 0) -> np.ndarray:
    """`n` sorted uint64 keys of a named distribution (see `GENERATORS`)."""
    if distribution not in GENERATORS:
        raise ValueError(f"unknown key distribution {distribution!r}; choose one of: {', '.join(GENERATORS)}")
    if n < 0:
        raise ValueError(f"n_keys must be >= 0, not {n}")
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    return GENERATORS[distribution](int(n), np.random.default_rng(seed))


# --------------------------------------------------------------------------- user keys


def as_key_array(values: np.ndarray, source: str = "keys") -> np.ndarray:
    """Validate and sort keys: uint64 for non-negative integers, float64 otherwise."""
    values = np.asarray(values)
    if values.ndim != 1:
        values = values.reshape(-1)
    if values.dtype == bool or values.dtype.kind not in "iuf":
        raise ValueError(f"{source}: keys must be numbers, not {values.dtype}")
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{source}: key #{bad[0]} is {values[bad[0]]!r}; NaN and infinite keys are not allowed")
        return np.sort(values.astype(np.float64))
    if values.dtype.kind == "i" and values.size and values.min() < 0:
        if np.abs(values).max() > 2**53:
            raise ValueError(f"{source}: negative integer keys beyond 2**53 cannot be indexed exactly")
        return np.sort(values.astype(np.float64))
    return np.sort(values.astype(np.uint64))


def load_keys(path: str | Path) -> np.ndarray:
    """Read keys from `.npy` or a text file (one key a line); sorted, validated."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"keys file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: not a numeric .npy array ({exc})") from None
        return as_key_array(values, str(path))
    lines = path.read_text().splitlines()
    ints: list[int] = []
    floats: list[float] | None = None
    for lineno, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{path} line {lineno}: {text!r} is not a number") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(f"{path} line {lineno}: {text!r} is not a finite key")
            if floats is None:
                floats = [float(v) for v in ints]
        if floats is not None:
            floats.append(float(number))
        else:
            if number >= 2**64:
                raise ValueError(f"{path} line {lineno}: {text} does not fit in 64 bits")
            ints.append(number)
    if floats is not None:
        return as_key_array(np.array(floats, dtype=np.float64), str(path))
    if not ints:
        return np.empty(0, dtype=np.uint64)
    if min(ints) < 0:
        return as_key_array(np.array(ints, dtype=np.int64), str(path))
    return np.sort(np.array(ints, dtype=np.uint64))


# --------------------------------------------------------------------------- queries


def make_queries(keys: np.ndarray, n: int, seed: int = 0, hit_fraction: float = 0.5) -> np.ndarray:
    """`n` queries in random order: existing keys and missing ones (between and outside keys).

    Never sorted: sorted queries make binary search look ten times faster
    than it is for random access.
    """
    rng = np.random.default_rng(seed)
    keys = np.asarray(keys)
    if keys.size == 0:
        return rng.integers(0, 2**20, n).astype(keys.dtype)
    n_hit = int(round(n * hit_fraction))
    n_out = min(n - n_hit, max(1, n // 100))  # ~1% outside the key range
    n_gap = n - n_hit - n_out
    hits = keys[rng.integers(0, keys.size, n_hit)]
    i = rng.integers(0, max(keys.size - 1, 1), n_gap)
    j = np.minimum(i + 1, keys.size - 1)
    if keys.dtype.kind == "u":
        gap = keys[j] - keys[i]
        step = np.minimum(np.floor(gap.astype(np.float64) * rng.random(n_gap)).astype(np.uint64), gap)
        between = keys[i] + step
        lo_room = int(keys[0])
        hi_room = int(np.iinfo(np.uint64).max - keys[-1])
        below = keys[0] - rng.integers(0, lo_room + 1, n_out, dtype=np.uint64) if lo_room else keys[:0]
        above = keys[-1] + rng.integers(0, min(hi_room, 2**62) + 1, n_out, dtype=np.uint64) if hi_room else keys[:0]
    else:
        between = keys[i] + (keys[j] - keys[i]) * rng.random(n_gap)
        span = float(keys[-1] - keys[0]) or 1.0
        below = keys[0] - span * rng.random(n_out)
        above = keys[-1] + span * rng.random(n_out)
    outside = np.concatenate([below, above])
    if outside.size < n_out:
        outside = np.concatenate([outside, keys[rng.integers(0, keys.size, n_out - outside.size)]])
    outside = outside[rng.permutation(outside.size)[:n_out]]
    queries = np.concatenate([hits, between, outside]).astype(keys.dtype)
    return queries[rng.permutation(queries.size)]
