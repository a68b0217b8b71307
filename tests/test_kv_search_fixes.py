"""Search fixes found on the kv experiment (experiments/kv_select.py), tested on small synthetic studies:
random search does not re-propose a config it has tried (a knob-less branch of a conditional space);
one lucky incumbent run does not block every challenger; a risky incumbent falls back only to a
config without the risk (autosys/run/intensify.py)."""

from __future__ import annotations

from autosys.core.space import Categorical, Condition, Int, Space, config_key
from autosys.core.system import Limit, Objective
from autosys.core.trial import Result, Trial, TrialState
from autosys.run.intensify import INTENSIFY, race_state
from autosys.tuners.random_search import RandomSearch


def test_random_search_never_repeats_a_knobless_branch():
    # engine "flat" has no knobs (one config); "deep" has 50 configs
    space = Space([Categorical("engine", ("flat", "deep"), default="flat"),
                   Int("deep_k", 0, 49, default=0, condition=Condition("engine", ("deep",)))])
    tuner = RandomSearch(space, direction="maximize", seed=3)
    keys = []
    for _ in range(30):
        trial = tuner.ask()
        keys.append(space.config_key(trial.config))
        tuner.tell(trial, Result(TrialState.FAILED, None, {}, "broke a cap"))
    assert keys.count(space.config_key({"engine": "flat"})) <= 1
    assert len(set(keys)) == len(keys)


def test_random_search_still_answers_when_the_space_is_exhausted():
    space = Space([Categorical("engine", ("a", "b"), default="a")])
    tuner = RandomSearch(space, direction="maximize", seed=0)
    seen = []
    for _ in range(4):
        trial = tuner.ask()
        seen.append(trial.config["engine"])
        tuner.tell(trial, Result(TrialState.COMPLETE, 1.0, {}))
    assert set(seen[:2]) == {"a", "b"} and len(seen) == 4


def test_a_long_raced_incumbent_s_one_lucky_run_does_not_block_every_challenger():
    """The bar a run must pass to start a race stops rising with the incumbent's runs: one spread
    above their mean, not the best of eight runs (one of them 25% high)."""
    objective = Objective("v", "maximize")
    inc, other, better = {"k": "inc"}, {"k": "other"}, {"k": "better"}
    values = [100.0, 98.0, 102.0, 99.0, 101.0, 100.0, 97.0, 125.0]
    trials = [Trial(number=0, config=inc, state=TrialState.COMPLETE, value=values[0], source="default")]
    trials += [Trial(number=i, config=inc, state=TrialState.COMPLETE, value=v, source=INTENSIFY)
               for i, v in enumerate(values[1:], start=1)]
    # a second config run twice gives the study a pooled spread (about 2-3%)
    trials += [Trial(number=8, config=other, state=TrialState.COMPLETE, value=90.0, source="x"),
               Trial(number=9, config=other, state=TrialState.COMPLETE, value=92.0, source=INTENSIFY)]
    trials.append(Trial(number=10, config=better, state=TrialState.COMPLETE, value=115.0, source="x"))
    state = race_state(trials, objective, budget=60)
    assert state.incumbent == config_key(inc)
    assert state.challenger == config_key(better)  # 115 < the lucky 125, yet far above the incumbent's spread
    # a run within the incumbent's spread still starts no race
    trials[-1] = Trial(number=10, config=better, state=TrialState.COMPLETE, value=101.5, source="x")
    assert race_state(trials, objective, budget=60).challenger is None


def test_a_risky_incumbent_falls_back_only_to_a_config_without_the_risk():
    """An incumbent too near a memory cap is replaced by the best config whose next run is predicted
    to respect the cap, not by a faster config run once just under it."""
    objective = Objective("v", "maximize", limits=(Limit("mem", max=4.0),))
    safe, near, slow = {"k": "safe"}, {"k": "near"}, {"k": "slow"}

    def run(number, config, value, mem, source="x"):
        return Trial(number=number, config=config, state=TrialState.COMPLETE, value=value, source=source,
                     metrics={"v": value, "mem": mem})

    trials = [run(0, safe, 100.0, 3.3, "default"), run(1, slow, 10.0, 1.0), run(2, slow, 10.5, 1.3, INTENSIFY),
              run(3, near, 150.0, 3.95), run(4, safe, 101.0, 3.9, INTENSIFY)]
    state = race_state(trials, objective, budget=30)
    assert config_key(safe) in state.risky  # its own runs reach the cap
    assert state.incumbent == config_key(slow)  # "near" (one run at 3.95) is no safer
