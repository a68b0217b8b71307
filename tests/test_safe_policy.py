"""SafePolicy: predicts before it tries (safe-set proposals from a normalized prior of past studies)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from autosys.core.space import Float, Space
from autosys.core.system import Measurement, Objective, System
from autosys.online.agent import Agent, ChangeDetector, TunerPolicy
from autosys.online.monitor import Monitor
from autosys.online.safe_policy import PriorSource, SafePolicy, normalized_values, prior_from_knowledge_base

SPACE = Space([Float("x", 0.0, 1.0, default=0.5), Float("y", 0.0, 1.0, default=0.5)])
OPTIMUM = (0.75, 0.25)


def f(config, optimum=OPTIMUM, scale=1.0) -> float:
    """A smooth positive throughput with one peak (maximize)."""
    d2 = (config["x"] - optimum[0]) ** 2 + (config["y"] - optimum[1]) ** 2
    return scale * (20.0 + 100.0 * math.exp(-d2 / 0.08))


def source(name, n, seed, optimum=OPTIMUM, scale=1.0, context=None) -> PriorSource:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        c = SPACE.sample(rng)
        rows.append((c, f(c, optimum, scale)))
    return PriorSource(name, rows, context=dict(context or {}), reference=f(SPACE.default(), optimum, scale))


def run_loop(policy, incumbent, steps=8, margin=0.05, context=None):
    """Agent-like loop on the true function: returns how many proposals fell below the incumbent by more than `margin`."""
    context = context or {}
    value = f(incumbent)
    for _ in range(3):
        policy.observe(context, incumbent, value)
    violations = proposals = 0
    for _ in range(steps):
        candidate = policy.propose(context, incumbent)
        if candidate is None:
            break
        proposals += 1
        true = f(candidate)
        if true < (1 - margin) * value:
            violations += 1
        policy.observe(context, candidate, true)
        if true > 1.03 * value:  # the agent keeps a winner beyond noise
            incumbent, value = candidate, true
    return violations, proposals, value


def test_safe_policy_stays_within_the_margin_where_random_exploration_does_not():
    start = {"x": 0.35, "y": 0.6}  # a mediocre incumbent
    safe_clean, random_violations, gains = 0, 0, []
    seeds = range(5)
    for seed in seeds:
        policy = SafePolicy(SPACE, "maximize", [source("past", 80, seed)], margin=0.05, beta=2.0, seed=seed,
                            tries_per_regime=8)
        violations, proposals, final = run_loop(policy, dict(start))
        safe_clean += violations == 0
        gains.append(final / f(start))
        blind = TunerPolicy(SPACE, "maximize", tuner="random", seed=seed, tries_per_regime=8)
        random_violations += run_loop(blind, dict(start))[0]
    assert safe_clean >= len(seeds) - 1, f"safe policy violated the margin in {len(seeds) - safe_clean} of {len(seeds)} seeds"
    assert random_violations > 0
    assert np.median(gains) > 1.2  # and it still improves on the incumbent


def test_first_proposal_after_a_change_is_the_nearest_sources_best():
    near = source("read-heavy", 40, 1, optimum=(0.8, 0.2), context={"app.read_fraction": 0.9})
    far = source("write-heavy", 40, 2, optimum=(0.1, 0.9), context={"app.read_fraction": 0.1})
    policy = SafePolicy(SPACE, "maximize", [near, far], seed=0)
    context = {"read_fraction": 0.85}
    policy.reset(context)
    incumbent = SPACE.default()
    policy.observe(context, incumbent, 50.0)
    proposal = policy.propose(context, incumbent)
    assert proposal is not None
    assert abs(proposal["x"] - 0.8) < 0.15 and abs(proposal["y"] - 0.2) < 0.15
    # and the other workload's context leads to the other source's best
    other = SafePolicy(SPACE, "maximize", [near, far], seed=0)
    other.observe({"read_fraction": 0.05}, incumbent, 50.0)
    proposal = other.propose({"read_fraction": 0.05}, incumbent)
    assert abs(proposal["x"] - 0.1) < 0.15 and abs(proposal["y"] - 0.9) < 0.15


def test_no_safe_candidate_means_no_proposal():
    # the incumbent is the optimum the past study found: nothing is predicted to gain
    incumbent = {"x": OPTIMUM[0], "y": OPTIMUM[1]}
    past = source("past", 80, 3)
    past.rows.append((incumbent, f(incumbent)))
    policy = SafePolicy(SPACE, "maximize", [past], seed=0)
    policy.reset({})
    policy.observe({}, incumbent, f(incumbent))
    assert policy.propose({}, incumbent) is None
    # a prior that is pure noise: every candidate's pessimistic bound is too wide to be safe
    rng = np.random.default_rng(4)
    noise = PriorSource("noise", [(SPACE.sample(rng), float(rng.uniform(10, 1000))) for _ in range(60)], reference=100.0)
    policy = SafePolicy(SPACE, "maximize", [noise], margin=0.02, beta=3.0, seed=0)
    incumbent = SPACE.default()
    policy.observe({}, incumbent, 100.0)
    assert policy.propose({}, incumbent) is None
    assert policy.last["safe"] == 0


def test_sources_on_different_scales_are_normalized():
    small = source("here", 60, 5, optimum=(0.2, 0.2), scale=1.0)
    large = source("bigger host", 60, 6, optimum=(0.8, 0.8), scale=1000.0)
    assert np.allclose(normalized_values([1.0, 2.0], 1.0, "maximize"), normalized_values([1000.0, 2000.0], 1000.0, "maximize"))
    policy = SafePolicy(SPACE, "maximize", [small, large], seed=0)
    losses = {name: [y for n, _, y in policy.normalized_prior() if n == name] for name in ("here", "bigger host")}
    # the same landscape at 1000x reads the same after normalization (raw, their spreads differ 1000x)
    assert abs(np.ptp(losses["here"]) - np.ptp(losses["bigger host"])) < 0.5 * np.ptp(losses["here"])
    model, keys, _ = policy._fit({})
    at = lambda x, y: float(model.predict(policy._features({"x": x, "y": y}, np.zeros(len(keys)))[None, :])[0][0])  # noqa: E731
    # neither source dominates: both optima are predicted about equally good
    assert abs(at(0.2, 0.2) - at(0.8, 0.8)) < 0.5


def test_direction_mismatch_and_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="margin"):
        SafePolicy(SPACE, "maximize", margin=1.5)
    minimizing = PriorSource("latency", [(SPACE.default(), 3.0)], direction="minimize")
    with pytest.raises(ValueError, match="minimize"):
        SafePolicy(SPACE, "maximize", [minimizing])


def test_prior_from_a_missing_or_turned_off_knowledge_base_is_empty(tmp_path):
    assert prior_from_knowledge_base("sqlite", location=str(tmp_path / "absent.db")) == []
    assert prior_from_knowledge_base("sqlite", location="off") == []


class Peak(System):
    """Throughput is `f` of the live config; the read fraction says which workload runs (a test double)."""

    name = "peak"

    def __init__(self):
        self.config = SPACE.default()
        self.optimum = OPTIMUM
        self.read_fraction = 0.9

    def space(self):
        return SPACE

    @property
    def objective(self):
        return Objective("throughput", "maximize")

    def evaluate(self, config):
        return Measurement({"throughput": f(config, self.optimum)})

    def apply(self, config):
        self.config = dict(config)

    def current(self):
        return dict(self.config)


class PeakMonitor(Monitor):
    name = "peak"

    def __init__(self, system):
        self.system, self.rng = system, np.random.default_rng(0)

    def sample(self):
        value = f(self.system.config, self.system.optimum) * (1 + 0.01 * self.rng.standard_normal())
        return {"throughput": value, "read_fraction": self.system.read_fraction}


def test_the_agent_with_a_prior_jumps_to_each_workloads_best_and_explores_little():
    system = Peak()
    reads = source("reads", 40, 7, optimum=OPTIMUM, context={"peak.read_fraction": 0.9})
    writes = source("writes", 40, 8, optimum=(0.15, 0.85), context={"peak.read_fraction": 0.1})
    policy = SafePolicy(SPACE, "maximize", [reads, writes], seed=0)
    agent = Agent(system, policy, [PeakMonitor(system)], explore_every=None)
    for _ in range(12):
        agent.step()
    assert abs(agent.incumbent["x"] - OPTIMUM[0]) < 0.15 and abs(agent.incumbent["y"] - OPTIMUM[1]) < 0.15
    system.optimum, system.read_fraction = (0.15, 0.85), 0.1  # the workload changes
    for _ in range(14):
        agent.step()
    assert abs(agent.incumbent["x"] - 0.15) < 0.15 and abs(agent.incumbent["y"] - 0.85) < 0.15
    counts = agent.counts()
    assert counts.get("workload-change", 0) >= 1
    assert counts.get("explore", 0) <= 2 * policy.tries_per_regime


def test_cli_agent_takes_the_safe_policy(tmp_path):
    env = {**os.environ, "AUTOSYS_KB": str(tmp_path / "kb.db")}  # an empty knowledge base: no prior, live windows only
    done = subprocess.run([sys.executable, "-m", "autosys", "agent", "sqlite-service", "--dir", str(tmp_path / "agent"),
                           "--duration", "0.5", "--records", "300", "--policy", "safe"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "safe policy: a prior of 0 past studies" in done.stderr


def test_a_rolled_back_jump_is_rechecked_once_then_left_alone():
    near = source("read-heavy", 40, 1, optimum=(0.8, 0.2), context={"app.read_fraction": 0.9})
    policy = SafePolicy(SPACE, "maximize", [near], seed=0, tries_per_regime=4)
    context, incumbent = {"read_fraction": 0.9}, SPACE.default()
    policy.reset(context)
    policy.observe(context, incumbent, f(incumbent))
    jump = policy.propose(context, incumbent)
    policy.observe(context, jump, 0.5 * f(incumbent))  # one unlucky window on a loaded host...
    policy.observe(context, incumbent, f(incumbent))  # ...and the agent rolled it back
    assert policy.propose(context, incumbent) == jump  # the prior still predicts a clear gain: re-checked once
    policy.observe(context, jump, 0.5 * f(incumbent))
    policy.observe(context, incumbent, f(incumbent))
    assert policy.propose(context, incumbent) != jump
    # and after a later change back to this workload it is not jumped to again
    policy.reset(context)
    policy.observe(context, incumbent, f(incumbent))
    assert policy.propose(context, incumbent) != jump


def _two_workloads():
    """Two past workloads whose bests are each bad on the other; the default is fair on both."""
    reads = PriorSource("reads", [({"x": 0.9, "y": 0.1}, 300.0), ({"x": 0.1, "y": 0.9}, 10.0), (SPACE.default(), 100.0)],
                        context={"app.read_fraction": 0.9}, reference=100.0)
    writes = PriorSource("writes", [({"x": 0.9, "y": 0.1}, 10.0), ({"x": 0.1, "y": 0.9}, 300.0), (SPACE.default(), 100.0)],
                         context={"app.read_fraction": 0.1}, reference=100.0)
    return reads, writes


def test_a_window_between_two_workloads_is_not_taken_for_either():
    reads, writes = _two_workloads()
    policy = SafePolicy(SPACE, "maximize", [reads, writes], seed=0)
    groups, recognized = policy.workloads_near({"read_fraction": 0.85})
    assert recognized and [s.name for s in groups[0]] == ["reads"]
    groups, recognized = policy.workloads_near({"read_fraction": 0.5})  # a window straddling a change
    assert not recognized and sorted(s.name for g in groups for s in g) == ["reads", "writes"]
    # between them, the best across both is the default (each workload's best is 30x worse on the other)
    assert policy._best_of(groups) == SPACE.default()
    assert policy._best_of(groups[:1]) == {"x": 0.9, "y": 0.1}


def test_between_two_workloads_the_policy_waits_then_jumps_to_the_recognized_ones_best():
    reads, writes = _two_workloads()
    policy = SafePolicy(SPACE, "maximize", [reads, writes], seed=0)
    incumbent = SPACE.default()
    policy.observe({"read_fraction": 0.5}, incumbent, 100.0)
    # the best across both is the incumbent: nothing to jump to yet, so wait (a bounded number of windows)
    assert not policy.ready({"read_fraction": 0.5}, incumbent)
    assert [policy.wait({"read_fraction": 0.5}, incumbent) for _ in range(policy.max_wait + 1)] == [True] * policy.max_wait + [False]
    policy.reset({"read_fraction": 0.12})
    policy.observe({"read_fraction": 0.12}, incumbent, 100.0)
    assert not policy.wait({"read_fraction": 0.12}, incumbent)
    assert policy.ready({"read_fraction": 0.12}, incumbent)  # recognized: its best is due after one window
    jump = policy.propose({"read_fraction": 0.12}, incumbent)
    assert jump == {"x": 0.1, "y": 0.9}
    assert policy.expected_gain(jump) > 0.5  # the model, fit on the prior, predicts a clear gain for it
    assert not policy.ready({"read_fraction": 0.12}, jump)  # once tried, the jump is not due again


def test_a_config_confirmed_in_several_runs_beats_one_lucky_trial():
    lucky, steady = {"x": 0.2, "y": 0.2}, {"x": 0.8, "y": 0.8}
    runs = PriorSource("runs", [(lucky, 330.0), (steady, 300.0), (steady, 310.0), (steady, 290.0), (SPACE.default(), 100.0)],
                       context={"app.read_fraction": 0.9}, reference=100.0)
    policy = SafePolicy(SPACE, "maximize", [runs], seed=0)
    assert policy._best_of([[runs]]) == steady


def test_the_agent_jumps_after_one_window_and_in_the_window_that_shows_a_change():
    system = Peak()
    reads = source("reads", 40, 7, optimum=OPTIMUM, context={"peak.read_fraction": 0.9})
    writes = source("writes", 40, 8, optimum=(0.15, 0.85), context={"peak.read_fraction": 0.1})
    policy = SafePolicy(SPACE, "maximize", [reads, writes], seed=0)
    agent = Agent(system, policy, [PeakMonitor(system)], explore_every=None, baseline_windows=3)
    first = agent.step()
    assert first.action == "explore" and first.window == 1  # no 3-window baseline on a config tuned for nothing
    for _ in range(10):
        agent.step()
    system.optimum, system.read_fraction = (0.15, 0.85), 0.1  # the workload changes
    steps = [agent.step() for _ in range(4)]
    changed = [d for d in agent.decisions if d.action == "workload-change"]
    assert changed, [d.action for d in agent.decisions]
    after = [d for d in agent.decisions if d.window == changed[0].window]
    assert [d.action for d in after] == ["workload-change", "explore"]  # the known-good config at once
    assert steps[-1].action in ("keep", "measure") and abs(agent.incumbent["y"] - 0.85) < 0.15


def test_a_regime_whose_first_windows_looked_like_another_workload_gets_its_own_best():
    reads, writes = _two_workloads()
    policy = SafePolicy(SPACE, "maximize", [reads, writes], seed=0, tries_per_regime=3)
    incumbent = SPACE.default()
    policy.observe({"read_fraction": 0.9}, incumbent, 100.0)  # a cold first window that looks like reads
    first = policy.propose({"read_fraction": 0.9}, incumbent)
    assert first == {"x": 0.9, "y": 0.1}
    policy.observe({"read_fraction": 0.9}, first, 300.0)
    assert not policy.ready({"read_fraction": 0.88}, first)  # still reads: nothing due
    # the workload settles and is recognized as writes, with no change detected: the writes' best is due now
    policy.observe({"read_fraction": 0.1}, first, 10.0)
    assert policy.ready({"read_fraction": 0.1}, first)
    assert policy.propose({"read_fraction": 0.1}, first) == {"x": 0.1, "y": 0.9}


def test_the_agent_acts_on_a_workload_recognized_late_even_when_done_exploring():
    system = Peak()
    reads = source("reads", 40, 7, optimum=OPTIMUM, context={"peak.read_fraction": 0.9})
    writes = source("writes", 40, 8, optimum=(0.15, 0.85), context={"peak.read_fraction": 0.1})
    policy = SafePolicy(SPACE, "maximize", [reads, writes], seed=0)
    never = ChangeDetector(threshold=10.0)  # neither change test fires: only the policy's recognition acts
    agent = Agent(system, policy, [PeakMonitor(system)], explore_every=None, detector=never, objective_shift=100.0)
    for _ in range(8):
        agent.step()
    assert not agent._exploring and abs(agent.incumbent["x"] - OPTIMUM[0]) < 0.15
    system.optimum, system.read_fraction = (0.15, 0.85), 0.1
    for _ in range(4):
        agent.step()
    assert "workload-change" not in [d.action for d in agent.decisions]
    assert abs(agent.incumbent["x"] - 0.15) < 0.15 and abs(agent.incumbent["y"] - 0.85) < 0.15


def test_no_jump_when_the_past_workload_shows_the_incumbent_about_as_good():
    incumbent, slightly = {"x": 0.9, "y": 0.1}, {"x": 0.2, "y": 0.7}
    runs = PriorSource("runs", [(incumbent, 300.0), (slightly, 303.0), (SPACE.default(), 100.0)],
                       context={"app.read_fraction": 0.9}, reference=100.0)
    policy = SafePolicy(SPACE, "maximize", [runs], seed=0, min_gain=0.03)
    policy.observe({"read_fraction": 0.9}, incumbent, 300.0)
    assert not policy.ready({"read_fraction": 0.9}, incumbent)  # +1% as measured there: not worth a live window
    assert policy.propose({"read_fraction": 0.9}, incumbent) != slightly
    # the same evidence against a worse incumbent makes it due
    fresh = SafePolicy(SPACE, "maximize", [runs], seed=0, min_gain=0.03)
    fresh.observe({"read_fraction": 0.9}, SPACE.default(), 100.0)
    assert fresh.ready({"read_fraction": 0.9}, SPACE.default())


def test_a_share_of_operations_missing_from_the_window_counts_as_zero():
    def rows():
        return [(SPACE.default(), 100.0)]
    reads = PriorSource("reads", rows(), context={"app.get_fraction": 0.95, "app.put_fraction": 0.05}, reference=100.0)
    writes = PriorSource("writes", rows(), context={"app.get_fraction": 0.1, "app.put_fraction": 0.9}, reference=100.0)
    scans = PriorSource("scans", rows(), context={"app.get_fraction": 0.22, "app.put_fraction": 0.1,
                                                  "app.scan_fraction": 0.68}, reference=100.0)
    policy = SafePolicy(SPACE, "maximize", [reads, writes, scans], seed=0)
    # a window straddling reads -> writes has no scans, so no scan_fraction: it lies between reads and writes (left
    # out, the key would make scans, (0.22, 0.1) on the other two keys, the nearest)
    groups, recognized = policy.workloads_near({"get_fraction": 0.5, "put_fraction": 0.5})
    assert not recognized and sorted(s.name for g in groups for s in g) == ["reads", "writes"]
    groups, recognized = policy.workloads_near({"get_fraction": 0.72, "put_fraction": 0.28})
    assert recognized and [s.name for s in groups[0]] == ["reads"]


def test_fallback_is_the_best_worst_case_config_only_when_the_incumbent_is_known_to_lose_to_the_default():
    from autosys.core.space import Categorical

    space = Space([Categorical("policy", ("lru", "lfu", "random", "fifo"), default="lru")])
    miss = {  # miss ratios (minimize) per past workload: lfu wins the first by far and loses the second by far
        "hot": {"lru": 0.72, "lfu": 0.51, "random": 0.76, "fifo": 0.70},
        "drift": {"lru": 0.03, "lfu": 0.59, "random": 0.07, "fifo": 0.029},
    }
    prior = [PriorSource(name, [({"policy": p}, v) for p, v in values.items()], {"new_page_fraction": ctx},
                         reference=values["lru"], direction="minimize")
             for (name, values), ctx in zip(miss.items(), (0.5, 0.03))]
    policy = SafePolicy(space, "minimize", prior)
    assert len(policy.workloads()) == 2
    # fifo's worst case (0.70 vs 0.72 and 0.029 vs 0.03) beats the default's: it is the harbor
    assert policy.fallback({}, {"policy": "lfu"}) == {"policy": "fifo"}
    assert "default" in policy.explain()
    assert policy.fallback({}, {"policy": "lru"}) is None  # never below the default in a known workload
    assert policy.fallback({}, {"policy": "fifo"}) is None  # the harbor itself
    assert SafePolicy(space, "minimize", []).fallback({}, {"policy": "lfu"}) is None  # no prior: nothing known
    # the kv case: every past config beats the default everywhere, so the incumbent is never left for a harbor
    good = [PriorSource(n, [({"policy": "lru"}, 1.0), ({"policy": "lfu"}, 0.5)], {"new_page_fraction": c},
                        reference=1.0, direction="minimize") for n, c in (("a", 0.1), ("b", 0.9))]
    assert SafePolicy(space, "minimize", good).fallback({}, {"policy": "lfu"}) is None
