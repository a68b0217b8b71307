"""Units of metrics and numbers as people read them: thousands separators, a unit, which way is better.

A metric's unit comes from its `Objective` (`unit`) when the system declares
one, else from its name by the conventions the adapters follow
(`p95_latency_ms` -> ms, `ns_per_lookup` -> ns/lookup, `throughput` -> ops/s,
`miss_ratio` -> no unit). Used by the per-trial log line
(`autosys.run.progress`) and the CLI's tables, so both print alike.
"""

from __future__ import annotations

import math
from typing import Any

#: metric-name suffixes (after the last "_") and the unit they mean
_SUFFIX_UNITS = {
    "ns": "ns",
    "us": "us",
    "ms": "ms",
    "s": "s",
    "seconds": "s",
    "bytes": "B",
    "mb": "MB",
    "gb": "GB",
    "pct": "%",
    "percent": "%",
}
#: whole metric names (or their start, before "_per_") and their unit
_NAME_UNITS = {
    "throughput": "ops/s",
    "throughput_raw": "ops/s",
    "requests_per_second": "req/s",
    "ops_per_second": "ops/s",
    "gflops": "GFLOP/s",
    "best_gflops": "GFLOP/s",
    "seconds": "s",
    "duration": "s",
}


def guess_unit(metric: str) -> str:
    """The unit a metric name implies ("" when none: ratios, counts, plain scores)."""
    name = metric.lower()
    if name in _NAME_UNITS:
        return _NAME_UNITS[name]
    head, per, _ = name.partition("_per_")
    if per:  # ns_per_lookup, wal_bytes_per_op: the unit of the head, per the rest
        unit = _SUFFIX_UNITS.get(head.rsplit("_", 1)[-1], "")
        return f"{unit}/{name.split('_per_', 1)[1]}" if unit else ""
    return _SUFFIX_UNITS.get(name.rsplit("_", 1)[-1], "") if "_" in name else ""


def format_number(value: Any) -> str:
    """A number with thousands separators and about four significant digits: 12,346 · 3.142 · 0.0123.

    Integers print in full (1,234,567); NaN and infinities as nan / inf; anything else as str().
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        decimals = 3 - int(math.floor(math.log10(magnitude)))
        if abs(round(value, decimals)) >= 1000:  # 999.96 rounds up into the next branch's range
            return f"{value:,.0f}"
        return f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    if magnitude >= 1e-4:
        return f"{value:.4g}"
    return f"{value:.3g}"


def format_quantity(value: Any, unit: str = "") -> str:
    """A number and its unit: "12,346 ops/s", "3.1 ms", "0.1234" (no unit)."""
    text = format_number(value)
    if not unit or not isinstance(value, (int, float)) or isinstance(value, bool):
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def better_text(direction: str) -> str:
    """What a reader needs to compare values: "higher is better" or "lower is better"."""
    return "lower is better" if direction == "minimize" else "higher is better"


__all__ = ["better_text", "format_number", "format_quantity", "guess_unit"]
