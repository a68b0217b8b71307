"""The one-call API for plain functions: autosys.minimize / autosys.maximize."""

import math

import pandas as pd
import pytest

import autosys
from autosys.core.space import Float, Space
from autosys.tuners.random_search import RandomSearch

SPACE = {"x0": (-5.0, 5.0), "n": (1, 64), "kind": ["a", "b"]}


def _fn(c):
    return (c["x0"] - 1) ** 2 + (c["n"] - 10) ** 2 / 100 + (0 if c["kind"] == "a" else 1)


def test_minimize_a_dict_space_with_the_default_tuner():
    result = autosys.minimize(_fn, SPACE, budget=25, seed=0)
    assert isinstance(result.trials, pd.DataFrame) and len(result.trials) == 25
    assert {"config.x0", "config.n", "config.kind", "value", "state"} <= set(result.trials.columns)
    assert result.best_value == result.trials["value"].min()
    assert result.best_config["kind"] == "a" and result.best_value < 1.0
    assert isinstance(result.best_config["n"], int)


def test_maximize_records_failures_and_nan_without_stopping():
    def fn(c):
        if c["x"] > 0.9:
            raise RuntimeError("crash")
        if c["x"] > 0.8:
            return float("nan")
        return -((c["x"] - 0.3) ** 2)

    result = autosys.maximize(fn, {"x": (0.0, 1.0)}, tuner="bo", budget=20, seed=1)
    assert abs(result.best_config["x"] - 0.3) < 0.05
    assert result.n_failed == int((result.trials["state"] != "complete").sum())
    assert all(math.isfinite(v) for v in result.trials.loc[result.trials["state"] == "complete", "value"])


def test_same_seed_same_trials_and_tuner_instances_or_factories():
    a = autosys.minimize(_fn, SPACE, tuner="random", budget=8, seed=3)
    b = autosys.minimize(_fn, SPACE, tuner=RandomSearch, budget=8, seed=3)
    pd.testing.assert_series_equal(a.trials["value"], b.trials["value"])
    space = Space([Float("x", 0.0, 1.0)])
    c = autosys.minimize(lambda cfg: cfg["x"], space, tuner=RandomSearch(space, seed=0), budget=5)
    assert len(c.trials) == 5


def test_a_kept_directory_holds_a_resumable_study(tmp_path):
    result = autosys.minimize(_fn, SPACE, tuner="random", budget=5, directory=tmp_path / "study")
    assert result.study is not None and (tmp_path / "study").exists()
    assert result.study.best.value == result.best_value
    result.study.close()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="x0"):
        autosys.minimize(_fn, {"x0": "wide"}, budget=3)
    with pytest.raises(ValueError, match="unknown tuner"):
        autosys.minimize(_fn, SPACE, tuner="simulated-magic", budget=3)
    with pytest.raises(ValueError, match="budget"):
        autosys.minimize(_fn, SPACE, budget=0)
    space = Space([Float("x", 0.0, 1.0)])
    with pytest.raises(ValueError, match="maximize"):
        autosys.minimize(lambda c: c["x"], space, tuner=RandomSearch(space, direction="maximize"), budget=2)
