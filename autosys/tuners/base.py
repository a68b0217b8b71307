"""The tuner contract: `ask()` proposes a trial, `tell(trial, result)` reports back.

A tuner never calls the objective, so one tuner serves sequential, parallel,
distributed and online use. Subclasses implement `_ask` (and usually `_tell`);
the public methods handle numbering, enqueued configs, pending trials,
failure bookkeeping and state save/restore, so that every tuner behaves the
same at the edges.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from autosys.core.space import Config, InvalidConfig, Space
from autosys.core.trial import Result, Trial, TrialState


class Tuner(ABC):
    """Base class of every search strategy.

    Parameters
    ----------
    space: what may be tuned.
    direction: "maximize" or "minimize" the result's value.
    seed: the same seed gives the same suggestions for the same told results.
    """

    name: ClassVar[str] = "tuner"

    def __init__(self, space: Space, *, direction: str = "minimize", seed: int | None = 0):
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
        self.space = space
        self.direction = direction
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._next_number = 0
        self._queue: list[tuple[Config, str]] = []
        self.pending: dict[int, Trial] = {}
        #: (trial, result) pairs in the order they were told, failures included
        self.history: list[tuple[Trial, Result]] = []

    # --- public API
    def ask(self) -> Trial:
        """Propose the next trial (an enqueued config first, if any)."""
        if self._queue:
            config, source = self._queue.pop(0)
        else:
            config = self._ask()
            source = self.name
        trial = Trial(number=self._next_number, config=dict(config), source=source)
        self._next_number += 1
        self.pending[trial.number] = trial
        return trial

    def ask_batch(self, n: int) -> list[Trial]:
        """Propose `n` trials to run in parallel; they stay pending until told."""
        return [self.ask() for _ in range(n)]

    def tell(self, trial: Trial, result: Result) -> None:
        """Report a trial's outcome. Failed or non-finite results are kept out of `observations`."""
        if result.state == TrialState.COMPLETE and (result.value is None or not math.isfinite(result.value)):
            result = Result.failed(f"non-finite objective value {result.value!r}")
        self.pending.pop(trial.number, None)
        self.history.append((trial, result))
        self._tell(trial, result)

    def enqueue(self, config: Mapping[str, Any], source: str = "enqueued") -> None:
        """Make a user-chosen config the next one asked (validated now, not later)."""
        self._queue.append((self.space.validate(config), source))

    def warm_start(self, pairs: Sequence[tuple[Mapping[str, Any], Result]]) -> None:
        """Tell results measured elsewhere (another study, a past run) as if asked here."""
        for config, result in pairs:
            try:
                clean = self.space.validate(config)
            except InvalidConfig:
                continue  # a config from a different space tells us nothing here
            trial = Trial(number=-1, config=clean, source="warm_start")
            self.history.append((trial, result))
            self._tell(trial, result)

    # --- what the subclasses see
    def loss(self, result: Result) -> float | None:
        """The result as a loss to minimize, or None for a failed result."""
        if not result.ok:
            return None
        return -result.value if self.direction == "maximize" else result.value

    @property
    def observations(self) -> list[tuple[Config, float]]:
        """Completed (config, loss) pairs, never a failure or a non-finite value."""
        out = []
        for trial, result in self.history:
            loss = self.loss(result)
            if loss is not None:
                out.append((trial.config, loss))
        return out

    @property
    def failed_configs(self) -> list[Config]:
        return [t.config for t, r in self.history if not r.ok]

    @abstractmethod
    def _ask(self) -> Config:
        """Return the next config; it must satisfy the space (validate it if unsure)."""

    def _tell(self, trial: Trial, result: Result) -> None:
        """Update internal state; the default keeps only `history`."""

    # --- state save/restore (JSON-able)
    def state_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "direction": self.direction,
            "rng": self.rng.bit_generator.state,
            "next_number": self._next_number,
            "queue": [[c, s] for c, s in self._queue],
            "pending": [{"number": t.number, "config": t.config, "source": t.source} for t in self.pending.values()],
            "history": [
                [
                    {"number": t.number, "config": t.config, "source": t.source},
                    {"state": r.state.value, "value": r.value, "metrics": r.metrics, "error": r.error},
                ]
                for t, r in self.history
            ],
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state was saved by tuner {state.get('name')!r}, not {self.name!r}")
        self.rng.bit_generator.state = state["rng"]
        self._next_number = state["next_number"]
        self._queue = [(dict(c), s) for c, s in state["queue"]]
        self.history = []
        self.pending = {}
        replay = []
        for t, r in state["history"]:
            trial = Trial(number=t["number"], config=t["config"], source=t["source"])
            result = Result(TrialState(r["state"]), r["value"], r["metrics"], r["error"])
            replay.append((trial, result))
        self._restore(replay, state.get("extra", {}))
        for t in state.get("pending", []):
            self.pending[t["number"]] = Trial(number=t["number"], config=t["config"], source=t["source"])

    def _extra_state(self) -> dict:
        """Subclass state beyond history and RNG (JSON-able)."""
        return {}

    def _restore(self, history: list[tuple[Trial, Result]], extra: Mapping[str, Any]) -> None:
        """Rebuild from history; the default re-tells every result to `_tell`."""
        rng_state = self.rng.bit_generator.state
        for trial, result in history:
            self.history.append((trial, result))
            self._tell(trial, result)
        self.rng.bit_generator.state = rng_state  # replaying must not move the RNG
