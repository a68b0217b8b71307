"""A study's answer under noise: configs ranked by the median of their runs, and confirmation runs."""

import numpy as np
import pytest

from autosys.run.selection import best_trial, final_candidates, next_to_confirm, rank_configs, root_choices
from autosys.core.space import Categorical, Condition, Float, Space
from autosys.run.study import Study
from autosys.core.system import Limit, Measurement, Objective, System
from autosys.core.trial import Trial, TrialState

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


def test_the_final_takes_the_best_of_each_root_choice_first_and_gives_each_two_runs():
    space = Space([Categorical("engine", ("a", "b")), Float("x", 0.0, 1.0, condition=Condition("engine", ("a",)))])
    assert root_choices(space) == ["engine"]
    trials = [run(0, {"engine": "a", "x": 0.1}, 30.0), run(1, {"engine": "a", "x": 0.2}, 29.0),
              run(2, {"engine": "a", "x": 0.3}, 28.0), run(3, {"engine": "b"}, 20.0)]
    # plain rank would put three "a" variants first; the final compares the engines
    assert final_candidates(trials, MAXIMIZE, 2, ["engine"]) == [{"engine": "a", "x": 0.1}, {"engine": "b"}]
    assert final_candidates(trials, MAXIMIZE, 2) == [{"engine": "a", "x": 0.1}, {"engine": "a", "x": 0.2}]
    # a budget of 4 final runs: two candidates, in turns, two runs each
    done = list(trials)
    for i in range(4):
        config = next_to_confirm(done, MAXIMIZE, 4, ["engine"])
        done.append(Trial(number=10 + i, config=config, state=TrialState.COMPLETE, value=25.0 - i, source="confirm"))
    assert [t.config["engine"] for t in done[4:]] == ["a", "b", "a", "b"]
    assert next_to_confirm([], MAXIMIZE, 4) is None


def test_the_final_runs_alone_decide_the_answer():
    early = [run(0, {"engine": "b"}, 10.0), run(1, {"engine": "b"}, 11.0), run(2, {"engine": "a"}, 20.0)]
    final = [Trial(number=3 + i, config={"engine": e}, state=TrialState.COMPLETE, value=v, source="confirm")
             for i, (e, v) in enumerate([("a", 15.0), ("b", 18.0), ("a", 16.0), ("b", 19.0)])]
    # by all runs "a" leads (20 vs 10-11, measured earlier on a slower host); side by side "b" wins
    assert best_trial(early, MAXIMIZE).config == {"engine": "a"}
    assert best_trial(early + final, MAXIMIZE).config == {"engine": "b"}
    # a finalist that broke a limit in its final runs is out, and the other finalist wins
    broke = final[:3] + [Trial(number=9, config={"engine": "b"}, state=TrialState.COMPLETE, value=19.0,
                               source="confirm", info={"infeasible": "memory"})]
    assert best_trial(early + broke, MAXIMIZE).config == {"engine": "a"}


class OneSteadyManyNoisy(System):
    """`steady` is truly best (speed 1.0, one config); `noisy` configs are 0.8 on average, each run +-30%.

    Searching over `noisy` gives many draws, so its luckiest run beats steady's single one: the
    winner's curse that sent the KV tuner to SortedDict over dict (adapters/kv_select.py).
    """

    name = "steady-vs-noisy"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def space(self):
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
                assert {t.config["kind"] for t in confirmations} == {"steady", "noisy"}  # the final compares the kinds
            study.close()
    assert picks["confirm"].count("steady") > picks["plain"].count("steady"), picks
    assert picks["confirm"].count("steady") >= 6, picks


def test_confirm_must_leave_room_for_search(tmp_path):
    with pytest.raises(ValueError, match="confirm"):
        Study.create(tmp_path / "s", OneSteadyManyNoisy(), budget=10, confirm=10)
    with pytest.raises(ValueError, match="confirm"):
        Study.create(tmp_path / "t", OneSteadyManyNoisy(), budget=None, seconds=5, confirm=2)
