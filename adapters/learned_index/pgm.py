"""A piecewise-linear index with a guaranteed error bound epsilon (PGM-style).

Segments come from the greedy shrinking-cone algorithm: each segment keeps
every one of its points within +-epsilon of its line (the PGM-index's optimal
algorithm makes fewer segments; the guarantee is the same). Levels are built
recursively over the segments' first keys (with `epsilon_recursive`) until one
segment remains, as in the PGM-index (`top="recursive"`); with `top="binary"`
no upper levels are built and a lookup binary-searches the segments' first
keys instead, which is faster on a CPU whenever those fit in cache. The lowest level is fitted on the
distinct keys and the position of their first occurrence, so duplicates do
not break the bound; the last-mile search then looks in
[guess - epsilon - 1, guess + epsilon + 2) and `repair` fixes what a long run
of duplicates pushes outside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from autosys_adapters.learned_index import compiled, search
from autosys_adapters.learned_index.base import SortedKeyIndex
from autosys_adapters.learned_index.segments import cone_segments_py

TOPS = ("recursive", "binary")


@dataclass(frozen=True)
class PGMConfig:
    epsilon: int = 64
    epsilon_recursive: int = 4
    search: str = "binary"
    #: queries searched in lock-step by the compiled path, so their cache misses overlap
    batch: int = 16
    #: how a query finds its segment: "recursive" walks the PGM's upper levels; "binary" builds no
    #: upper levels and binary-searches the segments' first keys in lock-step (a few hundred KB at
    #: most under a 1% cap, so cache-resident: one tight loop beats a model per level)
    top: str = "recursive"

    def __post_init__(self):
        if self.epsilon < 1 or self.epsilon_recursive < 1:
            raise ValueError("epsilon and epsilon_recursive must be >= 1")
        if self.top not in TOPS:
            raise ValueError(f"top must be one of {TOPS}, not {self.top!r}")
        if not 1 <= self.batch <= 1024:
            raise ValueError(f"batch must be in [1, 1024], not {self.batch!r}")
        if self.search not in search.SEARCHES:
            raise ValueError(f"search must be one of {search.SEARCHES}, not {self.search!r}")


class PGM(SortedKeyIndex):
    """Build with `PGM(keys, config)`; `lookup(queries)` equals numpy.searchsorted(keys, queries)."""

    config_class = PGMConfig

    def _segments(self, x: np.ndarray, y: np.ndarray, eps: int):
        if self.backend == "numba":
            return compiled.cone_segments(x, y, float(eps))
        return cone_segments_py(x, y, float(eps))

    def _build(self) -> None:
        cfg, keys = self.config, self.keys
        levels_keys, levels_p0, levels_slope = [], [], []
        if self.n:
            first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
            level_keys = keys[first]
            y = first.astype(np.float64)
            eps = cfg.epsilon
            while True:
                x = level_keys.astype(np.float64)
                starts, slopes = self._segments(x, y, eps)
                levels_keys.append(level_keys[starts])
                levels_p0.append(y[starts])
                levels_slope.append(slopes)
                if starts.size == 1 or cfg.top == "binary":
                    break
                level_keys = level_keys[starts]
                y = np.arange(starts.size, dtype=np.float64)
                eps = cfg.epsilon_recursive
        self.level_offsets = np.concatenate([[0], np.cumsum([a.size for a in levels_keys])]).astype(np.int64)
        self.seg_keys = np.concatenate(levels_keys) if levels_keys else keys[:0]
        self.seg_p0 = np.concatenate(levels_p0) if levels_p0 else np.zeros(0)
        self.seg_slope = np.concatenate(levels_slope) if levels_slope else np.zeros(0)

    @property
    def levels(self) -> int:
        return self.level_offsets.size - 1

    @property
    def segments(self) -> int:
        return int(self.level_offsets[1] - self.level_offsets[0]) if self.levels else 0

    @property
    def size_bytes(self) -> int:
        """Bytes of all segments (key, intercept, slope) and level offsets; keys not counted."""
        return int(self.seg_keys.nbytes + self.seg_p0.nbytes + self.seg_slope.nbytes + self.level_offsets.nbytes)

    def describe(self) -> dict:
        return {**asdict(self.config), "segments": self.segments, "levels": self.levels, "bytes": self.size_bytes}

    def _lookup_compiled(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        return compiled.pgm_lookup(self, q)

    def _predict(self, seg: np.ndarray, x: np.ndarray, size: int) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):  # an infinite float query: NaN -> 0, repaired later
            pred = self.seg_p0[seg] + self.seg_slope[seg] * (x - self.seg_keys[seg].astype(np.float64))
            return np.clip(np.nan_to_num(pred, nan=0.0), 0.0, float(size)).astype(np.int64)

    def _lookup_numpy(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        cfg, off = self.config, self.level_offsets
        x = q.astype(np.float64)
        s = np.zeros(q.size, dtype=np.int64)
        if cfg.top == "binary":
            s = np.maximum(np.searchsorted(self.seg_keys[: off[1]], q, side="right") - 1, 0)
        for lev in range(self.levels - 1 if cfg.top == "recursive" else 0, 0, -1):
            child = self.seg_keys[off[lev - 1] : off[lev]]
            guess = self._predict(off[lev] + s, x, child.size)
            lo = np.clip(guess - cfg.epsilon_recursive - 1, 0, child.size)
            hi = np.clip(guess + cfg.epsilon_recursive + 2, 0, child.size)
            u = search.bounded_binary(child, q, lo, hi, side="right")
            u, _ = search.repair(child, q, u, side="right")
            s = np.maximum(u - 1, 0)
        guess = self._predict(off[0] + s, x, self.n)
        lo = np.clip(guess - cfg.epsilon - 1, 0, self.n)
        hi = np.clip(guess + cfg.epsilon + 2, 0, self.n)
        r = search.last_mile(cfg.search, self.keys, q, guess, lo, hi)
        return search.repair(self.keys, q, r)
