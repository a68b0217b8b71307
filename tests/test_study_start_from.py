"""A study started from given configs (an expert's rules): they run right after the default and can win."""

import pytest

from autosys.core.space import InvalidConfig
from autosys.run.study import START, Study
from tests.systems_for_tests import Quadratic

EXPERT = {"x": 1.0, "n": 3}  # the optimum of Quadratic (kind "a" by default)


def test_start_configs_run_after_the_default_and_become_the_answer(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), tuner="random", budget=12, seed=5,
                         start_from=[EXPERT, {"x": 0.0}]).run()
    trials = sorted(study.trials(), key=lambda t: t.number)
    assert [t.source for t in trials[:3]] == ["default", START, START]
    assert trials[1].config == {"x": 1.0, "n": 3, "kind": "a"}  # the knobs it leaves out at their defaults
    assert trials[2].config == {"x": 0.0, "n": 8, "kind": "a"}
    assert all(t.source != START for t in trials[3:])
    # the random proposals do not hit the exact optimum: the start config has to be raced in and kept
    assert study.best.config == trials[1].config


def test_a_resumed_study_still_runs_its_start_configs(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), tuner="random", budget=1, seed=0, start_from=[EXPERT])
    study.run().close()  # only the default ran
    resumed = Study.resume(tmp_path / "s", system=Quadratic(), budget=3).run()
    assert [t.source for t in sorted(resumed.trials(), key=lambda t: t.number)][:2] == ["default", START]


def test_a_start_config_outside_the_space_is_refused_at_creation(tmp_path):
    with pytest.raises(InvalidConfig, match=r"start_from\[0\].*'bogus'"):
        Study.create(tmp_path / "s", Quadratic(), budget=5, start_from=[{"bogus": 1}])
    with pytest.raises(InvalidConfig, match=r"start_from\[0\]"):
        Study.create(tmp_path / "t", Quadratic(), budget=5, start_from=[{"n": 99}])
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()  # nothing half-made is left
