"""Two `autosys tune --resume DIR` processes on one study, SIGKILLed and restarted at random moments:
the budget is met exactly, no trial runs twice, and no trial fails because of the other process."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from autosys.core.registry import make_system
from autosys.core.trial import TrialState
from autosys.run.study import Study
from tests.faults.test_faults import autosys, check_exact_budget, starts, wait_for

SYSTEM = "tests.faults.systems:ScratchFiles"
KILLED = "interrupted: the process running it died"


def resume(study_dir: Path) -> subprocess.Popen:
    return autosys("tune", "--resume", str(study_dir), SYSTEM, "--quiet")  # a module:Class is named again


@pytest.mark.slow
def test_two_resumed_processes_killed_at_20_moments_meet_the_budget_and_never_clash(tmp_path):
    log, study_dir, budget = tmp_path / "trials.log", tmp_path / "study", 40
    system = make_system(SYSTEM, {"log": str(log), "sleep": 0.15})
    Study.create(study_dir, system, tuner="random", budget=budget, seed=16).close()
    rng = random.Random(16)
    procs = [resume(study_dir), resume(study_dir)]
    wait_for(lambda: sum(starts(log).values()) >= 2)
    for _ in range(20):
        time.sleep(rng.uniform(0.2, 1.2))
        slot = rng.randrange(2)
        procs[slot].send_signal(signal.SIGKILL)
        procs[slot].wait(timeout=30)
        procs[slot] = resume(study_dir)
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    trials = check_exact_budget(study_dir, budget, log)
    failed = [t for t in trials if t.state != TrialState.COMPLETE]
    caused_by_the_other = [f"{t.number}: {t.error}" for t in failed if t.error != KILLED]
    print(f"{len(trials)} trials, {len(failed)} failed, {len(caused_by_the_other)} not by a kill")
    assert not caused_by_the_other, f"trials failed by the other process: {caused_by_the_other}"
    assert len(failed) <= 20


def test_a_study_whose_setup_fails_can_be_resumed_to_its_budget(tmp_path):
    marker, study_dir = tmp_path / "broken", tmp_path / "study"
    marker.write_text("x")
    system = "tests.faults.systems:BrokenSetup"
    first = autosys("tune", system, "--marker", str(marker), "--budget", "3", "--dir", str(study_dir), "--quiet")
    _, err = first.communicate(timeout=120)
    assert first.returncode != 0 and "Traceback" not in err and "cannot set up" in err
    assert not list(study_dir.glob("work/*")), "the failed process left its work folder"
    marker.unlink()
    again = autosys("tune", "--resume", str(study_dir), system, "--quiet")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    from autosys.storage import SQLiteStorage

    trials = SQLiteStorage(study_dir, create=False).trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)


def test_a_dir_holding_other_files_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    run = autosys("tune", "tests.systems_for_tests:Quadratic", "--budget", "2", "--dir", str(folder), "--quiet")
    _, err = run.communicate(timeout=120)
    assert run.returncode != 0 and "Traceback" not in err and "already holds other files" in err
    assert len(err.strip().splitlines()) == 1
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
