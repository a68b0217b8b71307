"""Seeded, deterministic database workloads shared by every database adapter.

`load_benchmark(spec)` accepts a preset name (`ycsb-a` ... `ycsb-f`,
`tpcc-like`, `analytic`), a JSON/TOML file, or a mapping. A file or mapping
names its kind with `"kind": "ycsb" | "tpcc" | "analytic"` (YCSB when
absent) plus that kind's settings, e.g.
`{"kind": "tpcc", "items": 2000, "concurrency": 4}`. Concurrency (client
threads) is a setting of every kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from adapters.workloads.base import Benchmark, Session

KINDS = ("ycsb", "tpcc", "analytic")
BENCHMARK_PRESETS = {"tpcc-like": {"kind": "tpcc"}, "tpcc": {"kind": "tpcc"}, "analytic": {"kind": "analytic"}}


def preset_names() -> list[str]:
    from adapters.workloads.ycsb import PRESETS

    return [*PRESETS, *BENCHMARK_PRESETS]


def load_benchmark(spec: str | Mapping[str, Any] | Benchmark, **overrides: Any) -> Benchmark:
    """A `Benchmark` from a preset name, a JSON/TOML file, a mapping, or a Benchmark.

    `overrides` (None values ignored) win over the spec; YCSB's `records` and
    `operations` mean rows and operations; TPC-C-like reads `records` as its
    item count; unknown settings raise ValueError naming them.
    """
    from adapters.workloads.analytic import make_analytic
    from adapters.workloads.tpcc import make_tpcc
    from adapters.workloads.ycsb import PRESETS, YCSBBenchmark, _read_file, load_workload

    if isinstance(spec, Benchmark):
        return spec
    if isinstance(spec, Mapping):
        data = dict(spec)
    elif spec in PRESETS:
        data = {"kind": "ycsb", **PRESETS[spec].to_json()}
    elif spec in BENCHMARK_PRESETS:
        data = {"name": spec, **BENCHMARK_PRESETS[spec]}
    else:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"workload {spec!r} is neither a preset ({', '.join(preset_names())}) nor a file")
        data = _read_file(path)
        data.setdefault("name", path.stem)
    kind = data.pop("kind", "ycsb")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if kind == "ycsb":
        return YCSBBenchmark(load_workload(data, **overrides))
    if kind == "tpcc":
        if "records" in overrides:
            overrides["items"] = overrides.pop("records")
        return make_tpcc(data, **overrides)
    if kind == "analytic":
        return make_analytic(data, **overrides)
    raise ValueError(f"workload kind {kind!r} is not one of {', '.join(KINDS)}")


__all__ = ["Benchmark", "KINDS", "Session", "load_benchmark", "preset_names"]
