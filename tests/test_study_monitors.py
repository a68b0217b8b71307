"""Monitors sampled during every trial of a study, stored with the trial (autosys/run/monitoring.py)."""

from __future__ import annotations

import math
import socket
import threading
import warnings

import pytest

from autosys.checks.system import check_system
from autosys.core.monitor import Monitor, MonitorWarning, ProcessMonitor
from autosys.core.registry import available_systems, make_system
from autosys.core.space import Float, Space
from autosys.core.system import Measurement, Objective, System
from autosys.core.trial import TrialState
from autosys.run.monitoring import TrialSampler, probe_monitors
from autosys.run.study import Study

SMALL_SQLITE = {"records": 200, "operations": 100, "repeats": 1}
SUMMARY_KEYS = {"mean", "min", "max", "last", "n"}


def _check_summary(monitors: dict) -> None:
    assert monitors, "no monitor readings stored with the trial"
    for metric, summary in monitors.items():
        assert "." in metric, f"metric {metric!r} is not named <monitor>.<metric>"
        assert set(summary) == SUMMARY_KEYS
        assert summary["n"] >= 1
        assert all(math.isfinite(summary[k]) for k in ("mean", "min", "max", "last"))
        assert summary["min"] <= summary["mean"] <= summary["max"] or math.isclose(summary["min"], summary["max"])


@pytest.mark.parametrize("executor", ["inline", "subprocess", "pool"])
def test_sqlite_study_stores_monitor_readings_with_each_trial(tmp_path, executor):
    study = Study.create(tmp_path / "s", make_system("sqlite", SMALL_SQLITE), budget=3, seed=0)
    study.run(executor=executor)
    trials = study.trials()
    study.close()
    assert len(trials) == 3
    for trial in trials:
        assert trial.state == TrialState.COMPLETE, trial.error
        monitors = trial.info["monitors"]
        _check_summary(monitors)
        # the host, the process that ran the trial, and SQLite's own files
        assert {"system.cpu_percent", "process.cpu_percent", "process.rss_bytes", "sqlite-files.db_bytes"} <= set(monitors)
        assert monitors["process.rss_bytes"]["min"] > 1e6
        assert "monitor_errors" not in trial.info
    # persisted: a resumed study reads them back from storage
    again = Study.resume(tmp_path / "s")
    try:
        assert [t.info["monitors"] for t in again.trials()] == [t.info["monitors"] for t in trials]
    finally:
        again.close()


def test_monitoring_can_be_turned_off(tmp_path):
    study = Study.create(tmp_path / "s", make_system("sqlite", SMALL_SQLITE), budget=1, seed=0)
    study.run(monitor_interval=None)
    (trial,) = study.trials()
    study.close()
    assert trial.state == TrialState.COMPLETE
    assert "monitors" not in trial.info
    with pytest.raises(ValueError, match="monitor_interval"):
        Study.create(tmp_path / "t", make_system("sqlite", SMALL_SQLITE), budget=1).run(monitor_interval=-1)


# ----------------------------------------------------------------------------- failing monitors


class Steady(Monitor):
    name = "steady"

    def sample(self) -> dict[str, float]:
        return {"value": 3.0, "undefined": float("nan")}


class Broken(Monitor):
    name = "broken"

    def __init__(self, after: int = 0):
        self.calls, self.after = 0, after

    def sample(self) -> dict[str, float]:
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("the counter went away")
        return {"x": 1.0}


class Toy(System):
    """A cheap system whose monitors are chosen by the test."""

    name = "toy"

    def __init__(self, monitors: str = "steady,broken"):
        self.which = monitors

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0)])

    @property
    def objective(self) -> Objective:
        return Objective("y", "minimize")

    def evaluate(self, config):
        return Measurement({"y": (config["x"] - 0.3) ** 2})

    def monitors(self):
        if self.which == "raise":
            raise RuntimeError("monitors() itself failed")
        made = {"steady": Steady, "broken": Broken, "late": lambda: Broken(after=1), "empty": Empty,
                "nan": NaNOnly, "process": ProcessMonitor}
        return [made[name]() for name in self.which.split(",") if name]


class Empty(Monitor):
    name = "empty"

    def sample(self) -> dict[str, float]:
        return {}


class NaNOnly(Monitor):
    name = "nan-only"

    def sample(self) -> dict[str, float]:
        return {"ratio": float("nan")}


@pytest.mark.parametrize("which", ["steady,broken", "steady,late"])
def test_a_failing_monitor_is_left_out_and_the_trials_complete(tmp_path, which):
    study = Study.create(tmp_path / "s", Toy(which), budget=3, seed=0, intensify=False)
    with pytest.warns(MonitorWarning, match="broken"):
        study.run(monitor_interval=0.05)
    trials = study.trials()
    study.close()
    for trial in trials:
        assert trial.state == TrialState.COMPLETE, trial.error
        assert "the counter went away" in trial.info["monitor_errors"]["broken"]
        assert trial.info["monitors"]["steady.value"]["mean"] == 3.0
        assert "steady.undefined" not in trial.info["monitors"]  # NaN alone is no reading


def test_monitors_that_raise_leave_the_trial_without_readings(tmp_path):
    study = Study.create(tmp_path / "s", Toy("raise"), budget=2, seed=0, intensify=False)
    with pytest.warns(MonitorWarning, match="monitors"):
        study.run()
    trials = study.trials()
    study.close()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all("monitors()" in t.info["monitor_errors"] and "monitors" not in t.info for t in trials)


class Hanging(Monitor):
    name = "hanging"

    def __init__(self, release: threading.Event):
        self.release, self.calls = release, 0

    def sample(self) -> dict[str, float]:
        self.calls += 1
        if self.calls > 1:  # the priming reading returns; the last one hangs until released
            self.release.wait(30)
        return {"v": 1.0}


def test_stop_returns_at_its_deadline_when_a_monitor_hangs():
    release = threading.Event()
    sampler = TrialSampler(lambda: [Hanging(release)], interval=60.0, stop_deadline=0.3).start()
    readings = sampler.stop()
    release.set()
    assert "sampler" in readings.errors and "hung" in readings.errors["sampler"]


def test_sampler_reads_at_its_interval_and_summarizes():
    stop = threading.Event()
    sampler = TrialSampler(lambda: [Steady()], interval=0.02).start()
    stop.wait(0.3)
    readings = sampler.stop()
    summary = readings.summary()
    assert summary["steady.value"]["n"] >= 3  # several readings plus the last one
    assert summary["steady.value"]["min"] == summary["steady.value"]["max"] == 3.0
    with pytest.raises(ValueError, match="interval"):
        TrialSampler(lambda: [], interval=0)


# ----------------------------------------------------------------------------- every registered system


def _up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


SERVERS = {"postgres": (5432, "psycopg"), "mysql": (3306, "pymysql")}


@pytest.mark.parametrize("name", sorted(available_systems()))
def test_every_registered_system_has_monitors_that_read(name):
    if name in SERVERS:
        port, module = SERVERS[name]
        pytest.importorskip(module, reason=f"the db extra ({module}) is not installed")
        if not _up(port):
            pytest.skip(f"no {name} server at 127.0.0.1:{port}")
    system = make_system(name, {})
    monitors = list(system.monitors())
    assert monitors, f"{name}: monitors() returned none"
    with system:  # as in a study: set up (a server system makes its benchmark database), then torn down
        readings, problems = probe_monitors(system)
    assert not problems, f"{name}: {problems}"
    assert readings
    for monitor, reading in readings.items():
        assert any(math.isfinite(v) for v in reading.values()), (monitor, reading)


# ----------------------------------------------------------------------------- check_system


@pytest.mark.parametrize("which, culprit, why", [("steady,empty", "empty", "at least one metric"),
                                                  ("steady,nan", "nan-only", "no finite value"),
                                                  ("steady,broken", "broken", "raised RuntimeError")])
def test_check_system_flags_a_monitor_without_readings(which, culprit, why):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        report = check_system(Toy(which), study_budget=0, raise_on_failure=False)
    failed = [line for line in report.failed if line.startswith("monitors_read")]
    assert len(failed) == 1, report.failed
    assert f"{culprit}: " in failed[0] and why in failed[0]
    assert "steady:" not in failed[0]  # the working monitor is not blamed


def test_check_system_passes_working_monitors():
    report = check_system(Toy("steady,process"), study_budget=0, raise_on_failure=False)
    assert "monitors_read" in report
