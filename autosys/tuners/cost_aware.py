"""Cost-aware Bayesian optimization: expected improvement per second, expensive changes batched.

Trials run one after another on one system, so what a trial costs depends on
the move from the config the system holds now (the last one told or asked):
changing a knob whose apply cost (`Param.apply_cost`) is `restart` or
`rebuild` costs a restart or a rebuild, changing only `none` knobs costs
just the measurement. `CostAwareBO` keeps a small learned model of trial
seconds per move class (`MoveCostModel`, fit on the durations the study
passes in `Result.seconds`, with a prior until a class has been seen) and
picks the candidate with the highest acquisition per predicted second
(EI/s; Snoek et al. 2012, "EI per second"). Each ask scores, beside the
usual candidates, copies of them with the expensive knobs pinned to their
current values, so "explore the cheap knobs under the present expensive
setting" always competes with "pay for a change": expensive knobs move only
when the improvement a move promises outweighs its cost, and the cheap knobs
are explored in runs between moves. The initial design is batched the same
way: the expensive knobs take a new design value every `design_batch`
points, the cheap ones every point.

Nothing beyond the history is kept: the cost model is refit from the told
results each ask (so a restored tuner continues exactly).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from autosys.core.space import APPLY_COSTS, Config, InvalidConfig, Space
from autosys.core.trial import Result, Trial
from autosys.tuners.bayes import BayesOpt

#: seconds of a trial by move class relative to a cost-free move, before any duration of that class is seen
COST_PRIOR: Mapping[str, float] = {"none": 1.0, "reload": 1.2, "restart": 3.0, "rebuild": 10.0}
#: apply costs whose knobs are batched (kept at their current values unless a change pays)
BATCHED = ("restart", "rebuild")


class MoveCostModel:
    """Predicted seconds of a trial from the apply cost of its move: log-seconds per class, shrunk to a prior.

    Each class's log-seconds is the mean of its observed durations shrunk
    towards the prior (`prior_weight` pseudo-observations of the prior ratio
    times the base, the cheapest observed class's level); a class never seen
    follows the prior ratio; predictions never decrease with the class (a
    restart also pays everything a reload does). Without any duration the
    prediction is the prior ratio itself (relative units).
    """

    def __init__(self, prior: Mapping[str, float] | None = None, prior_weight: float = 1.0):
        prior = dict(COST_PRIOR if prior is None else prior)
        unknown = sorted(set(prior) - set(APPLY_COSTS))
        if unknown or set(prior) != set(APPLY_COSTS):
            raise ValueError(f"cost prior must give a positive ratio for each of {', '.join(APPLY_COSTS)}; got {sorted(prior)}")
        if any(not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)) for v in prior.values()):
            raise ValueError(f"cost prior ratios must be positive numbers, not {prior}")
        if prior_weight <= 0:
            raise ValueError(f"prior_weight must be positive, not {prior_weight}")
        self.prior = {k: float(prior[k]) for k in APPLY_COSTS}
        self.prior_weight = float(prior_weight)
        self.seconds = dict(self.prior)
        self.counts = {k: 0 for k in APPLY_COSTS}

    def fit(self, moves: Sequence[tuple[str, float]]) -> "MoveCostModel":
        """Learn from (move class, seconds) pairs; non-positive or non-finite seconds are ignored."""
        logs: dict[str, list[float]] = {k: [] for k in APPLY_COSTS}
        for cls, seconds in moves:
            if cls in logs and seconds is not None and math.isfinite(seconds) and seconds > 0:
                logs[cls].append(math.log(seconds))
        self.counts = {k: len(v) for k, v in logs.items()}
        seen = [k for k in APPLY_COSTS if logs[k]]
        if not seen:
            self.seconds = dict(self.prior)
            return self
        # the base level: what a cost-free move would take, from the cheapest class observed
        first = seen[0]
        base = float(np.mean(logs[first])) - math.log(self.prior[first])
        level = -math.inf
        out = {}
        for k in APPLY_COSTS:
            prior_log = base + math.log(self.prior[k])
            n = len(logs[k])
            value = (sum(logs[k]) + self.prior_weight * prior_log) / (n + self.prior_weight)
            level = max(level, value)  # monotone in the class
            out[k] = math.exp(level)
        self.seconds = out
        return self

    def predict(self, cls: str) -> float:
        return self.seconds[cls]


class CostAwareBO(BayesOpt):
    """BO whose acquisition is expected improvement per predicted second of the trial's move.

    Parameters (beyond BayesOpt's)
    ----------
    acquisition: "ei" (default) or "pi": a non-negative acquisition to divide by cost.
    cost_exponent: score = acquisition / seconds**cost_exponent (0 = cost-blind, 1 = per second).
    design_batch: initial-design points per setting of the expensive knobs (1 = no batching).
    cost_prior: seconds ratio per apply cost before durations are seen (`COST_PRIOR`).
    move_penalty: seconds added to a move's predicted seconds per apply cost (e.g. {"restart": 30}):
        what a change costs that the trial's own duration does not show (a production server's
        downtime, dropped connections, cold caches); none by default.
    ei_floor: acquisition added to every candidate before dividing by cost (EI is in standard
        deviations of the observed values): improvements far below it cannot pay for a costlier move.
    """

    name = "bo-cost"

    def __init__(
        self,
        space: Space,
        *,
        acquisition: str = "ei",
        cost_exponent: float = 1.0,
        design_batch: int = 3,
        cost_prior: Mapping[str, float] | None = None,
        ei_floor: float = 1e-3,
        move_penalty: Mapping[str, float] | None = None,
        **kwargs: Any,
    ):
        if acquisition not in ("ei", "pi"):
            raise ValueError(f"cost-aware BO divides a non-negative acquisition by cost: use 'ei' or 'pi', not {acquisition!r}")
        if not (isinstance(cost_exponent, (int, float)) and 0 <= cost_exponent <= 4):
            raise ValueError(f"cost_exponent must be between 0 and 4, not {cost_exponent!r}")
        if int(design_batch) != design_batch or design_batch < 1:
            raise ValueError(f"design_batch must be a positive integer, not {design_batch!r}")
        if not (isinstance(ei_floor, (int, float)) and 0 <= ei_floor < 1):
            raise ValueError(f"ei_floor must be at least 0 and below 1, not {ei_floor!r}")
        penalty = dict(move_penalty or {})
        bad = [k for k, v in penalty.items() if k not in APPLY_COSTS or not isinstance(v, (int, float)) or not v >= 0]
        if bad:
            raise ValueError(f"move_penalty maps apply costs ({', '.join(APPLY_COSTS)}) to seconds >= 0; bad entry {bad[0]!r}")
        super().__init__(space, acquisition=acquisition, **kwargs)
        self.move_penalty = {k: float(penalty.get(k, 0.0)) for k in APPLY_COSTS}
        self.ei_floor = float(ei_floor)
        self.cost_exponent = float(cost_exponent)
        self.design_batch = int(design_batch)
        self.cost_model = MoveCostModel(cost_prior)
        costs = space.apply_costs()
        self._cost_index = np.array([APPLY_COSTS.index(costs[p.name]) for p in self.encoder.params])
        #: names of the knobs kept at their current values unless a change pays
        self.batched = [p.name for p in self.encoder.params if costs[p.name] in BATCHED]
        #: apply-cost levels above "none" present in the space (candidates are pinned at each)
        self._levels = sorted({int(c) for c in self._cost_index if c > 0})

    # --- where the system is, and what moves have cost
    def current_config(self) -> Config:
        """The config the system holds now: the last one asked and still pending, else the last told, else the default."""
        if self.pending:
            return dict(self.pending[max(self.pending)].config)
        if self.history:
            return dict(self.history[-1][0].config)
        return self.space.default()

    def moves(self) -> list[tuple[str, float | None]]:
        """(apply cost of the move into each told trial, its seconds), in the order they ran."""
        out: list[tuple[str, float | None]] = []
        previous: Config = self.space.default()
        for trial, result in self.history:
            out.append((self.space.change_cost(previous, trial.config), getattr(result, "seconds", None)))
            previous = trial.config
        return out

    def predicted_seconds(self, config: Mapping[str, Any]) -> float:
        """What moving from the current config to `config` is predicted to take (cost model as last fit)."""
        return self._move_seconds(self.space.change_cost(self.current_config(), config))

    def _move_seconds(self, cls: str) -> float:
        return self.cost_model.predict(cls) + self.move_penalty[cls]

    # --- the loop
    def _ask(self) -> Config:
        self.cost_model.fit([(c, s) for c, s in self.moves() if s is not None])
        return super()._ask()

    def _initial_point(self) -> Config:
        config = super()._initial_point()
        index = self._design_used - 1  # this point's row in the design
        if not self.batched or self.design_batch == 1 or index % self.design_batch == 0:
            return config
        current = self.current_config()
        pinned = {**config, **{n: current[n] for n in self.batched if n in current}}
        try:
            pinned = self.space.validate(pinned)
        except InvalidConfig:
            return config
        return config if self.space.config_key(pinned) in self._seen_keys() else pinned

    def _current_units(self) -> np.ndarray:
        return self.encoder.snap(np.array([self.space.encode(self.current_config())]))[0]

    def _candidates(self, U: np.ndarray, y: np.ndarray) -> np.ndarray:
        cands = super()._candidates(U, y)
        if not self._levels:
            return cands
        # copies with every knob at or above each cost level kept where it is now
        current = self._current_units()
        out = [cands]
        for level in self._levels:
            cols = self._cost_index >= level
            pinned = cands.copy()
            pinned[:, cols] = current[cols]
            out.append(pinned)
        return np.vstack(out)

    def _scores(self, model, cands: np.ndarray, best: float, p_ok) -> dict[str, np.ndarray]:
        """BayesOpt's scores, plus a local refinement of the best candidates that keep each cost level where it is.

        BayesOpt refines its top candidates with steps in every coordinate, so
        refined points move the expensive knobs; without the same polish for
        the pinned ones, staying would be undersold.
        """
        scores = super()._scores(model, cands, best, p_ok)
        if not self._levels:
            return scores
        name, enc = self.acquisition, self.encoder
        pool, acq = self._pool, scores[name]
        p_max = float(p_ok(pool).max()) if p_ok is not None else 1.0

        def evaluate(C: np.ndarray) -> np.ndarray:
            mu, sd = model.predict(enc.features(C))
            a = self._acq(mu, sd, best)[name]
            if p_ok is not None:
                p = p_ok(C)
                a = np.where(p < 0.5 * p_max, -np.inf, a * p)
            return a

        classes = self._move_classes(pool)
        new_rows, new_scores = [], []
        for level in self._levels:
            free = self._cost_index < level
            if not free.any():
                continue
            inside = np.flatnonzero(classes < level)
            if not len(inside):
                continue
            top = inside[np.argsort(-acq[inside])[:5]]
            current, cur_scores = pool[top].copy(), acq[top].copy()
            for sigma in (0.05, 0.02, 0.005):
                step = self.rng.normal(0, sigma, (len(current) * 20, pool.shape[1])) * free
                trial = enc.snap(np.clip(np.repeat(current, 20, axis=0) + step, 0, 1))
                a = evaluate(trial)
                new_rows.append(trial)
                new_scores.append(a)
                s = a.reshape(len(current), 20)
                j = s.argmax(1)
                better = s[np.arange(len(current)), j] > cur_scores
                current[better] = trial.reshape(len(current), 20, -1)[np.arange(len(current)), j][better]
                cur_scores = np.where(better, s[np.arange(len(current)), j], cur_scores)
        if new_rows:
            self._pool = np.vstack([pool, *new_rows])
            scores = {name: np.concatenate([acq, *new_scores])}
            self._pool_scores = scores
        return scores

    def _move_classes(self, C: np.ndarray) -> np.ndarray:
        """Index into APPLY_COSTS of the move from the current config to each (snapped) candidate row."""
        differs = np.abs(C - self._current_units()) > 1e-9
        return (differs * self._cost_index).max(axis=1) if C.shape[1] else np.zeros(len(C), int)

    def _pick(self, scores: dict[str, np.ndarray], cands: np.ndarray) -> Config | None:
        allc = self._pool
        acq = np.asarray(scores[self.acquisition], float)
        seconds = np.array([self._move_seconds(c) for c in APPLY_COSTS])[self._move_classes(allc)]
        # an improvement below the floor (in standard deviations of the observations) is worth nothing: once every
        # candidate's EI is negligible, the cheapest move wins instead of whichever tiny EI is least tiny
        worth = np.maximum(acq, 0.0) + self.ei_floor
        per_second = np.where(np.isfinite(acq), worth, -np.inf) / seconds**self.cost_exponent
        order = np.argsort(-per_second, kind="stable")
        return self._first_new(order, allc)


def count_changes(space: Space, trials: Sequence[Trial | tuple[Trial, Result]], costs: Sequence[str] = BATCHED) -> int:
    """How many consecutive trials changed a knob of the given apply costs (from the default first)."""
    previous: Config = space.default()
    changes = 0
    for item in trials:
        config = item[0].config if isinstance(item, tuple) else item.config
        if space.change_cost(previous, config) in costs:
            changes += 1
        previous = config
    return changes
