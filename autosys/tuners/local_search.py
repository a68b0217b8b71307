"""Local search: a (1+λ)-style evolution strategy around the best config.

A cheap, model-free member for the meta-tuner: after a few random points it
mutates the incumbent in the unit cube (Gaussian steps on numbers, a random
other choice for categoricals) and adapts its step size with the 1/5th
success rule, restarting from a random point when the step size collapses.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from autosys.core.space import Categorical, Config, InvalidConfig, Space
from autosys.tuners.base import Tuner


class LocalSearch(Tuner):
    """Mutate the best config seen so far; step size adapts to the success rate."""

    name = "local"

    def __init__(self, space: Space, *, n_initial: int = 5, sigma: float = 0.15, **kwargs: Any):
        super().__init__(space, **kwargs)
        self.n_initial = n_initial
        self.sigma0 = sigma
        self.sigma = sigma
        self._best_loss: float | None = None

    def _ask(self) -> Config:
        obs = self.observations
        if len(obs) < self.n_initial:
            return self.space.sample(self.rng)
        best_config = min(obs, key=lambda o: o[1])[0]
        u = self.space.encode(best_config)
        params = list(self.space)
        for _ in range(100):
            v = u.copy()
            # change each coordinate with probability ~2/d, at least one
            mask = self.rng.random(len(v)) < min(1.0, 2.0 / len(v))
            mask[self.rng.integers(len(v))] = True
            for j in np.flatnonzero(mask):
                if isinstance(params[j], Categorical):
                    v[j] = self.rng.random()
                else:
                    v[j] = float(np.clip(v[j] + self.rng.normal(0.0, self.sigma), 0.0, 1.0))
            try:
                config = self.space.validate(self.space.decode(v))
            except InvalidConfig:
                continue
            if config != best_config:
                return config
        return self.space.sample(self.rng)

    def _tell(self, trial, result) -> None:
        loss = self.loss(result)
        if loss is None or len(self.observations) <= self.n_initial:
            if loss is not None and (self._best_loss is None or loss < self._best_loss):
                self._best_loss = loss
            return
        if self._best_loss is None or loss < self._best_loss:
            self._best_loss = loss
            self.sigma = min(0.5, self.sigma * 1.5)
        else:
            self.sigma *= 1.5 ** (-0.25)  # 1/5th rule: stay put at a 20% success rate
        if self.sigma < 1e-3:
            self.sigma = self.sigma0

    def _restore(self, history, extra: Mapping[str, Any]) -> None:
        self.sigma = self.sigma0
        self._best_loss = None
        super()._restore(history, extra)
