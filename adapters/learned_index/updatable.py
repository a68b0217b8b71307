"""An updatable learned index in the style of ALEX: gapped arrays, model-based inserts, node splits.

Keys are uint64 (below 2**64 - 1, which marks gaps and "none") mapped to
uint64 payloads; inserting a present key replaces its payload. The index is a
sorted array of data nodes (`pivots`: node i holds the keys in
[pivots[i], pivots[i+1])), each a gapped array with its own linear model
key -> slot:

- a gap holds a copy of the next real key to its right (trailing gaps hold
  2**64 - 1), so a node's slots never decrease and a lookup is an exponential
  search from the model's predicted slot; a slot is a gap exactly when it
  equals the slot after it (keys are distinct), so no occupancy bitmap is kept;
- an insert goes to its predicted place: into the gap there if there is one,
  else the keys between it and the nearest gap shift by one;
- when an insert would push a node past `density_max`, the node is rebuilt at
  `density_init` with a model refitted to its keys and placed model-based
  (each key at its predicted slot, pushed right only on a collision); a node
  that would then exceed `max_node_slots` is split into equal parts instead;
- a delete turns the key's slot (and the gap copies of it) into copies of the
  next key; a node that falls below a quarter of `density_max` is contracted.

Operations run in compiled code as a stream: `run(kinds, keys, values)` takes
op codes (LOOKUP, INSERT, DELETE, LOWER_BOUND) and executes them in order in
one numba call, so there is no Python work per operation. When the slot pool
or the node table fills, the kernel stops before the op that needs room; the
Python side compacts and grows the arrays and resumes there. With
`timed=True` the kernel also adds each op's CPU cycle count (the time-stamp
counter) to a per-kind total, so lookups and inserts of one mixed stream can
be costed separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOOKUP, INSERT, DELETE, LOWER_BOUND = 0, 1, 2, 3
KIND_NAMES = ("lookup", "insert", "delete", "lower_bound")
#: gap filler past the last key, the answer "not found" / "no key above", and the one key not allowed
MAX_KEY = np.uint64(2**64 - 1)
MODELS = ("least_squares", "endpoints")
PLACEMENTS = ("model", "even")
#: a timed op longer than this was descheduled midway (other processes ran): its cycles are not counted
DESCHEDULED_SECONDS = 0.002
_tsc_hz: float | None = None


def tsc_hz() -> float:
    """The time-stamp counter's rate, measured once against the wall clock."""
    global _tsc_hz
    if _tsc_hz is None:
        import time

        now = _kernels().now
        now()
        t0, c0 = time.perf_counter(), now()
        time.sleep(0.05)
        _tsc_hz = (now() - c0) / (time.perf_counter() - t0)
    return _tsc_hz


def new_cycles() -> np.ndarray:
    """Per-kind cycle totals for a timed run: [lookup, insert, delete, lower_bound, cap, ops over the cap]."""
    return np.array([0, 0, 0, 0, int(DESCHEDULED_SECONDS * tsc_hz()), 0], dtype=np.int64)


@dataclass(frozen=True)
class UpdatableConfig:
    """Knobs of the updatable index (see the module docstring)."""

    max_node_slots: int = 1 << 14
    density_init: float = 0.6
    density_max: float = 0.8
    bulk_fill: float = 0.5  # bulk load: keys per node as a fraction of what max_node_slots holds at density_init
    model: str = "least_squares"
    placement: str = "model"  # where a rebuild puts the keys: at the model's slots, or gaps spread evenly

    def __post_init__(self):
        if not 16 <= self.max_node_slots <= 1 << 26:
            raise ValueError(f"max_node_slots must be in [16, 2**26], not {self.max_node_slots}")
        if not 0.05 <= self.density_init < self.density_max <= 0.98:
            raise ValueError(f"need 0.05 <= density_init < density_max <= 0.98, not {self.density_init}, {self.density_max}")
        if not 0.0 < self.bulk_fill <= 1.0:
            raise ValueError(f"bulk_fill must be in (0, 1], not {self.bulk_fill}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, not {self.placement!r}")

    @property
    def bulk_node_keys(self) -> int:
        return max(1, int(self.max_node_slots * self.density_init * self.bulk_fill))


def check_keys(keys: np.ndarray, what: str = "keys") -> np.ndarray:
    """A contiguous uint64 key array, refusing the reserved key 2**64 - 1."""
    if not isinstance(keys, np.ndarray):  # a list of Python ints above 2**63 would otherwise become floats
        try:
            keys = np.array(keys, dtype=np.uint64)
        except (OverflowError, TypeError, ValueError):
            raise ValueError(f"{what} must be integers in [0, 2**64 - 2]") from None
    if keys.ndim != 1 or (keys.size and keys.dtype.kind not in "ui"):
        raise ValueError(f"{what} must be a 1-d array of unsigned integers, not {keys.dtype}{list(keys.shape)}")
    if keys.dtype.kind == "i" and keys.size and keys.min() < 0:
        raise ValueError(f"{what} must be non-negative")
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    if keys.size and keys.max() == MAX_KEY:
        raise ValueError(f"{what}: the key 2**64 - 1 is reserved (it marks gaps)")
    return keys


def op_stream(kinds, keys, values=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (kinds, keys, values) arrays of one length for `run`."""
    kinds = np.ascontiguousarray(kinds, dtype=np.uint8)
    keys = check_keys(keys, "op keys")
    if kinds.shape != keys.shape:
        raise ValueError(f"kinds and keys differ in length ({kinds.size} vs {keys.size})")
    if kinds.size and kinds.max() > LOWER_BOUND:
        raise ValueError(f"op kinds must be 0..3 (lookup, insert, delete, lower_bound), found {int(kinds.max())}")
    values = keys if values is None else np.ascontiguousarray(values, dtype=np.uint64)
    if values.shape != keys.shape:
        raise ValueError(f"values and keys differ in length ({values.size} vs {keys.size})")
    return kinds, keys, values


def _kernels():
    from autosys_adapters.learned_index import _updatable_kernels as module

    return module


class UpdatableIndex:
    """An ALEX-style updatable learned index (see the module docstring); needs numba."""

    name = "alex"

    def __init__(self, config: UpdatableConfig | None = None):
        self.config = config or UpdatableConfig()
        self.params = np.array(
            [self.config.density_init, self.config.density_max, self.config.max_node_slots, MODELS.index(self.config.model),
             PLACEMENTS.index(self.config.placement)],
            dtype=np.float64,
        )
        self.cycles = new_cycles()
        self.counts = np.zeros(4, dtype=np.int64)
        self.bulk_load(np.empty(0, dtype=np.uint64))

    # ------------------------------------------------------------------ build
    def bulk_load(self, keys: np.ndarray, values: np.ndarray | None = None) -> "UpdatableIndex":
        """Replace the contents with sorted, distinct `keys` (values default to the keys)."""
        keys = check_keys(keys)
        if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
            raise ValueError("bulk_load needs sorted, distinct keys")
        values = keys if values is None else np.ascontiguousarray(values, dtype=np.uint64)
        if values.shape != keys.shape:
            raise ValueError("values and keys differ in length")
        per = self.config.bulk_node_keys
        n_nodes = max(1, -(-keys.size // per))
        max_nodes = max(64, 2 * n_nodes)
        slots_per = max(8, math.ceil(per / self.config.density_init))
        pool = max(1024, int(n_nodes * slots_per * 1.5))
        self._allocate(pool, max_nodes)
        _kernels().bulk_load(keys, values, per, self.state, self.params)
        return self

    def _allocate(self, pool: int, max_nodes: int) -> None:
        self.state = (
            np.empty(pool, dtype=np.uint64),  # slot keys
            np.empty(pool, dtype=np.uint64),  # slot payloads
            np.zeros(max_nodes, dtype=np.int64),  # node start in the pool
            np.zeros(max_nodes, dtype=np.int64),  # node capacity (slots)
            np.zeros(max_nodes, dtype=np.int64),  # node key count
            np.zeros(max_nodes, dtype=np.float64),  # model slope
            np.zeros(max_nodes, dtype=np.float64),  # model intercept
            np.zeros(max_nodes, dtype=np.uint64),  # model base key
            np.zeros(max_nodes, dtype=np.uint64),  # pivots (node lower bounds)
            np.zeros(8, dtype=np.int64),  # counters: nodes, pool used, keys, splits, expansions, shifts, contractions
        )

    def _grow(self) -> None:
        """Compact the pool (dropping rebuilt nodes' old slots) into one with room, and widen the node table."""
        keys, values, start, cap, *_rest, counters = self.state
        n_nodes = int(counters[0])
        live = int(cap[:n_nodes].sum())
        burst = int((self.config.density_max / self.config.density_init + 2) * self.config.max_node_slots)
        pool = max(int(1.25 * live), live + burst, 1024)
        max_nodes = start.size if n_nodes + 64 < start.size * 0.9 else 2 * start.size
        old = self.state
        self._allocate(pool, max_nodes)
        for new, was in zip(self.state[2:9], old[2:9]):
            new[:n_nodes] = was[:n_nodes]
        self.state[9][:] = old[9]
        _kernels().compact(old[0], old[1], old[2], self.state[0], self.state[1], self.state[2], self.state[3], n_nodes,
                           self.state[9])

    def copy(self) -> "UpdatableIndex":
        """An independent copy (for repeated runs from one bulk load)."""
        other = UpdatableIndex.__new__(UpdatableIndex)
        other.config, other.params = self.config, self.params.copy()
        other.cycles, other.counts = new_cycles(), np.zeros(4, dtype=np.int64)
        other.state = tuple(a.copy() for a in self.state)
        return other

    # ------------------------------------------------------------------ operations
    def run(self, kinds, keys, values=None, timed: bool = False) -> np.ndarray:
        """Execute an op stream in order; out[i] is the op's answer.

        lookup: the payload, or 2**64 - 1 if absent; insert: 1 if new, 0 if it
        replaced a payload; delete: 1 if removed, 0 if absent; lower_bound:
        the smallest key >= the query, or 2**64 - 1 if none. With `timed`,
        `cycles[kind]` accumulates each op's time-stamp-counter cycles (see `new_cycles`).
        """
        kinds, keys, values = op_stream(kinds, keys, values)
        out = np.empty(keys.size, dtype=np.uint64)
        k = _kernels()
        done = 0
        while done < keys.size:
            done = k.run_ops(kinds, keys, values, out, done, timed, self.cycles, self.state, self.params)
            if done < keys.size:  # out of room: the op that needs it pays for the compaction
                c0 = k.now()
                self._grow()
                if timed:
                    self.cycles[kinds[done]] += k.now() - c0
        if timed:
            self.counts += np.bincount(kinds, minlength=4)[:4]
        return out

    def lookup(self, keys) -> np.ndarray:
        keys = check_keys(keys)
        return self.run(np.full(keys.size, LOOKUP, np.uint8), keys)

    def lower_bound(self, keys) -> np.ndarray:
        keys = check_keys(keys)
        return self.run(np.full(keys.size, LOWER_BOUND, np.uint8), keys)

    def insert(self, keys, values=None) -> np.ndarray:
        keys = check_keys(keys)
        return self.run(np.full(keys.size, INSERT, np.uint8), keys, values)

    def delete(self, keys) -> np.ndarray:
        keys = check_keys(keys)
        return self.run(np.full(keys.size, DELETE, np.uint8), keys)

    # ------------------------------------------------------------------ inspection
    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All (keys, payloads) in key order (walks every node's real slots)."""
        return _kernels().items(self.state)

    def __len__(self) -> int:
        return int(self.state[9][2])

    @property
    def n_nodes(self) -> int:
        return int(self.state[9][0])

    @property
    def stats(self) -> dict[str, int]:
        c = self.state[9]
        return {"nodes": int(c[0]), "keys": int(c[2]), "splits": int(c[3]), "expansions": int(c[4]),
                "shifted_slots": int(c[5]), "contractions": int(c[6])}

    @property
    def size_bytes(self) -> int:
        """Bytes of live structure: every node's slots (key + payload) and its metadata row."""
        n = self.n_nodes
        return int(self.state[3][:n].sum()) * 16 + n * 8 * 7

    @property
    def allocated_bytes(self) -> int:
        return sum(a.nbytes for a in self.state)

    def describe(self) -> str:
        c = self.config
        return (f"alex(slots<={c.max_node_slots}, density {c.density_init:.2f}-{c.density_max:.2f}, "
                f"bulk {c.bulk_fill:.2f}, {c.model}, {c.placement} placement)")


__all__ = ["DELETE", "INSERT", "KIND_NAMES", "LOOKUP", "LOWER_BOUND", "MAX_KEY", "MODELS", "PLACEMENTS", "UpdatableConfig",
           "UpdatableIndex", "check_keys", "new_cycles", "op_stream", "tsc_hz"]
