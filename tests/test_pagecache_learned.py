"""Learned policies and the gymnasium eviction environment."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="the page-cache simulator compiles its kernels with numba (pip install autosys-toolkit[compiled])")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache.gym_env import PageEvictionEnv, train_reinforce  # noqa: E402
from autosys_adapters.pagecache.learned import N_FEATURES  # noqa: E402
from autosys_adapters.pagecache.simulator import PreparedTrace, capacity_of, simulate  # noqa: E402


@pytest.fixture(scope="module")
def mixed():
    return PreparedTrace.of(T.scan_loop_hot(40_000, seed=3))


def test_lecar_learns_toward_the_better_expert():
    # a loop just over the cache: MRU is right and LRU always wrong; the mixture must follow MRU
    tr = PreparedTrace.of(T.loop(20_000, 120))
    lru = simulate(tr, 100, "lru").miss_ratio
    mix = simulate(tr, 100, "lecar", experts=("lru", "lfu", "mru"), learning_rate=0.5).miss_ratio
    assert lru == 1.0 and mix < 0.5


def test_lecar_is_seeded(mixed):
    cap = capacity_of(0.05, mixed.n_obj)
    a = simulate(mixed, cap, "lecar", experts=("lru", "lfu", "fifo"), seed=1).misses
    assert a == simulate(mixed, cap, "lecar", experts=("lru", "lfu", "fifo"), seed=1).misses


@pytest.mark.slow  # about 20 s on a loaded 2-core machine: gradient boosting retrained 8 times
def test_lrb_trains_and_beats_its_untrained_self(mixed):
    cap = capacity_of(0.1, mixed.n_obj)
    untrained = simulate(mixed, cap, "lrb", retrain=10 ** 9).miss_ratio  # never retrains: sampled LRU
    trained = simulate(mixed, cap, "lrb", retrain=5_000, trees=10).miss_ratio
    opt = simulate(mixed, cap, "belady").miss_ratio
    assert opt <= trained < untrained


def test_env_conforms_to_gymnasium(mixed):
    env = PageEvictionEnv(mixed, 200, candidates=4, max_requests=3_000)
    check_env(env, skip_render_check=True)


def test_env_episode_accounts_every_request(mixed):
    env = PageEvictionEnv(mixed, 200, candidates=4, max_requests=5_000)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, N_FEATURES)
    steps, hits, done = 0, 0.0, False
    while not done:
        obs, r, done, _, info = env.step(env.action_space.sample())
        hits += r
        steps += 1
    # misses = fills + one per eviction decision; hits are the rewards (plus hits before the first decision)
    misses = info["misses"]
    assert misses == 200 + steps
    assert 0 < env.miss_ratio() < 1
    with pytest.raises(ValueError, match="not in"):
        env.step(7)


def test_reinforce_returns_finite_weights_and_a_working_policy(mixed):
    cap = capacity_of(0.1, mixed.n_obj)
    w = train_reinforce(mixed, cap, candidates=4, train_requests=4_000, episodes=2, seed=0)
    assert w.shape == (N_FEATURES,) and np.all(np.isfinite(w))
    r = simulate(mixed, cap, "rl", weights=w, sample=4)
    assert simulate(mixed, cap, "belady").miss_ratio <= r.miss_ratio < 1
