"""Trials and their results: the records that flow between tuner, study and storage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from autosys.core.space import Config


class TrialState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    #: stopped early at a lower fidelity (multi-fidelity scheduling): a partial measurement, never the answer
    PRUNED = "pruned"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.FAILED, TrialState.TIMED_OUT, TrialState.PRUNED)


@dataclass
class Trial:
    """One config to evaluate. `number` is unique within a study, in ask order."""

    number: int
    config: Config
    state: TrialState = TrialState.PENDING
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seed: int | None = None
    source: str = ""  # who proposed it: tuner name, "default", "enqueued", ...
    info: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        """It ended: complete, failed, timed out or pruned."""
        return self.state.finished

    @property
    def infeasible(self) -> bool:
        """It completed but broke one of the objective's limits (the reason is `info["infeasible"]`)."""
        return self.state == TrialState.COMPLETE and "infeasible" in self.info

    @property
    def feasible(self) -> bool:
        """It completed and kept every limit: a result that may be the answer."""
        return self.state == TrialState.COMPLETE and "infeasible" not in self.info

    @property
    def result(self) -> "Result":
        """What a tuner is told of this trial: its value only when feasible, else a failure.

        A pruned trial tells its partial measurement, scaled to full fidelity
        when the study could calibrate the rung (`info["told_value"]`).
        """
        if self.feasible:
            return Result(TrialState.COMPLETE, self.value, dict(self.metrics), seconds=self.info.get("seconds"))
        if self.state == TrialState.PRUNED:
            told = self.info.get("told_value", self.value)
            return Result(TrialState.PRUNED, told, dict(self.metrics), self.error, seconds=self.info.get("seconds"))
        state = TrialState.FAILED if self.state == TrialState.COMPLETE else self.state
        return Result(state, None, dict(self.metrics), self.error or self.info.get("infeasible"), seconds=self.info.get("seconds"))

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass
class Result:
    """The outcome of a trial as told to a tuner.

    `value` is the objective metric in its natural direction; it is None for
    any trial that did not complete, except a pruned one, whose value is its
    partial (lower-fidelity) measurement. Tuners must never feed a failed
    result into a model (see `Tuner.tell`); `ok` says which values they may use.
    """

    state: TrialState
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    #: wall seconds the trial took (apply and measure), when known: what cost-aware tuners learn from
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        """A finite value a model may learn from: a complete trial's, or a pruned one's partial measurement."""
        return (self.state in (TrialState.COMPLETE, TrialState.PRUNED) and self.value is not None
                and math.isfinite(self.value))

    @classmethod
    def failed(cls, error: str, state: TrialState = TrialState.FAILED) -> "Result":
        return cls(state=state, error=error)

    @classmethod
    def complete(cls, value: float, metrics: dict[str, float] | None = None) -> "Result":
        return cls(state=TrialState.COMPLETE, value=float(value), metrics=dict(metrics or {}))
