"""experiments/kernel_vs_onednn.py judges each layer by the paired interval of its rounds, not by medians alone."""

import numpy as np
import pytest

from tests.experiment_modules import experiment_module



@pytest.fixture(scope="module")
def kvo():
    yield from experiment_module("kernel_vs_onednn")


def test_a_steady_gain_is_above_the_target(kvo):
    rng = np.random.default_rng(0)
    other = list(1e-3 * np.exp(rng.normal(0, 0.02, 9)))
    tuned = [t / 1.2 for t in other]  # 1.2x faster in every round
    got = kvo.paired_speed({"samples": tuned}, {"samples": other})
    assert got["verdict"] == "above" and got["ratio"] == pytest.approx(1.2) and got["pairs"] == 9


def test_round_drift_cancels_in_pairs(kvo):
    """The host slows 3x over the run: medians alone wobble, each round's pair still reads 0.8."""
    drift = np.linspace(1.0, 3.0, 7)
    other = list(1e-3 * drift)
    tuned = list(1e-3 * drift / 0.8)
    got = kvo.paired_speed({"samples": tuned}, {"samples": other})
    assert got["verdict"] == "below" and got["high"] < 0.9


def test_a_noisy_near_tie_is_open_and_unequal_rounds_pair_the_shared_ones(kvo):
    other = [1.0e-3, 1.1e-3, 0.9e-3, 1.0e-3, 1.2e-3, 1.0e-3, 1.0e-3]
    ratios = np.array([0.7, 1.1, 0.8, 1.05, 0.85])  # tuned's speed over other's, round by round: around 0.89, wide
    tuned = list(np.array(other[:5]) / ratios)  # a slow kernel got 5 rounds
    got = kvo.paired_speed({"samples": tuned}, {"samples": other})
    assert got["pairs"] == 5 and got["verdict"] == "open" and got["low"] < 0.9 < got["high"]


def test_no_pairs_gives_no_ratio(kvo):
    got = kvo.paired_speed({"samples": [1e-3]}, {"samples": []})
    assert got["verdict"] == "open" and np.isnan(got["ratio"])


def test_sample_rows_keep_every_round(kvo):
    rows = kvo.sample_rows("l1.3x3", 1, {"tuned": {"samples": [1.0, 2.0]}, "onednn-any": {"samples": [3.0]}, "x": {}})
    assert [(r["kernel"], r["round"], r["seconds"]) for r in rows] == [("tuned", 0, 1.0), ("tuned", 1, 2.0), ("onednn-any", 0, 3.0)]
