"""Workload mapping: nearest past study by measured metrics, and warm start from it."""

from __future__ import annotations

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
from autosys.run.study import Study
from tests.systems_for_tests import Shop


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
    (distance, record), = kb.nearest(query, system=Shop().spec.name)  # stored as tests.systems_for_tests:Shop
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
