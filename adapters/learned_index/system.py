"""The learned-index system: tune an index's design on the user's keys by timing real lookups.

A config picks the index kind (a recursive model index or a PGM-style
piecewise-linear index) and its knobs. `evaluate` builds the index on the
keys, checks every answer against `numpy.searchsorted`, and times batched
lookups of a fixed random-order mix of existing and missing keys (never
sorted) on this thread's CPU clock: ns/lookup is the median of `repeats`
runs. The objective minimizes ns/lookup under a cap on the model's size
(default 1% of the key array); `index_bytes` is also a second objective so
the report can draw the size/latency Pareto front. `numpy.searchsorted` runs
on the same queries inside every evaluation, so each trial carries its own
speedup ratio measured minutes, not hours, apart.

Fidelity: the queries timed, a prefix of the shuffled query set (so a random
sample of it), down to about 1/32 of it; the index is always built on every
key. Apply costs: the index's structure needs a rebuild; the last-mile search
and its batch are lookup-time choices and cost nothing. The last few indexes
built are kept, so measuring a config again (a race, a promotion to the next
rung) times lookups on the index already built for it, as a running system
would, instead of paying its build again.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from autosys.core.fidelity import Fidelity, stamp
from autosys.core.space import Categorical, Condition, Config, Int, Ordinal, Space
from autosys.core.system import Limit, Measurement, Objective, System
from autosys.core.monitor import Monitor, host_monitors

from autosys_adapters.learned_index import PGM, RMI, PGMConfig, RMIConfig, compiled
from autosys_adapters.learned_index.keys import GENERATORS, generate, load_keys, make_queries
from autosys_adapters.learned_index.models import LEAF_KINDS, ROOT_KINDS, TRANSFORMS
from autosys_adapters.learned_index.pgm import TOPS
from autosys_adapters.learned_index.search import SEARCHES

#: bytes per leaf of the smallest leaf layout (3 float64 + an int32 error pair)
_LEAF_BYTES = 32
#: bytes per middle model (3 float64)
_MID_BYTES = 24


def _pow2_at_least(value: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(value, 1.0))))


def _pow2_at_most(value: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(value, 1.0))))


def build_index(keys: np.ndarray, config: Config, backend: str = "auto") -> RMI | PGM:
    """The index a (validated) config describes, built on `keys`."""
    if config["kind"] == "pgm":
        return PGM(
            keys,
            PGMConfig(
                epsilon=config["epsilon"],
                epsilon_recursive=config.get("epsilon_recursive", 4),
                search=config["search"],
                top=config.get("top", "recursive"),
                batch=config.get("batch", 16),
            ),
            backend=backend,
        )
    return RMI(
        keys,
        RMIConfig(
            stages=int(config["stages"]),
            root=config["root"],
            transform=config["transform"],
            mid_models=config.get("mid_models", 1),
            leaf=config["leaf"],
            leaves=config["leaves"],
            bounds=config["bounds"],
            search=config["search"],
            batch=config.get("batch", 16),
        ),
        backend=backend,
    )


def _thread_ns(fn) -> int:
    start = time.thread_time_ns()
    fn()
    return time.thread_time_ns() - start


class LearnedIndexSystem(System):
    """The index design for the user's keys, timed on real lookups (see the module docstring).

    Args:
        keys: a .npy or text file of keys (none = generate them).
        distribution: the generated keys' distribution (lognormal, normal, uniform_dense, uniform_sparse, osm, fb).
        n_keys: how many keys to generate.
        queries: lookups per timed run.
        seed: seeds the keys and the queries.
        size_cap: index bytes allowed, as a fraction of the key array's bytes.
        repeats: timed runs per trial; the median is reported.
        backend: auto, numba or numpy.
    """

    name = "learned-index"

    def __init__(
        self,
        keys: str | None = None,
        distribution: str = "lognormal",
        n_keys: int = 1_000_000,
        queries: int = 200_000,
        seed: int = 0,
        size_cap: float = 0.01,
        repeats: int = 5,
        backend: str = "auto",
    ):
        if keys is None and distribution not in GENERATORS:
            raise ValueError(f"unknown distribution {distribution!r}; choose one of: {', '.join(GENERATORS)}")
        if n_keys < 1 and keys is None:
            raise ValueError(f"n_keys must be >= 1, not {n_keys}")
        if queries < 1 or repeats < 1:
            raise ValueError("queries and repeats must be >= 1")
        if not 0 < size_cap:
            raise ValueError(f"size_cap is a fraction of the key array's bytes (e.g. 0.01), not {size_cap}")
        self.backend = compiled.resolve_backend(backend)
        self.keys_path, self.distribution, self.n_keys = keys, distribution, n_keys
        self.n_queries, self.seed, self.size_cap, self.repeats = queries, seed, size_cap, repeats
        self._keys: np.ndarray | None = None
        self._queries: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self._built: dict[str, RMI | PGM] = {}

    # --- data, loaded once and lazily (so listing the space costs nothing)
    @property
    def keys(self) -> np.ndarray:
        if self._keys is None:
            if self.keys_path:
                self._keys = load_keys(self.keys_path)
                if self._keys.size == 0:
                    raise ValueError(f"keys file {self.keys_path!r} holds no keys")
            else:
                self._keys = generate(self.distribution, self.n_keys, self.seed)
        return self._keys

    @property
    def queries(self) -> np.ndarray:
        if self._queries is None:
            self._queries = make_queries(self.keys, self.n_queries, seed=self.seed + 1)
            self._reference = np.searchsorted(self.keys, self._queries, side="left")
        return self._queries

    def setup(self) -> None:
        self.queries  # noqa: B018 - generate keys and queries before the first trial is timed

    @property
    def cap_bytes(self) -> float:
        return self.size_cap * self._key_bytes()

    def _key_bytes(self) -> int:
        return self.keys.nbytes if (self._keys is not None or self.keys_path) else 8 * self.n_keys

    # --- the contract
    def space(self) -> Space:
        max_leaves = max(64, _pow2_at_least(2 * self.cap_bytes / _LEAF_BYTES))
        max_mid = max(256, _pow2_at_least(self.cap_bytes / _MID_BYTES / 2))
        # the default is a design that holds up on any key set: a radix root on the keys' float bits
        # (a log-like split that no outlier can squeeze into one bucket) routes to linear middle models
        # fitted on positions, whose predictions split the keys into leaves of about equal counts;
        # per-leaf error bounds, searched in lock-step 64 queries at a time. Sized to ~90% of the cap.
        default_leaves = max(16, _pow2_at_most(0.75 * self.cap_bytes / _LEAF_BYTES))
        default_mid = max(16, _pow2_at_most(0.15 * self.cap_bytes / _MID_BYTES))
        rmi = Condition("kind", ("rmi",))
        pgm = Condition("kind", ("pgm",))
        space = Space(
            [
                Categorical("kind", ("rmi", "pgm"), default="rmi"),
                Categorical("search", SEARCHES, default="binary"),
                # queries searched in lock-step by the compiled kernels (their cache misses overlap)
                Ordinal("batch", (1, 4, 8, 16, 32, 64, 128), default=64),
                Ordinal("stages", (2, 3), default=3, condition=rmi),
                Categorical("root", ROOT_KINDS, default="radix", condition=rmi),
                Categorical("transform", TRANSFORMS, default="log", condition=rmi),
                Int("mid_models", 16, max_mid, log=True, default=min(default_mid, max_mid),
                    condition=Condition("stages", (3,))),
                Categorical("leaf", LEAF_KINDS, default="linear", condition=rmi),
                Int("leaves", 16, max_leaves, log=True, default=default_leaves, condition=rmi),
                Categorical("bounds", ("leaf", "global"), default="leaf", condition=rmi),
                Int("epsilon", 4, 4096, log=True, default=64, condition=pgm),
                # find the segment through the PGM's recursive levels, or binary-search the segments
                Categorical("top", TOPS, default="binary", condition=pgm),
                Int("epsilon_recursive", 2, 64, log=True, default=4, condition=Condition("top", ("recursive",))),
            ]
        )
        return space.with_apply_costs({p.name: "none" if p.name in ("search", "batch") else "rebuild" for p in space})

    @property
    def objective(self) -> Objective:
        return Objective(
            "ns_per_lookup",
            "minimize",
            limits=(Limit("index_bytes", max=self.cap_bytes),),
            others=(("index_bytes", "minimize"),),
        )

    def fidelity(self) -> Fidelity:
        """Queries timed per run: a prefix of the shuffled query set (full = all `queries`)."""
        full = int(self.n_queries)
        return Fidelity("queries", "query_sample", min(full, max(100, full // 32)), full, unit="queries")

    def monitors(self) -> list[Monitor]:
        """The host and this process (the index build and lookups): CPU, memory, page faults."""
        return host_monitors()

    def evaluate(self, config: Config, fidelity: int | None = None) -> Measurement:
        n = self.resolve_fidelity(fidelity)
        config = self.space().validate(config)
        keys, queries = self.keys, self.queries[:n]
        reference = self._reference[:n]
        index = self._index_for(config)
        index.lookup(queries[:64])  # compile or load the kernels outside the timed runs
        answers = index.lookup(queries)
        if not np.array_equal(answers, reference):
            wrong = int(np.count_nonzero(answers != reference))
            raise RuntimeError(f"index answered {wrong} of {queries.size} lookups differently from searchsorted")
        repairs = index.last_repairs
        ns = [_thread_ns(lambda: index.lookup(queries)) / queries.size for _ in range(self.repeats)]
        base = _thread_ns(lambda: np.searchsorted(keys, queries, side="left")) / queries.size
        median = float(np.median(ns))
        metrics = {
            "ns_per_lookup": median,
            "build_seconds": float(index.build_seconds),
            "index_bytes": float(index.size_bytes),
            "index_fraction": index.size_bytes / keys.nbytes,
            "searchsorted_ns": float(base),
            "speedup": float(base / median) if median > 0 else float("nan"),
            "repair_fraction": repairs / queries.size,
        }
        return Measurement(
            metrics=metrics,
            samples={"ns_per_lookup": [float(v) for v in ns]},
            info=stamp({"index": index.describe(), "backend": self.backend, "n_keys": int(keys.size), "queries": int(queries.size)},
                       self.fidelity(), n, queries.size * self.repeats),
        )

    #: indexes kept built, most recent last: a race's re-runs and a multi-fidelity promotion measure a config
    #: again, and the index a config describes on these keys is the same one (each is at most `size_cap` of the keys)
    BUILT_KEPT = 4

    def _index_for(self, config: Config) -> RMI | PGM:
        """The index `config` describes on the keys: built now, or the one built for it before (not rebuilt)."""
        key = self.space().config_key(config)
        index = self._built.pop(key, None)
        if index is None:
            index = build_index(self.keys, config, self.backend)
        self._built[key] = index
        while len(self._built) > self.BUILT_KEPT:
            self._built.pop(next(iter(self._built)))
        return index

    def baselines(self) -> dict[str, dict[str, float]]:
        """Lookup cost of other ways to answer the same queries, measured now (medians)."""
        keys, queries = self.keys, self.queries
        out = {
            "searchsorted": {
                "ns_per_lookup": float(np.median([_thread_ns(lambda: np.searchsorted(keys, queries)) for _ in range(self.repeats)]))
                / queries.size
            }
        }
        if self.backend == "numba":
            compiled.binary_search(keys, queries[:64])
            for batch in (1, 16):  # one query at a time, and 16 in lock-step like the index's default
                runs = [_thread_ns(lambda: compiled.binary_search(keys, queries, batch)) for _ in range(self.repeats)]
                out[f"compiled-binary-search-batch{batch}"] = {"ns_per_lookup": float(np.median(runs)) / queries.size}
        out.update(optional_baselines(keys, queries[: min(queries.size, 20_000)]))
        return out


def optional_baselines(keys: np.ndarray, queries: np.ndarray) -> dict[str, dict[str, Any]]:
    """pygm (the PGM-index authors' package) and a BTrees B-tree, where installed.

    Neither has a batch lookup, so each runs one Python call per query (the
    per-call overhead is part of what they cost from Python).
    """
    out: dict[str, dict[str, Any]] = {}
    try:
        import pygm  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        index = pygm.SortedList(keys.tolist()) if hasattr(pygm, "SortedList") else None
        if index is not None:
            items = queries.tolist()
            ns = _thread_ns(lambda: [index.bisect_left(v) for v in items]) / len(items)
            out["pygm"] = {"ns_per_lookup": ns, "keys_indexed": float(keys.size)}
    try:
        from BTrees.OOBTree import OOBTree  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        sample = keys if keys.size <= 2_000_000 else keys[:: keys.size // 2_000_000]
        tree = OOBTree()
        tree.update({int(k) if keys.dtype.kind == "u" else float(k): i for i, k in enumerate(sample.tolist())})
        items = [int(v) if keys.dtype.kind == "u" else float(v) for v in queries.tolist()]

        def probe():
            for v in items:
                try:
                    tree.minKey(v)
                except ValueError:
                    pass

        out["btrees"] = {"ns_per_lookup": _thread_ns(probe) / len(items), "keys_indexed": float(sample.size)}
    return out
