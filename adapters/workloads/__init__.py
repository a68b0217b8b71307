"""Seeded, deterministic database workloads shared by every database adapter.

`load_benchmark(spec)` accepts a preset name (`ycsb-a` ... `ycsb-f`,
`tpcc-like`, `write-heavy` (TPC-C-like new-order and payment only), `analytic`,
for PostgreSQL `pgbench`, `pgbench-write-heavy`, and for both servers `sysbench-read-only`,
`sysbench-read-write`, `sysbench-write-only`, `sysbench-point-select`), a JSON/TOML file, or a mapping. A file or mapping
names its kind with `"kind": "ycsb" | "tpcc" | "analytic" | "pgbench" | "sysbench"` (YCSB when
absent) plus that kind's settings, e.g.
`{"kind": "tpcc", "items": 2000, "concurrency": 4}`. Concurrency (client
threads) is a setting of every kind.
"""

from __future__ import annotations

from typing import Any, Mapping

from autosys_adapters.workloads.base import Benchmark, Session

KINDS = ("ycsb", "tpcc", "analytic", "pgbench", "sysbench")
#: kinds whose client program can offer a fixed load (`rate`, transactions/s)
RATE_KINDS = ("pgbench", "sysbench")
BENCHMARK_PRESETS = {
    "tpcc-like": {"kind": "tpcc"},
    "tpcc": {"kind": "tpcc"},
    # write-heavy: only the two write transactions, short payments dominating, so commits (WAL flushes) weigh most
    "write-heavy": {"kind": "tpcc", "mix": {"new_order": 0.4, "payment": 0.6}},
    "analytic": {"kind": "analytic"},
    # PostgreSQL only: the real pgbench as the client (adapters/workloads/pgbench.py)
    "pgbench": {"kind": "pgbench"},
    # update-heavy over 6M accounts (about 900 MB): several times the default shared_buffers
    "pgbench-write-heavy": {"kind": "pgbench", "mode": "simple-update", "scale": 60},
    # PostgreSQL and MariaDB: sysbench's OLTP scripts over about 1.1 GB (adapters/workloads/sysbench.py), cached
    "sysbench-read-only": {"kind": "sysbench", "test": "oltp_read_only"},
    "sysbench-read-write": {"kind": "sysbench", "test": "oltp_read_write"},
    "sysbench-write-only": {"kind": "sysbench", "test": "oltp_write_only"},
    "sysbench-point-select": {"kind": "sysbench", "test": "oltp_point_select"},
}


def preset_names() -> list[str]:
    from autosys_adapters.workloads.ycsb import PRESETS

    return [*PRESETS, *BENCHMARK_PRESETS]


def load_benchmark(spec: str | Mapping[str, Any] | Benchmark, **overrides: Any) -> Benchmark:
    """A `Benchmark` from a preset name, a JSON/TOML file, a mapping, or a Benchmark.

    `overrides` (None values ignored) win over the spec; YCSB's `records` and
    `operations` mean rows and operations; TPC-C-like reads `records` as its
    item count; unknown settings raise ValueError naming them.
    """
    from autosys_adapters.workloads.analytic import make_analytic
    from autosys_adapters.workloads.pgbench import make_pgbench
    from autosys_adapters.workloads.tpcc import make_tpcc
    from autosys_adapters.workloads.ycsb import PRESETS, YCSBBenchmark, load_workload, spec_data

    if isinstance(spec, Benchmark):
        return spec
    presets = {name: {"name": name, **settings} for name, settings in BENCHMARK_PRESETS.items()}
    presets.update({name: {"kind": "ycsb", **w.to_json()} for name, w in PRESETS.items()})  # YCSB names win
    data = spec_data(spec, presets)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides and isinstance(spec, str) and spec not in presets:
        load_benchmark(dict(data))  # a file's own settings must be sound even where options override them
    kind = data.pop("kind", "ycsb")
    if "rate" in overrides and kind not in RATE_KINDS:
        raise ValueError(f"rate (a fixed offered load) needs a client-program workload ({', '.join(RATE_KINDS)}), not {kind}")
    if kind == "ycsb":
        return YCSBBenchmark(load_workload(data, **overrides))
    if kind == "tpcc":
        if "records" in overrides:
            overrides["items"] = overrides.pop("records")
        return make_tpcc(data, **overrides)
    if kind == "analytic":
        return make_analytic(data, **overrides)
    if kind == "pgbench":
        overrides.pop("operations", None)  # pgbench runs for a time, not a count
        if "records" in overrides:
            overrides["scale"] = max(1, int(overrides.pop("records")) // 100_000)  # 100,000 accounts per scale unit
        return make_pgbench(data, **overrides)
    if kind == "sysbench":
        from autosys_adapters.workloads.sysbench import SysbenchWorkload, make_sysbench

        overrides.pop("operations", None)  # sysbench runs for a time, not a count
        if "records" in overrides:  # total rows, spread over the tables
            tables = int(overrides.get("tables", data.get("tables", SysbenchWorkload.tables)))
            overrides["table_size"] = max(1, int(overrides.pop("records")) // max(tables, 1))
        return make_sysbench(data, **overrides)
    raise ValueError(f"workload kind {kind!r} is not one of {', '.join(KINDS)}")


__all__ = ["Benchmark", "KINDS", "Session", "load_benchmark", "preset_names"]
