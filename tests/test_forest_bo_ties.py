"""Forest BO among configs its model cannot tell apart: the least measured one is asked, failures modelled by a forest."""

import numpy as np

from autosys.core.space import Bool, Categorical, Condition, Float, Space
from autosys.core.trial import Result, TrialState
from autosys.tuners.bayes import BayesOpt, ForestBayesOpt


def flag_space() -> Space:
    """Two engines; `b` has a flag that was never turned on in the measured configs, and a range that matters."""
    return Space([
        Categorical("engine", ("a", "b")),
        Bool("b_flag", condition=Condition("engine", ("b",))),
        Float("x", 0.0, 1.0),
    ])


def measured(with_engine_a: bool = True) -> list[tuple[dict, Result]]:
    """Twelve runs of engine `b` with the flag off (the loss depends on x only); engine `a` failed three times."""
    told = []
    for x in np.linspace(0.05, 0.95, 12):
        config = {"engine": "b", "b_flag": False, "x": float(x)} if with_engine_a else {"b_flag": False, "x": float(x)}
        told.append((config, Result.complete(float((x - 0.3) ** 2))))
    if with_engine_a:
        told += [({"engine": "a", "x": x}, Result(TrialState.FAILED, error="over the memory cap")) for x in (0.1, 0.5, 0.9)]
    return told


def flags_asked(space: Space, told: list, seeds=range(10)) -> int:
    """How many of the seeds' first model-guided asks turn the untried flag on (never engine `a`, which fails)."""
    on = 0
    for seed in seeds:
        tuner = ForestBayesOpt(space, seed=seed, n_initial=5, random_fraction=0.0)
        tuner.warm_start(told)
        config = tuner.ask().config
        assert config.get("engine", "b") == "b"
        on += bool(config.get("b_flag"))
    return on


def test_a_knob_the_forest_never_split_on_is_tried(monkeypatch):
    space = Space([Bool("b_flag"), Float("x", 0.0, 1.0)])
    told = measured(with_engine_a=False)
    assert flags_asked(space, told) == 10
    # the companion: without the tie-break the first of the tied candidates won, flag on or off alike
    monkeypatch.setattr(ForestBayesOpt, "_novelty", lambda self, encoded: np.zeros(len(encoded)))
    assert flags_asked(space, told) < 10


def test_failures_are_modelled_by_knobs_that_decide_them(monkeypatch):
    """Engine `a` fails: a forest classifier splits on the engine, so the flag still ties and is tried."""
    assert flags_asked(flag_space(), measured()) == 10
    # the companion: the kernel estimate puts an untried flag "far" from every success, and EI x P(ok) avoided it
    monkeypatch.setattr(ForestBayesOpt, "_feasibility", BayesOpt._feasibility)
    assert flags_asked(flag_space(), measured()) <= 2


def test_a_gp_is_unchanged_by_the_tie_break():
    """GP scores do not tie: the pick is the best-scored candidate, whatever its novelty."""
    tuner = BayesOpt(flag_space(), seed=0, n_initial=5, acquisition="ei")
    tuner.warm_start(measured())
    tuner.ask()
    scores = tuner._pool_scores["ei"]
    best = tuner._pool[int(np.argmax(scores))]
    assert tuner.space.config_key(tuner.space.decode(best)) in {tuner.space.config_key(t.config) for t in tuner.pending.values()} \
        or np.sum(scores == scores.max()) > 1
