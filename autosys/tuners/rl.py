"""Reinforcement-learning tuner: fitted Q-iteration over knob moves, learned on ask/tell.

Tuning as a sequential decision problem, as CDBTune frames it: the *state* is
the current config plus the last metrics measured there, each `ask` is an
*action* taken from that state (move one knob by one notch, or jump to a new
config), and each `tell` gives the *reward*: the improvement of the objective
over the state the action was taken from, normalized by the first measured
value (the study's default). Failed trials give `failure_reward` and leave the
state where it was.

The Q-function is learned by fitted Q-iteration (Ernst, Geurts & Wehenkel,
2005) on the replayed transitions, with a scikit-learn Gaussian process (or
extra trees) as the approximator: a batch method that learns from tens to
hundreds of steps, the budgets tuning has (DDPG-style agents such as
CDBTune's usually train on far more). An action is described by its move and
the config it leads to (the afterstate), which makes the reward learnable from
few samples. Exploration is epsilon-greedy with a linear decay, and the greedy
choice is optimistic: Q plus `kappa` standard deviations of the model.
Everything random is drawn from the seeded generator, and model fits use seeds
derived from the tuner's seed, so a seed reproduces a run and a restored state
reproduces the model.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np

from autosys.core.space import Categorical, Config, Int, InvalidConfig, Space
from autosys.core.trial import Result, Trial
from autosys.tuners.base import Tuner

ACTIONS = ("knob", "config")
MODELS = ("trees", "gp")


# --------------------------------------------------------------------------- knob moves (shared with autosys.online.envs)


def complete_config(space: Space, config: Mapping[str, Any]) -> Config:
    """`config` with every active parameter present (newly active ones at their default), inactive ones dropped."""
    full: Config = {}
    for param in space:
        if param.condition is not None and not param.condition.holds(full):
            continue
        full[param.name] = config[param.name] if param.name in config else param.default_value()
    return full


def move_knob(space: Space, config: Mapping[str, Any], knob: int, up: bool, notches: int = 10) -> Config:
    """Move knob number `knob` one notch down or up from `config` (clamped at the ends).

    One notch is the next choice for categorical, ordinal and boolean knobs, one
    step for integers with at most `notches` steps, and 1/`notches` of the range
    (in the unit cube, so log scales move by a constant factor) otherwise. An
    inactive knob does not move. The result is completed (a newly activated
    child gets its default) but not validated against the constraints.
    """
    params = list(space)
    if not 0 <= knob < len(params):
        raise ValueError(f"knob index {knob} is out of range: the space has {len(params)} knobs")
    if notches < 1:
        raise ValueError(f"notches must be at least 1, not {notches}")
    param = params[knob]
    out = dict(config)
    if param.name not in config:
        return complete_config(space, out)
    value = config[param.name]
    sign = 1 if up else -1
    if isinstance(param, Categorical):
        index = min(max(param.index(value) + sign, 0), len(param.choices) - 1)
        new = param.choices[index]
    elif isinstance(param, Int) and not param.log and param.high - param.low <= notches:
        new = min(max(int(value) + sign, param.low), param.high)
    else:
        u = min(max(param.to_unit(value) + sign / notches, 0.0), 1.0)
        new = param.from_unit(u)
        if isinstance(param, Int) and new == value:  # a log-scale int can round back to itself
            new = min(max(int(value) + sign, param.low), param.high)
    out[param.name] = new
    return complete_config(space, out)


def _symlog(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.clip(np.sign(x) * np.log1p(np.abs(x)), -10.0, 10.0)


def relative_feature(value: float | None, reference: float | None) -> float:
    """A bounded feature for a metric: symmetric log of its change relative to a reference."""
    if value is None or not math.isfinite(value):
        return 0.0
    if reference is None or not math.isfinite(reference):
        return float(_symlog(value))
    scale = abs(reference) if reference != 0 else 1.0
    return float(_symlog((value - reference) / scale))


def _lbfgs(obj_func, initial_theta, bounds):
    """scikit-learn's GP optimizer with a cap on iterations (hyperparameters need not be exact)."""
    from scipy.optimize import minimize

    result = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": 60})
    return result.x, result.fun


# --------------------------------------------------------------------------- the tuner


class RLTuner(Tuner):
    """A Q-learning tuner whose actions are knob moves (or new configs) from the current config.

    Parameters
    ----------
    action: "knob" moves one knob by one notch per ask (sequence matters: the
        tuner walks the space like an online agent); "config" jumps to a new
        config chosen among random samples and perturbations of the current one.
    notches: how many notches span a continuous (or large integer) range.
    gamma: discount; 0 learns the immediate improvement of each move only.
    epsilon, epsilon_min, explore_steps: epsilon-greedy exploration, decayed
        linearly from `epsilon` to `epsilon_min` over `explore_steps` transitions.
    n_random: transitions collected with random actions before the first fit.
    refit_every: refit the Q-function after this many new transitions.
    fqi_iterations, n_estimators: fitted Q-iteration rounds and trees per fit.
    failure_reward: the reward of a failed trial (the state stays put).
    restart_every: after this many moves, go back to the best config seen (0: never).
    n_candidates: candidate configs scored per ask in "config" mode.
    sigma: scale (unit cube) of the perturbations of the current config in "config" mode.
    max_metrics: at most this many measured metrics enter the state.
    kappa: optimism in the greedy choice: Q plus `kappa` standard deviations
        (of the GP, or across the trees; directed exploration; 0 is plain greedy).
    model: the Q-function approximator: "gp" (a Gaussian process with an ARD
        Matern kernel: smooth, so it generalizes from few steps) or "trees"
        (extra trees: cheaper at large budgets, robust to jumps).
    max_points: fit on at most this many recent transitions (a GP fit is cubic in them).
    """

    name = "rl"

    def __init__(
        self,
        space: Space,
        *,
        direction: str = "minimize",
        seed: int | None = 0,
        action: str = "knob",
        notches: int = 10,
        gamma: float = 0.5,
        epsilon: float = 1.0,
        epsilon_min: float = 0.05,
        explore_steps: int = 20,
        n_random: int = 8,
        refit_every: int = 4,
        fqi_iterations: int = 4,
        n_estimators: int = 25,
        failure_reward: float = -1.0,
        restart_every: int = 0,
        n_candidates: int = 64,
        sigma: float = 0.1,
        max_metrics: int = 8,
        kappa: float = 0.5,
        model: str = "gp",
        max_points: int = 300,
    ):
        super().__init__(space, direction=direction, seed=seed)
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if len(space) == 0:
            raise ValueError("the rl tuner needs a space with at least one parameter")
        for name, value, low in (
            ("notches", notches, 1),
            ("explore_steps", explore_steps, 1),
            ("refit_every", refit_every, 1),
            ("fqi_iterations", fqi_iterations, 1),
            ("n_estimators", n_estimators, 1),
            ("n_candidates", n_candidates, 2),
            ("n_random", n_random, 0),
            ("restart_every", restart_every, 0),
            ("max_metrics", max_metrics, 0),
            ("max_points", max_points, 10),
        ):
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), not {gamma!r}")
        if not 0.0 <= epsilon_min <= epsilon <= 1.0:
            raise ValueError(f"need 0 <= epsilon_min <= epsilon <= 1, got {epsilon_min!r} and {epsilon!r}")
        if not math.isfinite(failure_reward):
            raise ValueError(f"failure_reward must be finite, not {failure_reward!r}")
        if not (math.isfinite(kappa) and kappa >= 0):
            raise ValueError(f"kappa must be a finite number >= 0, not {kappa!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, not {sigma!r}")
        self.action = action
        self.notches = int(notches)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.epsilon_min = float(epsilon_min)
        self.explore_steps = int(explore_steps)
        self.n_random = int(n_random)
        self.refit_every = int(refit_every)
        self.fqi_iterations = int(fqi_iterations)
        self.n_estimators = int(n_estimators)
        self.failure_reward = float(failure_reward)
        self.restart_every = int(restart_every)
        self.n_candidates = int(n_candidates)
        self.sigma = float(sigma)
        self.max_metrics = int(max_metrics)
        self.kappa = float(kappa)
        self.model = model
        self.max_points = int(max_points)
        self._reset_learning()

    def _reset_learning(self) -> None:
        # where the tuner stands: the config it last moved to and what was measured there
        self._current: Config | None = None
        self._current_loss: float | None = None
        self._current_metrics: dict[str, float] = {}
        self._moves_since_restart = 0
        # normalization, fixed by the first successful result
        self._ref_loss: float | None = None
        self._ref_metrics: dict[str, float] = {}
        self._metric_names: list[str] | None = None
        # what each asked trial did: trial number -> state, action vector, loss at the state
        self._asked: dict[int, dict[str, Any]] = {}
        self._transitions: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = []
        self._next_moves: list[np.ndarray] = []  # knob mode: actions at each next state; config mode: its encoding
        self._model = None
        self._fits = 0
        self._kernel = None  # the last optimized GP kernel and how many points it was fitted on
        self._kernel_n = 0
        self._best: tuple[float, Config, dict[str, float]] | None = None

    # --- features
    def _state(self, config: Config, loss: float | None, metrics: Mapping[str, float]) -> np.ndarray | None:
        """The state vector: the config in the unit cube, the loss and the metrics relative to the first result."""
        if self._ref_loss is None or loss is None:
            return None
        features = [relative_feature(loss, self._ref_loss)]
        features += [relative_feature(metrics.get(n), self._ref_metrics.get(n)) for n in self._metric_names or []]
        return np.concatenate([self.space.encode(config), np.asarray(features, dtype=float)])

    def _action_vector(self, here: np.ndarray, target: Config) -> np.ndarray:
        """An action as the move in the unit cube plus the config it leads to (the afterstate).

        The afterstate makes Q learnable from few steps: the reward of a move is
        mostly a function of where it leads, which trees fit well.
        """
        there = self.space.encode(target)
        return np.concatenate([there - here, there])

    def _moves_from(self, config: Config) -> list[Config]:
        """Every knob move from `config` that satisfies the space (may include no-ops)."""
        out = []
        for knob in range(len(self.space)):
            for up in (False, True):
                candidate = move_knob(self.space, config, knob, up, self.notches)
                if self.space.is_valid(candidate):
                    out.append(candidate)
        return out

    def _candidates(self) -> list[tuple[Config, np.ndarray]]:
        """Valid actions from the current config that change it and are not already pending."""
        assert self._current is not None
        taken = {self.space.config_key(t.config) for t in self.pending.values()}
        taken.add(self.space.config_key(self._current))
        out: list[tuple[Config, np.ndarray]] = []
        seen = set(taken)

        def add(candidate: Config, vector: np.ndarray) -> None:
            try:
                clean = self.space.validate(candidate)
            except InvalidConfig:
                return  # a known constraint: never proposed
            key = self.space.config_key(clean)
            if key not in seen:
                seen.add(key)
                out.append((clean, vector))

        here = self.space.encode(self._current)
        if self.action == "knob":
            for knob in range(len(self.space)):
                for up in (False, True):
                    candidate = move_knob(self.space, self._current, knob, up, self.notches)
                    add(candidate, self._action_vector(here, candidate))
        else:
            for i in range(self.n_candidates):
                if i % 2 == 0:
                    u = np.clip(here + self.rng.normal(0.0, self.sigma, size=len(self.space)), 0.0, 1.0)
                    candidate = complete_config(self.space, self.space.decode(u))
                else:
                    candidate = self.space.sample(self.rng)
                add(candidate, self._action_vector(here, candidate))
        return out

    def _epsilon(self) -> float:
        progress = min(len(self._transitions) / self.explore_steps, 1.0)
        return self.epsilon + (self.epsilon_min - self.epsilon) * progress

    # --- ask / tell
    def _ask(self) -> Config:
        number = self._next_number  # the number the base class gives this trial
        if self._current is None:
            start = self.space.default()
            if not self.space.is_valid(start):
                start = self.space.sample(self.rng)
            self._current = start
            self._asked[number] = {"state": None, "action": None, "loss": None}
            return dict(start)  # measure the starting point first
        if self.restart_every and self._moves_since_restart >= self.restart_every and self._best is not None:
            loss, config, metrics = self._best
            self._current, self._current_loss, self._current_metrics = dict(config), loss, dict(metrics)
            self._moves_since_restart = 0
        candidates = self._candidates()
        if not candidates:  # nowhere to move (single-point space or all neighbours pending)
            config = self.space.sample(self.rng)
            self._asked[number] = {"state": None, "action": None, "loss": None}
            return config
        state = self._state(self._current, self._current_loss, self._current_metrics)
        if self._model is None or state is None or self.rng.random() < self._epsilon():
            pick = int(self.rng.integers(len(candidates)))
        else:
            q = self._q(
                np.repeat(state[None, :], len(candidates), axis=0),
                np.stack([v for _, v in candidates]),
                optimism=self.kappa,
            )
            best = np.flatnonzero(q >= q.max() - 1e-12)
            pick = int(best[self.rng.integers(len(best))])
        config, vector = candidates[pick]
        self._moves_since_restart += 1
        self._asked[number] = {
            "state": None if state is None else state.tolist(),
            "action": vector.tolist(),
            "loss": self._current_loss,
            "config": dict(self._current),
        }
        return config

    def _tell(self, trial: Trial, result: Result) -> None:
        loss = self.loss(result)
        asked = self._asked.get(trial.number) if trial.number >= 0 and trial.source == self.name else None
        if loss is not None:
            metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            if self._ref_loss is None:
                self._ref_loss = loss
                self._ref_metrics = dict(metrics)
                self._metric_names = sorted(metrics)[: self.max_metrics]
            if self._best is None or loss < self._best[0]:
                self._best = (loss, dict(trial.config), metrics)
            if asked is not None and asked["action"] is not None and asked["state"] is not None:
                reward = (asked["loss"] - loss) / self._scale()
                next_state = self._state(trial.config, loss, metrics)
                self._record(asked["state"], asked["action"], reward, next_state, trial.config)
            # our own moves always move the system; a config from elsewhere only if it is better
            if asked is not None or self._current_loss is None or loss < self._current_loss:
                self._current, self._current_loss, self._current_metrics = dict(trial.config), loss, metrics
        elif asked is not None and asked["action"] is not None and asked["state"] is not None:
            self._record(asked["state"], asked["action"], self.failure_reward, asked["state"], asked["config"])

    def _scale(self) -> float:
        return abs(self._ref_loss) if self._ref_loss else 1.0

    def _record(self, state, action, reward: float, next_state, next_config: Config) -> None:
        next_state = np.asarray(next_state, float)
        self._transitions.append((np.asarray(state, float), np.asarray(action, float), float(reward), next_state))
        if self.action == "knob":  # the moves available from the next state, for the max in the target
            here = self.space.encode(next_config)
            moves = [self._action_vector(here, c) for c in self._moves_from(next_config)]
            self._next_moves.append(np.stack(moves) if moves else np.zeros((0, 2 * len(self.space))))
        else:
            self._next_moves.append(self.space.encode(next_config))
        n = len(self._transitions)
        if n >= max(self.n_random, 2) and n % self.refit_every == 0:
            self._fit()

    # --- fitted Q-iteration
    def _q(self, states: np.ndarray, actions: np.ndarray, optimism: float = 0.0) -> np.ndarray:
        """Q-values; with `optimism` > 0, plus that many standard deviations across the trees (UCB)."""
        x = np.hstack([states, actions])
        if self.model == "gp":
            mean, std = self._model.predict(x, return_std=True)
            return mean + optimism * std
        if optimism <= 0:
            return self._model.predict(x)
        per_tree = np.stack([tree.predict(x) for tree in self._model.estimators_])
        return per_tree.mean(axis=0) + optimism * per_tree.std(axis=0)

    def _next_rows(self, rng: np.random.Generator, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(state, action) rows for the max in the Bellman target, and each row's transition index."""
        rows, owners = [], []
        if self.action == "config":
            d = len(self.space)
            targets = rng.random((min(self.n_candidates, 32), d))
        for i, (_, _, _, next_state) in enumerate(self._transitions[first:]):
            i += first
            if self.action == "knob":
                actions = self._next_moves[i]
            else:
                here = self._next_moves[i]
                actions = np.hstack([targets - here, targets])
            if len(actions):
                rows.append(np.hstack([np.repeat(next_state[None, :], len(actions), axis=0), actions]))
                owners.append(np.full(len(actions), i - first))
        if not rows:
            return np.zeros((0, 0)), np.zeros(0, dtype=int)
        return np.vstack(rows), np.concatenate(owners)

    def _fit(self) -> None:
        from sklearn.ensemble import ExtraTreesRegressor

        self._fits += 1
        seed = None if self.seed is None else [int(self.seed) % (2**32), self._fits]
        rng = np.random.default_rng(seed)
        first = max(0, len(self._transitions) - self.max_points)  # the most recent experience only
        transitions = self._transitions[first:]
        x = np.stack([np.concatenate([t[0], t[1]]) for t in transitions])
        rewards = np.array([t[2] for t in transitions])
        x_next, owners = self._next_rows(rng, first) if self.gamma > 0 else (None, None)
        targets = rewards
        # GP hyperparameters are re-fitted only when the data grew by a quarter (a geometric
        # schedule: a handful of optimizations per run); in between the last kernel is reused
        kernel = self._kernel if self._kernel is not None and len(x) < 1.25 * self._kernel_n else None
        for iteration in range(self.fqi_iterations):
            if self.model == "gp":
                model = self._gp(x.shape[1], kernel, int(rng.integers(2**31 - 1)))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # hyperparameters at their bounds are fine here
                    model.fit(x, targets)
                if kernel is None:
                    self._kernel, self._kernel_n = model.kernel_, len(x)
                kernel = model.kernel_  # hyperparameters fitted once per refit, reused by later iterations
            else:
                model = ExtraTreesRegressor(
                    n_estimators=self.n_estimators,
                    min_samples_leaf=2,
                    max_features=1.0,
                    random_state=int(rng.integers(2**31 - 1)),
                    n_jobs=1,
                )
                model.fit(x, targets)
            if self.gamma == 0 or iteration + 1 == self.fqi_iterations or len(owners) == 0:
                break
            best_next = np.full(len(rewards), -np.inf)
            np.maximum.at(best_next, owners, model.predict(x_next))
            targets = rewards + self.gamma * np.where(np.isfinite(best_next), best_next, 0.0)
        self._model = model

    @staticmethod
    def _gp(dims: int, kernel, seed: int):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        if kernel is None:
            kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
                np.full(dims, 0.5), (1e-2, 1e2), nu=2.5
            ) + WhiteKernel(1e-2, (1e-6, 1.0))
            return GaussianProcessRegressor(kernel, normalize_y=True, optimizer=_lbfgs, random_state=seed)
        return GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None, random_state=seed)

    # --- save / restore
    def _extra_state(self) -> dict:
        return {
            "asked": {str(k): v for k, v in self._asked.items()},
            "current": self._current,
            "current_loss": self._current_loss,
            "current_metrics": self._current_metrics,
            "moves_since_restart": self._moves_since_restart,
        }

    def _restore(self, history: list[tuple[Trial, Result]], extra: Mapping[str, Any]) -> None:
        self._reset_learning()
        self._asked = {int(k): dict(v) for k, v in extra.get("asked", {}).items()}
        super()._restore(history, extra)  # replays every tell: transitions and fits come back identical
        if "current" in extra:
            self._current = None if extra["current"] is None else dict(extra["current"])
            self._current_loss = extra.get("current_loss")
            self._current_metrics = dict(extra.get("current_metrics") or {})
            self._moves_since_restart = int(extra.get("moves_since_restart", 0))
