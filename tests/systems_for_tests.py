"""Small deterministic systems for testing the core beside the real adapters.

They stand in only where a test needs to control failures or timing exactly;
the same behaviours are also tested against the real SQLite adapter.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from autosys.core.space import Categorical, Float, Forbid, Int, Space
from autosys.core.system import Limit, Measurement, Objective, System


class Quadratic(System):
    """loss = (x - 1)^2 + (n - 3)^2 (+1 when kind == 'b'); minimize."""

    name = "quadratic"

    def __init__(self, fail: str = "none", seed: int = 0):
        self.fail = fail  # none | raise | nan | none-result | missing-metric on kind == 'c'
        self.seed = seed

    def space(self) -> Space:
        return Space(
            [Float("x", -5.0, 5.0, default=4.0), Int("n", 0, 8, default=8), Categorical("kind", ("a", "b", "c"))],
            [Forbid("no-b-high", reason="b with large n", kind="b", n=(7, 8))],
        )

    @property
    def objective(self) -> Objective:
        return Objective("loss", "minimize", limits=(Limit("size", max=50.0),))

    def evaluate(self, config):
        if config["kind"] == "c" and self.fail != "none":
            if self.fail == "raise":
                raise RuntimeError("boom in evaluate")
            if self.fail == "nan":
                return Measurement({"loss": float("nan"), "size": 1.0})
            if self.fail == "none-result":
                return None
            if self.fail == "missing-metric":
                return Measurement({"size": 1.0})
        loss = (config["x"] - 1) ** 2 + (config["n"] - 3) ** 2 + (config["kind"] == "b")
        return Measurement({"loss": loss, "size": config["n"] * 10.0})


class Sleepy(System):
    """Sleeps `sleep` seconds per trial and appends 'start N'/'end N' lines to `log`."""

    name = "sleepy"

    def __init__(self, log: str = "sleepy.log", sleep: float = 0.3, seed: int = 0):
        self.log = Path(log)
        self.sleep = sleep
        self.seed = seed

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0), Int("k", 1, 100)])

    @property
    def objective(self) -> Objective:
        return Objective("score", "maximize")

    def evaluate(self, config):
        tag = f"{config['x']:.12f}-{config['k']}"
        with self.log.open("a") as f:
            f.write(f"start {tag} {os.getpid()}\n")
        time.sleep(self.sleep)
        with self.log.open("a") as f:
            f.write(f"end {tag} {os.getpid()}\n")
        return Measurement({"score": math.sin(10 * config["x"]) + config["k"] / 100})


# (read share, optimum x, best mode): "a1" and "a2" are alike; "b" is not
WORKLOADS = {"a1": (0.5, 0.80, "q"), "a2": (0.55, 0.78, "q"), "b": (0.95, 0.15, "r")}


class Shop(System):
    """A deterministic stand-in whose signature (metrics) and optimum depend on its workload (workload mapping, the knowledge base)."""

    name = "shop"

    def __init__(self, workload: str = "a1", seed: int = 0):
        self.workload = workload

    def space(self):
        return Space([Float("x", 0.0, 1.0, default=0.5), Categorical("mode", ("p", "q", "r"), default="p")])

    @property
    def objective(self):
        return Objective("throughput", "maximize")

    def evaluate(self, config):
        reads, opt, mode = WORKLOADS[self.workload]
        speed = 1000 * (1 + 4 * math.exp(-((config["x"] - opt) ** 2) / 0.01)) * (2.0 if config["mode"] == mode else 1.0)
        return Measurement(
            {
                "throughput": speed,
                "rows_read_per_op": 10 * reads,
                "rows_written_per_op": 10 * (1 - reads),
                "wal_bytes_per_op": 4000 * (1 - reads),
                "cache_hit_ratio": 0.9 + 0.05 * reads,
            }
        )
