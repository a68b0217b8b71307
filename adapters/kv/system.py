"""Key-value data-structure selection: pick the engine and its knobs for a workload.

The config is `engine` (dict, sorteddict, sqlite, lmdb, rocksdb) plus that
engine's knobs as conditional parameters (`rocksdb_bloom_bits` exists only
when engine=rocksdb). Each evaluation opens a fresh store, bulk-loads the
records (timed separately), replays the seeded operation stream and reports
throughput (maximized; per second of wall time less the time the thread
waited for a CPU held by other jobs, see adapters/kv/replay.py), the plain
wall-clock throughput, p95 latency, memory and disk bytes. Memory and disk
caps become limits of the objective, so a config over a cap is infeasible,
not merely slow. Engines whose package is missing are left out of the space
and listed in `missing_engines`.

Apply costs (`APPLY_COSTS`): changing the engine, or a knob fixed in the
stored data (page size, table layout, SST format, compaction style),
rebuilds the store; options read when a store opens need a reopen
("restart"); live PRAGMAs cost nothing. Fidelity: the operations replayed, a
prefix of the seeded stream (down to about 1/9 of it), with the time cap
(`seconds`) shrunk by the same fraction. No predictor yet:
the KV recommender (adapters/kv/recommender.py) needs studies to learn from.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from autosys_adapters.kv.engines import ENGINES, available_engines, make_engine, memory_defaults, rocksdb_started_here
from autosys_adapters.kv.replay import replay
from autosys_adapters.kv.workloads import KVWorkload, PreparedWorkload, load_kv_workload, prepare
from autosys.run.hostspeed import HostSpeed
from autosys.run.isolation import fork_available, run_forked
from autosys.core.fidelity import Fidelity, stamp
from autosys.core.space import Categorical, Config, InvalidConfig, Space
from autosys.core.system import Limit, Measurement, Objective, System
from autosys.core.monitor import Monitor, host_monitors
from autosys_adapters.kv.monitors import KVStoreMonitor

MB = 1 << 20

#: what changing a knob costs an existing store; engine knobs not named here need a reopen
APPLY_COSTS = {
    "engine": "rebuild",
    "sorteddict_load": "rebuild",
    "sqlite_page_size": "rebuild",
    "sqlite_without_rowid": "rebuild",
    "sqlite_cache_kib": "none",
    "sqlite_journal": "none",
    "sqlite_synchronous": "none",
    "rocksdb_compaction": "rebuild",
    "rocksdb_bloom_bits": "rebuild",
    "rocksdb_block_size": "rebuild",
}


class KVSelect(System):
    """Chooses and tunes a key-value engine for a workload.

    Args:
        workload: preset name, or JSON/TOML file of YCSB settings plus optional
            absent_fraction, memory_cap_mb, disk_cap_mb.
        records, operations, value_size: workload size (0 = the workload's own).
        memory_cap_mb, disk_cap_mb: resource caps (0 = none; a cap given here
            overrides the workload file's).
        repeats: runs per trial, on a fresh store each; the median is reported.
        seconds: cap on each timed replay.
        engines: comma-separated subset of engines (empty = all available).
        seed: seeds the workload's keys and operations.
        normalize: rescale throughput to the host speed of the first measurement
            in this process, against the speed phases of shared VMs (see
            autosys/hostspeed.py); throughput_raw keeps the plain figure.
        isolate: each run in a forked child, so no engine's leftovers (heap,
            freed caches, background threads) slow the next (autosys/isolation.py);
            runs stay in-process once this process has opened RocksDB, whose
            background threads a fork loses.
    """

    name = "kv"

    def __init__(
        self,
        workload: str = "ycsb-a",
        records: int = 0,
        operations: int = 0,
        value_size: int = 0,
        memory_cap_mb: float = 0.0,
        disk_cap_mb: float = 0.0,
        repeats: int = 1,
        seconds: float = 1.0,
        engines: str = "",
        seed: int = 0,
        normalize: bool = True,
        isolate: bool = False,
    ):
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        if memory_cap_mb < 0 or disk_cap_mb < 0:
            raise ValueError("memory_cap_mb and disk_cap_mb must be >= 0 (0 means no cap)")
        self.kv_workload: KVWorkload = load_kv_workload(
            workload,
            records=records,
            operations=operations,
            value_size=value_size,
            memory_cap_mb=memory_cap_mb,
            disk_cap_mb=disk_cap_mb,
        )
        wanted = [e.strip() for e in engines.split(",") if e.strip()] or None
        self.engines, self.missing_engines = available_engines(wanted)
        if not self.engines:
            raise ValueError(f"no key-value engine is available: {self.missing_engines}")
        self.repeats = repeats
        self.seconds = seconds
        self.normalize = bool(normalize)
        self.isolate = bool(isolate)
        self.seed = seed
        self._prepared: PreparedWorkload | None = None
        self._counter = 0

    # --- the contract
    def space(self) -> Space:
        names = tuple(self.engines)
        default = next((e for e in ("rocksdb", "sqlite") if e in names), names[0])
        params: list = [Categorical("engine", names, default=default)]
        for spec in self.engines.values():
            params.extend(spec.params("engine"))
        # under a memory cap, the memory budgets' defaults fit it (engines.memory_defaults); ranges unchanged
        space = Space(memory_defaults(params, self.kv_workload.memory_cap_mb * MB))
        return space.with_apply_costs({p.name: APPLY_COSTS.get(p.name, "restart") for p in space})

    @property
    def objective(self) -> Objective:
        limits = []
        if self.kv_workload.memory_cap_mb > 0:
            limits.append(Limit("memory_bytes", max=self.kv_workload.memory_cap_mb * MB))
        if self.kv_workload.disk_cap_mb > 0:
            limits.append(Limit("disk_bytes", max=self.kv_workload.disk_cap_mb * MB))
        return Objective("throughput", "maximize", limits=tuple(limits), others=(("p95_latency_us", "minimize"),))

    def setup(self) -> None:
        self.acquire_workdir()

    def teardown(self) -> None:
        self.release_workdir()

    def prepared(self) -> PreparedWorkload:
        """The workload's keys, values and operations (built once per system)."""
        if self._prepared is None:
            self._prepared = prepare(self.kv_workload, self.seed)
        return self._prepared

    def fidelity(self) -> Fidelity:
        """Operations replayed: a prefix of the seeded stream (full = all of it), down to 1/9 of it.

        Not lower: the in-memory engines replay about a million operations a
        second, so 1/32 of a 50,000-operation stream was a 2 ms window, and
        one config measured 0.1-1.0M ops/s there (a preemption, a cold cache)
        where 1/9 of it read within 30% of its full-length value; successive
        halving then pruned the best engine on noise.
        """
        full = len(self.prepared())
        return Fidelity("operations", "operations", min(full, max(50, full // 9)), full, unit="operations")

    @classmethod
    def learners(cls) -> list:
        """The KV recommender, trained by the learning loop on every stored kv study (autosys/learn/loop.py)."""
        from autosys_adapters.kv.recommender import KVRecommenderLearner

        return [KVRecommenderLearner()]

    def monitors(self) -> list[Monitor]:
        """The host and this process, and the running trial's stores (LMDB meta, RocksDB files and events)."""
        return [*host_monitors(), KVStoreMonitor(lambda: self.attempt_dir or self.workdir)]

    def evaluate(self, config: Config, fidelity: int | None = None) -> Measurement:
        limit = self.resolve_fidelity(fidelity)
        if self.workdir is None:
            self.setup()
        config = self.space().validate(config)
        if config["engine"] not in self.engines:
            raise InvalidConfig(f"engine {config['engine']!r} is not available: {self.missing_engines.get(config['engine'])}")
        prepared = _head(self.prepared(), limit)
        seconds = self.seconds * limit / len(self.prepared())
        runs = [self._measure(config, prepared, seconds) for _ in range(self.repeats)]
        throughputs = [r["throughput"] for r in runs]
        median = statistics.median(throughputs)
        metrics = {
            "throughput": median,
            "throughput_raw": statistics.median(r["throughput_raw"] for r in runs),
            "throughput_wall": statistics.median(r["throughput_wall"] for r in runs),
            "host_slowdown": statistics.median(r["host_slowdown"] for r in runs),
            "p95_latency_us": statistics.median(r["p95_latency_us"] for r in runs),
            "memory_bytes": max(r["memory_bytes"] for r in runs),
            "disk_bytes": max(r["disk_bytes"] for r in runs),
            "load_seconds": statistics.median(r["load_seconds"] for r in runs),
            "operations_done": statistics.median(r["done"] for r in runs),
            "read_hits": runs[0]["read_hits"],
            "throughput_spread": (max(throughputs) - min(throughputs)) / median if median else float("nan"),
        }
        return Measurement(
            metrics=metrics,
            samples={"throughput": throughputs, "p95_latency_us": [r["p95_latency_us"] for r in runs]},
            info=stamp({"workload": self.kv_workload.name, "engine": config["engine"], "missing_engines": self.missing_engines},
                       self.fidelity(), limit, sum(r["done"] for r in runs)),
        )

    def _measure(self, config: Config, prepared: PreparedWorkload, seconds: float) -> dict[str, Any]:
        """One run on a fresh store; with `isolate`, in a forked child (autosys/isolation.py)."""
        self._counter += 1
        path = self.scratch_dir() / f"store-{self._counter}"
        if not (self.isolate and fork_available()) or rocksdb_started_here():
            return self._run_once(config, prepared, path, seconds)  # a fork would lose RocksDB's threads
        if self.normalize:
            HostSpeed.reference_ms()  # taken here, so every child rescales to the same reference
        try:
            return run_forked(lambda: self._run_once(config, prepared, path, seconds), timeout=120 + 20 * self.seconds)
        finally:
            shutil.rmtree(path, ignore_errors=True)  # a killed child leaves its store behind

    def _run_once(self, config: Config, prepared: PreparedWorkload, path: Path, seconds: float) -> dict[str, Any]:
        shutil.rmtree(path, ignore_errors=True)
        engine = make_engine(config)
        try:
            engine.open(path)
            start = time.perf_counter()
            engine.load(prepared.load_items)
            load_seconds = time.perf_counter() - start
            _touch(prepared)
            result = replay(engine, prepared, seconds, normalize=self.normalize)
            # the run's peak where the engine's memory rises and falls (RocksDB's memtables), else the end reading
            result["memory_bytes"] = float(max(engine.memory_bytes(), result.pop("memory_peak", 0)))
            result["disk_bytes"] = float(engine.disk_bytes())
            result["load_seconds"] = load_seconds
        finally:
            engine.close()
            shutil.rmtree(path, ignore_errors=True)
        return result

    def describe_engines(self) -> dict[str, str]:
        """Every known engine: what it is, or why it is left out."""
        return {
            name: (f"available: {spec.about}" if name in self.engines else f"left out: {self.missing_engines[name]}")
            for name, spec in ENGINES.items()
        }


def _head(prepared: PreparedWorkload, n: int) -> PreparedWorkload:
    """The workload with only its first `n` operations (the load phase unchanged)."""
    if n >= len(prepared):
        return prepared
    return PreparedWorkload(prepared.workload, prepared.load_items, prepared.ops[:n], prepared.keys[:n], prepared.values[:n])


def _touch(prepared: PreparedWorkload) -> None:
    """Reference every key and value once before the clock starts: in a forked child the first
    reference to an object writes its refcount and so copies its page (copy-on-write), which is
    the fork's cost, not the engine's."""
    for sequence in (prepared.keys, prepared.values):
        for _item in sequence:
            pass


__all__ = ["KVSelect"]
