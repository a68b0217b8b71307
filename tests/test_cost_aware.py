"""Cost-aware BO (autosys/tuners/cost_aware.py): EI per predicted second, expensive knobs batched.

On a synthetic space with one restart-cost knob whose trials take 10 s
instead of 2 s when it changes, the cost-aware tuner changes that knob far
less often than plain BO and reaches a similar best. The learned cost model,
the tuner's conformance (`check_tuner`) and an exact save/restore with
durations in the history are checked too; so is one PostgreSQL trial that
reports its seconds to the tuner (skips without a server).
"""

from __future__ import annotations

import json
import math
import os
from functools import partial

import pytest

from autosys.checks.tuner import check_tuner
from autosys.core.space import Categorical, Float, Int, Space
from autosys.core.trial import Result, Trial, TrialState
from autosys.tuners.bayes import BayesOpt
from autosys.tuners.cost_aware import CostAwareBO, MoveCostModel, count_changes

FAST = {"n_candidates": 150}


def expensive_space() -> Space:
    return Space(
        [
            Float("x", 0.0, 1.0),
            Float("y", 0.0, 1.0),
            Categorical("mode", ("a", "b"), apply_cost="reload"),
            Int("buffers", 1, 256, log=True, default=16, apply_cost="restart"),
        ]
    )


def objective(config: dict) -> float:
    """Cheap knobs matter most; the restart knob matters a little (best near 64)."""
    return ((config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2 + (0.0 if config["mode"] == "b" else 0.05)
            + 0.01 * (math.log2(config["buffers"]) - 6) ** 2)


def seconds_of(space: Space, before: dict, after: dict) -> float:
    """A measurement takes 2 s; a restart adds 8 s."""
    return 2.0 + (8.0 if space.change_cost(before, after) == "restart" else 0.0)


def drive(tuner, space: Space, trials: int) -> tuple[int, float, float]:
    """Run trials one after another on one 'server' (starting at the default): (restarts, best loss, seconds)."""
    current = space.default()
    tuner.warm_start([(current, Result(TrialState.COMPLETE, objective(current), seconds=2.0))], keep=False)
    best, total = math.inf, 0.0
    for _ in range(trials):
        trial = tuner.ask()
        seconds = seconds_of(space, current, trial.config)
        current = trial.config
        value = objective(trial.config)
        best, total = min(best, value), total + seconds
        tuner.tell(trial, Result(TrialState.COMPLETE, value, seconds=seconds))
    return count_changes(space, [t for t, _ in tuner.history]), best, total


def test_cost_aware_changes_the_restart_knob_far_less_at_similar_quality():
    space = expensive_space()
    plain = drive(BayesOpt(space, acquisition="ei", seed=1, **FAST), space, 24)
    aware = drive(CostAwareBO(space, seed=1, **FAST), space, 24)
    assert plain[0] >= 15  # cost-blind BO moves the continuous-ish restart knob almost every trial
    assert aware[0] <= 0.5 * plain[0]
    assert aware[2] < 0.8 * plain[2]  # and the study takes far fewer seconds
    assert aware[1] <= plain[1] + 0.02  # similar best (the knobs' spread is ~0.6)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_cost_aware_batches_restarts_over_seeds(seed):
    space = expensive_space()
    plain = drive(BayesOpt(space, acquisition="ei", seed=seed, **FAST), space, 30)
    aware = drive(CostAwareBO(space, seed=seed, **FAST), space, 30)
    assert aware[0] <= 0.5 * plain[0]
    assert aware[1] <= plain[1] + 0.02


def test_cost_blind_setting_is_plain_ei_per_trial():
    """cost_exponent=0 and design_batch=1: the restart knob moves as often as plain BO moves it."""
    space = expensive_space()
    blind = drive(CostAwareBO(space, seed=1, cost_exponent=0, design_batch=1, ei_floor=0, **FAST), space, 14)
    assert blind[0] >= 10


def test_initial_design_keeps_expensive_knobs_for_a_batch():
    space = expensive_space()
    tuner = CostAwareBO(space, seed=0, design_batch=3, **FAST)
    configs = []
    for _ in range(tuner.n_initial):
        trial = tuner.ask()
        configs.append(trial.config)
        tuner.tell(trial, Result(TrialState.COMPLETE, objective(trial.config), seconds=2.0))
    moves = [space.change_cost(a, b) for a, b in zip([space.default(), *configs], configs)]
    assert moves.count("restart") == math.ceil(tuner.n_initial / 3)
    assert len({space.config_key(c) for c in configs}) == len(configs)  # still distinct points


def test_move_cost_model_learns_per_class_seconds_with_a_prior():
    model = MoveCostModel()
    assert model.predict("restart") / model.predict("none") == pytest.approx(3.0)  # the prior, in relative units
    model.fit([("none", 2.0)] * 8 + [("restart", 12.0)] * 8)
    assert model.predict("none") == pytest.approx(2.0, rel=0.05)
    assert 10.0 < model.predict("restart") < 12.0  # the data, shrunk a little towards the prior's 6 s
    assert model.predict("reload") >= model.predict("none")  # unseen: the prior ratio, never below a cheaper class
    assert model.predict("rebuild") >= model.predict("restart")
    model.fit([("none", 5.0), ("none", float("nan")), ("none", -1.0)])  # junk durations are ignored
    assert model.predict("none") == pytest.approx(5.0)


def test_move_penalty_adds_declared_seconds():
    space = expensive_space()
    tuner = CostAwareBO(space, move_penalty={"restart": 30}, **FAST)
    moved = {**space.default(), "buffers": 100}
    assert tuner.predicted_seconds(moved) == pytest.approx(tuner.cost_model.predict("restart") + 30)
    assert tuner.predicted_seconds(space.default()) == pytest.approx(tuner.cost_model.predict("none"))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"acquisition": "lcb"}, "use 'ei' or 'pi'"),
        ({"cost_exponent": -1}, "cost_exponent"),
        ({"design_batch": 0}, "design_batch"),
        ({"move_penalty": {"reboot": 5}}, "move_penalty"),
        ({"cost_prior": {"none": 1.0}}, "cost prior"),
    ],
)
def test_bad_options_are_one_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        CostAwareBO(expensive_space(), **options)


@pytest.mark.slow  # once registered (bo-cost), tests/test_tuners_conformance.py runs the same suite
def test_passes_check_tuner():
    report = check_tuner(partial(CostAwareBO, n_candidates=100), steps=12)
    assert not report.failed and "save_restore" in report


def test_save_restore_with_durations_continues_exactly():
    space = expensive_space()
    a = CostAwareBO(space, seed=5, **FAST)
    drive(a, space, 8)
    state = json.loads(json.dumps(a.state_dict()))
    b = CostAwareBO(space, seed=5, **FAST)
    b.load_state_dict(state, a.told())
    for _ in range(3):
        ta, tb = a.ask(), b.ask()
        assert ta.config == tb.config
        result = Result(TrialState.COMPLETE, objective(ta.config), seconds=3.0)
        a.tell(ta, result)
        b.tell(tb, result)


def test_current_config_follows_asked_then_told():
    space = expensive_space()
    tuner = CostAwareBO(space, seed=0, **FAST)
    assert tuner.current_config() == space.default()
    trial = tuner.ask()
    assert tuner.current_config() == trial.config  # pending: it is what the system holds next
    tuner.tell(trial, Result(TrialState.COMPLETE, 1.0, seconds=2.0))
    assert tuner.current_config() == trial.config
    assert tuner.moves()[-1] == (space.change_cost(space.default(), trial.config), 2.0)


def test_study_tells_the_tuner_each_trials_seconds(tmp_path):
    """A study passes each trial's duration (Result.seconds), so the cost model learns from real runs."""
    from autosys.run.study import Study
    from tests.systems_for_tests import Sleepy  # a system whose trials take time

    study = Study.create(tmp_path / "s", Sleepy(log=str(tmp_path / "sleepy.log"), sleep=0.05), tuner="autosys.tuners.cost_aware:CostAwareBO",
                         tuner_options=FAST, budget=4, seed=0, intensify=False)
    study.run()
    seconds = [s for _, s in study.tuner.moves()]
    assert len(seconds) == 4 and all(s is not None and s > 0 for s in seconds)


# ----------------------------------------------------------------------------- the real server
PG_URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def test_postgres_space_gives_restart_knobs_their_cost_and_the_tuner_pins_them(tmp_path):
    """On the real server: shared_buffers is a restart knob (from pg_settings.context), and a cost-aware
    tuner on that space keeps it fixed through its initial design batch. Nothing is changed or restarted."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
    try:
        psycopg.connect(PG_URL, autocommit=True, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {PG_URL}: {str(exc).strip().splitlines()[0]}")
    from autosys_adapters.dbserver.postgres import PostgresKnobs

    system = PostgresKnobs(url=PG_URL, allow_restart=True, restart_command="false", state_file=str(tmp_path / "state.json"),
                           knobs="shared_buffers,wal_buffers,work_mem,commit_delay,checkpoint_timeout")
    try:
        space = system.space()
        costs = space.apply_costs()
        assert costs["shared_buffers"] == costs["wal_buffers"] == "restart"
        assert costs["work_mem"] == "none" and costs["checkpoint_timeout"] == "reload"
        tuner = CostAwareBO(space, seed=0, design_batch=3, **FAST)
        assert set(tuner.batched) == {"shared_buffers", "wal_buffers"}
        configs = [tuner.ask().config for _ in range(3)]
        assert configs[1]["shared_buffers"] == configs[2]["shared_buffers"] == configs[0]["shared_buffers"]
    finally:
        system.teardown()
