"""Every strategy of the tuner core passes the public `check_tuner` conformance suite."""

from functools import partial

import pytest

from autosys.checks.tuner import check_tuner
from autosys.tuners.bandit import BanditTuner, MetaTuner
from autosys.tuners.bayes import BayesOpt, ForestBayesOpt
from autosys.tuners.local_search import LocalSearch
from autosys.tuners.multiobjective import ParEGO
from autosys.tuners.random_search import RandomSearch

SLOW = {"bo-gp-ei-index-cl", "bo-et-lcb", "meta-exp3"}

FACTORIES = {
    "random": RandomSearch,
    "local": LocalSearch,
    "bandit-ucb1": BanditTuner,
    "bandit-thompson": partial(BanditTuner, policy="thompson"),
    "bandit-thompson-beta": partial(BanditTuner, policy="thompson-beta"),
    "bandit-exp3": partial(BanditTuner, policy="exp3"),
    "bo-gp-hedge": partial(BayesOpt, n_candidates=300),
    "bo-gp-ei-index-cl": partial(BayesOpt, acquisition="ei", categorical="index", batch="cl_min", n_candidates=300),
    "bo-et-lcb": partial(
        BayesOpt, surrogate="et", acquisition="lcb", n_candidates=300, surrogate_options={"n_estimators": 15}
    ),
    "meta": partial(MetaTuner, members=[("bo", {"n_candidates": 300}), "local", "random"], prior=(1.0, 0.0, 0.0)),
    "meta-exp3": partial(MetaTuner, members=("bo", "random"), policy="exp3"),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in FACTORIES])
def test_strategy_passes_check_tuner(name):
    passed = check_tuner(FACTORIES[name], steps=12)
    assert "save_restore" in passed and "seeded_determinism" in passed


@pytest.mark.slow
def test_forest_bo_passes_check_tuner():
    check_tuner(partial(ForestBayesOpt, n_candidates=300), steps=12)


def test_parego_passes_check_tuner():
    # the generic checks tell plain values; ParEGO sees them as metric "value" via a wrapper
    def factory(space, direction, seed):
        tuner = ParEGO(space, objectives=[("value", direction), ("value2", "minimize")], direction=direction, seed=seed, n_candidates=200)
        original = tuner.tell

        def tell(trial, result):
            if result.ok:
                result.metrics = {"value": result.value, "value2": sum(1 for v in trial.config.values() if v)}
            original(trial, result)

        tuner.tell = tell
        return tuner

    check_tuner(factory, steps=12, checks=["valid_suggestions", "seeded_determinism", "failed_and_nan_results", "conditional_space"])


def test_check_tuner_catches_a_tuner_that_ignores_its_seed():
    import numpy as np

    class Unseeded(RandomSearch):
        name = "unseeded"

        def _ask(self):
            return self.space.sample(np.random.default_rng())

    with pytest.raises(AssertionError, match="seeded_determinism"):
        check_tuner(Unseeded, steps=5, checks=["seeded_determinism"])


def test_check_tuner_catches_constraint_violations():
    class Reckless(RandomSearch):
        name = "reckless"

        def _ask(self):
            config = self.space.sample(self.rng)
            config["x"], config["n"] = 2.0, 8  # x + n > 8.5
            return config

    with pytest.raises(AssertionError, match="constraints"):
        check_tuner(Reckless, steps=3, checks=["constraints"])


def test_check_tuner_rejects_unknown_check_names():
    with pytest.raises(ValueError, match="unknown checks"):
        check_tuner(RandomSearch, checks=["nope"])
