"""The online page cache's per-request change test, and an agent that never leaves a phase below the default."""

import numpy as np

from autosys_adapters.pagecache.app import AdaptiveCache, PageCacheApp
from autosys.online.agent import Agent, ChangeDetector, Guardrails
from autosys.online.change import RateJumpTest
from autosys.online.safe_policy import PriorSource, SafePolicy


def hot_stream(n, hot, seed, base):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.5, base + rng.integers(0, hot, n), base + 10**7 + np.arange(n)).tolist()


def drifting(n, hot, seed, base):
    rng = np.random.default_rng(seed)
    return (base + np.arange(n) // 40 + rng.integers(0, hot, n)).tolist()


def test_a_new_working_set_alarms_within_tens_of_requests_and_the_reading_says_so_once():
    cache = AdaptiveCache(1000, "lfu", change_test=RateJumpTest())
    for page in hot_stream(20_000, 700, 0, 0):
        cache.access(page)
    assert not cache.alarm  # a steady workload: no alarm
    assert cache.window_reading()[Agent.ALARM] == 0.0
    for i, page in enumerate(drifting(2_000, 700, 1, 10**9)):
        cache.access(page)
        if cache.alarm:
            break
    assert cache.alarm and i < 80, i
    assert cache.window_reading()[Agent.ALARM] == 1.0 and cache.window_reading()[Agent.ALARM] == 0.0
    cache.set_policy("lru")
    assert cache.change_test.n == 0  # a new policy has its own miss rate: the test re-learns it
    assert Agent.ALARM not in AdaptiveCache(10).window_reading()  # no test, no reading


def test_lfu_aging_does_not_depend_on_how_often_the_cache_is_read():
    pages = hot_stream(30_000, 70, 2, 0) + drifting(30_000, 70, 3, 10**9)
    read, unread = AdaptiveCache(100, "lfu", aging_period=2), AdaptiveCache(100, "lfu", aging_period=2)
    hits = [0, 0]
    for i, page in enumerate(pages):
        hits[0] += read.access(page)
        hits[1] += unread.access(page)
        if i % 500 == 0:
            read.window_reading()
    assert hits[0] == hits[1]


def run(policy_factory, phases, capacity, window, alarms):
    app = PageCacheApp(capacity)
    app.cache.set_policy("lru")
    if alarms:
        app.cache.change_test = RateJumpTest()
    agent = Agent(app, policy_factory(app), guardrails=Guardrails(change_budget=1000, min_relative_gain=0.02, settle_windows=1),
                  detector=ChangeDetector(threshold=0.01, z=6.0, confirm=1), context_features=["new_page_fraction"],
                  baseline_windows=1, explore_every=None)
    per_phase, n = [0] * len(phases), 0
    for index, pages in enumerate(phases):
        for page in pages:
            per_phase[index] += app.cache.access(page)
            n += 1
            if n == window or app.cache.alarm:
                agent.step()
                n = 0
    return per_phase, agent


def test_the_agent_with_alarms_keeps_a_drift_after_an_lfu_phase_level_with_lru():
    capacity, window = 1000, 2000
    # the prior: each policy's hit ratio on each phase kind, measured offline on other seeds
    prior = []
    for name, pages, ctx in (("hot", hot_stream(40_000, 700, 10, 0), 0.5), ("drift", drifting(40_000, 700, 11, 0), 0.03)):
        hit = {}
        for policy in ("lru", "lfu", "fifo", "random"):
            cache = AdaptiveCache(capacity, policy)
            hit[policy] = sum(cache.access(p) for p in pages) / len(pages)
        prior.append(PriorSource(name, [({"policy": p}, h) for p, h in hit.items()], {"new_page_fraction": ctx},
                                 reference=hit["lru"]))
    phases = [hot_stream(40_000, 700, 0, 0), drifting(40_000, 700, 1, 10**8)]
    lru = AdaptiveCache(capacity, "lru")
    static = [sum(lru.access(p) for p in pages) for pages in phases]
    factory = lambda app: SafePolicy(app.space(), "maximize", prior, tries_per_regime=2, min_gain=0.02)  # noqa: E731
    with_alarms, agent = run(factory, phases, capacity, window, alarms=True)
    without, _ = run(factory, phases, capacity, window, alarms=False)
    assert with_alarms[0] > 1.3 * static[0]  # lfu found for the hot set
    assert with_alarms[1] >= static[1] > without[1]  # the drift: level with lru only with the alarm
    assert agent.counts().get("fallback", 0) >= 1
