"""The storage interface a study uses, and the JSON encoding every storage shares.

Imports only the standard library and `autosys.core`.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any, Mapping

from autosys.core.trial import Trial, TrialState


class StorageError(RuntimeError):
    """The storage file is missing, corrupt, or from an unknown schema version."""

class Storage(ABC):
    """What a study needs from a place to keep its spec, trials and tuner state."""

    @abstractmethod
    def save_spec(self, spec: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def load_spec(self) -> dict[str, Any] | None: ...

    @abstractmethod
    def add_trial(self, trial: Trial, tuner_state: Mapping[str, Any] | None = None) -> Trial:
        """Record a new trial as running (and the tuner state that proposed it, atomically).

        Assigns `trial.number` if it is negative.
        """

    @abstractmethod
    def finish_trial(self, trial: Trial) -> bool:
        """Record a trial's final state, value, metrics and error in one step.

        Returns False (and keeps the result as a "late_result" event) when the
        trial had already been finished by someone else, e.g. failed by `reap`.
        """

    @abstractmethod
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]: ...

    @abstractmethod
    def save_tuner_state(self, state: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def load_tuner_state(self) -> dict[str, Any] | None: ...

    def close(self) -> None:
        """Release the connection (idempotent)."""


def _json_safe(value: Any) -> Any:
    """Non-finite floats become None, so a NaN metric can never be read back as a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def dumps(value: Any) -> str:
    return json.dumps(_json_safe(value), sort_keys=True, allow_nan=False, default=str)


