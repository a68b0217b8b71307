"""The kv_select experiment's sequential judge (`paired_verdicts`): pairs are added while the verdict is open."""

from __future__ import annotations

import math

import pytest

from tests.experiment_modules import experiment_module

ORACLE = {"engine": "oracle"}


@pytest.fixture(scope="module")
def kv():
    yield from experiment_module("kv_select")


class Fake:
    """A deterministic evaluate: the oracle always runs at 100; an answer's k-th run at 100 x ratios[k % len]."""

    def __init__(self, **ratios: list[float]):
        self.ratios = ratios
        self.calls: list[str] = []
        self.seen: dict[str, int] = {}

    def __call__(self, config: dict) -> dict:
        name = config["engine"]
        self.calls.append(name)
        if name == "oracle":
            return {"throughput": 100.0, "memory_bytes": 1.0}
        k = self.seen.get(name, 0)
        self.seen[name] = k + 1
        values = self.ratios[name]
        return {"throughput": 100.0 * values[k % len(values)], "memory_bytes": 1.0}


def test_a_clear_answer_stops_at_the_minimum_pairs(kv):
    fake = Fake(good=[1.00, 1.02], bad=[0.50, 0.52])
    out = kv.paired_verdicts(fake, ORACLE, {"g": {"engine": "good"}, "b": {"engine": "bad"}}, min_pairs=6, max_pairs=18)
    assert (out["g"]["verdict"], out["g"]["pairs"]) == ("above", 6)
    assert (out["b"]["verdict"], out["b"]["pairs"]) == ("below", 6)
    assert out["g"]["low"] > 0.9 and out["b"]["high"] < 0.9
    assert len(fake.calls) == 2 * 12


def test_pairs_are_added_while_the_interval_straddles_the_threshold(kv):
    # true ratio 0.95, each run 8% high or low: six pairs straddle 0.9, about a dozen do not
    fake = Fake(near=[0.95 * 1.08, 0.95 / 1.08])
    out = kv.paired_verdicts(fake, ORACLE, {"n": {"engine": "near"}}, min_pairs=6, max_pairs=18)
    assert out["n"]["verdict"] == "above"
    assert 6 < out["n"]["pairs"] < 18
    assert out["n"]["low"] > 0.9
    assert out["n"]["ratio"] == pytest.approx(0.95, rel=0.01)


def test_an_answer_still_open_at_the_cap_keeps_its_point_estimate(kv):
    fake = Fake(wide=[0.6, 1.4])
    out = kv.paired_verdicts(fake, ORACLE, {"w": {"engine": "wide"}}, min_pairs=6, max_pairs=10)
    assert (out["w"]["verdict"], out["w"]["pairs"]) == ("open", 10)
    assert out["w"]["low"] < 0.9 < out["w"]["high"]
    assert out["w"]["ratio"] == pytest.approx(math.sqrt(0.6 * 1.4))


def test_the_order_alternates_by_round_and_answer(kv):
    fake = Fake(a=[1.0], b=[0.5])
    kv.paired_verdicts(fake, ORACLE, {"a": {"engine": "a"}, "b": {"engine": "b"}}, min_pairs=2, max_pairs=2)
    # round 0: a first, then b after the oracle; round 1: the other way round
    assert fake.calls == ["a", "oracle", "oracle", "b", "oracle", "a", "b", "oracle"]


def test_a_broken_limit_ends_the_judgement_and_the_oracle_config_needs_no_pairs(kv):
    fake = Fake(big=[1.2])
    answers = {"x": {"engine": "big"}, "same": dict(ORACLE), "again": {"engine": "big"}}
    out = kv.paired_verdicts(fake, ORACLE, answers, min_pairs=6, max_pairs=18,
                             broken=lambda run: run["throughput"] > 110)
    assert (out["x"]["verdict"], out["x"]["pairs"]) == ("broken", 1)
    assert out["again"]["pairs"] == 1  # one config, judged once for both answers
    assert out["same"] == {"ratio": 1.0, "low": None, "high": None, "pairs": 0, "verdict": "oracle", "runs": []}
    assert fake.calls.count("big") == 1


def test_a_failing_run_drops_its_pair(kv):
    def evaluate(config):
        if config["engine"] == "crash":
            raise RuntimeError("no store")
        return {"throughput": 100.0}

    out = kv.paired_verdicts(evaluate, ORACLE, {"c": {"engine": "crash"}}, min_pairs=2, max_pairs=3)
    assert out["c"]["ratio"] == 0.0 and out["c"]["pairs"] == 0 and out["c"]["verdict"] == "open"
    assert "no store" in out["c"]["error"]


def test_study_seeds_are_stable_and_differ_by_workload(kv):
    assert kv.study_seed("ycsb-b@mem3", 1) == kv.study_seed("ycsb-b@mem3", 1)
    seeds = {kv.study_seed(label, s) for label in kv.WORKLOADS for s in (0, 1)}
    assert len(seeds) == 2 * len(kv.WORKLOADS)
    assert all(0 <= s < 2**31 for s in seeds)


def test_the_real_system_a_config_over_the_memory_cap_is_judged_broken_after_one_pair(kv, tmp_path):
    from autosys_adapters.kv.system import KVSelect

    system = KVSelect(workload="ycsb-a", records=600, operations=600, seconds=5.0, memory_cap_mb=0.01)
    system.workdir = tmp_path
    space = system.space()
    limits = system.objective.limits
    oracle = space.complete({"engine": "dict"})
    answer = space.complete({"engine": "sorteddict"})
    system.setup()
    try:
        out = kv.paired_verdicts(lambda c: system.evaluate(c).metrics, oracle, {"a": answer}, key=space.config_key,
                                 min_pairs=3, max_pairs=5,
                                 broken=lambda run: any(limit.violated_by(run) is not None for limit in limits))
    finally:
        system.teardown()
    assert (out["a"]["verdict"], out["a"]["pairs"]) == ("broken", 1)
    assert out["a"]["runs"][0]["memory_bytes"] > 0.01 * (1 << 20)
    assert out["a"]["ratio"] > 0
