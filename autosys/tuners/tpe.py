"""Tree-structured Parzen estimator (Bergstra et al., 2011), in numpy, as a tuner and a meta-tuner member.

TPE splits the results into the best few ("good": the best `gamma` share, at
most `max_good`) and the rest, fits a Parzen density to each in the unit cube
(truncated Gaussians for numbers, smoothed counts for categories, plus one
broad prior kernel), draws candidates from the good density and keeps the one
with the largest good/rest density ratio. Like Optuna's default for one
objective (multivariate since Optuna 4/5), a candidate is drawn from one good
result's kernel in every knob at once, so knobs that interact stay together;
`multivariate=False` draws and scores each knob on its own (Optuna's old
default). Knobs of a conditional space (those with a condition) are always
drawn one by one, from the results where they were active.

What it adds to BO: it samples inside the region the good results share even
where no smooth model fits them. On multimodal objectives whose overall trend
is a bowl (Rastrigin-like), BO's GP fitted to ~100 points in 10-D often
declares half the knobs irrelevant, and local steps get stuck in the nearest
dip; TPE keeps narrowing every knob towards the bowl.

Kernel widths follow Optuna's defaults (distance to the neighbouring
observations in each knob, clipped to [1/min(100, n + 1), 1] of the range), so
its published behaviour is a fair yardstick; Optuna itself is not needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from autosys.core.space import Categorical, Config, InvalidConfig, Space
from autosys.tuners.base import Tuner

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def recency_weights(n: int, flat: int = 25) -> np.ndarray:
    """Optuna's weights for `n` results in the order told: the newest `flat` weigh 1, older ones ramp down."""
    if n <= flat:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - flat), np.ones(flat)])


class _NumericKernels:
    """One Gaussian kernel truncated to [0, 1] per observation, plus a broad prior kernel (last) at 0.5."""

    def __init__(self, points: np.ndarray):
        n = len(points)
        order = np.argsort(points)
        edged = np.concatenate([[0.0], points[order], [1.0]])
        sig = np.maximum(edged[1:-1] - edged[:-2], edged[2:] - edged[1:-1])
        if n >= 2:  # the outermost kernels look at their inner neighbour only (Optuna: consider_endpoints=False)
            sig[0], sig[-1] = edged[2] - edged[1], edged[-2] - edged[-3]
        sigmas = np.empty(n)
        sigmas[order] = sig
        sigmas = np.clip(sigmas, 1.0 / min(100.0, n + 2.0), 1.0)  # n kernels + the prior
        self.mu = np.append(points, 0.5)
        self.sigma = np.append(sigmas, 1.0)
        self.lo = ndtr(-self.mu / self.sigma)
        self.mass = np.maximum(ndtr((1.0 - self.mu) / self.sigma) - self.lo, 1e-300)
        self._log_norm = np.log(self.sigma * self.mass) + _LOG_SQRT_2PI

    def draw(self, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One value from each kernel in `k` (inverse-CDF sampling of the truncated Gaussian)."""
        u = self.lo[k] + rng.random(len(k)) * self.mass[k]
        return np.clip(self.mu[k] + self.sigma[k] * ndtri(np.clip(u, 1e-300, 1.0 - 1e-16)), 0.0, 1.0)

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """(len(x), n kernels) log densities."""
        z = (x[:, None] - self.mu[None, :]) / self.sigma[None, :]
        return -0.5 * z * z - self._log_norm


class _CategoricalKernels:
    """One smoothed one-hot kernel per observation over a knob's choices, plus a uniform prior kernel (last)."""

    def __init__(self, choices: np.ndarray, n_choices: int, prior_weight: float):
        n_kernels = len(choices) + 1
        table = np.full((n_kernels, n_choices), prior_weight / n_kernels)
        table[np.arange(len(choices)), choices] += 1.0
        self.table = table / table.sum(1, keepdims=True)

    def draw(self, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cum = np.cumsum(self.table[k], axis=1)
        cum[:, -1] = 1.0
        return (cum < rng.random(len(k))[:, None]).sum(1)

    def log_pdf(self, idx: np.ndarray) -> np.ndarray:
        return np.log(self.table[:, idx.astype(int)].T)


class _Parzen:
    """A mixture over kernels shared by a group of knobs: a product over the group's knobs per kernel."""

    def __init__(self, kernels: list, weights: np.ndarray, prior_weight: float):
        w = np.append(weights, prior_weight)
        self.kernels, self.w = kernels, w / w.sum()

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        k = rng.choice(len(self.w), size=size, p=self.w)
        return np.column_stack([kern.draw(k, rng) for kern in self.kernels])

    def log_pdf(self, X: np.ndarray) -> np.ndarray:
        total = np.log(self.w)[None, :] + sum(kern.log_pdf(X[:, j]) for j, kern in enumerate(self.kernels))
        return logsumexp(total, axis=1)


class ParzenTuner(Tuner):
    """TPE: draw from the density of the best results, keep the draw they explain best compared with the rest.

    Parameters
    ----------
    n_initial: random configs before the densities are used (default 10, as Optuna).
    gamma: share of results that count as good (at most `max_good`, at least one).
    max_good: cap on the number of good results (Optuna: 25).
    n_candidates: draws per ask, scored by the density ratio (Optuna: 24).
    prior_weight: weight of the broad prior kernel in each density.
    multivariate: draw all unconditional knobs from one kernel (default, Optuna's default) or each on its own.

    Failed trials join the rest, so their region becomes less likely; so do pending trials (a constant
    liar, as Optuna does), so parallel asks spread out.
    """

    name = "tpe"

    def __init__(
        self,
        space: Space,
        *,
        n_initial: int = 10,
        gamma: float = 0.1,
        max_good: int = 25,
        n_candidates: int = 24,
        prior_weight: float = 1.0,
        multivariate: bool = True,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        if len(space) == 0:
            raise ValueError("TPE needs a space with at least one parameter")
        if not 0.0 < gamma < 1.0:
            raise ValueError("gamma must lie in (0, 1)")
        if n_candidates < 1 or max_good < 1 or prior_weight <= 0:
            raise ValueError("n_candidates and max_good must be at least 1, prior_weight positive")
        self.n_initial = int(n_initial)
        self.gamma, self.max_good = float(gamma), int(max_good)
        self.n_candidates, self.prior_weight = int(n_candidates), float(prior_weight)
        self.multivariate = bool(multivariate)
        self.params = list(space)
        # knob groups drawn together: the unconditional knobs (when multivariate), then one group per other knob
        joint = [j for j, p in enumerate(self.params) if p.condition is None] if self.multivariate else []
        self.groups = ([joint] if joint else []) + [[j] for j in range(len(self.params)) if j not in joint]

    def _split(self) -> tuple[list[Config], list[Config], np.ndarray]:
        """(good configs, the rest in the order told with failures and pending trials, the rest's recency weights)."""
        told = [(t.config, self.loss(r)) for t, r in self.history]
        done = sorted(((l, i) for i, (_, l) in enumerate(told) if l is not None))
        n_good = max(1, min(math.ceil(self.gamma * len(done)), self.max_good))
        good_ids = {i for _, i in done[:n_good]}
        good = [told[i][0] for _, i in done[:n_good]]
        rest = [c for i, (c, _) in enumerate(told) if i not in good_ids]
        rest += [t.config for t in self.pending.values()]  # Optuna's constant liar: pending trials count as bad
        return good, rest, recency_weights(len(rest))

    def _kernels(self, j: int, configs: list[Config]):
        p = self.params[j]
        if isinstance(p, Categorical):
            idx = np.array([p.index(c[p.name]) for c in configs], int)
            return _CategoricalKernels(idx, len(p.choices), self.prior_weight)
        return _NumericKernels(np.array([p.to_unit(c[p.name]) for c in configs], float))

    def _density(self, group: list[int], configs: list[Config], weights: np.ndarray) -> _Parzen:
        names = [self.params[j].name for j in group]
        active = [k for k, c in enumerate(configs) if all(n in c for n in names)]
        chosen = [configs[k] for k in active]
        return _Parzen([self._kernels(j, chosen) for j in group], weights[active], self.prior_weight)

    def _ask(self) -> Config:
        if len(self.observations) < max(self.n_initial, 2):
            return self.space.sample(self.rng)
        good, rest, rest_w = self._split()
        dens = [(g, self._density(g, good, np.ones(len(good))), self._density(g, rest, rest_w)) for g in self.groups]
        base = self.space.encode(min(self.observations, key=lambda o: o[1])[0])
        seen = {self.space.config_key(t.config) for t, _ in self.history}
        seen.update(self.space.config_key(t.config) for t in self.pending.values())
        for _ in range(20):
            u = base.copy()
            for group, l_dens, g_dens in dens:
                draws = l_dens.sample(self.rng, self.n_candidates)
                best = draws[int(np.argmax(l_dens.log_pdf(draws) - g_dens.log_pdf(draws)))]
                for j, value in zip(group, best):
                    p = self.params[j]
                    u[j] = (value + 0.5) / len(p.choices) if isinstance(p, Categorical) else value
            try:
                config = self.space.validate(self.space.decode(u))
            except InvalidConfig:
                continue
            if self.space.config_key(config) not in seen:
                return config
        return self.space.sample(self.rng)
