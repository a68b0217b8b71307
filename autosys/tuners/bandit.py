"""Multi-armed bandits over discrete arms, and the meta-tuner that uses one to pick tuners.

Policies (`UCB1`, `GaussianThompson`, `BernoulliThompson`, `EXP3`,
`AUCBandit`) work on arm indices and rewards in [0, 1]; they know nothing of
configs. `BanditTuner` turns a finite set of configs (an explicit list, or
every point of a discrete space) into arms. `MetaTuner` treats whole tuners
as arms: each `ask()` goes to the member a bandit picks, every member is told
every result, and a member is credited when its suggestion improves the best
value so far (OpenTuner's idea; Thompson sampling picks the member).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Mapping, Sequence

import numpy as np

from autosys.core.space import Config, Space
from autosys.core.trial import Result, Trial
from autosys.tuners import tuner_class
from autosys.tuners.base import Tuner, member_trial, warm_start_entry

# --------------------------------------------------------------------------- policies


class BanditPolicy:
    """Chooses one of `n_arms`; learns from rewards in [0, 1]."""

    name = "policy"

    def __init__(self, n_arms: int):
        if n_arms < 1:
            raise ValueError("a bandit needs at least one arm")
        self.n_arms = n_arms
        self.pulls = np.zeros(n_arms)
        self.total = np.zeros(n_arms)

    def select(self, rng: np.random.Generator) -> int:
        raise NotImplementedError

    def update(self, arm: int, reward: float) -> None:
        self.pulls[arm] += 1
        self.total[arm] += reward

    def _untried(self, rng: np.random.Generator) -> int | None:
        untried = np.flatnonzero(self.pulls == 0)
        return int(rng.choice(untried)) if len(untried) else None

    def state(self) -> dict:
        return {"pulls": self.pulls.tolist(), "total": self.total.tolist()}

    def load(self, state: Mapping[str, Any]) -> None:
        self.pulls = np.array(state["pulls"], float)
        self.total = np.array(state["total"], float)


class UCB1(BanditPolicy):
    """Auer et al. (2002): mean reward plus sqrt(2 ln t / n) (scaled by `c`)."""

    name = "ucb1"

    def __init__(self, n_arms: int, c: float = 1.0):
        super().__init__(n_arms)
        self.c = c

    def select(self, rng):
        arm = self._untried(rng)
        if arm is not None:
            return arm
        t = self.pulls.sum()
        ucb = self.total / self.pulls + self.c * np.sqrt(2.0 * math.log(t) / self.pulls)
        return int(rng.choice(np.flatnonzero(ucb == ucb.max())))


class GaussianThompson(BanditPolicy):
    """Thompson sampling with a Gaussian posterior on each arm's mean reward."""

    name = "thompson"

    def __init__(self, n_arms: int, prior_mean: float = 0.5, prior_var: float = 0.25):
        super().__init__(n_arms)
        self.prior_mean, self.prior_var = prior_mean, prior_var
        self.sq = np.zeros(n_arms)

    def update(self, arm, reward):
        super().update(arm, reward)
        self.sq[arm] += reward * reward

    def select(self, rng):
        n = self.pulls
        mean = np.divide(self.total, n, out=np.zeros_like(n), where=n > 0)
        # pooled noise variance, floored so a few identical rewards do not freeze an arm
        pooled = (self.sq.sum() - (self.total**2 / np.maximum(n, 1)).sum()) / max(n.sum() - 1, 1)
        noise = max(pooled, 0.01)
        post_var = 1.0 / (1.0 / self.prior_var + n / noise)
        post_mean = post_var * (self.prior_mean / self.prior_var + self.total / noise)
        return int(np.argmax(rng.normal(post_mean, np.sqrt(post_var))))

    def state(self):
        return {**super().state(), "sq": self.sq.tolist()}

    def load(self, state):
        super().load(state)
        self.sq = np.array(state["sq"], float)


class BernoulliThompson(BanditPolicy):
    """Thompson sampling with Beta(1 + successes, 1 + failures) posteriors; rewards are 0 or 1."""

    name = "thompson-beta"

    def update(self, arm, reward):
        super().update(arm, 1.0 if reward >= 0.5 else 0.0)

    def select(self, rng):
        return int(np.argmax(rng.beta(1.0 + self.total, 1.0 + self.pulls - self.total)))


class EXP3(BanditPolicy):
    """Auer et al. (2002) EXP3 for adversarial / non-stationary rewards."""

    name = "exp3"

    def __init__(self, n_arms: int, gamma: float = 0.1):
        super().__init__(n_arms)
        if not 0 < gamma <= 1:
            raise ValueError("EXP3 gamma must be in (0, 1]")
        self.gamma = gamma
        self.log_w = np.zeros(n_arms)

    def probs(self) -> np.ndarray:
        w = np.exp(self.log_w - self.log_w.max())
        return (1 - self.gamma) * w / w.sum() + self.gamma / self.n_arms

    def select(self, rng):
        return int(rng.choice(self.n_arms, p=self.probs()))

    def update(self, arm, reward):
        p = self.probs()[arm]
        super().update(arm, reward)
        self.log_w[arm] += self.gamma * (reward / p) / self.n_arms

    def state(self):
        return {**super().state(), "log_w": self.log_w.tolist()}

    def load(self, state):
        super().load(state)
        self.log_w = np.array(state["log_w"], float)


class AUCBandit(BanditPolicy):
    """OpenTuner's AUC bandit: area under each arm's recent "found a new best" curve + exploration.

    Recent successes weigh more than old ones (a linear ramp over a sliding
    window), so a technique that stops finding improvements loses its share.
    """

    name = "auc"

    def __init__(self, n_arms: int, c: float = 0.05, window: int = 100):
        super().__init__(n_arms)
        self.c = c
        self.window = window
        self.recent: list[deque] = [deque(maxlen=window) for _ in range(n_arms)]

    def update(self, arm, reward):
        super().update(arm, reward)
        self.recent[arm].append(float(reward))

    def select(self, rng):
        arm = self._untried(rng)
        if arm is not None:
            return arm
        t = self.pulls.sum()
        scores = np.empty(self.n_arms)
        for i, hist in enumerate(self.recent):
            h = np.array(hist)
            ramp = np.arange(1, len(h) + 1)
            auc = float((ramp * h).sum() / ramp.sum()) if len(h) else 0.0
            scores[i] = auc + self.c * math.sqrt(2.0 * math.log(t) / len(h) if len(h) else math.inf)
        return int(rng.choice(np.flatnonzero(scores == scores.max())))

    def state(self):
        return {**super().state(), "recent": [list(h) for h in self.recent]}

    def load(self, state):
        super().load(state)
        self.recent = [deque(h, maxlen=self.window) for h in state["recent"]]


POLICIES: dict[str, type[BanditPolicy]] = {
    cls.name: cls for cls in (UCB1, GaussianThompson, BernoulliThompson, EXP3, AUCBandit)
}


def make_policy(name: str, n_arms: int, **options: Any) -> BanditPolicy:
    if name not in POLICIES:
        raise ValueError(f"unknown bandit policy {name!r}; choose one of {', '.join(POLICIES)}")
    return POLICIES[name](n_arms, **options)


def rank_reward(loss: float | None, previous: Sequence[float]) -> float:
    """The share of earlier losses this one beats (ties count half); 0 for a failure."""
    if loss is None:
        return 0.0
    if not previous:
        return 0.5
    prev = np.asarray(previous)
    return float(((prev > loss).sum() + 0.5 * (prev == loss).sum()) / len(prev))


# --------------------------------------------------------------------------- arms = configs


class BanditTuner(Tuner):
    """Each arm is one config; pulling an arm evaluates it again (noisy systems).

    Arms are the configs in `arms`, or else every point of the space's grid
    (meant for categorical / small integer spaces; continuous ranges are cut
    at `resolution` points). When the grid holds more than `max_arms` points,
    the arms are the space's default plus a seeded random sample of
    `n_sampled_arms` configs. Rewards are the share of earlier results an
    outcome beats (in [0, 1]); for `thompson-beta`, a success is beating the
    median so far, or the value itself when every value is 0 or 1. A failed
    trial is a zero reward for its arm.
    """

    name = "bandit"

    def __init__(
        self,
        space: Space,
        *,
        policy: str = "ucb1",
        arms: Sequence[Mapping[str, Any]] | None = None,
        resolution: int = 3,
        max_arms: int = 1024,
        n_sampled_arms: int = 32,
        **kwargs: Any,
    ):
        policy_options = {k: kwargs.pop(k) for k in ("c", "gamma") if k in kwargs}
        super().__init__(space, **kwargs)
        if arms is None:
            arms = []
            for config in space.grid(resolution):
                arms.append(config)
                if len(arms) > max_arms:
                    arms = self._sampled_arms(n_sampled_arms)
                    break
        self.arms = [space.validate(a) for a in arms]
        if not self.arms:
            raise ValueError("a bandit needs at least one arm (the constraints exclude every config)")
        self._index = {space.config_key(a): i for i, a in enumerate(self.arms)}
        self.policy_name = policy
        self.policy_options = policy_options
        self.policy = make_policy(policy, len(self.arms), **policy_options)

    def _sampled_arms(self, n: int) -> list[Config]:
        rng = np.random.default_rng([0 if self.seed is None else int(self.seed), 104729])
        arms, keys = [], set()
        for config in [self.space.default()] + [self.space.sample(rng) for _ in range(20 * n)]:
            key = self.space.config_key(config)
            if key not in keys and self.space.is_valid(config):
                arms.append(config)
                keys.add(key)
            if len(arms) >= n:
                break
        return arms

    def _ask(self) -> Config:
        return dict(self.arms[self.policy.select(self.rng)])

    def _reward(self, loss: float | None) -> float:
        previous = [l for _, l in self.observations[:-1]] if loss is not None else [l for _, l in self.observations]
        if self.policy_name != "thompson-beta":
            return rank_reward(loss, previous)
        if loss is None:
            return 0.0
        values = [r.value for _, r in self.history if r.ok]
        if all(v in (0.0, 1.0) for v in values):
            return 1.0 - loss if self.direction == "minimize" else -loss  # loss of a maximized 1 is -1
        return 1.0 if not previous or loss < float(np.median(previous)) else 0.0

    def _tell(self, trial: Trial, result: Result) -> None:
        arm = self._index.get(self.space.config_key(trial.config))
        if arm is None:
            return  # not one of the arms (e.g. the study's default config)
        self.policy.update(arm, self._reward(self.loss(result)))

    def best_arm(self) -> Config:
        """The arm with the best mean reward among those pulled."""
        n = self.policy.pulls
        mean = np.where(n > 0, self.policy.total / np.maximum(n, 1), -1.0)
        return dict(self.arms[int(np.argmax(mean))])

    def _restore(self, history, extra):
        self.policy = make_policy(self.policy_name, len(self.arms), **self.policy_options)
        super()._restore(history, extra)


# --------------------------------------------------------------------------- tuners = arms

class MetaTuner(Tuner):
    """Runs several tuners; a bandit picks which one answers each `ask()`.

    Every member is told every result (so BO also learns from the other
    members' points); the member whose suggestion improves the best value so
    far is credited (see `credit`), else it gets 0. The default members are BO
    (the sample-efficient workhorse), a local evolution strategy (cheap steps
    around the incumbent) and TPE (global search that follows where the good
    results lie without a smooth model: the safety net against a wrong model
    on multimodal objectives, which random search was before).

    The default policy is Gaussian Thompson sampling. Measured on BBOB
    (experiments/tuners_bbob.py, `autosys-meta` vs `autosys-meta-old`; all 24
    functions, budget 100; 10-D on 5 seeds, 5-D and 20-D on 3), these members
    with Thompson sampling had lower regret than the former default (BO, local,
    random under the AUC bandit) on 159 of 264 paired (function, seed) runs and
    higher on 94 (geometric mean of the regret ratio 0.71-0.79 in each
    dimension). Thompson sampling alone gave part of that;
    TPE helped only on top of it: the AUC bandit, nearly greedy, let whichever
    member found the first few improvements crowd out the others for the rest
    of the study (local steps stuck in one dip of a Rastrigin-like function,
    or TPE on a sphere).

    Parameters
    ----------
    members: tuner names, or (name, options) pairs.
    policy: "thompson" (default) or any bandit policy name ("auc", "ucb1", "exp3", ...).
    policy_options: keyword options of the policy (e.g. {"c": 0.1} for AUC's exploration weight).
    warmup: asks given to the first member before the bandit starts (default: its n_initial).
    credit: "relative" (improvement over the best, in units of credit_scale x the gap
        between the median and the best so far, capped at 1) or "binary" (1 per new best).
    prior: one pseudo-credit per member, told to the bandit before any evidence
        (default members: BO starts with 1).
    """

    name = "meta"

    DEFAULT_MEMBERS: tuple = ("bo", "local", "tpe")
    #: BO starts with one pseudo-success: measured on 10-D BBOB at budget 100, an even start
    #: let the cheap local steps crowd BO out early (see experiments/tuners_bbob.py)
    DEFAULT_PRIOR: tuple = (1.0, 0.0, 0.0)

    def __init__(
        self,
        space: Space,
        *,
        members: Sequence[str | tuple[str, Mapping[str, Any]]] | None = None,
        policy: str = "thompson",
        policy_options: Mapping[str, Any] | None = None,
        warmup: int | None = None,
        credit: str = "relative",
        credit_scale: float = 0.1,
        prior: Sequence[float] | None = None,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        specs = [(m, {}) if isinstance(m, str) else (m[0], dict(m[1])) for m in (members or self.DEFAULT_MEMBERS)]
        if not specs:
            raise ValueError("a meta-tuner needs at least one member")
        if any(name == "meta" for name, _ in specs):
            raise ValueError("a meta-tuner cannot contain another meta-tuner")
        if credit not in ("relative", "binary"):
            raise ValueError(f"credit must be 'relative' or 'binary', not {credit!r}")
        self.credit, self.credit_scale = credit, credit_scale
        self.member_names = [name for name, _ in specs]
        self.members: list[Tuner] = []
        for i, (name, options) in enumerate(specs):
            seed = None if self.seed is None else int(self.seed) * 1009 + i
            self.members.append(tuner_class(name)(space, direction=self.direction, seed=seed, **options))
        self.policy_name = policy
        self.policy_options = dict(policy_options or {})
        if prior is None and members is None:
            prior = self.DEFAULT_PRIOR
        if prior is not None and len(prior) != len(self.members):
            raise ValueError(f"prior needs one pseudo-credit per member ({len(self.members)}), got {len(prior)}")
        self.prior = [float(p) for p in prior] if prior is not None else None
        self.policy = self._new_policy()
        #: tuner trial number -> (member index, the member's own trial number, asked during warm-up)
        self._owner: dict[int, tuple[int, int, bool]] = {}
        self._best: float | None = None
        # the first member's own initial design runs uncontested (a model needs its points)
        self.warmup = int(getattr(self.members[0], "n_initial", 0)) if warmup is None else int(warmup)

    def _new_policy(self) -> BanditPolicy:
        policy = make_policy(self.policy_name, len(self.members), **self.policy_options)
        for i, credit in enumerate(self.prior or ()):
            if credit > 0:
                policy.update(i, credit)  # one pseudo-pull: where to start before evidence arrives
        return policy

    def _ask(self) -> Config:
        warming = len(self.history) + len(self.pending) < self.warmup
        i = 0 if warming else self.policy.select(self.rng)
        proposal = self.members[i].ask()
        self._owner[self._next_number] = (i, proposal.number, warming)
        return dict(proposal.config)

    def _tell(self, trial: Trial, result: Result) -> None:
        owner = self._owner.get(trial.number) if trial.number >= 0 else None
        for i, member in enumerate(self.members):
            if owner is not None and owner[0] == i:
                member.tell(member.pending.get(owner[1]) or member_trial(member, owner[1], trial), result)
            else:
                member.warm_start([(trial.config, result)], keep=False)
        self._learn(result, owner)

    def _learn(self, result: Result, owner: tuple[int, int, bool] | None) -> None:
        """Credit the member that proposed a result (after it joined `history`)."""
        loss = self.loss(result)
        credit = self._credit(loss)
        if loss is not None and (self._best is None or loss < self._best):
            self._best = loss
        if owner is not None and not owner[2]:
            self.policy.update(owner[0], credit)

    def _credit(self, loss: float | None) -> float:
        """1 for a new best that beats the old one by a typical gap, less for a smaller step, 0 otherwise."""
        if loss is None or self._best is None or loss >= self._best:
            return 0.0
        if self.credit == "binary":
            return 1.0
        previous = np.array([l for _, l in self.observations[:-1]])
        gap = float(np.median(previous)) - self._best
        return 1.0 if gap <= 0 else float(min(1.0, (self._best - loss) / (self.credit_scale * gap)))

    def usage(self) -> dict[str, int]:
        """How many suggestions each member has made so far (warm-up included)."""
        return {
            name: sum(1 for t, _ in m.history if t.number >= 0) + len(m.pending)
            for name, m in zip(self.member_names, self.members)
        }

    def _extra_state(self) -> dict:
        """Each member's own small state and who proposed what; histories and the bandit come from replay."""
        return {
            "members": [m.state_dict() for m in self.members],
            "owners": [[n, i, m, int(w)] for n, (i, m, w) in self._owner.items()],
        }

    def _restore(self, history, extra: Mapping[str, Any]) -> None:
        if "owners" in extra:
            self._owner = {int(n): (int(i), int(m), bool(w)) for n, i, m, w in extra["owners"]}
            self._best, self.policy, self.history = None, self._new_policy(), []
            told: list[list[tuple[Trial, Result]]] = [[] for _ in self.members]
            for trial, result in history:  # what `_tell` did, but each member's history is collected
                self.history.append((trial, result))
                owner = self._owner.get(trial.number) if trial.number >= 0 else None
                for i, member in enumerate(self.members):
                    if owner is not None and owner[0] == i:
                        told[i].append((member_trial(member, owner[1], trial), result))
                    else:
                        told[i] += warm_start_entry(member, trial, result)
                self._learn(result, owner)
            for member, state, pairs in zip(self.members, extra["members"], told):
                member.load_state_dict(state, pairs)
            return
        self.history = list(history)  # format 1: members' whole states were saved
        self._owner = {}
        if not extra:  # no member states: rebuild by replaying every result to every member
            self._best = None
            self.policy = self._new_policy()
            for trial, result in history:
                for member in self.members:
                    member.warm_start([(trial.config, result)], keep=False)
                loss = self.loss(result)
                if loss is not None and (self._best is None or loss < self._best):
                    self._best = loss
            return
        for member, state in zip(self.members, extra["members"]):
            member.load_state_dict(state)
        self.policy.load(extra["policy"])
        self._best = extra["best"]

