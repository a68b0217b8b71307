"""A study's answer under noise: configs ranked by the median of their runs, and confirmation runs."""

import numpy as np
import pytest

from autosys.selection import best_trial, next_to_confirm, rank_configs
from autosys.space import Categorical, Float, Space
from autosys.study import Study
from autosys.system import Limit, Measurement, Objective, System
from autosys.trial import Trial, TrialState

MAXIMIZE = Objective("speed", "maximize", limits=(Limit("memory", max=4.0),))


def run(number, config, value, infeasible=False, state=TrialState.COMPLETE):
    info = {"infeasible": "memory above its limit"} if infeasible else {}
    return Trial(number=number, config=config, state=state, value=value, info=info)


def test_a_config_is_ranked_by_the_median_of_its_runs_not_its_luckiest():
    trials = [run(0, {"x": "a"}, 10.0), run(1, {"x": "a"}, 30.0), run(2, {"x": "a"}, 11.0), run(3, {"x": "b"}, 20.0)]
    ranked = rank_configs(trials, MAXIMIZE)
    assert [g.config["x"] for g in ranked] == ["b", "a"]
    assert best_trial(trials, MAXIMIZE).number == 3
    # when minimizing, the conservative median is the higher one
    minimize = Objective("speed", "minimize")
    two = [run(0, {"x": "a"}, 1.0), run(1, {"x": "a"}, 5.0), run(2, {"x": "b"}, 3.0)]
    assert best_trial(two, minimize).config == {"x": "b"}


def test_a_config_that_broke_a_limit_once_is_never_the_answer():
    trials = [run(0, {"x": "a"}, 50.0), run(1, {"x": "a"}, 49.0, infeasible=True), run(2, {"x": "b"}, 20.0)]
    assert best_trial(trials, MAXIMIZE).config == {"x": "b"}
    failed = [run(0, {"x": "a"}, None, state=TrialState.FAILED)]
    assert best_trial(failed, MAXIMIZE) is None


def test_next_to_confirm_races_the_leaders_by_fewest_runs():
    trials = [run(0, {"x": "a"}, 10.0), run(1, {"x": "b"}, 30.0), run(2, {"x": "c"}, 20.0), run(3, {"x": "b"}, 29.0)]
    assert next_to_confirm(trials, MAXIMIZE, top=2) == {"x": "c"}  # b has two runs already
    assert next_to_confirm(trials, MAXIMIZE, top=1) == {"x": "b"}
    assert next_to_confirm([], MAXIMIZE, top=3) is None


class OneSteadyManyNoisy(System):
    """`steady` is truly best (speed 1.0, one config); `noisy` configs are 0.8 on average, each run +-30%.

    Searching over `noisy` gives many draws, so its luckiest run beats steady's single one: the
    winner's curse that sent the KV tuner to SortedDict over dict (adapters/kv_select.py).
    """

    name = "steady-vs-noisy"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def space(self):
        from autosys.space import Condition

        return Space([
            Categorical("kind", ("steady", "noisy"), default="noisy"),
            Float("x", 0.0, 1.0, default=0.5, condition=Condition("kind", ("noisy",))),
        ])

    @property
    def objective(self):
        return Objective("speed", "maximize")

    def evaluate(self, config):
        if config["kind"] == "steady":
            return Measurement({"speed": 1.0 * (1 + self.rng.uniform(-0.02, 0.02))})
        return Measurement({"speed": 0.8 * (1 + self.rng.uniform(-0.3, 0.3))})


def test_confirmation_runs_undo_the_winners_curse(tmp_path):
    picks = {"plain": [], "confirm": []}
    for seed in range(8):
        for label, confirm in (("plain", 0), ("confirm", 6)):
            study = Study.create(tmp_path / f"{label}-{seed}", OneSteadyManyNoisy(seed), tuner="random", budget=30,
                                 seed=seed, confirm=confirm)
            study.run()
            picks[label].append(study.best.config["kind"])
            if confirm:
                confirmations = [t for t in study.trials() if t.source == "confirm"]
                assert len(confirmations) == confirm and len(study.trials()) == 30
                assert all(any(u.config == t.config and u.source != "confirm" for u in study.trials()) for t in confirmations)
            study.close()
    assert picks["confirm"].count("steady") > picks["plain"].count("steady"), picks
    assert picks["confirm"].count("steady") >= 6, picks


def test_confirm_must_leave_room_for_search(tmp_path):
    with pytest.raises(ValueError, match="confirm"):
        Study.create(tmp_path / "s", OneSteadyManyNoisy(), budget=10, confirm=10)
    with pytest.raises(ValueError, match="confirm"):
        Study.create(tmp_path / "t", OneSteadyManyNoisy(), budget=None, seconds=5, confirm=2)
