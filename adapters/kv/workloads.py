"""Key-value workloads: the shared YCSB generator plus what key-value selection needs.

A `KVWorkload` is a YCSB `Workload` (autosys_adapters.workloads.ycsb) plus the fraction
of reads that ask for absent keys, and optional memory and disk caps that a
workload file may carry. `KV_PRESETS` adds scan-heavy, insert-heavy,
absent-key and delete-heavy mixes to YCSB A-F, all at a size where one
evaluation takes a fraction of a second.

`prepare(workload, seed)` turns the seeded operation stream into bytes keys and
values once, so the timed replay does nothing but call the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from autosys_adapters.workloads.base import check_memory
from autosys_adapters.workloads.ycsb import INSERT, PRESETS, READ, RMW, UPDATE, Workload, load_workload, operations, spec_data, value_for

KV_FIELDS = ("absent_fraction", "memory_cap_mb", "disk_cap_mb")
DEFAULT_RECORDS = 20_000
DEFAULT_OPERATIONS = 50_000  # the fastest engine (dict) still runs ~25 ms
#: Python overhead of one prepared key and value (two bytes objects, a tuple or list slots), value bytes aside
BYTES_PER_ITEM = 160


@dataclass(frozen=True)
class KVWorkload:
    """A YCSB workload, the share of reads aimed at absent keys, and optional caps (MB, 0 = none)."""

    base: Workload
    absent_fraction: float = 0.0
    memory_cap_mb: float = 0.0
    disk_cap_mb: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.absent_fraction <= 1.0:  # also refuses NaN
            raise ValueError(f"workload {self.name!r}: absent_fraction must be in [0, 1], not {self.absent_fraction}")
        for cap in ("memory_cap_mb", "disk_cap_mb"):
            if not 0 <= getattr(self, cap) < math.inf:
                raise ValueError(f"workload {self.name!r}: {cap} must be a finite number >= 0 (0 means no cap)")
        w = self.base
        # every record and every operation's key and value are prepared as Python bytes before the clock starts
        per_item = BYTES_PER_ITEM + w.value_size
        check_memory(self, (w.records + w.operations) * per_item,
                     f"{w.records:,} records and {w.operations:,} operations of {w.value_size}-byte values")

    @property
    def name(self) -> str:
        return self.base.name

    def to_json(self) -> dict:
        data = self.base.to_json()
        data.update(absent_fraction=self.absent_fraction, memory_cap_mb=self.memory_cap_mb, disk_cap_mb=self.disk_cap_mb)
        return data


def _preset(name: str, mix: Mapping[str, float], **kw: Any) -> KVWorkload:
    kv = {k: kw.pop(k) for k in KV_FIELDS if k in kw}
    kw.setdefault("records", DEFAULT_RECORDS)
    kw.setdefault("operations", DEFAULT_OPERATIONS)
    return KVWorkload(Workload(name, mix=dict(mix), **kw), **kv)


def _ycsb(name: str, **kw: Any) -> KVWorkload:
    base = PRESETS[name].to_json()
    base.pop("records"), base.pop("operations"), base.pop("name")
    return _preset(name, base.pop("mix"), **{**base, **kw})


KV_PRESETS: dict[str, KVWorkload] = {
    w.name: w
    for w in (
        _ycsb("ycsb-a"),
        _ycsb("ycsb-b"),
        _ycsb("ycsb-c"),
        _ycsb("ycsb-d"),
        _ycsb("ycsb-e", operations=2_000),
        _ycsb("ycsb-f"),
        _preset("scan-heavy", {"scan": 0.5, "read": 0.3, "update": 0.2}, scan_length=20, operations=4_000),
        _preset("insert-heavy", {"insert": 0.8, "read": 0.2}, distribution="latest"),
        _preset("absent-reads", {"read": 0.95, "update": 0.05}, distribution="uniform", absent_fraction=0.8),
        _preset("delete-heavy", {"delete": 0.3, "insert": 0.3, "read": 0.4}, distribution="uniform"),
    )
}


def load_kv_workload(spec: str | Mapping[str, Any] | KVWorkload, **overrides: Any) -> KVWorkload:
    """A preset name, a JSON/TOML file, or a mapping; `overrides` (None or 0 = keep) win."""
    if isinstance(spec, KVWorkload):
        data = spec.to_json()
    else:
        data = spec_data(spec, {k: w.to_json() for k, w in KV_PRESETS.items()})
    data.update({k: v for k, v in overrides.items() if v})
    kv = {k: float(data.pop(k)) for k in KV_FIELDS if k in data}
    return KVWorkload(load_workload(data), **kv)


def key_bytes(index: int) -> bytes:
    """The stored key of record `index` (fixed width, so byte order is index order)."""
    return b"k%011d" % index


def absent_key(index: int) -> bytes:
    """A key that is never stored, sorting right after record `index`."""
    return key_bytes(index) + b"~"


@dataclass
class PreparedWorkload:
    """Everything the timed replay needs, computed before the clock starts."""

    workload: KVWorkload
    load_items: list[tuple[bytes, bytes]]
    ops: list[int]
    keys: list[bytes]
    values: list[bytes | None]

    def __len__(self) -> int:
        return len(self.ops)


def prepare(workload: KVWorkload, seed: int = 0) -> PreparedWorkload:
    """Bytes keys and values for the load phase and for every operation of the seeded stream."""
    w = workload.base
    stream = operations(w, seed)
    ops = stream.ops.tolist()
    index = stream.keys.tolist()
    rng = np.random.default_rng([seed, 0xAB5E])
    absent = rng.random(len(ops)) < workload.absent_fraction
    keys = [absent_key(k) if (op == READ and miss) else key_bytes(k) for op, k, miss in zip(ops, index, absent)]
    writes = (UPDATE, INSERT, RMW)
    values = [value_for(k, w.value_size, i + 1) if op in writes else None for i, (op, k) in enumerate(zip(ops, index))]
    load_items = [(key_bytes(k), value_for(k, w.value_size)) for k in range(w.records)]
    return PreparedWorkload(workload, load_items, ops, keys, values)


def sample_workloads(count: int, seed: int = 0, prefix: str = "corpus") -> list[KVWorkload]:
    """`count` random workloads spread over the feature space: a training corpus for the recommender.

    Each mixes two to four operation kinds with Dirichlet weights (scans in
    about a third), a key distribution, a value size, sometimes absent-key
    reads and sometimes a memory cap of 1-3x the raw data size. Nothing is
    aimed at the presets: the point is to cover the space, so a recommender
    trained on it has seen workloads near any new one.
    """
    from autosys_adapters.workloads.ycsb import DISTRIBUTIONS, OPS

    rng = np.random.default_rng([seed, 0xC0DE])
    out = []
    for i in range(count):
        kinds = [op for op in OPS if op != "scan"]
        chosen = [str(op) for op in rng.choice(kinds, size=int(rng.integers(1, 4)), replace=False)]
        if rng.random() < 0.35:
            chosen.append("scan")
        if "read" not in chosen and rng.random() < 0.5:
            chosen.append("read")
        weights = rng.dirichlet(np.ones(len(chosen)))
        mix = {op: round(float(w), 3) for op, w in zip(chosen, weights) if w >= 0.01} or {"read": 1.0}
        records = int(rng.choice([10_000, 20_000, 30_000]))
        value_size = int(rng.choice([64, 100, 256, 512]))
        data_mb = records * (value_size + 12) / 2**20
        absent = round(float(rng.uniform(0.1, 0.9)), 2) if rng.random() < 0.3 else 0.0
        cap = round(float(data_mb * rng.uniform(1.0, 3.0)), 2) if rng.random() < 0.3 else 0.0
        out.append(
            _preset(
                f"{prefix}-{i:02d}",
                mix,
                records=records,
                value_size=value_size,
                distribution=str(rng.choice(DISTRIBUTIONS)),
                scan_length=int(np.exp(rng.uniform(np.log(5), np.log(100)))),
                absent_fraction=absent,
                memory_cap_mb=cap,
            )
        )
    return out


def with_size(workload: KVWorkload, records: int = 0, operations_: int = 0, value_size: int = 0) -> KVWorkload:
    """The same workload at another size (0 keeps a setting)."""
    base = replace(
        workload.base,
        records=records or workload.base.records,
        operations=operations_ or workload.base.operations,
        value_size=value_size or workload.base.value_size,
    )
    return replace(workload, base=base)


__all__ = [
    "KV_PRESETS",
    "KVWorkload",
    "PreparedWorkload",
    "absent_key",
    "key_bytes",
    "load_kv_workload",
    "prepare",
    "sample_workloads",
    "with_size",
]
