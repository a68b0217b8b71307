"""A recursive model index (RMI): a root model routes each key to one of many leaf models.

Two stages (root -> leaves) or three (root -> linear middle models ->
leaves). Root models: linear, linear_spline, cubic or radix, optionally on
log-transformed keys; leaf models: linear, linear_spline or cubic. Each leaf
stores the range of its prediction errors (`bounds="leaf"`), or the whole
index stores one range (`"global"`); the last-mile search (binary or linear in
that window, or exponential from the guess with no window and no bounds
stored) finds the exact lower bound, and `search.repair` fixes any answer a
bound missed (e.g. a query in the gap before a leaf's first key).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from autosys_adapters.learned_index import compiled, models, search
from autosys_adapters.learned_index.base import SortedKeyIndex



@dataclass(frozen=True)
class RMIConfig:
    """The design knobs of an RMI."""

    stages: int = 2
    root: str = "linear_spline"
    transform: str = "identity"
    mid_models: int = 256
    leaf: str = "linear"
    leaves: int = 4096
    bounds: str = "leaf"
    search: str = "binary"
    #: queries searched in lock-step by the compiled path, so their cache misses overlap
    batch: int = 16

    def __post_init__(self):
        if self.stages not in (2, 3):
            raise ValueError(f"stages must be 2 or 3, not {self.stages!r}")
        if self.root not in models.ROOT_KINDS:
            raise ValueError(f"root must be one of {models.ROOT_KINDS}, not {self.root!r}")
        if self.transform not in models.TRANSFORMS:
            raise ValueError(f"transform must be one of {models.TRANSFORMS}, not {self.transform!r}")
        if self.leaf not in models.LEAF_KINDS:
            raise ValueError(f"leaf must be one of {models.LEAF_KINDS}, not {self.leaf!r}")
        if self.bounds not in ("leaf", "global"):
            raise ValueError(f"bounds must be 'leaf' or 'global', not {self.bounds!r}")
        if not 1 <= self.batch <= 1024:
            raise ValueError(f"batch must be in [1, 1024], not {self.batch!r}")
        if self.search not in search.SEARCHES:
            raise ValueError(f"search must be one of {search.SEARCHES}, not {self.search!r}")
        if self.leaves < 1 or self.mid_models < 1:
            raise ValueError("leaves and mid_models must be >= 1")


def _group_min_max(values: np.ndarray, g: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group min and max of `values` for sorted group numbers (0 for empty groups)."""
    lo = np.zeros(count, dtype=np.int64)
    hi = np.zeros(count, dtype=np.int64)
    if values.size == 0:
        return lo, hi
    starts = models.group_starts(g, count)[:-1]
    nonempty = np.flatnonzero(np.diff(models.group_starts(g, count)) > 0)
    lo[nonempty] = np.minimum.reduceat(values, starts[nonempty])
    hi[nonempty] = np.maximum.reduceat(values, starts[nonempty])
    return lo, hi


class RMI(SortedKeyIndex):
    """Build with `RMI(keys, config)`; `lookup(queries)` equals numpy.searchsorted(keys, queries)."""

    config_class = RMIConfig

    def _route_root(self, q: np.ndarray, x: np.ndarray, count: int) -> np.ndarray:
        cfg = self.config
        if cfg.root == "radix":
            bits = models.radix_bits(q, cfg.transform)
            below = bits < self.radix_min
            j = (bits - np.where(below, bits, self.radix_min)) >> np.uint64(self.radix_shift)
            return np.minimum(j, np.uint64(count - 1)).astype(np.int64)
        pred = models.eval_root(self.root_params, models.root_input(x, cfg.transform, self.xmin))
        return models.clip_index(pred, self.n, count)

    def _route(self, q: np.ndarray, x: np.ndarray) -> np.ndarray:
        cfg = self.config
        if cfg.stages == 2:
            return self._route_root(q, x, self.n_leaves)
        mid = self._route_root(q, x, self.n_mid)
        pred = models.eval_groups(self.mid_params, x, mid)
        return models.clip_index(pred, self.n, self.n_leaves)

    def _build(self) -> None:
        cfg, keys, n = self.config, self.keys, self.n
        fast = self.backend == "numba"
        x = keys.astype(np.float64)
        self.xmin = float(x[0]) if n else 0.0
        first_count = cfg.leaves if cfg.stages == 2 else cfg.mid_models
        self.radix_min = np.uint64(0)
        self.radix_shift = 0
        self.root_params = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
        if cfg.root == "radix":
            if n:
                ends = models.radix_bits(keys[[0, -1]], cfg.transform)
                self.radix_min = ends[0]
                self.radix_shift = models.radix_shift(int(ends[0]), int(ends[1]), first_count)
                first_count = (int(ends[1] - ends[0]) >> self.radix_shift) + 1
            else:
                first_count = 1
        else:
            y = np.linspace(0.0, n - 1.0, n) if n else np.zeros(0)
            self.root_params = models.fit_root(cfg.root, models.root_input(x, cfg.transform, self.xmin), y)
        self.n_mid, self.n_leaves = 0, first_count
        self.mid_params = np.zeros((0, 3))
        if cfg.stages == 3:
            g = compiled.rmi_route(self, 0, self.mid_params, first_count) if fast else self._route_root(keys, x, first_count)
            self.mid_params = self._fit("linear", x, g, first_count)
            self.n_mid, self.n_leaves = first_count, cfg.leaves
        g = compiled.rmi_route(self, self.n_mid, self.mid_params, self.n_leaves) if fast else self._route(keys, x)
        self.leaf_params = self._fit(cfg.leaf, x, g, self.n_leaves)
        if fast:
            lo, hi = compiled.leaf_errors(keys, g, self.leaf_params, self.n_leaves)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                pred = models.eval_groups(self.leaf_params, x, g)
            err = np.arange(n, dtype=np.int64) - _floor_pos(pred, n)
            order = _sort_groups(g)
            lo, hi = _group_min_max(err if order is None else err[order], g if order is None else g[order], self.n_leaves)
        if cfg.search == "exponential":
            self.errors = np.zeros((0, 2), dtype=np.int32)
        elif cfg.bounds == "leaf":
            self.errors = np.column_stack([lo, hi]).astype(np.int32)
        else:
            self.errors = np.array([[lo.min() if lo.size else 0, hi.max() if hi.size else 0]], dtype=np.int32)

    def _fit(self, kind: str, x: np.ndarray, g: np.ndarray, count: int) -> np.ndarray:
        """One model per group of keys; groups need not be contiguous (a cubic root may interleave)."""
        order = _sort_groups(g)
        if order is None and kind == "linear" and self.backend == "numba":
            return compiled.fit_linear_sorted(self.keys, g, count)
        y = np.arange(self.n, dtype=np.float64)
        if order is None:
            moments = None
            if kind == "cubic" and self.backend == "numba":
                moments = lambda x0, s: compiled.cubic_moments_sorted(self.keys, g, count, x0, s)  # noqa: E731
            return models.fit_groups(kind, x, y, g, count, moments=moments)
        return models.fit_groups(kind, x[order], y[order], g[order], count)

    # --- size and lookups
    @property
    def size_bytes(self) -> int:
        """Bytes of the model (root, middle, leaves, error bounds); the keys are not counted."""
        return int(self.root_params.nbytes + 16 + self.mid_params.nbytes + self.leaf_params.nbytes + self.errors.nbytes)

    def describe(self) -> dict:
        return {**asdict(self.config), "n_leaves": self.n_leaves, "n_mid": self.n_mid, "bytes": self.size_bytes}

    def max_window(self) -> int:
        if self.errors.size == 0:
            return 0
        return int((self.errors[:, 1] - self.errors[:, 0]).max()) + 2

    def _lookup_compiled(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        return compiled.rmi_lookup(self, q)

    def _lookup_numpy(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        with np.errstate(over="ignore", invalid="ignore"):  # cubic models far outside their range
            return self._search_numpy(q)

    def _search_numpy(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        n = self.n
        x = q.astype(np.float64)
        g = self._route(q, x)
        guess = _floor_pos(models.eval_groups(self.leaf_params, x, g), n)
        if self.errors.shape[0] == 0:
            lo = hi = guess
        else:
            err = self.errors[g] if self.errors.shape[0] > 1 else np.broadcast_to(self.errors[0], (q.size, 2))
            lo = np.clip(guess + err[:, 0], 0, n)
            hi = np.clip(guess + err[:, 1] + 1, 0, n)
            lo = np.minimum(lo, hi)
        r = search.last_mile(self.config.search, self.keys, q, guess, lo, hi)
        return search.repair(self.keys, q, r)


def _floor_pos(pred: np.ndarray, n: int) -> np.ndarray:
    """Predicted positions clamped to [0, n] and floored (NaN, from a model far outside its range, -> 0)."""
    return np.clip(np.nan_to_num(pred, nan=0.0), 0.0, float(n)).astype(np.int64)


def _sort_groups(g: np.ndarray) -> np.ndarray | None:
    """None if `g` is already non-decreasing, else the stable order that sorts it."""
    if g.size < 2 or bool(np.all(g[1:] >= g[:-1])):
        return None
    return np.argsort(g, kind="stable")
