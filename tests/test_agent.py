"""The embedded agent: keeps only real wins, rolls back failures, survives being killed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from autosys_adapters.sqlite.service import PHASES, SQLiteService
from autosys.online.agent import Agent, ChangeDetector, Guardrails, TunerPolicy
from autosys.online.monitor import Monitor
from autosys.core.space import Categorical, Int, Space
from autosys.storage import SQLiteStorage
from autosys.core.system import Measurement, Objective, System

ROOT = Path(__file__).resolve().parents[1]


class Scripted(System):
    """Throughput is a known function of the live config and the current phase (a test double)."""

    name = "scripted"

    def __init__(self, fail_apply_on: int | None = None, config_file: str | None = None):
        self.config = {"mode": "slow", "level": 1}
        self.phase = "reads"
        self.fail_apply_on = fail_apply_on
        self.config_file = Path(config_file) if config_file else None
        self.applied = []

    def space(self):
        return Space([Categorical("mode", ("slow", "fast", "broken")), Int("level", 1, 5)])

    @property
    def objective(self):
        return Objective("throughput", "maximize")

    def evaluate(self, config):
        return Measurement({"throughput": self.rate(config)})

    def rate(self, config):
        if config["mode"] == "broken":
            return 1.0
        base = 100.0 if config["mode"] == "slow" else 300.0
        best_level = 2 if self.phase == "reads" else 5
        return base - 10 * abs(config["level"] - best_level)

    def apply(self, config):
        if self.fail_apply_on is not None and config["level"] == self.fail_apply_on:
            raise RuntimeError("apply refused by the system")
        self.applied.append(dict(config))
        self.config = dict(config)
        if self.config_file is not None:  # a config file written atomically, as a real service's would be
            tmp = self.config_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(config))
            os.replace(tmp, self.config_file)

    def current(self):
        return dict(self.config)


class ScriptedMonitor(Monitor):
    name = "scripted"

    def __init__(self, system, noise=0.0, seed=0):
        self.system, self.noise, self.rng = system, noise, np.random.default_rng(seed)

    def sample(self):
        value = self.system.rate(self.system.config) * (1 + self.noise * self.rng.standard_normal())
        return {"throughput": value, "read_fraction": 0.9 if self.system.phase == "reads" else 0.1}


def run_windows(agent, n):
    return [agent.step() for _ in range(n)]


def test_agent_finds_and_keeps_a_better_config_and_adapts_to_a_change():
    system = Scripted()
    policy = TunerPolicy(system.space(), "maximize", tuner="grid", tries_per_regime=15)
    agent = Agent(system, policy, [ScriptedMonitor(system)], window=0.01, explore_every=None)
    run_windows(agent, 40)
    assert agent.incumbent["mode"] == "fast" and agent.incumbent["level"] == 2
    assert system.config == agent.incumbent  # every losing candidate was rolled back
    system.phase = "writes"
    run_windows(agent, 50)
    actions = [d.action for d in agent.decisions]
    assert "workload-change" in actions
    assert agent.incumbent == {"mode": "fast", "level": 5}


def test_a_candidate_within_noise_is_not_kept():
    system = Scripted()
    agent = Agent(system, TunerPolicy(system.space(), "maximize", tuner="grid", tries_per_regime=30),
                  [ScriptedMonitor(system, noise=0.3, seed=1)], guardrails=Guardrails(noise_sigmas=3.0, min_relative_gain=0.5),
                  window=0.01, explore_every=None)
    run_windows(agent, 60)
    # a 50% minimum gain: only slow -> fast (3x) can ever qualify
    for d in agent.decisions:
        if d.action == "keep":
            assert d.value > 1.5 * d.incumbent_value or d.incumbent_value is None


def test_failed_apply_is_rolled_back_and_recorded(tmp_path):
    system = Scripted(fail_apply_on=3)
    storage = SQLiteStorage(tmp_path / "agent")
    agent = Agent(system, TunerPolicy(system.space(), "maximize", tuner="grid", tries_per_regime=15),
                  [ScriptedMonitor(system)], window=0.01, storage=storage, explore_every=None)
    run_windows(agent, 40)
    failed = [d for d in agent.decisions if d.action == "apply-failed"]
    assert failed and all(d.config["level"] == 3 for d in failed)
    assert "apply refused" in failed[0].reason
    assert system.config["level"] != 3
    logged = [body for _, _, body in storage.events("agent") if body["action"] == "apply-failed"]
    assert len(logged) == len(failed)


def test_unhealthy_candidate_is_rolled_back_within_one_window():
    system = Scripted()
    health = lambda reading: "throughput collapsed" if reading["throughput"] < 50 else None  # noqa: E731
    agent = Agent(system, TunerPolicy(system.space(), "maximize", tuner="grid", tries_per_regime=15),
                  [ScriptedMonitor(system)], guardrails=Guardrails(health_check=health), window=0.01, explore_every=None)
    decisions = run_windows(agent, 40)
    for i, d in enumerate(decisions):
        if d.action == "explore" and d.config["mode"] == "broken":
            assert decisions[i + 1].action == "rollback" and "unhealthy" in decisions[i + 1].reason
    assert any(d.action == "rollback" and "unhealthy" in d.reason for d in decisions)
    assert system.config["mode"] != "broken"


def test_change_budget_is_respected():
    system = Scripted()
    agent = Agent(system, TunerPolicy(system.space(), "maximize", tries_per_regime=100), [ScriptedMonitor(system)],
                  guardrails=Guardrails(change_budget=4), window=0.01, explore_every=None)
    run_windows(agent, 30)
    assert sum(d.action == "explore" for d in agent.decisions) == 4
    assert any(d.action == "budget-exhausted" for d in agent.decisions)


def test_change_detector_ignores_noise_and_confirms_shifts():
    rng = np.random.default_rng(0)
    detector = ChangeDetector(threshold=0.15, confirm=2)
    assert not any(detector.update({"read_fraction": 0.9 + 0.02 * rng.standard_normal()}) for _ in range(50))
    assert not detector.update({"read_fraction": 0.2})  # one window is not enough
    assert detector.update({"read_fraction": 0.2})


def test_restarted_agent_puts_the_system_back_on_its_last_trusted_config(tmp_path):
    system = Scripted()
    storage = SQLiteStorage(tmp_path / "agent")
    agent = Agent(system, TunerPolicy(system.space(), "maximize", tuner="grid", tries_per_regime=15),
                  [ScriptedMonitor(system)], window=0.01, storage=storage, explore_every=None)
    run_windows(agent, 30)
    trusted = dict(agent.incumbent)
    system.apply({"mode": "slow", "level": 4})  # the agent "died" mid-trial, leaving a candidate applied
    again = Agent(system, TunerPolicy(system.space(), "maximize"), [ScriptedMonitor(system)], storage=SQLiteStorage(tmp_path / "agent"))
    assert system.config == trusted == again.incumbent
    assert again.decisions[0].action == "resume"


AGENT_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from tests.test_agent import Scripted, ScriptedMonitor
from autosys.online.agent import Agent, TunerPolicy
from autosys.storage import SQLiteStorage
system = Scripted(config_file={cfg!r})
system.apply(system.config)
agent = Agent(system, TunerPolicy(system.space(), "maximize", tries_per_regime=10**6),
              [ScriptedMonitor(system, noise=0.2)], window=0.002, storage=SQLiteStorage({store!r}), explore_every=1)
print("ready", flush=True)
while True:
    agent.step()
"""


def test_killing_the_agent_mid_change_leaves_a_valid_config(tmp_path):
    cfg, store = tmp_path / "service.json", tmp_path / "agent"
    script = AGENT_SCRIPT.format(root=str(ROOT), cfg=str(cfg), store=str(store))
    space = Scripted().space()
    rng = np.random.default_rng(0)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(float(rng.uniform(0.05, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert space.is_valid(json.loads(cfg.read_text()))
    system = Scripted(config_file=str(cfg))
    system.config = json.loads(cfg.read_text())
    agent = Agent(system, TunerPolicy(system.space(), "maximize"), [ScriptedMonitor(system)], storage=SQLiteStorage(store))
    trusted = SQLiteStorage(store).events("incumbent")[-1][2]["config"]
    assert agent.incumbent == trusted and json.loads(cfg.read_text()) == trusted


def test_agent_on_the_real_sqlite_service_changes_pragmas_live(tmp_path):
    service = SQLiteService(path=str(tmp_path / "kv.db"), records=2000)
    service.setup()
    stop = threading.Event()

    def client():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            service.run_ops(PHASES["write-heavy"], rng, 20)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        policy = TunerPolicy(service.space(), "maximize", tuner="random", seed=1, tries_per_regime=4)
        agent = Agent(service, policy, window=0.3, explore_every=None).start()
        time.sleep(3.5)
        agent.stop()
    finally:
        stop.set()
        thread.join(5)
    actions = [d.action for d in agent.decisions]
    assert "explore" in actions
    # the live connection really runs what the agent believes it runs
    live = service._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert live == service.current()["journal_mode"] == agent.incumbent["journal_mode"]
    assert all(service.space().is_valid(d.config) for d in agent.decisions)
    service.teardown()


class _Stub(TunerPolicy):
    """Proposes one fixed config, with a fixed predicted gain and readiness (a test double of a policy with a prior)."""

    def __init__(self, space, config, expected=None, ready=False):
        super().__init__(space, "maximize", tuner="random", tries_per_regime=1)
        self.config, self.expected, self.is_ready = config, expected, ready

    def propose(self, context, incumbent):
        if self._tries >= self.tries_per_regime or incumbent == self.config:
            return None
        self._tries += 1
        return dict(self.config)

    def ready(self, context, incumbent):
        return self.is_ready and self._tries < self.tries_per_regime and incumbent != self.config

    def expected_gain(self, config):
        return self.expected


class Fixed(Monitor):
    """Reads a scripted sequence of (throughput, read fraction) windows."""

    name = "fixed"

    def __init__(self, windows):
        self.windows = list(windows)

    def sample(self):
        value, reads = self.windows.pop(0)
        return {"throughput": value, "read_fraction": reads}


def test_a_candidate_within_noise_is_kept_only_when_the_policy_predicted_a_clear_gain():
    fast = {"mode": "fast", "level": 1}
    for expected, kept in ((None, False), (0.01, False), (0.5, True)):
        system = Scripted()
        # baseline 100 and 104 (noise margin 4 = 2 sd); the candidate's window is 103: above the mean, within noise
        monitor = Fixed([(100.0, 0.9), (104.0, 0.9), (103.0, 0.9), (103.0, 0.9)])
        agent = Agent(system, _Stub(system.space(), fast, expected), [monitor], explore_every=None)
        actions = [agent.step().action for _ in range(3)]
        assert actions == ["measure", "explore", "keep" if kept else "rollback"], (expected, actions)
        assert (agent.incumbent == fast) == kept
    # a window below the incumbent's mean is rolled back whatever the prediction
    system = Scripted()
    agent = Agent(system, _Stub(system.space(), fast, 0.5), [Fixed([(100.0, 0.9), (104.0, 0.9), (101.0, 0.9)])],
                  explore_every=None)
    assert [agent.step().action for _ in range(3)] == ["measure", "explore", "rollback"]


def test_the_windows_that_show_a_change_are_the_new_baseline_and_a_ready_policy_acts_at_once():
    system = Scripted()
    writes = {"mode": "fast", "level": 5}
    steady = [(100.0, 0.9)] * 6
    monitor = Fixed(steady + [(60.0, 0.1), (61.0, 0.1), (200.0, 0.1), (200.0, 0.1)])
    policy = _Stub(system.space(), writes, expected=None, ready=True)
    policy._tries = 1  # nothing to try before the change
    agent = Agent(system, policy, [monitor], explore_every=None, detector=ChangeDetector(threshold=0.15, confirm=2),
                  baseline_windows=5)
    for _ in range(6):
        assert agent.step().action == "measure"
    held = agent.step()  # the first window of the new mix: held, not added to the old band, no trial started
    assert held.action == "measure" and "possible workload change" in held.reason
    assert 60.0 not in agent.incumbent_values
    agent.step()
    assert [d.action for d in agent.decisions[-2:]] == ["workload-change", "explore"]  # one step, no new baseline
    assert agent.incumbent_values == [60.0, 61.0]  # the windows that showed the change
    agent.step()
    assert agent.decisions[-1].action == "keep" and agent.incumbent == writes


def test_a_single_odd_window_rejoins_the_band_once_the_next_is_normal():
    system = Scripted()
    monitor = Fixed([(100.0, 0.9)] * 4 + [(100.0, 0.2), (100.0, 0.9), (100.0, 0.9)])
    agent = Agent(system, _Stub(system.space(), {"mode": "fast", "level": 2}), [monitor], explore_every=None,
                  detector=ChangeDetector(threshold=0.15, confirm=2), baseline_windows=50)
    for _ in range(7):
        agent.step()
    assert "workload-change" not in [d.action for d in agent.decisions]
    assert len(agent.incumbent_values) == 7


def test_a_window_that_straddled_the_change_leaves_the_baseline():
    system = Scripted()
    writes = {"mode": "fast", "level": 5}
    # the change shows in a window half reads, half writes (fast: 150), then writes run at 60; the candidate makes 66
    monitor = Fixed([(100.0, 0.9)] * 4 + [(150.0, 0.5), (60.0, 0.1), (66.0, 0.1)])
    policy = _Stub(system.space(), writes, expected=0.5, ready=False)
    policy._tries = 1
    agent = Agent(system, policy, [monitor], explore_every=None, detector=ChangeDetector(threshold=0.15, confirm=1))
    for _ in range(4):
        agent.step()
    assert agent.step().action == "workload-change" and agent.incumbent_values == [150.0]
    policy.is_ready = True  # the writes' best becomes due once the workload is clear
    assert agent.step().action == "explore"
    assert agent.incumbent_values == [60.0]  # the straddling window is gone: 66 is judged against 60, not 105
    assert agent.step().action == "keep"


def test_a_policy_without_a_known_good_config_gets_a_baseline_of_the_new_workload_first():
    system = Scripted()
    monitor = Fixed([(100.0, 0.9)] * 4 + [(60.0, 0.1)] * 4)
    policy = _Stub(system.space(), {"mode": "fast", "level": 5}, ready=False)
    policy._tries = 1
    agent = Agent(system, policy, [monitor], explore_every=None, detector=ChangeDetector(threshold=0.15, confirm=1),
                  baseline_windows=2)
    actions = [agent.step().action for _ in range(8)]
    # change at window 5 (its policy's tries refilled), then two windows of the new workload before the proposal
    assert actions[4:] == ["workload-change", "measure", "explore", "rollback"], actions  # (no gain: a scripted 60)


# ------------------------------------------------------------------ abrupt changes a monitor's own test reports


class Alarmed(Monitor):
    """Reads a scripted sequence of (throughput, read fraction, alarm) windows."""

    name = "alarmed"

    def __init__(self, windows):
        self.windows = list(windows)

    def sample(self):
        value, reads, alarm = self.windows.pop(0)
        return {"throughput": value, "read_fraction": reads, Agent.ALARM: alarm}


class _Harbor(_Stub):
    """A stub policy whose fallback is a fixed config (None: it has none)."""

    def __init__(self, space, config, harbor, ready=False):
        super().__init__(space, config, expected=0.5, ready=ready)
        self.harbor, self.resets = harbor, 0

    def fallback(self, context, incumbent):
        return None if self.harbor is None or incumbent == self.harbor else dict(self.harbor)

    def reset(self, context):
        super().reset(context)
        self.resets += 1


def test_an_alarm_during_a_trial_rolls_it_back_falls_back_and_waits_one_window():
    system = Scripted()
    system.config = {"mode": "fast", "level": 3}
    harbor, candidate = {"mode": "slow", "level": 1}, {"mode": "fast", "level": 5}
    monitor = Alarmed([(100.0, 0.9, 0.0), (5.0, 0.5, 1.0), (20.0, 0.4, 0.0), (40.0, 0.1, 0.0), (41.0, 0.1, 0.0),
                       (90.0, 0.1, 0.0)])
    policy = _Harbor(system.space(), candidate, harbor, ready=True)
    agent = Agent(system, policy, [monitor], explore_every=None, baseline_windows=1)
    assert agent.step().action == "explore" and system.config == candidate
    agent.step()  # the alarm comes in the candidate's window
    assert [d.action for d in agent.decisions[-2:]] == ["rollback", "fallback"]
    assert system.config == harbor == agent.incumbent and agent.candidate is None
    assert agent.incumbent_values == [] and policy.resets == 1  # the straddling window is nobody's baseline
    policy._tries = 0  # a new regime's tries (the stub's reset keeps its own count)
    # the transient (a window that looks like neither workload) waits until two windows in a row agree
    assert [agent.step().reason for _ in range(2)] == ["after a change alarm: waiting for the new workload to settle"] * 2
    assert agent.step().action == "explore"  # 0.1 twice: the policy acts
    assert agent.incumbent_values == [41.0]  # the transient left the baseline
    assert agent.step().action == "keep" and agent.incumbent == candidate


def test_an_alarm_without_a_fallback_starts_a_new_regime_and_keeps_the_incumbent():
    system = Scripted()
    monitor = Alarmed([(100.0, 0.9, 0.0)] * 3 + [(50.0, 0.9, 1.0), (100.0, 0.9, 0.0)])
    policy = _Harbor(system.space(), {"mode": "fast", "level": 5}, None)
    policy._tries = 1
    agent = Agent(system, policy, [monitor], explore_every=None)
    actions = [agent.step().action for _ in range(5)]
    assert actions[3] == "workload-change" and "alarmed" in agent.decisions[3].reason
    assert agent.incumbent == {"mode": "slow", "level": 1} and system.applied == []
    assert agent.incumbent_values == [100.0]  # the alarm's window (50) left out


def test_rate_jump_test_alarms_soon_after_a_jump_and_rarely_otherwise():
    from autosys.online.change import RateJumpTest

    rng = np.random.default_rng(0)
    for rate in (0.03, 0.3, 0.5, 0.6):
        test = RateJumpTest()
        assert sum(test.update(bool(x)) for x in rng.random(100_000) < rate) == 0, rate  # no false alarm
        delay = next(i for i in range(1, 200) if test.update(True))  # then every event happens
        assert delay <= 60, (rate, delay)
    test = RateJumpTest()
    assert not any(test.update(True) for _ in range(20_000))  # a rate of 1 has no room to jump: the test rests
    test = RateJumpTest(warmup=50)
    for x in rng.random(1000) < 0.1:
        test.update(bool(x))
    test.reset()  # re-learns the rate: no alarm within the warm-up, whatever comes
    assert not any(test.update(True) for _ in range(50))
    for bad in ({"shift": 1.0}, {"threshold": 0}, {"min_jump": 0.9}, {"warmup": 0}):
        with pytest.raises(ValueError):
            RateJumpTest(**bad)
