"""Fidelity: the dial a system offers for cheaper, rougher measurements.

A system may declare `fidelity()` -> `Fidelity`: what the dial is (operations
replayed, seconds measured, a trace prefix or a spatially sampled trace,
queries timed, timing repeats), its lowest allowed value and its full value.
Such a system's `evaluate(config, fidelity=value)` measures at that value
(None = full) and records what it measured at in `Measurement.info["fidelity"]`
(see `stamp`): the value, whether it was the full one, and the work done, in
the system's own count (operations, requests, queries, repeats), which is how
`check_system` sees that a lower fidelity really costs less. A system without
a fidelity is measured at full fidelity only, and `evaluate(config)` keeps
working for every caller.

Below the lowest rung a system may offer `predictor()`: a callable config ->
predicted objective value (a cost model, a recommender) that costs no run.
Schedulers (successive halving, Hyperband) read `Fidelity.rungs`; they call
`evaluate_at`, which refuses a fidelity the system does not offer.

Like the budgets of SMAC3 (`min_budget`/`max_budget`, a `budget` argument to
the target function) and HpBandSter (`compute(config, budget)`), the value is
one number on a declared range; unlike them it names its kind and unit, so a
report can say "measured on 5% of the trace".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, MutableMapping

#: what a fidelity's value counts
FIDELITY_KINDS = (
    "duration",  # seconds of the workload measured
    "operations",  # operations of the workload replayed (a prefix of its stream)
    "trace_prefix",  # fraction of a trace, from its start
    "sampled_trace",  # fraction of a trace's objects kept by spatial (SHARDS-style) sampling
    "query_sample",  # queries timed (a sample of the query set)
    "repeats",  # timed repetitions
)

#: a predictor: config -> predicted value of the objective metric (the lowest, run-free rung)
Predictor = Callable[[Mapping[str, Any]], float]


class InvalidFidelity(ValueError):
    """A requested fidelity the system does not offer (outside [min, full], wrong type, or none declared)."""


@dataclass(frozen=True)
class Fidelity:
    """One fidelity dial: `kind` (see `FIDELITY_KINDS`), its range [min, max], max being full fidelity.

    `integer` fidelities (operations, queries, repeats) take whole values only.
    """

    name: str
    kind: str
    min: float
    max: float
    unit: str = ""
    integer: bool = True

    def __post_init__(self):
        if self.kind not in FIDELITY_KINDS:
            raise ValueError(f"fidelity kind {self.kind!r} is not one of {', '.join(FIDELITY_KINDS)}")
        if not (math.isfinite(self.min) and math.isfinite(self.max) and 0 < self.min <= self.max):
            raise ValueError(f"fidelity {self.name}: needs 0 < min <= max, got min={self.min} max={self.max}")
        if self.integer and (self.min != int(self.min) or self.max != int(self.max)):
            raise ValueError(f"fidelity {self.name}: an integer fidelity needs whole min and max")

    @property
    def full(self) -> float:
        """The full fidelity (what `evaluate(config)` measures at)."""
        return self.max

    def check(self, value: Any) -> float | int:
        """The canonical value of a requested fidelity (None = full), or `InvalidFidelity`."""
        if value is None:
            return self._canonical(self.max)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise InvalidFidelity(f"fidelity {self.name}={value!r} is not a number in [{self.min:g}, {self.max:g}]")
        value = float(value)
        if self.integer and value != int(value):
            raise InvalidFidelity(f"fidelity {self.name}={value:g} must be a whole number of {self.unit or self.name}")
        if not self.min <= value <= self.max:
            raise InvalidFidelity(
                f"fidelity {self.name}={value:g} is outside [{self.min:g}, {self.max:g}] (min, full) {self.unit}".rstrip()
            )
        return self._canonical(value)

    def _canonical(self, value: float) -> float | int:
        return int(value) if self.integer else float(value)

    def rungs(self, eta: float = 3.0) -> list[float | int]:
        """Fidelities from min to full, each `eta` times the last (full is always the top rung).

        The minimum is a rung of its own only when it lies at least sqrt(eta)
        below the lowest geometric rung: a rung just below another (KV's
        1,562 under 1,852 operations) cost a whole extra stage, with its
        fixed costs (opening a store, loading records), and ranked no better.
        """
        if eta <= 1:
            raise ValueError(f"eta must be above 1, got {eta}")
        values = [self.max]
        while values[-1] / eta >= self.min:
            values.append(values[-1] / eta)
        if values[-1] >= self.min * math.sqrt(eta):
            values.append(self.min)
        out = sorted({self._canonical(round(v) if self.integer else v) for v in values})
        return [v for v in out if self.min <= v <= self.max]

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "min": self.min, "max": self.max, "unit": self.unit,
                "integer": self.integer}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Fidelity":
        return cls(data["name"], data["kind"], data["min"], data["max"], data.get("unit", ""), data.get("integer", True))


def stamp(info: MutableMapping[str, Any], fidelity: Fidelity, value: float, work: float) -> MutableMapping[str, Any]:
    """Record in a measurement's `info` the fidelity it was measured at and the work it did.

    `work` is the amount the fidelity controls, counted by the system as it
    ran (operations done, requests simulated, queries timed, repeats run).
    """
    info["fidelity"] = {
        "name": fidelity.name,
        "kind": fidelity.kind,
        "value": value,
        "full": value == fidelity.max,
        "work": float(work),
    }
    return info


def measured_at(measurement: Any) -> dict | None:
    """The fidelity record of a `Measurement` (or of its `info` mapping); None if it has none."""
    info = measurement.info if hasattr(measurement, "info") else measurement
    record = info.get("fidelity") if isinstance(info, Mapping) else None
    return dict(record) if isinstance(record, Mapping) else None


def evaluate_at(system: Any, config: Mapping[str, Any], fidelity: float | None = None) -> Any:
    """`system.evaluate(config)` at `fidelity` (None = full) -> its Measurement; `InvalidFidelity` if not offered.

    (`system` is an `autosys.core.system.System`; this module is below it, so it is not imported here.)
    """
    if fidelity is None:
        return system.evaluate(dict(config))
    return system.evaluate(dict(config), fidelity=system.resolve_fidelity(fidelity))


__all__ = ["FIDELITY_KINDS", "Fidelity", "InvalidFidelity", "Predictor", "evaluate_at", "measured_at", "stamp"]
