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
from autosys.core.stratified import ChoiceDecks
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
        #: warm starts the saved state keeps itself: (their index in `history`, config, result)
        self._kept: list[tuple[int, Config, Result]] = []
        #: the choice knobs' decks that `sample_unseen` deals from (stratified random sampling)
        self.decks = ChoiceDecks()

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
        result = _finite(result)
        self.pending.pop(trial.number, None)
        self.history.append((trial, result))
        self._tell(trial, result)

    def enqueue(self, config: Mapping[str, Any], source: str = "enqueued") -> None:
        """Make a user-chosen config the next one asked (validated now, not later)."""
        self._queue.append((self.space.validate(config), source))

    def warm_start(self, pairs: Sequence[tuple[Mapping[str, Any], Result]], *, keep: bool = True) -> None:
        """Tell results measured elsewhere (another study, a past run) as if asked here.

        keep: the saved state keeps these pairs (they exist nowhere else); False
        when the caller stores them and gives them back to `load_state_dict`
        (a study's default trial, a meta-tuner's members).
        """
        for config, result in pairs:
            try:
                clean = self.space.validate(config)
            except InvalidConfig:
                continue  # a config from a different space tells us nothing here
            trial = Trial(number=-1, config=clean, source="warm_start")
            if keep:
                self._kept.append((len(self.history), clean, result))
            self.history.append((trial, result))
            self._tell(trial, result)

    def told(self) -> list[tuple[Trial, Result]]:
        """The history a caller keeps and gives back to `load_state_dict`: all but the kept warm starts."""
        kept = {i for i, _, _ in self._kept}
        return [pair for i, pair in enumerate(self.history) if i not in kept]

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

    def sample_unseen(self, seen: set[str], tries: int) -> Config:
        """A random config whose `space.config_key` is not in `seen`, drawn up to `tries` times more
        (a small or exhausted space may still give a seen one). Choice knobs are dealt from
        `decks`, so each of their values comes up equally often within its branch."""
        config = self.decks.sample(self.space, self.rng)
        for _ in range(tries):
            if self.space.config_key(config) not in seen:
                break
            config = self.decks.sample(self.space, self.rng)
        return config

    @abstractmethod
    def _ask(self) -> Config:
        """Return the next config; it must satisfy the space (validate it if unsure)."""

    def _tell(self, trial: Trial, result: Result) -> None:
        """Update internal state; the default keeps only `history`."""

    # --- state save/restore (JSON-able)
    #: version of `state_dict()`'s layout; 1 (no "format" key) also held the whole history
    STATE_FORMAT: ClassVar[int] = 2

    def state_dict(self) -> dict:
        """What a saved tuner needs beyond its history (which the caller keeps, e.g. as a study's trials).

        The random state, the choice decks, the next trial number, the queue, the pending trials
        (so they can still be told), the warm starts that exist nowhere else
        (`warm_start(keep=True)`) and the subclass's `_extra_state()`.
        """
        return {
            "name": self.name,
            "format": self.STATE_FORMAT,
            "seed": self.seed,
            "direction": self.direction,
            "rng": self.rng.bit_generator.state,
            "next_number": self._next_number,
            "queue": [[c, s] for c, s in self._queue],
            "pending": [_trial_json(t) for t in self.pending.values()],
            "kept": [[i, c, _result_json(r)] for i, c, r in self._kept],
            "decks": self.decks.state_dict(),
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any], history: Sequence[tuple[Trial, Result]] | None = None) -> None:
        """Continue exactly where the saved tuner stopped: its `state_dict()` plus the history it was told.

        history: the (trial, result) pairs the tuner was told, in order, as the
        caller keeps them (`told()`); trials still pending in `state` must not
        be in it. None: the history a format-1 state holds, else none. From a
        format-1 state with a history given, the state's warm starts that the
        given history lacks are kept (they came from outside, e.g. another study).
        """
        if state.get("name") != self.name:
            raise ValueError(f"state was saved by tuner {state.get('name')!r}, not {self.name!r}")
        old = [(_trial_of(t), _result_of(r)) for t, r in state.get("history", [])]
        if history is None:
            history, kept = old, []
        elif old:
            kept = _outside(old, history)
        else:
            kept = [(int(i), dict(c), _result_of(r)) for i, c, r in state.get("kept", [])]
        self.rng.bit_generator.state = state["rng"]
        self._next_number = state["next_number"]
        self._queue = [(dict(c), s) for c, s in state["queue"]]
        self.decks = ChoiceDecks(state.get("decks"))  # none in a state saved before decks: fresh ones
        self.history = []
        self.pending = {}
        self._kept = []
        replay: list[tuple[Trial, Result]] = []
        given = list(history)
        for position, config, result in kept:  # back at the place where they were told
            while len(replay) < position and given:
                replay.append(given.pop(0))
            self._kept.append((len(replay), config, result))
            replay.append((Trial(number=-1, config=config, source="warm_start"), result))
        replay += given
        self._restore([(t, _finite(r) if t.number >= 0 else r) for t, r in replay], state.get("extra", {}))
        for t in state.get("pending", []):
            self.pending[t["number"]] = _trial_of(t)

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


def _finite(result: Result) -> Result:
    """A complete (or pruned) result without a finite value is a failure (what `tell` records)."""
    if result.state in (TrialState.COMPLETE, TrialState.PRUNED) and (result.value is None or not math.isfinite(result.value)):
        return Result.failed(f"non-finite objective value {result.value!r}")
    return result


def _trial_json(trial: Trial) -> dict:
    return {"number": trial.number, "config": trial.config, "source": trial.source}


def _trial_of(data: Mapping[str, Any]) -> Trial:
    return Trial(number=data["number"], config=dict(data["config"]), source=data["source"])


def _result_json(result: Result) -> dict:
    return {"state": result.state.value, "value": result.value, "metrics": result.metrics, "error": result.error}


def _result_of(data: Mapping[str, Any]) -> Result:
    return Result(TrialState(data["state"]), data["value"], dict(data["metrics"]), data["error"])


def _outside(old: list[tuple[Trial, Result]], given: Sequence[tuple[Trial, Result]]) -> list[tuple[int, Config, Result]]:
    """The warm starts of a format-1 history that `given` lacks, with their place among the others."""
    unmatched = [(t.config, r.state, r.value) for t, r in given if t.number < 0]
    out, position = [], 0
    for trial, result in old:
        if trial.number < 0:
            key = (trial.config, result.state, result.value)
            if key in unmatched:
                unmatched.remove(key)
            else:
                out.append((position, trial.config, result))
                continue
        position += 1
    return out


def member_trial(member: Tuner, number: int, trial: Trial) -> Trial:
    """The member's own record of a trial it proposed to its owner (a meta or conditional tuner)."""
    return Trial(number=number, config=dict(trial.config), source=member.name)


def warm_start_entry(member: Tuner, trial: Trial, result: Result) -> list[tuple[Trial, Result]]:
    """What `member.warm_start([(trial.config, result)])` adds to its history: one pair, or none."""
    try:
        clean = member.space.validate(trial.config)
    except InvalidConfig:
        return []
    return [(Trial(number=-1, config=clean, source="warm_start"), result)]
