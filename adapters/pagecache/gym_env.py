"""A gymnasium environment where an agent picks the page to evict (Park-style),
and a REINFORCE baseline trained on it.

Each step is one eviction decision: the observation holds the features of
`candidates` pages sampled from the full cache (see learned.features_of), the
action is the index of the victim, and the reward is the number of hits until
the next eviction decision. An episode covers the trace (or its first
`max_requests` requests). The simulation between decisions runs in numba.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from autosys_adapters.pagecache import learned
from autosys_adapters.pagecache.learned import N_FEATURES, SampledState, advance, evict_insert, features_of
from autosys_adapters.pagecache.traces import PreparedTrace, Trace


class PageEvictionEnv(gym.Env):
    """Choose the victim among sampled cached pages; reward = hits until the next miss that needs an eviction."""

    metadata = {"render_modes": []}

    def __init__(self, trace: Trace | PreparedTrace, capacity: int, candidates: int = 8, max_requests: int | None = None):
        self.trace = trace if isinstance(trace, PreparedTrace) else PreparedTrace.of(trace)
        if capacity < 1:
            raise ValueError("capacity must be at least one page")
        self.capacity = int(capacity)
        self.candidates = int(candidates)
        self.end = len(self.trace) if max_requests is None else min(len(self.trace), int(max_requests))
        self.observation_space = gym.spaces.Box(0.0, 32.0, shape=(self.candidates, N_FEATURES), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.candidates)
        self._state: SampledState | None = None

    def _observe(self) -> np.ndarray:
        s = self._state
        self._cand = s.cache[self.np_random.integers(0, int(s.size[0]), size=self.candidates)]
        obs = np.empty((self.candidates, N_FEATURES))
        for i, y in enumerate(self._cand):
            features_of(int(y), self._t, s.hist, s.freq, s.taus, s.ins, obs[i])
        return obs.astype(np.float32)

    def _advance(self) -> int:
        s, tr = self._state, self.trace
        self._t, hits = advance(tr.ids, self._t, self.end, self.capacity, s.cache, s.where, s.hist, s.last_idx,
                                s.freq, s.taus, s.ins, s.size, s.miss)
        return int(hits)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = SampledState(self.trace.n_obj, self.capacity, len(self.trace))
        self._t = 0
        self._advance()
        if self._t >= self.end:
            raise ValueError("the trace never fills the cache: use a smaller capacity")
        return self._observe(), {"t": self._t}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        s, tr = self._state, self.trace
        evict_insert(tr.ids, self._t, int(self._cand[int(action)]), s.cache, s.where, s.hist, s.last_idx, s.freq,
                     s.taus, s.ins, s.size, s.miss)
        self._t += 1
        hits = self._advance()
        done = self._t >= self.end
        obs = np.zeros(self.observation_space.shape, np.float32) if done else self._observe()
        info = {"t": self._t, "misses": int(s.miss[: self._t].sum())}
        return obs, float(hits), done, False, info

    def miss_ratio(self) -> float:
        """Miss ratio of the requests processed so far in this episode."""
        return float(self._state.miss[: self._t].sum()) / max(1, self._t)


def train_reinforce(
    trace: Trace | PreparedTrace,
    capacity: int,
    candidates: int = 8,
    train_requests: int = 30_000,
    episodes: int = 6,
    lr: float = 0.02,
    gamma: float = 0.95,
    seed: int = 0,
) -> np.ndarray:
    """REINFORCE with a linear softmax policy over candidates (scores = features @ w).

    Returns the weights; the greedy policy (evict the argmax score) runs in numba
    via learned.run_linear. The weights start at an LRU-like prior (score = age).
    """
    env = PageEvictionEnv(trace, capacity, candidates, max_requests=train_requests)
    rng = np.random.default_rng(seed)
    w = np.zeros(N_FEATURES)
    w[0] = 1.0  # age since last access: the LRU prior
    baseline = None
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        grads, rewards = [], []
        done = False
        while not done:
            x = obs.astype(np.float64)
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            a = int(rng.choice(len(p), p=p))
            grads.append(x[a] - p @ x)
            obs, r, done, _, _ = env.step(a)
            rewards.append(r)
        returns = np.zeros(len(rewards))
        acc = 0.0
        for i in range(len(rewards) - 1, -1, -1):
            acc = rewards[i] + gamma * acc
            returns[i] = acc
        mean = returns.mean()
        baseline = mean if baseline is None else 0.5 * baseline + 0.5 * mean
        adv = (returns - baseline) / (returns.std() + 1e-8)
        g = (np.array(grads) * adv[:, None]).mean(axis=0)
        w += lr * g / (np.linalg.norm(g) + 1e-8)
    return w


def run_rl(tr, cap, weights=None, sample: int = 8, train_requests: int = 30_000, episodes: int = 6, seed: int = 0, **_):
    """The RL baseline: train a linear REINFORCE policy on a prefix of the trace, then run it greedily."""
    if weights is None:
        weights = train_reinforce(tr, cap, candidates=sample, train_requests=train_requests, episodes=episodes, seed=seed)
    return learned.run_linear(tr, cap, weights, sample, seed)
