"""Early stopping on stagnation."""

import math

import pytest

from autosys.tuners.stopping import Stagnation, stagnated


def test_stops_after_patience_without_improvement():
    rule = Stagnation(patience=3)
    assert [rule.update(v) for v in [5, 4, 4.5, 4.2, 4.1]] == [False, False, False, False, True]
    assert rule.best == 4


def test_improvement_resets_patience_and_min_delta_ignores_tiny_gains():
    rule = Stagnation(patience=2, min_delta=0.1)
    assert not rule.update(1.0)
    assert not rule.update(0.95)  # too small to count
    assert rule.update(0.93)
    rule = Stagnation(patience=2, rel_delta=0.5)
    assert not rule.update(10)
    assert not rule.update(4)  # 60% better: counts
    assert not rule.update(3)  # 25%: does not
    assert rule.update(2.5)


def test_failures_count_towards_patience_and_min_trials_hold():
    rule = Stagnation(patience=2, min_trials=5)
    outs = [rule.update(v) for v in [None, math.nan, None, 1.0, None]]
    assert outs == [False, False, False, False, False]
    assert rule.update(None) is True


def test_helper_and_validation():
    assert stagnated([3, 2, 1, 1, 1, 1], patience=3)
    assert not stagnated([3, 2, 1, 0.5], patience=3)
    with pytest.raises(ValueError):
        Stagnation(patience=0)
    with pytest.raises(ValueError):
        Stagnation(min_delta=-1)
