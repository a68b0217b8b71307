"""A gymnasium environment around any autosys System: tuning as a sequential decision problem.

`SystemEnv` turns a System into the MDP that RL tuners such as CDBTune learn on:

- observation: the objective metrics (and the system's monitor readings, if it
  has monitors) relative to the default config's, squashed to [-10, 10], then
  the current config encoded in the unit cube;
- action: a whole new config (`action="config"`, a Box over the unit cube) or
  a move of one knob by one notch (`action="knob"`, Discrete over knob index x
  {down, up});
- reward: the improvement of the objective over the previous step
  (`reward="delta"`, so an episode's return is the total improvement) or over
  the default (`reward="default"`), divided by the default's value and signed
  so that better is positive;
- a failed evaluation (an invalid config, an exception, a missing or
  non-finite metric, a violated limit) gives `failure_reward`, leaves the
  config where it was and puts the reason in `info["error"]`; it never raises.

Nothing is registered at import; call `register_envs()` once, then
`gymnasium.make("autosys/System-v0", system=...)`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from autosys.core.space import Config
from autosys.core.system import Measurement, System
from autosys.tuners.rl import complete_config, move_knob, relative_feature

ENV_ID = "autosys/System-v0"
ACTIONS = ("config", "knob")
REWARDS = ("delta", "default")
STARTS = ("default", "random")


def register_envs() -> None:
    """Register `autosys/System-v0` with gymnasium (idempotent; no side effect at import)."""
    if ENV_ID not in gym.registry:
        # measured systems are noisy in general, so the id does not promise determinism
        gym.register(id=ENV_ID, entry_point="autosys.online.envs:SystemEnv", nondeterministic=True)


def _read_monitor(monitor: Any) -> Mapping[str, float]:
    """One reading of a monitor: `read()`, `sample()` or a plain call, returning name -> number."""
    for method in ("read", "sample"):
        if hasattr(monitor, method):
            return getattr(monitor, method)()
    if callable(monitor):
        return monitor()
    raise TypeError(f"a monitor needs read(), sample() or __call__, {type(monitor).__name__} has none")


class SystemEnv(gym.Env):
    """Gymnasium environment over an autosys System (see the module docstring).

    Parameters
    ----------
    system: a System, or the registered name of one (built with `system_options`).
    action: "config" (Box over the unit cube) or "knob" (Discrete(2 * knobs)):
        action 2*i moves knob i down one notch, 2*i + 1 moves it up.
    max_steps: steps per episode; the episode is truncated after them.
    notches: notches spanning a continuous range in "knob" mode.
    reward: "delta" (improvement over the previous step) or "default" (over the default config).
    failure_reward: the reward of a failed evaluation.
    start: each episode starts at the "default" config (measured once and
        reused) or a "random" config drawn from the env's seeded generator.
    metrics: the measured metrics to observe; default: the objective's metrics
        and the metrics its limits name.
    use_monitors: also observe the system's monitors (`System.monitors()`).
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        system: System | str,
        *,
        system_options: Mapping[str, Any] | None = None,
        action: str = "config",
        max_steps: int = 50,
        notches: int = 10,
        reward: str = "delta",
        failure_reward: float = -1.0,
        start: str = "default",
        metrics: Sequence[str] | None = None,
        use_monitors: bool = True,
        render_mode: str | None = None,
    ):
        if isinstance(system, str):
            from autosys.core.registry import make_system

            system = make_system(system, system_options)
        elif system_options:
            raise ValueError("system_options only apply when system is given by name")
        if not isinstance(system, System):
            raise TypeError(f"system must be an autosys System or its name, not {type(system).__name__}")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, not {reward!r}")
        if start not in STARTS:
            raise ValueError(f"start must be one of {', '.join(STARTS)}, not {start!r}")
        if int(max_steps) != max_steps or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, not {max_steps!r}")
        if int(notches) != notches or notches < 1:
            raise ValueError(f"notches must be a positive integer, not {notches!r}")
        if not math.isfinite(failure_reward):
            raise ValueError(f"failure_reward must be finite, not {failure_reward!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, not {render_mode!r}")
        self.system = system
        self.tuning_space = system.space().safe()  # an agent never learns to pick a risky value
        self.objective = system.objective
        self.action_mode = action
        self.max_steps = int(max_steps)
        self.notches = int(notches)
        self.reward_mode = reward
        self.failure_reward = float(failure_reward)
        self.start = start
        self.render_mode = render_mode
        if metrics is None:
            names = [m for m, _ in self.objective.metrics] + [lim.metric for lim in self.objective.limits]
            metrics = list(dict.fromkeys(names))
        self.metric_names = list(metrics)
        self.monitors = list(system.monitors()) if use_monitors else []
        self._set_up = False
        if self.monitors:
            self._setup()
            first = {}
            for monitor in self.monitors:
                first.update(_read_monitor(monitor))
            self.monitor_names = sorted(first)
            self._monitor_ref = {k: float(v) for k, v in first.items()}
        else:
            self.monitor_names = []
            self._monitor_ref = {}

        d = len(self.tuning_space)
        if d == 0:
            raise ValueError(f"system {system.name!r} has no knobs to tune")
        n_features = len(self.metric_names) + len(self.monitor_names)
        #: what each observation entry means, in order
        self.observation_names = (
            [f"metric:{n}" for n in self.metric_names]
            + [f"monitor:{n}" for n in self.monitor_names]
            + [f"knob:{p.name}" for p in self.tuning_space]
        )
        low = np.concatenate([np.full(n_features, -10.0), np.zeros(d)]).astype(np.float32)
        high = np.concatenate([np.full(n_features, 10.0), np.ones(d)]).astype(np.float32)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        if action == "config":
            self.action_space = spaces.Box(low=0.0, high=1.0, shape=(d,), dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(2 * d)

        self._reference: tuple[Config, dict[str, float], float | None, str | None] | None = None
        self._config: Config | None = None
        self._metrics: dict[str, float] = {}
        self._value: float | None = None
        self._steps = 0

    # --- measuring
    def _setup(self) -> None:
        if not self._set_up:
            self.system.setup()
            self._set_up = True

    def _measure(self, config: Config) -> tuple[dict[str, float], float]:
        """Evaluate for real; raise with a clear reason if the objective is missing or a limit is violated."""
        measurement = self.system.evaluate(config)
        if not isinstance(measurement, Measurement):
            raise TypeError(f"{self.system.name}.evaluate returned {type(measurement).__name__}, not a Measurement")
        metrics = {k: float(v) for k, v in measurement.metrics.items()}
        value = metrics.get(self.objective.metric)
        if value is None or not math.isfinite(value):
            raise ValueError(f"objective metric {self.objective.metric!r} missing or not finite: {value!r}")
        for limit in self.objective.limits:
            reason = limit.violated_by(metrics)
            if reason:
                raise ValueError(f"limit violated: {reason}")
        return metrics, value

    def _try_measure(self, config: Config) -> tuple[dict[str, float], float | None, str | None]:
        try:
            metrics, value = self._measure(config)
        except Exception as exc:  # a failing system must not crash the agent's loop
            return {}, None, f"{type(exc).__name__}: {exc}"
        return metrics, value, None

    def _ensure_reference(self) -> None:
        if self._reference is None:
            self._setup()
            default = self.tuning_space.validate(self.system.default())
            metrics, value, error = self._try_measure(default)
            self._reference = (default, metrics, value, error)

    @property
    def default_value(self) -> float | None:
        """The objective measured at the default config (None before the first reset or if it failed)."""
        return None if self._reference is None else self._reference[2]

    def _scale(self) -> float:
        ref = self.default_value
        return abs(ref) if ref else 1.0

    def _sign(self) -> float:
        return 1.0 if self.objective.direction == "maximize" else -1.0

    # --- observations
    def _observation(self) -> np.ndarray:
        assert self._reference is not None and self._config is not None
        ref_metrics = self._reference[1]
        features = [relative_feature(self._metrics.get(n), ref_metrics.get(n)) for n in self.metric_names]
        if self.monitors:
            reading: dict[str, float] = {}
            for monitor in self.monitors:
                reading.update(_read_monitor(monitor))
            features += [relative_feature(reading.get(n), self._monitor_ref.get(n)) for n in self.monitor_names]
        obs = np.concatenate([np.asarray(features, dtype=float), self.tuning_space.encode(self._config)])
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)

    def _info(self, error: str | None = None, attempted: Config | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"step": self._steps, "config": dict(self._config or {})}
        if error is None:
            info["value"] = self._value
            info["metrics"] = dict(self._metrics)
        else:
            info["error"] = error
            if attempted is not None:
                info["attempted"] = dict(attempted)
        return info

    # --- the gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode at the default (or a random, or `options["config"]`) config."""
        super().reset(seed=seed)
        self._setup()
        self._ensure_reference()
        self._steps = 0
        default, ref_metrics, ref_value, ref_error = self._reference
        if options and "config" in options:
            start = self.tuning_space.validate(options["config"])
        elif self.start == "random":
            start = self.tuning_space.sample(self.np_random)
        else:
            start = default
        if start == default:
            metrics, value, error = dict(ref_metrics), ref_value, ref_error
        else:
            metrics, value, error = self._try_measure(start)
        self._config, self._metrics, self._value = dict(start), metrics, value
        return self._observation(), self._info(error)

    def config_for(self, action: Any) -> Config:
        """The config an action leads to from the current one (it may violate a constraint)."""
        if self._config is None:
            raise RuntimeError("call reset() before step()")
        if self.action_mode == "config":
            vector = np.asarray(action, dtype=float).reshape(-1)
            if vector.shape != (len(self.tuning_space),) or not np.all(np.isfinite(vector)):
                raise ValueError(f"a config action is {len(self.tuning_space)} finite numbers in [0, 1], got {action!r}")
            return complete_config(self.tuning_space, self.tuning_space.decode(np.clip(vector, 0.0, 1.0)))
        index = int(action)
        if not 0 <= index < self.action_space.n:
            raise ValueError(f"a knob action is an integer in [0, {self.action_space.n}), got {action!r}")
        return move_knob(self.tuning_space, self._config, index // 2, bool(index % 2), self.notches)

    def action_to(self, config: Mapping[str, Any]) -> Any:
        """The action that leads from the current config to `config` (to drive the env from a tuner)."""
        target = self.tuning_space.config_key(self.tuning_space.validate(config))
        if self.action_mode == "config":
            return self.tuning_space.encode(config)  # float64: a float32 round trip would move float knobs
        for index in range(self.action_space.n):
            if self.tuning_space.config_key(self.config_for(index)) == target:
                return index
        raise ValueError(f"{dict(config)} is not one knob notch away from the current config {self._config}")

    def step(self, action: Any):
        if self._config is None:
            raise RuntimeError("call reset() before step()")
        self._steps += 1
        attempted: Config | None = None
        try:
            attempted = self.config_for(action)
            config = self.tuning_space.validate(attempted)
        except Exception as exc:
            metrics, value, error = {}, None, f"{type(exc).__name__}: {exc}"
        else:
            metrics, value, error = self._try_measure(config)
        if error is not None:
            reward = self.failure_reward
        else:
            baseline = self._value if self.reward_mode == "delta" else self.default_value
            if baseline is None:  # the previous state (or the default) had failed: nothing to compare with
                baseline = value if self.default_value is None else self.default_value
            reward = self._sign() * (value - baseline) / self._scale()
            self._config, self._metrics, self._value = config, metrics, value
        truncated = self._steps >= self.max_steps
        return self._observation(), float(reward), False, truncated, self._info(error, attempted)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        value = "failed" if self._value is None else f"{self._value:g}"
        return f"step {self._steps}: {self.objective.metric}={value} at {self._config}\n"

    def close(self) -> None:
        if self._set_up:
            self.system.teardown()
            self._set_up = False
        super().close()

    @property
    def current_config(self) -> Config | None:
        return None if self._config is None else dict(self._config)
