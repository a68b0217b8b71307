"""Turns one call of `system.evaluate(config)` into a checked outcome.

Whatever the system does — raise, return None, return NaN, forget the
objective metric, break a limit — the result is an `Outcome` with a state and
a human-readable reason, never an exception past this point and never a magic
penalty value.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from autosys.core.fidelity import InvalidFidelity, evaluate_at
from autosys.core.space import Config, InvalidConfig
from autosys.core.system import Measurement, Objective, System, SystemUnavailable
from autosys.core.trial import Result, TrialState


@dataclass
class Outcome:
    """What became of one evaluation; `result` is what the tuner is told."""

    state: TrialState
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def feasible(self) -> bool:
        """It completed and kept every limit (as `Trial.feasible`)."""
        return self.state == TrialState.COMPLETE and "infeasible" not in self.info

    @property
    def result(self) -> Result:
        if self.feasible:
            return Result(TrialState.COMPLETE, self.value, dict(self.metrics))
        error = self.error or self.info.get("infeasible")
        state = self.state if self.state != TrialState.COMPLETE else TrialState.FAILED
        return Result(state, None, dict(self.metrics), error)


def check_measurement(measurement: Any, objective: Objective) -> Outcome:
    """Validate what `evaluate` returned against the objective."""
    if measurement is None:
        return Outcome(TrialState.FAILED, error="evaluate returned None instead of a Measurement")
    if isinstance(measurement, Measurement):
        metrics, info = measurement.metrics, dict(measurement.info)
        if measurement.samples:
            info["samples"] = measurement.samples
    elif isinstance(measurement, dict):
        metrics, info = measurement, {}
    elif isinstance(measurement, (int, float)):
        metrics, info = {objective.metric: measurement}, {}
    else:
        return Outcome(TrialState.FAILED, error=f"evaluate returned {type(measurement).__name__}, not a Measurement")
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        try:
            clean[name] = float(value)
        except (TypeError, ValueError):
            return Outcome(TrialState.FAILED, error=f"metric {name!r} is {value!r}, not a number")
    if objective.metric not in clean:
        return Outcome(
            TrialState.FAILED,
            metrics=clean,
            error=f"no {objective.metric!r} metric in the measurement (got: {', '.join(clean) or 'none'})",
        )
    value = clean[objective.metric]
    if not math.isfinite(value):
        return Outcome(TrialState.FAILED, metrics=clean, error=f"objective metric {objective.metric!r} is {value}")
    outcome = Outcome(TrialState.COMPLETE, value=value, metrics=clean, info=info)
    reasons = [r for r in (limit.violated_by(clean) for limit in objective.limits) if r]
    if reasons:
        outcome.info["infeasible"] = "; ".join(reasons)
    return outcome


def evaluate_config(system: System, config: Config, fidelity: float | None = None) -> Outcome:
    """Validate `config`, run `system.evaluate` (at `fidelity`; None = full), and check what came back.

    A fidelity the system does not offer fails the evaluation with the reason
    (autosys/core/fidelity.py `evaluate_at`).
    """
    start = time.perf_counter()
    try:
        clean = system.space().validate(config)
    except InvalidConfig as exc:
        return Outcome(TrialState.FAILED, error=f"invalid config: {exc}")
    try:
        measurement = system.evaluate(clean) if fidelity is None else evaluate_at(system, clean, fidelity)
    except InvalidFidelity as exc:
        outcome = Outcome(TrialState.FAILED, error=f"invalid fidelity: {exc}")
    except SystemUnavailable as exc:
        outcome = Outcome(TrialState.FAILED, error=f"system unavailable: {exc}")
    except InvalidConfig as exc:
        outcome = Outcome(TrialState.FAILED, error=f"invalid config: {exc}")
    except TimeoutError as exc:  # a system's own deadline (e.g. a runaway kernel) is a timeout, not a crash
        outcome = Outcome(TrialState.TIMED_OUT, error=f"timed out: {exc}")
    except Exception as exc:  # a crashing trial is data, not a reason to stop the study
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" (at {last.filename}:{last.lineno})" if last else ""
        outcome = Outcome(TrialState.FAILED, error=f"{type(exc).__name__}: {exc}{where}")
    else:
        outcome = check_measurement(measurement, system.objective)
    outcome.seconds = time.perf_counter() - start
    return outcome
