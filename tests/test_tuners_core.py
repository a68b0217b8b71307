"""Random and grid search honour the tuner contract."""

import json

import numpy as np
import pytest

from autosys.core.space import Categorical, Condition, Float, Forbid, Int, Space
from autosys.core.trial import Result, TrialState
from autosys.tuners import TUNERS, make_tuner

SPACE = Space(
    [Categorical("mode", ("a", "b")), Float("x", -1.0, 1.0), Int("k", 1, 9, condition=Condition("mode", ("b",)))],
    [Forbid("no-a-high", mode="a", x=(1.0,))],
)


def drive(tuner, n, fail_every=3):
    configs = []
    for i in range(n):
        trial = tuner.ask()
        configs.append(trial.config)
        if i % fail_every == 0:
            tuner.tell(trial, Result.failed("crashed"))
        elif i % fail_every == 1:
            tuner.tell(trial, Result(TrialState.COMPLETE, float("nan")))
        else:
            tuner.tell(trial, Result.complete(trial.config["x"]))
    return configs


@pytest.mark.parametrize("name", ["random", "grid"])
def test_seeded_reproducible_and_valid(name):
    a = drive(make_tuner(name, SPACE, seed=11), 20)
    b = drive(make_tuner(name, SPACE, seed=11), 20)
    assert a == b
    assert all(SPACE.is_valid(c) for c in a)


@pytest.mark.parametrize("name", ["random", "grid"])
def test_failures_and_nan_never_reach_observations(name):
    tuner = make_tuner(name, SPACE, seed=0)
    drive(tuner, 12)
    assert len(tuner.history) == 12
    assert len(tuner.observations) == 4
    assert all(np.isfinite(loss) for _, loss in tuner.observations)


@pytest.mark.parametrize("name", ["random", "grid"])
def test_state_survives_save_and_restore(name):
    tuner = make_tuner(name, SPACE, seed=2)
    drive(tuner, 7)
    state = json.loads(json.dumps(tuner.state_dict()))
    again = make_tuner(name, SPACE, seed=999)
    again.load_state_dict(state, tuner.told())  # the history comes from the caller (a study's trials)
    assert [again.ask().config for _ in range(5)] == [tuner.ask().config for _ in range(5)]
    assert len(again.history) == 7


def test_enqueued_configs_come_first_and_are_validated():
    tuner = make_tuner("random", SPACE, seed=0)
    tuner.enqueue({"mode": "b", "x": 0.5, "k": 3})
    first = tuner.ask()
    assert first.config == {"mode": "b", "x": 0.5, "k": 3} and first.source == "enqueued"
    with pytest.raises(Exception, match="k=99"):
        tuner.enqueue({"mode": "b", "x": 0.5, "k": 99})


def test_grid_walks_every_point_before_refining():
    space = Space([Int("a", 0, 2), Categorical("b", ("x", "y"))])
    tuner = make_tuner("grid", space, seed=0, resolution=3)
    seen = [json.dumps(tuner.ask().config, sort_keys=True) for _ in range(6)]
    assert len(set(seen)) == 6


def test_unknown_tuner_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown tuner 'nope'.*random"):
        make_tuner("nope", SPACE)
    assert {"random", "grid"} <= set(TUNERS)
