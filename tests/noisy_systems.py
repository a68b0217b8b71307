"""Synthetic systems with known gains and seeded, sleep-free noise, for the intensification tests.

Importable by the CLI as `tests.noisy_systems:NAME` (run from the repository root).
"""

from __future__ import annotations

import numpy as np

from autosys.core.space import Categorical, Space
from autosys.core.system import Limit, Measurement, Objective, System


class KnownGain(System):
    """ms = base[kind] x lognormal(0, sigma) noise; `fast` is truly `gain`x better than the default `base`."""

    name = "known-gain"

    def __init__(self, gain: float = 1.3, sigma: float = 0.15, seed: int = 0):
        self.levels = {"base": 1.0, "fast": 1.0 / gain, "slow": 1.5, "slower": 2.0}
        self.sigma = sigma
        self.rng = np.random.default_rng(seed)

    def space(self) -> Space:
        return Space([Categorical("kind", tuple(self.levels), default="base")])

    @property
    def objective(self) -> Objective:
        return Objective("ms", "minimize")

    def evaluate(self, config):
        return Measurement({"ms": self.levels[config["kind"]] * float(np.exp(self.rng.normal(0.0, self.sigma)))})


class Flat(KnownGain):
    """Every config times the same (only noise): nothing can beat the default."""

    name = "flat"

    def __init__(self, sigma: float = 0.15, seed: int = 0):
        super().__init__(gain=1.0, sigma=sigma, seed=seed)
        self.levels = dict.fromkeys(self.levels, 1.0)


class OneLuckyRun(KnownGain):
    """`slow` is 2x worse than the default, but its first run is 100x lucky; noise is small (sigma 0.02)."""

    name = "one-lucky-run"

    def __init__(self, seed: int = 0):
        super().__init__(sigma=0.02, seed=seed)
        self.lucky_left = 1

    def evaluate(self, config):
        measured = super().evaluate(config)
        if config["kind"] == "slow" and self.lucky_left:
            self.lucky_left -= 1
            return Measurement({"ms": 0.01})
        return measured


class FastButBreaksLimit(KnownGain):
    """`fast` is 2x better, but every second run of it uses more memory than the limit allows."""

    name = "fast-but-breaks-limit"

    def __init__(self, seed: int = 0):
        super().__init__(gain=2.0, sigma=0.02, seed=seed)
        self.fast_runs = 0

    @property
    def objective(self) -> Objective:
        return Objective("ms", "minimize", limits=(Limit("memory", max=1.0),))

    def evaluate(self, config):
        ms = super().evaluate(config).metrics["ms"]
        memory = 0.5
        if config["kind"] == "fast":
            self.fast_runs += 1
            memory = 2.0 if self.fast_runs % 2 == 0 else 0.5
        return Measurement({"ms": ms, "memory": memory})
