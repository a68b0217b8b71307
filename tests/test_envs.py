"""SystemEnv: the gymnasium MDP around any System (observations, actions, rewards, failures, registration)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from autosys.online.envs import ENV_ID, SystemEnv, register_envs
from autosys.core.space import Bool, Categorical, Float, Forbid, Int, Space
from autosys.core.system import Limit, Measurement, Objective, System


class Bowl(System):
    """A deterministic system: cost is a bowl over mixed knobs; `block=7 with mode=slow` crashes."""

    name = "bowl"

    def __init__(self, direction: str = "minimize", cap: float = 0.0):
        self.direction = direction
        self.cap = cap
        self.evaluations = 0
        self.setups = 0
        self.teardowns = 0

    def space(self):
        return Space(
            [
                Int("block", 1, 8, default=1),
                Float("ratio", 0.0, 1.0, default=0.0),
                Categorical("mode", ("fast", "slow", "odd"), default="slow"),
                Bool("flag", default=False),
            ],
            [Forbid("no-odd-flag", mode="odd", flag=True)],
        )

    @property
    def objective(self):
        limits = (Limit("memory", max=self.cap),) if self.cap else ()
        return Objective("cost", self.direction, limits=limits)

    def evaluate(self, config):
        self.evaluations += 1
        if config["block"] == 7 and config["mode"] == "slow":
            raise RuntimeError("block 7 crashes in slow mode")
        cost = (config["block"] - 5) ** 2 + 10 * (config["ratio"] - 0.7) ** 2
        cost += {"fast": 0.0, "slow": 3.0, "odd": 1.0}[config["mode"]] + (0.5 if config["flag"] else 1.0)
        value = cost if self.direction == "minimize" else 100.0 - cost
        return Measurement({"cost": value, "memory": float(config["block"])})

    def setup(self):
        self.setups += 1

    def teardown(self):
        self.teardowns += 1


class Counter:
    """A monitor with a deterministic reading."""

    def __init__(self):
        self.n = 0

    def read(self):
        return {"queue": 4.0}


class Monitored(Bowl):
    def monitors(self):
        return [Counter()]


@pytest.mark.parametrize("action", ["config", "knob"])
@pytest.mark.parametrize("start", ["default", "random"])
def test_check_env_passes(action, start):
    env = SystemEnv(Bowl(), action=action, start=start, max_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # render-mode hints only
        check_env(env, skip_render_check=True)
    env.close()


def test_check_env_with_monitors():
    env = SystemEnv(Monitored(), action="knob")
    assert env.observation_names[:2] == ["metric:cost", "monitor:queue"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)


def test_register_and_make_by_id():
    register_envs()
    register_envs()  # idempotent
    assert ENV_ID in gym.registry
    env = gym.make(ENV_ID, system=Bowl(), action="knob", max_steps=3)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    assert info["config"] == Bowl().default()
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert truncated and not terminated
    env.close()


def test_import_registers_nothing():
    import subprocess
    import sys

    code = "import gymnasium as gym, autosys.online.envs; print('autosys/System-v0' in gym.registry)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_observation_encodes_metrics_and_config():
    env = SystemEnv(Bowl(), action="knob")
    obs, info = env.reset(seed=1)
    assert env.observation_names == ["metric:cost", "knob:block", "knob:ratio", "knob:mode", "knob:flag"]
    assert obs[0] == 0.0  # the default is its own reference
    np.testing.assert_allclose(obs[1:], env.tuning_space.encode(env.tuning_space.default()), atol=1e-6)
    assert info["value"] == pytest.approx(16 + 4.9 + 3 + 1)


def test_knob_moves_and_delta_reward_sign_minimize():
    env = SystemEnv(Bowl(), action="knob")
    env.reset(seed=0)
    before = env._value
    obs, reward, _, _, info = env.step(1)  # block up one notch: 1 -> 2, closer to 5
    assert info["config"]["block"] == 2
    assert reward == pytest.approx((before - info["value"]) / before)
    assert reward > 0
    obs, reward, _, _, info = env.step(0)  # back down: worse
    assert info["config"]["block"] == 1 and reward < 0
    obs, reward, _, _, info = env.step(0)  # already at the bottom: clamped, no change
    assert info["config"]["block"] == 1 and reward == 0.0


def test_reward_sign_follows_direction_maximize():
    env = SystemEnv(Bowl(direction="maximize"), action="knob", reward="default")
    env.reset(seed=0)
    _, r1, _, _, _ = env.step(1)  # block 1 -> 2: better
    _, r2, _, _, _ = env.step(1)  # 2 -> 3: better still, measured against the default
    assert 0 < r1 < r2


def test_failed_evaluation_is_a_reward_not_an_exception():
    system = Bowl()
    env = SystemEnv(system, action="config", failure_reward=-2.0)
    env.reset(seed=0)
    crash = env.tuning_space.encode({"block": 7, "ratio": 0.5, "mode": "slow", "flag": False})
    obs, reward, terminated, truncated, info = env.step(crash.astype(np.float32))
    assert reward == -2.0 and not terminated
    assert "block 7 crashes" in info["error"]
    assert info["config"] == env.tuning_space.default()  # the config stayed put
    assert obs in env.observation_space


def test_constraint_violation_and_limit_are_failures():
    env = SystemEnv(Bowl(cap=4.0), action="config")
    env.reset(seed=0)
    forbidden = env.tuning_space.encode({"block": 2, "ratio": 0.5, "mode": "odd", "flag": True})
    _, reward, _, _, info = env.step(forbidden.astype(np.float32))
    assert reward == -1.0 and "no-odd-flag" in info["error"]
    too_big = env.tuning_space.encode({"block": 6, "ratio": 0.5, "mode": "fast", "flag": False})
    _, reward, _, _, info = env.step(too_big.astype(np.float32))
    assert reward == -1.0 and "memory" in info["error"]


def test_episode_length_truncates():
    env = SystemEnv(Bowl(), action="knob", max_steps=4)
    env.reset(seed=0)
    flags = [env.step(1)[3] for _ in range(4)]
    assert flags == [False, False, False, True]


def test_default_measured_once_and_setup_teardown():
    system = Bowl()
    env = SystemEnv(system, action="knob")
    env.reset(seed=0)
    env.reset(seed=1)
    assert system.evaluations == 1  # the default is measured once and reused
    assert system.setups == 1
    env.close()
    env.close()
    assert system.teardowns == 1


def test_action_to_inverts_moves():
    env = SystemEnv(Bowl(), action="knob")
    env.reset(seed=0)
    for index in range(env.action_space.n):
        target = env.tuning_space.validate(env.config_for(index)) if env.tuning_space.is_valid(env.config_for(index)) else None
        if target is not None and target != env.current_config:
            assert env.config_for(env.action_to(target)) == target
    with pytest.raises(ValueError, match="not one knob notch away"):
        env.action_to({"block": 8, "ratio": 1.0, "mode": "fast", "flag": True})


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match="action must be one of"):
        SystemEnv(Bowl(), action="teleport")
    with pytest.raises(ValueError, match="max_steps"):
        SystemEnv(Bowl(), max_steps=0)
    with pytest.raises(ValueError, match="reward must be"):
        SystemEnv(Bowl(), reward="profit")
    env = SystemEnv(Bowl(), action="knob")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(99)  # out of range: a failed step, not a crash
    assert reward == -1.0 and "knob action" in info["error"]


def test_render_ansi():
    env = SystemEnv(Bowl(), action="knob", render_mode="ansi")
    env.reset(seed=0)
    assert "cost=" in env.render()


def test_config_action_round_trip_keeps_float_knobs_exact():
    env = SystemEnv(Bowl(), action="config")
    env.reset(seed=0)
    target = {"block": 4, "ratio": 0.123456789, "mode": "fast", "flag": True}
    _, reward, _, _, info = env.step(env.action_to(target))
    assert info["config"] == target and reward > 0
