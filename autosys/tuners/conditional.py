"""Pick the algorithm, then tune it: a bandit over the values of a root choice, a tuner per value.

Spaces such as the key-value one are a choice (the engine) with each
choice's own knobs hanging off it. One model over the whole conditional space
spreads a small budget thinly, and a choice whose good region is small (a
RocksDB config that stays under a memory cap) is easily written off after
one bad sample. This tuner does what ATM (Swearingen et al., 2017) and CASH
solvers do: every value of the root parameter gets its own sub-tuner over its
own knobs; each arm is tried a few times, then an upper-confidence bandit
picks which sub-tuner answers the next ask, scoring an arm by the best value it
has found (scaled to [0, 1] between the worst and the best value of any trial)
plus an exploration bonus. An arm with a single config (no knobs) is tried once.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from autosys.core.space import Categorical, Config, Space
from autosys.core.trial import Result, Trial
from autosys.tuners import tuner_class
from autosys.tuners.base import Tuner, member_trial, warm_start_entry


def root_choice(space: Space) -> str:
    """The first categorical that other parameters' conditions hang off, else the first categorical."""
    parents = {p.condition.parent for p in space if p.condition is not None}
    categoricals = [p.name for p in space if isinstance(p, Categorical)]
    for name in categoricals:
        if name in parents:
            return name
    if categoricals:
        return categoricals[0]
    raise ValueError("this space has no categorical parameter to split on")


class ConditionalBandit(Tuner):
    """UCB over the values of `root`, one `member` tuner per value.

    Parameters
    ----------
    root: the categorical parameter to split on (default: the first one with conditional
        children, else the first categorical).
    member: tuner name for each arm's own knobs (default "bo-rf", which handles conditions and failures).
    member_options: keyword options of each member.
    init_per_arm: pulls every arm gets before the bandit decides.
    c: UCB exploration weight (values are scaled to [0, 1]).
    """

    name = "cash"

    def __init__(
        self,
        space: Space,
        *,
        root: str | None = None,
        member: str = "bo-rf",
        member_options: Mapping[str, Any] | None = None,
        init_per_arm: int = 2,
        c: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        if member in ("cash", "meta"):
            raise ValueError(f"a {self.name} tuner's member cannot be {member!r}")
        if init_per_arm < 1:
            raise ValueError(f"init_per_arm must be at least 1, got {init_per_arm}")
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        self.root = root or root_choice(space)
        if self.root not in space.params or not isinstance(space[self.root], Categorical):
            raise ValueError(f"root {self.root!r} is not a categorical parameter of this space")
        self.arms = list(space[self.root].choices)
        self.init_per_arm, self.c = int(init_per_arm), float(c)
        self.members: list[Tuner] = []
        self.single: list[bool] = []
        for i, value in enumerate(self.arms):
            sub = space.subspace({self.root: value})
            seed = None if self.seed is None else int(self.seed) * 1009 + i
            self.members.append(tuner_class(member)(sub, direction=self.direction, seed=seed, **dict(member_options or {})))
            self.single.append(_one_config(sub, seed))
        self.pulls = [0] * len(self.arms)
        #: tuner trial number -> (arm index, the arm's own trial number)
        self._owner: dict[int, tuple[int, int]] = {}

    # --- choosing an arm
    def _open_arms(self) -> list[int]:
        return [i for i in range(len(self.arms)) if not (self.single[i] and self.pulls[i] >= 1)] or [
            max(range(len(self.arms)), key=lambda i: self._arm_best(i) if self._arm_best(i) is not None else -math.inf)
        ]

    def _arm_best(self, i: int) -> float | None:
        losses = [loss for _, loss in self.members[i].observations]
        return -min(losses) if losses else None  # higher is better

    def choose_arm(self) -> int:
        open_arms = self._open_arms()
        cold = [i for i in open_arms if self.pulls[i] < (1 if self.single[i] else self.init_per_arm)]
        if cold:
            return min(cold, key=lambda i: (self.pulls[i], i))
        bests = [self._arm_best(i) for i in range(len(self.arms))]
        values = [-loss for m in self.members for _, loss in m.observations]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        total = sum(self.pulls[i] for i in open_arms)

        def score(i: int) -> float:
            value = 0.0 if bests[i] is None or high == low else (bests[i] - low) / (high - low)
            return value + self.c * math.sqrt(math.log(max(total, 2)) / max(self.pulls[i], 1))

        return max(open_arms, key=lambda i: (score(i), -i))

    # --- ask / tell
    def _ask(self) -> Config:
        i = self.choose_arm()
        proposal = self.members[i].ask()
        self.pulls[i] += 1
        self._owner[self._next_number] = (i, proposal.number)
        return dict(proposal.config)

    def _tell(self, trial: Trial, result: Result) -> None:
        owner = self._owner.get(trial.number) if trial.number >= 0 else None
        if owner is not None:
            member = self.members[owner[0]]
            member.tell(member.pending.get(owner[1]) or member_trial(member, owner[1], trial), result)
            return
        value = trial.config.get(self.root)
        if value in self.arms:  # a warm start (or an enqueued config): its arm learns it
            i = self.arms.index(value)
            self.members[i].warm_start([(trial.config, result)], keep=False)

    def usage(self) -> dict[Any, int]:
        """Trials asked of each arm so far."""
        return dict(zip(self.arms, self.pulls))

    # --- state
    def _extra_state(self) -> dict:
        """Each arm's own small state and which arm proposed what; histories and pulls come from replay."""
        return {"members": [m.state_dict() for m in self.members], "owners": [[n, i, m] for n, (i, m) in self._owner.items()]}

    def _restore(self, history: list[tuple[Trial, Result]], extra: Mapping[str, Any]) -> None:
        if "owners" in extra:
            self._owner = {int(n): (int(i), int(m)) for n, i, m in extra["owners"]}
            self.pulls = [0] * len(self.arms)
            for i, _ in self._owner.values():
                self.pulls[i] += 1
            self.history = list(history)
            told: list[list[tuple[Trial, Result]]] = [[] for _ in self.members]
            for trial, result in history:  # what `_tell` did, collected per arm
                owner = self._owner.get(trial.number) if trial.number >= 0 else None
                if owner is not None:
                    told[owner[0]].append((member_trial(self.members[owner[0]], owner[1], trial), result))
                elif trial.config.get(self.root) in self.arms:
                    i = self.arms.index(trial.config[self.root])
                    told[i] += warm_start_entry(self.members[i], trial, result)
            for member, state, pairs in zip(self.members, extra["members"], told):
                member.load_state_dict(state, pairs)
            return
        self._owner = {}  # format 1: each arm's whole state was saved
        if not extra:
            super()._restore(history, extra)  # re-tell everything: each arm learns its own trials
            for trial, _ in history:
                if trial.number >= 0 and trial.config.get(self.root) in self.arms:
                    self.pulls[self.arms.index(trial.config[self.root])] += 1
            return
        self.history = list(history)
        for member, state in zip(self.members, extra["members"]):
            member.load_state_dict(state)
        self.pulls = [int(p) for p in extra["pulls"]]


def _one_config(space: Space, seed: int | None) -> bool:
    """True when a (sub)space holds a single config: nothing to tune beyond choosing it."""
    rng = np.random.default_rng(seed)
    first = space.config_key(space.sample(rng))
    return all(space.config_key(space.sample(rng)) == first for _ in range(20))


__all__ = ["ConditionalBandit", "root_choice"]
