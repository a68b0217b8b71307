"""The storage interface a study uses, and the JSON encoding every storage shares.

Imports only the standard library and `autosys.core`.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any, ContextManager, Iterator, Mapping

from autosys.core.trial import Trial, TrialState


class StorageError(RuntimeError):
    """The storage file is missing, corrupt, or from an unknown schema version."""


class Storage(ABC):
    """Everything a study asks of the place that keeps its spec, trials and tuner state.

    The trials are the single source of truth: a tuner is rebuilt from the
    finished trials plus the small extra state stored beside them
    (`save_tuner_state`). Several processes may share one storage; every
    method that writes is atomic, and `transaction()` groups several into one.
    """

    # --- transactions and connections
    @abstractmethod
    def transaction(self) -> ContextManager[Any]:
        """One write transaction; nested uses join the outer one. Writers queue on it."""

    @abstractmethod
    def clone(self) -> "Storage":
        """A second connection to the same study (for another thread, e.g. heartbeats)."""

    def close(self) -> None:
        """Release the connection (idempotent)."""

    # --- spec and tuner extra state
    @abstractmethod
    def save_spec(self, spec: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def load_spec(self) -> dict[str, Any] | None: ...

    @abstractmethod
    def save_tuner_state(self, state: Mapping[str, Any]) -> int:
        """Store the tuner's extra state (not its history); returns the new revision."""

    @abstractmethod
    def load_tuner_state(self) -> dict[str, Any] | None: ...

    @abstractmethod
    def tuner_revision(self) -> int:
        """How many times the tuner state was saved (0: never); a change tells of another writer."""

    # --- trials
    @abstractmethod
    def claim_trial(
        self, trial: Trial, *, tuner_state: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> Trial | None:
        """Record `trial` as running here (numbering it if negative), with the tuner state, atomically;
        None (writing nothing) when `limit` trials exist already."""

    def add_trial(self, trial: Trial, tuner_state: Mapping[str, Any] | None = None) -> Trial:
        """`claim_trial` without a limit."""
        claimed = self.claim_trial(trial, tuner_state=tuner_state)
        assert claimed is not None
        return claimed

    @abstractmethod
    def finish_trial(self, trial: Trial, tuner_state: Mapping[str, Any] | None = None) -> bool:
        """Record a trial's final state, value, metrics and error in one step.

        Returns False (and keeps the result as a "late_result" event) when the
        trial had already been finished by someone else, e.g. failed by `reap`.
        """

    @abstractmethod
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]:
        """Trials in number order (all, or those in `states`)."""

    @abstractmethod
    def count(self, states: tuple[TrialState, ...] | None = None) -> int: ...

    @abstractmethod
    def finished_for_tuner(self, told: set[int] | frozenset[int] = frozenset()) -> list[Trial]:
        """Finished trials a tuner proposed (info["tuner_number"]) whose tuner number is not in `told`."""

    # --- liveness: which process runs a trial, and retries
    @abstractmethod
    def heartbeat(self, number: int | list[int] | tuple[int, ...]) -> None:
        """Say that these running trials are still being worked on."""

    @abstractmethod
    def reap(self, grace: float | None, reason: str = "interrupted: the process running it died") -> list[Trial]:
        """Fail running trials whose worker is dead; returns them."""

    @abstractmethod
    def mark_interrupted(self, reason: str = "interrupted: the process running it died") -> list[int]:
        """Fail every trial left running (only right when no other process works on the study)."""

    @abstractmethod
    def attempts(self, number: int) -> int: ...

    @abstractmethod
    def set_attempts(self, number: int, attempts: int) -> None: ...

    @abstractmethod
    def adopt(self, number: int) -> None:
        """Take over a failed trial to run it again here: running, this worker, attempts + 1."""


class Journal(ABC):
    """An optional capability: monitor observations and agent events kept beside the trials."""

    @abstractmethod
    def add_observations(self, source: str, rows: list[tuple[float, Mapping[str, float]]]) -> None: ...

    @abstractmethod
    def observations(self, source: str | None = None) -> Iterator[tuple[float, str, dict]]: ...

    @abstractmethod
    def add_event(self, kind: str, body: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def events(self, kind: str | None = None) -> list[tuple[float, str, dict]]: ...


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


