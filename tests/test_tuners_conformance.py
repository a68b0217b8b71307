"""Every registered tuner (built-ins and `autosys.tuners` entry points) passes the public `check_tuner` suite.

The registry is iterated, not a hand list, so a new tuner cannot be forgotten;
`LIGHT` only makes the model-based ones fast (fewer candidates and trees).
Strategy variants (bandit policies, BO acquisitions) are checked beside them.
"""

from functools import partial

import pytest

from autosys.checks.report import CheckReport, ConformanceError
from autosys.checks.tuner import check_tuner
from autosys.tuners import available_tuners, tuner_class
from autosys.tuners.bandit import BanditTuner, MetaTuner
from autosys.tuners.bayes import BayesOpt, ForestBayesOpt
from autosys.tuners.multiobjective import ParEGO
from autosys.tuners.random_search import RandomSearch
from autosys.tuners.trust_region import TrustRegionBO

#: options that keep a registered tuner's checks fast (its own defaults otherwise)
LIGHT = {
    "bo": {"n_candidates": 300},
    "bo-rf": {"n_candidates": 300},
    "bo-cost": {"n_candidates": 300},
    "model": {"chains": 8, "steps": 15, "n_estimators": 60},
    "rl": {"model": "trees", "n_estimators": 8, "fqi_iterations": 2},
    "meta": {"members": [("bo", {"n_candidates": 300}), "local", "random"]},
    "cash": {"member_options": {"n_candidates": 200}},
}
SLOW_REGISTERED = {"bo-rf", "cash", "rl"}


def registered_factory(name: str):
    cls = tuner_class(name)
    if cls is ParEGO:  # multi-objective: it needs a second metric beside the generic checks' value
        return parego_factory
    return partial(cls, **LIGHT.get(name, {}))


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_REGISTERED else n for n in available_tuners()]
)
def test_every_registered_tuner_passes_check_tuner(name):
    if name == "optuna":
        pytest.importorskip("optuna", reason="the optuna tuner needs the bench extra (optuna)")
    report = check_tuner(registered_factory(name), steps=12)
    assert isinstance(report, CheckReport) and not report.failed
    assert "save_restore" in report and "seeded_determinism" in report


SLOW = {"bo-gp-ei-index-cl", "bo-et-lcb", "meta-exp3"}

VARIANTS = {
    "bandit-thompson": partial(BanditTuner, policy="thompson"),
    "bandit-thompson-beta": partial(BanditTuner, policy="thompson-beta"),
    "bandit-exp3": partial(BanditTuner, policy="exp3"),
    "bo-gp-ei-index-cl": partial(BayesOpt, acquisition="ei", categorical="index", batch="cl_min", n_candidates=300),
    "bo-et-lcb": partial(
        BayesOpt, surrogate="et", acquisition="lcb", n_candidates=300, surrogate_options={"n_estimators": 15}
    ),
    "meta-exp3": partial(MetaTuner, members=("bo", "random"), policy="exp3"),
    "turbo": partial(TrustRegionBO, n_candidates=300),
    "meta-with-turbo": partial(
        MetaTuner, members=[("bo", {"n_candidates": 300}), ("autosys.tuners.trust_region:TrustRegionBO",
                                                            {"n_candidates": 300}), "random"]
    ),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in VARIANTS])
def test_strategy_variant_passes_check_tuner(name):
    report = check_tuner(VARIANTS[name], steps=12)
    assert "save_restore" in report and "seeded_determinism" in report


@pytest.mark.slow
def test_forest_bo_passes_check_tuner():
    check_tuner(partial(ForestBayesOpt, n_candidates=300), steps=12)


def parego_factory(space, direction, seed):
    """ParEGO seeing the generic checks' plain values as metric "value" beside a second metric."""
    tuner = ParEGO(space, objectives=[("value", direction), ("value2", "minimize")], direction=direction, seed=seed, n_candidates=200)
    original = tuner.tell

    def tell(trial, result):
        if result.ok:
            result.metrics = {"value": result.value, "value2": sum(1 for v in trial.config.values() if v)}
        original(trial, result)

    tuner.tell = tell
    return tuner


def test_check_tuner_catches_a_tuner_that_ignores_its_seed():
    import numpy as np

    class Unseeded(RandomSearch):
        name = "unseeded"

        def _ask(self):
            return self.space.sample(np.random.default_rng())

    with pytest.raises(ConformanceError, match="Unseeded does not conform to the Tuner contract") as info:
        check_tuner(Unseeded, steps=5, checks=["seeded_determinism", "valid_suggestions"])
    assert "seeded_determinism: " in str(info.value) and "valid_suggestions" not in str(info.value)
    report = check_tuner(Unseeded, steps=5, checks=["seeded_determinism", "valid_suggestions"], raise_on_failure=False)
    assert report.passed == ["valid_suggestions"] and report.failed[0].startswith("seeded_determinism: ")


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
