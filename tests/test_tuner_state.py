"""The stored tuner state is a small extra; the tuner's history is rebuilt from the study's trials."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autosys.core.trial import Result, TrialState
from autosys.run.study import Study
from autosys.storage import SQLiteStorage
from autosys.storage.base import dumps
from autosys.tuners import make_tuner
from tests.systems_for_tests import Quadratic

V1_FILE = Path(__file__).parent / "faults" / "data" / "study_v1.sqlite"


def _keys(value) -> set[str]:
    """Every key at any depth of a JSON value."""
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


def _told(tuner) -> list:
    return [(t.number, t.config, r.state, r.value) for t, r in tuner.history]


@pytest.mark.parametrize("name", ["bo", "meta", "cash"])
def test_a_resumed_study_rebuilds_its_tuner_from_the_trials(tmp_path, name):
    study = Study.create(tmp_path / "s", Quadratic(), tuner=name, budget=16, seed=3).run()
    state = study.storage.load_tuner_state()
    assert "history" not in _keys(state)  # members' states too
    assert len(dumps(state)) < 2500  # the full-history state of this study was 4-14 kB
    again = Study.resume(tmp_path / "s", system=Quadratic())
    assert _told(again.tuner) == _told(study.tuner)
    if name in ("meta", "cash"):
        assert again.tuner.usage() == study.tuner.usage()
        for mine, theirs in zip(again.tuner.members, study.tuner.members):
            assert _told(mine) == _told(theirs)
    assert [again.tuner.ask().config for _ in range(3)] == [study.tuner.ask().config for _ in range(3)]


def test_another_process_reloads_a_newer_state_and_keeps_pending_trials(tmp_path):
    first = Study.create(tmp_path / "s", Quadratic(), tuner="meta", budget=12, seed=1)
    first.run(stop_when=lambda s: s.n_finished() >= 6)
    running = first._claim()
    second = Study.resume(tmp_path / "s", system=Quadratic())  # sees the trial running in a live process
    assert set(second.tuner.pending) == {running.info["tuner_number"]}
    from autosys.core.evaluation import Outcome

    first._finish(running, Outcome(TrialState.COMPLETE, 2.5, {"loss": 2.5, "size": 0.0}), None)
    with second.storage.transaction():
        second._sync_tuner()  # a newer revision: rebuilt from the trials and the extra state
    assert not second.tuner.pending and _told(second.tuner) == _told(first.tuner)
    assert second.tuner.ask().config == first.tuner.ask().config


def test_a_warm_start_from_outside_the_study_survives_a_reload_once(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), tuner="bo", budget=6, seed=2)
    outside = {"x": 0.9, "n": 3, "kind": "a"}
    study.tuner.warm_start([(outside, Result.complete(0.01))])  # as analysis.workload_mapping does
    study.storage.save_tuner_state(study.tuner.state_dict())
    study.run()
    for _ in range(2):  # resumed twice: kept once in the state, never copied into it twice
        study = Study.resume(tmp_path / "s", system=Quadratic())
        warm = [t.config for t, _ in study.tuner.history if t.number < 0]
        baselines = [t for t in study.trials() if t.finished and "tuner_number" not in t.info]  # default, re-runs
        assert warm.count(outside) == 1 and len(warm) == 1 + len(baselines)  # the others from their stored trials
        study.storage.save_tuner_state(study.tuner.state_dict())
    assert len(study.storage.load_tuner_state()["kept"]) == 1


def test_a_full_history_state_of_an_older_file_still_loads(tmp_path):
    shutil.copy(V1_FILE, tmp_path / "study.sqlite")
    storage = SQLiteStorage(tmp_path, create=False)
    old = storage.load_tuner_state()
    assert "history" in old and "kept" not in old
    outside = {"x": 1.0, "n": 3, "kind": "a"}  # a warm start that no stored trial holds
    old["history"].insert(1, [{"number": -1, "config": outside, "source": "warm_start"},
                              {"state": "complete", "value": 0.0, "metrics": {}, "error": None}])
    storage.save_tuner_state(old)
    storage.close()
    by_state = make_tuner("random", Quadratic().space(), seed=2)
    by_state.load_state_dict(json.loads(json.dumps(old)))  # no history given: the old state's own
    study = Study.resume(tmp_path, system=Quadratic(), budget=8)  # history from the trials, the outside one kept
    assert _told(study.tuner) == _told(by_state)
    assert study.tuner.ask().config == by_state.ask().config
    study.run()
    state = study.storage.load_tuner_state()
    assert "history" not in state and [c for _, c, _ in state["kept"]] == [outside]
