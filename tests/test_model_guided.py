"""The model-guided tuner: generic over spaces, beats random on a structured problem, warm-starts, saves state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autosys.core.space import Bool, Categorical, Constraint, Float, Int, Ordinal, Space
from autosys.core.trial import Result
from autosys.tuners.model_guided import ModelGuidedTuner
from autosys.tuners.random_search import RandomSearch

FAST = dict(chains=8, steps=15, n_estimators=60)


def make_space():
    return Space(
        [Int("a", 1, 16), Ordinal("b", (16, 32, 64, 128, 256, 512)), Categorical("c", ("x", "y", "z")),
         Bool("d"), Int("e", 0, 20)],
        [Constraint("limit", lambda c: c["a"] * 2 <= 30, "a <= 15")],
    )


def objective(c, shift=0):
    return ((c["a"] - 11 - shift) ** 2 + 3 * (math.log2(c["b"]) - 7) ** 2 + {"x": 5, "y": 0, "z": 9}[c["c"]]
            + (0 if c["d"] else 4) + 0.5 * abs(c["e"] - 13))


def drive(tuner, budget, fn=objective):
    best = []
    for _ in range(budget):
        trial = tuner.ask()
        value = fn(trial.config)
        tuner.tell(trial, Result.complete(value))
        best.append(min(best[-1], value) if best else value)
    return best


def test_beats_random_search_on_a_structured_problem():
    model = [drive(ModelGuidedTuner(make_space(), seed=s, **FAST), 30)[-1] for s in range(3)]
    rand = [drive(RandomSearch(make_space(), seed=s), 30)[-1] for s in range(3)]
    assert np.median(model) < np.median(rand)


def test_same_seed_same_suggestions_and_no_repeats():
    a = ModelGuidedTuner(make_space(), seed=7, **FAST)
    b = ModelGuidedTuner(make_space(), seed=7, **FAST)
    drive(a, 14)
    drive(b, 14)
    configs = [t.config for t, _ in a.history]
    assert configs == [t.config for t, _ in b.history]
    keys = {make_space().config_key(c) for c in configs}
    assert len(keys) == len(configs)
    assert all(make_space().is_valid(c) for c in configs)


def test_failures_never_reach_the_model():
    tuner = ModelGuidedTuner(make_space(), seed=1, n_initial=4, **FAST)
    for i in range(12):
        trial = tuner.ask()
        if i % 3 == 0:
            tuner.tell(trial, Result.failed("crashed"))
        else:
            tuner.tell(trial, Result.complete(objective(trial.config)))
    x, y, _ = tuner._training_set()
    assert len(y) == 8 and np.all(np.isfinite(y))


def test_warm_start_from_a_related_study_helps_the_first_trials():
    source = ModelGuidedTuner(make_space(), seed=3, **FAST)
    drive(source, 40, lambda c: objective(c, shift=1))  # a neighbouring "shape": optimum moved a little
    rows, losses, configs = source.export_rows()
    warm, cold = [], []
    for seed in range(3):
        w = ModelGuidedTuner(make_space(), seed=seed, epsilon=0.0, **FAST)
        w.add_prior(rows, losses, group="neighbour", configs=configs)
        warm.append(drive(w, 6)[-1])
        cold.append(drive(ModelGuidedTuner(make_space(), seed=seed, **FAST), 6)[-1])
    assert np.median(warm) < np.median(cold)


def test_feature_function_and_conditional_space():
    space = Space([Categorical("kind", ("lin", "log")), Float("x", 0.0, 1.0),
                   Float("scale", 0.1, 10.0, log=True, condition=None)])
    calls = []

    def features(config):
        calls.append(config)
        return [config["x"] * config["scale"], float(config["kind"] == "log")]

    tuner = ModelGuidedTuner(space, seed=0, n_initial=3, features=features, **FAST)
    drive(tuner, 8, lambda c: (c["x"] * c["scale"] - 2) ** 2 + (c["kind"] == "lin"))
    assert calls and tuner.row(tuner.history[0][0].config).size == len(space) + 2


def test_state_round_trip_continues_identically():
    a = ModelGuidedTuner(make_space(), seed=5, **FAST)
    a.add_prior([a.row(make_space().default())], [1.0], configs=[make_space().default()])
    drive(a, 10)
    state = a.state_dict()
    b = ModelGuidedTuner(make_space(), seed=5, **FAST)
    b.load_state_dict(state, a.told())
    assert len(b._prior) == 1
    assert a.ask().config == b.ask().config


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="epsilon"):
        ModelGuidedTuner(make_space(), epsilon=2.0)
    with pytest.raises(ValueError, match="n_initial"):
        ModelGuidedTuner(make_space(), n_initial=0)
    tuner = ModelGuidedTuner(make_space())
    with pytest.raises(ValueError, match="rows but"):
        tuner.add_prior([[0.0]], [1.0, 2.0])
