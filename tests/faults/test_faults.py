"""Fault injection: kills at random moments, hung trials with children, lost Dask workers,
two processes on one study, and damaged storage files."""

from __future__ import annotations

import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from autosys.executors import SubprocessExecutor
from autosys.storage import SCHEMA_VERSION, SQLiteStorage, StorageError
from autosys.run.study import Study
from autosys.core.trial import TrialState
from tests.faults.systems import ForkAndHang
from tests.systems_for_tests import Quadratic

ROOT = Path(__file__).resolve().parents[2]
SLEEPY = "tests.systems_for_tests:Sleepy"


def autosys(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autosys", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def starts(log: Path) -> collections.Counter:
    lines = log.read_text().splitlines() if log.exists() else []
    return collections.Counter(line.split()[1] for line in lines if line.startswith("start"))


def check_exact_budget(study_dir: Path, budget: int, log: Path) -> list:
    trials = SQLiteStorage(study_dir, create=False).trials()
    assert [t.number for t in trials] == list(range(budget)), "trials lost or numbered twice"
    assert all(t.state.finished for t in trials)
    counts = starts(log)
    # Sleepy logs configs, not trial numbers, and a tuner may propose one config in two trials
    # (seen: a corner x=1.0, k=100 in an interrupted trial and again later). A trial ran twice
    # when a config started more often than the study holds trials with that config.
    held = collections.Counter(f"{t.config['x']:.12f}-{t.config['k']}" for t in trials)
    twice = {tag: n for tag, n in counts.items() if n > held[tag]}
    assert not twice, f"a trial ran twice: {twice} (trials holding those configs: {[held[t] for t in twice]})"
    assert sum(counts.values()) <= budget
    return trials


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached before the deadline")


# ----------------------------------------------------------------------------- SIGKILL x 20


@pytest.mark.slow
def test_sigkill_at_20_random_moments_then_resume_gives_exact_budget_none_twice(tmp_path):
    log, study_dir, budget = tmp_path / "trials.log", tmp_path / "study", 40
    rng = random.Random(20)
    create = autosys("tune", SLEEPY, "--log", str(log), "--sleep", "0.08", "--budget", str(budget),
                     "--dir", str(study_dir), "--quiet", "--seed", "1")
    wait_for(lambda: sum(starts(log).values()) >= 1)  # the study exists once a trial has started
    time.sleep(rng.uniform(0.0, 0.5))
    create.kill()
    create.wait(timeout=30)
    kills = 1
    for cycle in range(19):
        # half the runs use a pool of 2 worker processes, which must die with the tuning process
        extra = ["--executor", "pool", "--workers", "2"] if cycle % 2 else []
        proc = autosys("tune", "--resume", str(study_dir), SLEEPY, "--quiet", *extra)
        time.sleep(rng.uniform(0.2, 1.6))  # from during start-up to well into the trials
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    assert kills == 20
    final = autosys("tune", "--resume", str(study_dir), SLEEPY, "--quiet")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    trials = check_exact_budget(study_dir, budget, log)
    failed = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all("interrupted" in t.error for t in failed)
    assert len(failed) <= 2 * kills
    assert sum(t.state == TrialState.COMPLETE for t in trials) == budget - len(failed)
    # every interrupted trial that started was really cut short, and no pool worker outlived its parent
    time.sleep(0.5)
    assert not orphaned_workers(), "a pool worker outlived the tuning process that started it"


def orphaned_workers() -> list[int]:
    """Trial workers started from this checkout whose parent is gone."""
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "autosys.executors.process --worker" in cmdline and proc.cwd() == str(ROOT) and proc.info["ppid"] in (0, 1):
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


# ----------------------------------------------------------------------------- hung trial with children


def test_a_hung_trial_that_forked_is_killed_at_its_timeout_with_every_child(tmp_path):
    pids_file = tmp_path / "pids.txt"
    study = Study.create(tmp_path / "s", ForkAndHang(pids=str(pids_file)), budget=2, seed=0)
    study.run(executor=SubprocessExecutor(1, timeout=2.0))
    trials = study.trials()
    assert len(trials) == 2 and all(t.state == TrialState.TIMED_OUT for t in trials)
    assert all("timed out after 2 s" in t.error for t in trials)
    pids = [int(p) for p in pids_file.read_text().split()]
    # per trial: the worker, two children, two grandchildren (one pair left the process group)
    assert len(pids) == 10

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(p) for p in pids), timeout=10)


# ----------------------------------------------------------------------------- Dask worker killed


def test_a_dask_worker_killed_mid_trial_gives_a_retried_or_failed_trial(tmp_path):
    pytest.importorskip("distributed", reason="the dask executor needs dask[distributed]")
    from autosys.executors import DaskExecutor
    from autosys.core.registry import make_system

    log, budget = tmp_path / "trials.log", 6
    system = make_system(SLEEPY, {"log": str(log), "sleep": 0.8})
    study = Study.create(tmp_path / "s", system, budget=budget, seed=2)
    killed: list[tuple[str, int]] = []

    def assassin():
        def third_trial_started():
            lines = [l for l in (log.read_text().splitlines() if log.exists() else []) if l.startswith("start")]
            return lines[2] if len(lines) >= 3 else None

        wait_for(lambda: third_trial_started() is not None, timeout=120)
        _, tag, pid = third_trial_started().split()
        killed.append((tag, int(pid)))
        os.kill(int(pid), signal.SIGKILL)

    with DaskExecutor(2) as executor:
        worker_pids = set(executor.worker_pids())
        thread = threading.Thread(target=assassin, daemon=True)
        thread.start()
        study.run(executor=executor, retries=1)
        thread.join(timeout=10)
    assert killed and killed[0][1] in worker_pids
    trials = study.trials()
    assert len(trials) == budget and all(t.state.finished for t in trials)
    tag = killed[0][0]
    victim = next(t for t in trials if f"{t.config['x']:.12f}-{t.config['k']}" == tag)
    if victim.state == TrialState.COMPLETE:
        assert starts(log)[tag] == 2  # Dask ran it again on a live worker
    else:
        assert "worker" in victim.error.lower() or "KilledWorker" in victim.error
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= budget - 1


# ----------------------------------------------------------------------------- two processes, one study


def test_two_processes_sharing_one_study_never_duplicate_a_trial(tmp_path):
    log, study_dir, budget = tmp_path / "trials.log", tmp_path / "study", 20
    from autosys.core.registry import make_system

    system = make_system(SLEEPY, {"log": str(log), "sleep": 0.25})
    Study.create(study_dir, system, budget=budget, seed=7).close()
    procs = [autosys("tune", "--resume", str(study_dir), SLEEPY, "--quiet"),
             autosys("tune", "--resume", str(study_dir), SLEEPY, "--quiet", "--executor", "pool", "--workers", "2")]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    trials = check_exact_budget(study_dir, budget, log)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sum(starts(log).values()) == budget
    workers = {w.split(":")[1] for w, _ in SQLiteStorage(study_dir, create=False).trial_workers().values()}
    assert workers == {str(p.pid) for p in procs}, "both processes should have claimed trials"
    # the shared tuner state kept them from proposing the same config (intensify re-runs repeat one on purpose)
    configs = [str(sorted(t.config.items())) for t in trials if "tuner_number" in t.info]
    assert len(set(configs)) == len(configs) >= budget // 2


def test_a_dead_processs_trial_is_failed_after_the_grace_period_and_retried(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), budget=5, seed=1, evaluate_default=False)
    stale = study._claim()  # as if claimed by a process on another host that then vanished
    study.storage.conn.execute("UPDATE trials SET worker='elsewhere:1:1', heartbeat=0 WHERE number=?", (stale.number,))
    study.run(retries=1, heartbeat=0.05, grace=1.0)
    trials = study.trials()
    assert len(trials) == 5
    retried = trials[stale.number]
    assert retried.state == TrialState.COMPLETE and retried.config == stale.config
    assert study.storage.attempts(stale.number) == 2 and retried.info["attempts"] == 2
    assert not study.tuner.pending and len(study.tuner.history) == 5


def test_without_retries_a_dead_processs_trial_is_failed_after_the_grace_period(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), budget=4, seed=1, evaluate_default=False)
    stale = study._claim()
    study.storage.conn.execute("UPDATE trials SET worker='elsewhere:1:1', heartbeat=0 WHERE number=?", (stale.number,))
    study.run(heartbeat=0.05, grace=1.0)
    trials = study.trials()
    assert len(trials) == 4 and trials[stale.number].state == TrialState.FAILED
    assert "interrupted" in trials[stale.number].error
    assert sum("interrupted" in (r.error or "") for _, r in study.tuner.history) == 1


# ----------------------------------------------------------------------------- damaged storage


@pytest.fixture
def finished_study(tmp_path) -> Path:
    study = Study.create(tmp_path / "s", Quadratic(), budget=12, seed=0).run()
    study.close()
    conn = SQLiteStorage(tmp_path / "s", create=False).conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return tmp_path / "s" / "study.sqlite"


def test_a_truncated_storage_file_gives_a_clear_error(finished_study):
    data = finished_study.read_bytes()
    for cut in (len(data) // 2, 4096 + 100, 50):
        finished_study.write_bytes(data[:cut])
        with pytest.raises(StorageError, match=r"study\.sqlite"):
            storage = SQLiteStorage(finished_study, create=False)
            storage.trials()
            storage.load_tuner_state()
    run = subprocess.run([sys.executable, "-m", "autosys", "tune", "--resume", str(finished_study.parent)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "study.sqlite" in run.stderr


def test_corrupted_pages_give_a_clear_error(finished_study):
    data = bytearray(finished_study.read_bytes())
    rng = random.Random(3)
    for page in range(1, len(data) // 4096):  # keep the header, scribble over every other page
        start = page * 4096 + 8
        data[start : start + 200] = bytes(rng.randrange(256) for _ in range(200))
    finished_study.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="not a readable autosys study|corrupt|cannot read"):
        SQLiteStorage(finished_study, create=False).trials()


def test_a_half_written_record_is_never_read_as_a_result(finished_study):
    storage = SQLiteStorage(finished_study, create=False)
    # a complete trial without its value, or with a torn JSON body, is corruption, not a result
    storage.conn.execute("UPDATE trials SET value=NULL WHERE number=3")
    with pytest.raises(StorageError, match="trial 3 is complete but has no value"):
        storage.trials()
    storage.conn.execute("UPDATE trials SET value=1.0, metrics='{\"loss\": 1.' WHERE number=3")
    with pytest.raises(StorageError, match="trial 3's metrics is corrupt"):
        storage.trials()


def test_a_late_result_for_a_trial_failed_meanwhile_is_kept_as_an_event(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), budget=3, seed=0, evaluate_default=False)
    trial = study._claim()
    study.storage.mark_interrupted()
    trial.state, trial.value, trial.metrics = TrialState.COMPLETE, 1.5, {"loss": 1.5}
    assert study.storage.finish_trial(trial) is False
    assert study.storage.trials()[0].state == TrialState.FAILED
    [(_, kind, body)] = study.storage.events("late_result")
    assert body["number"] == trial.number and body["value"] == 1.5


# ----------------------------------------------------------------------------- schema upgrade


def test_a_schema_1_file_made_by_the_first_release_is_upgraded_and_resumes(tmp_path):
    shutil.copy(Path(__file__).parent / "data" / "study_v1.sqlite", tmp_path / "study.sqlite")
    storage = SQLiteStorage(tmp_path, create=False)
    assert storage.schema_version == SCHEMA_VERSION == 2
    assert [k for _, k, _ in storage.events()] == ["schema_upgrade"]
    assert storage.tuner_revision() == 0 and len(storage.trials()) == 5
    storage.close()
    study = Study.resume(tmp_path, system=Quadratic(), budget=8).run()
    trials = study.trials()
    assert [t.number for t in trials] == list(range(8)) and all(t.state.finished for t in trials)
    assert study.storage.tuner_revision() > 0 and len(study.tuner.history) == 8


def test_a_file_from_a_newer_autosys_is_refused(tmp_path):
    storage = SQLiteStorage(tmp_path / "s")
    storage.conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    storage.close()
    with pytest.raises(StorageError, match="schema 99, newer than this autosys"):
        SQLiteStorage(tmp_path / "s", create=False)


def test_upgrade_path_runs_for_a_file_created_at_version_1(tmp_path):
    old = SQLiteStorage(tmp_path / "old", schema_version=1)
    assert old.schema_version == 1
    old.save_spec({"x": 1})
    old.conn.execute("INSERT INTO tuner_state(id, body) VALUES (1, '{}')")
    old.close()
    new = SQLiteStorage(tmp_path / "old", create=False)
    assert new.schema_version == 2 and new.tuner_revision() == 0 and new.load_spec() == {"x": 1}
