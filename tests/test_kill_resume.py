"""SIGKILL in the middle of a trial, then `autosys tune --resume`: exact budget, nothing run twice."""

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autosys.storage import SQLiteStorage
from autosys.core.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]


def start(args):
    return subprocess.Popen(
        [sys.executable, "-m", "autosys", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached before the deadline")


def log_lines(log: Path):
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("kill_during", [1, 4])
def test_killed_mid_trial_resumes_to_exact_budget_without_rerunning(tmp_path, kill_during):
    log, study_dir, budget = tmp_path / "trials.log", tmp_path / "study", 8
    args = ["tune", "tests.systems_for_tests:Sleepy", "--log", str(log), "--sleep", "0.4", "--budget", str(budget),
            "--dir", str(study_dir), "--quiet", "--seed", "3"]
    proc = start(args)
    # in the middle of trial `kill_during`: it has started and not ended
    wait_until(lambda: sum(l.startswith("start") for l in log_lines(log)) == kill_during + 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert sum(l.startswith("end") for l in log_lines(log)) == kill_during

    resumed = start(["tune", "--resume", str(study_dir), "tests.systems_for_tests:Sleepy", "--quiet"])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err

    storage = SQLiteStorage(study_dir, create=False)
    trials = storage.trials()
    assert [t.number for t in trials] == list(range(budget))
    assert all(t.state.finished for t in trials)
    interrupted = [t for t in trials if t.state == TrialState.FAILED]
    assert len(interrupted) == 1 and "interrupted" in interrupted[0].error
    assert sum(t.state == TrialState.COMPLETE for t in trials) == budget - 1
    starts = collections.Counter(l.split()[1] for l in log_lines(log) if l.startswith("start"))
    # one start per stored trial (a config is run again only as a stored intensify re-run)
    per_trial = collections.Counter(f"{t.config['x']:.12f}-{t.config['k']}" for t in trials)
    assert sum(starts.values()) == budget and starts == per_trial, "a trial was run twice"
    pids = {l.split()[2] for l in log_lines(log)}
    assert len(pids) == 2  # the killed process and the resumed one


def test_real_sqlite_study_killed_and_resumed(tmp_path):
    study_dir, budget = tmp_path / "study", 7
    proc = start(["tune", "sqlite", "--budget", str(budget), "--dir", str(study_dir), "--quiet",
                  "--records", "500", "--operations", "400", "--repeats", "2", "--seconds", "0.5"])
    db = study_dir / "study.sqlite"

    def running_late_trial():
        if not db.exists():
            return False
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                row = conn.execute("SELECT COUNT(*) FROM trials WHERE state='running' AND number >= 2").fetchone()
            return row[0] > 0
        except sqlite3.Error:
            return False

    wait_until(running_late_trial)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = {t.number: t.config for t in SQLiteStorage(study_dir, create=False).trials() if t.state.finished}

    resumed = start(["tune", "--resume", str(study_dir), "--quiet"])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    trials = SQLiteStorage(study_dir, create=False).trials()
    assert len(trials) == budget and all(t.state.finished for t in trials)
    assert sum("interrupted" in (t.error or "") for t in trials) == 1
    # finished trials were kept as they were, not re-run
    assert {t.number: t.config for t in trials if t.number in done_before} == done_before
