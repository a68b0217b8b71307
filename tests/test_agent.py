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
