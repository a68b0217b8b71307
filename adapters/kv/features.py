"""Workload features (what the recommender sees of a workload) and config features.

Workload features come from the spec (mix, key distribution, sizes, caps)
plus two measured from the seeded operation stream (how concentrated the
accesses are), so a workload file is enough: no engine is run.
Config features are one column per engine (one-hot) and one per knob
(its unit-cube position, -1 when the knob is inactive).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from autosys_adapters.kv.engines import ENGINES
from autosys_adapters.kv.workloads import KVWorkload
from autosys_adapters.workloads.ycsb import OPS, operations

NO_CAP = 1e3  # cap / data-size ratio standing in for "no cap" (far above any real one)


def workload_features(workload: KVWorkload, seed: int = 0) -> dict[str, float]:
    """Numeric features of a workload, named `wf_*`."""
    w = workload.base
    total = sum(w.mix.values())
    mix = {op: w.mix.get(op, 0.0) / total for op in OPS}
    data_bytes = w.records * (w.value_size + 12)
    feats = {f"wf_{op}": mix[op] for op in OPS}
    feats["wf_write"] = mix["update"] + mix["insert"] + mix["rmw"] + mix["delete"]
    feats["wf_absent_reads"] = mix["read"] * workload.absent_fraction
    feats["wf_scan_rows"] = mix["scan"] * w.scan_length
    for dist in ("zipfian", "uniform", "latest"):
        feats[f"wf_dist_{dist}"] = float(w.distribution == dist)
    feats["wf_zipf"] = 0.0 if w.distribution == "uniform" else w.zipf_constant
    feats["wf_log_records"] = math.log10(w.records)
    feats["wf_log_value_size"] = math.log10(w.value_size)
    feats["wf_log_data_bytes"] = math.log10(data_bytes)
    feats["wf_memory_cap_ratio"] = workload.memory_cap_mb * 2**20 / data_bytes if workload.memory_cap_mb else NO_CAP
    feats["wf_disk_cap_ratio"] = workload.disk_cap_mb * 2**20 / data_bytes if workload.disk_cap_mb else NO_CAP
    stream = operations(w, seed)
    counts = np.bincount(stream.keys - stream.keys.min())
    counts = np.sort(counts)[::-1]
    top = max(1, int(0.01 * w.records))
    feats["wf_hot1pct_share"] = float(counts[:top].sum() / len(stream.keys))
    feats["wf_distinct_share"] = float(np.count_nonzero(counts) / len(stream.keys))
    return feats


def knob_columns() -> list[str]:
    """Every knob of every engine in the catalogue (stable order)."""
    return [p.name for spec in ENGINES.values() for p in spec.params()]


def config_features(config: Mapping[str, Any]) -> dict[str, float]:
    """Engine one-hot plus each knob's unit-cube value (-1 where inactive)."""
    feats = {f"cf_engine_{name}": float(config["engine"] == name) for name in ENGINES}
    for spec in ENGINES.values():
        for param in spec.params():
            value = config.get(param.name)
            feats[f"cf_{param.name}"] = -1.0 if value is None else float(param.to_unit(param.check(value)))
    return feats


__all__ = ["config_features", "knob_columns", "workload_features"]
