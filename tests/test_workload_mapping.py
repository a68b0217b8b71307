"""Workload mapping: nearest past study by measured metrics, and warm start from it."""

from __future__ import annotations

import math

import pytest

from autosys.analysis.workload_mapping import (
    KnowledgeBase,
    characterize,
    load_record,
    signature_of,
    trials_to_reach,
    warm_start,
    warm_start_pairs,
)
from autosys.core.space import Categorical, Float, Space
from autosys.run.study import Study
from autosys.core.system import Measurement, Objective, System

# (read share, optimum x, best mode): "a1" and "a2" are alike; "b" is not
WORKLOADS = {"a1": (0.5, 0.80, "q"), "a2": (0.55, 0.78, "q"), "b": (0.95, 0.15, "r")}


class Shop(System):
    """A deterministic stand-in whose signature and optimum depend on its workload."""

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


@pytest.fixture()
def kb(tmp_path):
    for name in ("a1", "b"):
        Study.create(tmp_path / "kb" / name, Shop(name), tuner="random", budget=40, seed=7).run().close()
    return KnowledgeBase(tmp_path / "kb")


def test_signature_keeps_only_finite_workload_metrics():
    sig = signature_of({"throughput": 5.0, "cache_hit_ratio": float("nan"), "operations_done": 3})
    assert sig == {"throughput": 5.0}


def test_nearest_maps_to_the_similar_workload(kb):
    assert len(kb.records) == 2
    query = characterize(Shop("a2"))
    (distance, record), = kb.nearest(query, system=Shop().spec.name)  # stored as tests.test_workload_mapping:Shop
    assert record.workload == "a1"
    far = kb.nearest(characterize(Shop("b")), k=2)
    assert far[0][1].workload == "b" and far[0][0] < far[1][0]
    assert kb.nearest(query, system="no-such-system") == []


def test_warm_start_reaches_cold_quality_in_half_the_trials(kb, tmp_path):
    budget = 30
    cold = Study.create(tmp_path / "cold", Shop("a2"), tuner="random", budget=budget, seed=11).run()
    cold_values = [t.value for t in cold.trials()]
    target = 0.95 * cold.best.value
    query = characterize(Shop("a2"))
    _, record = kb.nearest(query)[0]
    warm = Study.create(tmp_path / "warm", Shop("a2"), tuner="random", budget=budget, seed=11)
    queued = warm_start(warm, record, enqueue=3, default_value=query["throughput"])
    assert queued and queued[0] == record.trials[0][0]
    warm.run()
    warm_values = [t.value for t in warm.trials()]
    reached = trials_to_reach(warm_values, target)
    assert reached is not None and reached <= budget // 2
    assert warm.trials()[1].source == "warm_start"  # right after the default
    assert trials_to_reach(cold_values, target) is not None


def test_pairs_are_rescaled_to_the_new_default(kb):
    record = next(r for r in kb.records if r.workload == "a1")
    pairs = warm_start_pairs(record, default_value=2 * record.default_value, top=2)
    assert len(pairs) == 2 and pairs[0][1].value == pytest.approx(2 * record.best_value)
    assert load_record(record.directory).best_value == record.best_value
