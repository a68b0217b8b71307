"""The updatable-learned-index system: tune an ALEX-style index on a mixed read/insert workload.

A config sets the index's node size, density bounds, bulk-load fill and model
(`updatable.UpdatableConfig`). `evaluate` bulk-loads the index on the base
keys, replays a fixed op stream (lookups of present keys, inserts of fresh
keys drawn from the same distribution, optional deletes) in one compiled call
from a fresh copy each repeat, checks every answer against the compiled
B+tree's answers to the same stream, and reports the median CPU time per op
(thread CPU time of the whole stream), split into lookups and inserts by
their shares of the time-stamp-counter cycles counted per op. The compiled
B+tree (`dynamic_btree`) replays the same stream interleaved with the index's
repeats, so every trial carries its own ratios (`lookup_speedup`,
`insert_speedup`).

Fidelity: the operations replayed, a prefix of the stream, down to 1/16 of
it. Apply costs: every knob shapes the structure, so a change is a rebuild.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from autosys.core.fidelity import Fidelity, stamp
from autosys.core.space import Categorical, Config, Float, Int, Space
from autosys.core.system import Measurement, Objective, System
from autosys.core.monitor import Monitor, host_monitors

from autosys_adapters.learned_index.dynamic_btree import DynamicBTree
from autosys_adapters.learned_index.keys import GENERATORS, generate, load_keys
from autosys_adapters.learned_index.updatable import (DELETE, INSERT, LOOKUP, MAX_KEY, MODELS, PLACEMENTS,
                                              UpdatableConfig, UpdatableIndex)


def key_split(all_keys: np.ndarray, n_base: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys split at random into `n_base` sorted base keys and the rest (in random order) to insert."""
    keys = np.unique(np.asarray(all_keys, dtype=np.uint64))
    keys = keys[keys != MAX_KEY]
    if keys.size < n_base:
        raise ValueError(f"only {keys.size} distinct keys, fewer than the {n_base} base keys asked for")
    rng = np.random.default_rng(seed)
    keys = keys[rng.permutation(keys.size)]
    return np.sort(keys[:n_base]), keys[n_base:]


def mixed_stream(base: np.ndarray, fresh: np.ndarray, operations: int, insert_fraction: float,
                 delete_fraction: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An op stream in random order: lookups of base keys, inserts of `fresh` keys, deletes of base keys."""
    if not 0 <= insert_fraction <= 1 or not 0 <= delete_fraction <= 1 - insert_fraction:
        raise ValueError(f"need 0 <= insert_fraction, delete_fraction and their sum <= 1, not {insert_fraction}, {delete_fraction}")
    rng = np.random.default_rng(seed)
    draw = rng.random(operations)
    kinds = np.full(operations, LOOKUP, dtype=np.uint8)
    kinds[draw < insert_fraction] = INSERT
    kinds[(draw >= insert_fraction) & (draw < insert_fraction + delete_fraction)] = DELETE
    inserts = kinds == INSERT
    if inserts.sum() > fresh.size:
        raise ValueError(f"the stream inserts {int(inserts.sum())} keys but only {fresh.size} fresh keys are left")
    keys = base[rng.integers(0, base.size, operations)] if base.size else np.zeros(operations, dtype=np.uint64)
    keys[inserts] = fresh[: int(inserts.sum())]
    return kinds, keys


def config_of(config: Config) -> UpdatableConfig:
    """The index config a (validated) system config describes."""
    return UpdatableConfig(
        max_node_slots=int(config["max_node_slots"]),
        density_init=float(config["density_max"]) / float(config["expansion"]),
        density_max=float(config["density_max"]),
        bulk_fill=float(config["bulk_fill"]),
        model=config["model"],
        placement=config["placement"],
    )


def timed_run(structure: Any, kinds: np.ndarray, keys: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Replay a stream on `structure` (consumed): CPU seconds, answers, and CPU ns per op of each kind."""
    start = time.thread_time()
    out = structure.run(kinds, keys, timed=True)
    seconds = time.thread_time() - start
    cycles, counts = structure.cycles[:4].astype(np.float64), structure.counts
    share = cycles / cycles.sum() if cycles.sum() > 0 else np.zeros(4)
    ns = np.where(counts > 0, seconds * 1e9 * share / np.maximum(counts, 1), np.nan)
    return seconds, out, ns


class UpdatableIndexSystem(System):
    """The updatable learned index on a mixed workload (see the module docstring).

    Args:
        keys: a .npy or text file of keys (none = generate them); they are split into base keys and keys to insert.
        distribution: the generated keys' distribution (lognormal, normal, uniform_dense, uniform_sparse, osm, fb).
        n_keys: base keys bulk-loaded before the stream.
        operations: ops in the stream.
        insert_fraction: share of inserts (the rest are lookups, less the deletes).
        delete_fraction: share of deletes of base keys.
        seed: seeds the keys and the stream.
        repeats: timed replays per trial (each from a fresh copy); the median is reported.
        btree_leaf_keys: leaf size of the compiled B+tree the index is compared with.
    """

    name = "learned-index-updates"

    def __init__(self, keys: str | None = None, distribution: str = "lognormal", n_keys: int = 1_000_000,
                 operations: int = 200_000, insert_fraction: float = 0.5, delete_fraction: float = 0.0,
                 seed: int = 0, repeats: int = 3, btree_leaf_keys: int = 64):
        if keys is None and distribution not in GENERATORS:
            raise ValueError(f"unknown distribution {distribution!r}; choose one of: {', '.join(GENERATORS)}")
        if n_keys < 1 or operations < 16 or repeats < 1:
            raise ValueError("n_keys and repeats must be >= 1 and operations >= 16")
        if not 0 <= insert_fraction <= 1 or not 0 <= delete_fraction <= 1 - insert_fraction:
            raise ValueError("insert_fraction and delete_fraction must be in [0, 1] and sum to at most 1")
        self.keys_path, self.distribution, self.n_keys = keys, distribution, int(n_keys)
        self.operations, self.insert_fraction, self.delete_fraction = int(operations), float(insert_fraction), float(delete_fraction)
        self.seed, self.repeats, self.btree_leaf_keys = int(seed), int(repeats), int(btree_leaf_keys)
        self._data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _workload(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(base keys, kinds, op keys, reference answers), made once."""
        if self._data is None:
            n_fresh = int(self.operations * self.insert_fraction * 1.2) + 16
            if self.keys_path:
                pool = load_keys(self.keys_path)
                if pool.dtype.kind != "u":
                    raise ValueError(f"{self.keys_path}: the updatable index takes non-negative integer keys")
                n_base = min(self.n_keys, max(1, np.unique(pool).size - n_fresh))
            else:
                pool = generate(self.distribution, int((self.n_keys + n_fresh) * 1.05) + 64, self.seed)
                n_base = self.n_keys
            base, fresh = key_split(pool, n_base, self.seed)
            kinds, keys = mixed_stream(base, fresh, self.operations, self.insert_fraction, self.delete_fraction, self.seed + 1)
            reference = DynamicBTree(self.btree_leaf_keys).bulk_load(base).run(kinds, keys)
            self._data = (base, kinds, keys, reference)
        return self._data

    def space(self) -> Space:
        space = Space(
            [
                Int("max_node_slots", 256, 1 << 16, log=True, default=1 << 14),
                Float("density_max", 0.6, 0.95, default=0.8),
                Float("expansion", 1.1, 2.0, default=4 / 3),
                Float("bulk_fill", 0.25, 1.0, default=0.5),
                Categorical("model", MODELS, default="least_squares"),
                Categorical("placement", PLACEMENTS, default="model"),
            ]
        )
        return space.with_apply_costs({p.name: "rebuild" for p in space})

    @property
    def objective(self) -> Objective:
        return Objective("ns_per_op", "minimize", others=(("index_bytes", "minimize"),))

    def fidelity(self) -> Fidelity:
        """Operations replayed: a prefix of the stream (full = all `operations`)."""
        return Fidelity("operations", "operations", max(1, self.operations // 16), self.operations, unit="operations")

    def monitors(self) -> list[Monitor]:
        """The host and this process (the index under updates): CPU, memory, page faults."""
        return host_monitors()

    def evaluate(self, config: Config, fidelity: int | None = None) -> Measurement:
        n = self.resolve_fidelity(fidelity)
        config = self.space().validate(config)
        base, kinds, keys, reference = self._workload()
        kinds, keys, reference = kinds[:n], keys[:n], reference[:n]
        start = time.perf_counter()
        built = UpdatableIndex(config_of(config)).bulk_load(base)
        build_seconds = time.perf_counter() - start
        btree = DynamicBTree(self.btree_leaf_keys).bulk_load(base)
        runs, anchor = [], []
        index = built
        for _ in range(self.repeats):  # index and B+tree interleaved, each from a fresh copy
            index = built.copy()
            seconds, out, ns = timed_run(index, kinds, keys)
            if not np.array_equal(out, reference):
                wrong = int(np.count_nonzero(out != reference))
                raise RuntimeError(f"the updatable index answered {wrong} of {n} ops differently from the B+tree")
            runs.append((seconds, ns))
            b_seconds, _, b_ns = timed_run(btree.copy(), kinds, keys)
            anchor.append((b_seconds, b_ns))
        per_op = [s * 1e9 / n for s, _ in runs]
        lookup_ns = float(np.median([ns[LOOKUP] for _, ns in runs]))
        insert_ns = float(np.median([ns[INSERT] for _, ns in runs]))
        b_lookup = float(np.median([ns[LOOKUP] for _, ns in anchor]))
        b_insert = float(np.median([ns[INSERT] for _, ns in anchor]))
        metrics = {
            "ns_per_op": float(np.median(per_op)),
            "lookup_ns": lookup_ns,
            "insert_ns": insert_ns,
            "btree_ns_per_op": float(np.median([s * 1e9 / n for s, _ in anchor])),
            "lookup_speedup": b_lookup / lookup_ns if lookup_ns > 0 else float("nan"),
            "insert_speedup": b_insert / insert_ns if insert_ns > 0 else float("nan"),
            "index_bytes": float(index.size_bytes),
            "btree_bytes": float(btree.size_bytes),
            "build_seconds": build_seconds,
        }
        metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}  # no lookups or no inserts: no such split
        return Measurement(
            metrics=metrics,
            samples={"ns_per_op": per_op},
            info=stamp({"index": built.describe(), "stats": index.stats, "n_keys": int(base.size), "operations": int(n)},
                       self.fidelity(), n, n * self.repeats),
        )


__all__ = ["UpdatableIndexSystem", "config_of", "key_split", "mixed_stream", "timed_run"]
