"""Watchable studies: the library logs one line per trial (quiet unless configured), the CLI writes those lines
when stderr is not a terminal, `show --watch` follows a study and returns when it ends, numbers carry units."""

import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from autosys.core.system import Objective
from autosys.core.trial import Trial, TrialState
from autosys.core.units import better_text, format_number, format_quantity, guess_unit
from autosys.run.progress import log_trial, trial_line
from autosys.run.study import Study
from tests.systems_for_tests import Quadratic

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--records", "300", "--operations", "200", "--repeats", "1", "--seconds", "0.3"]
LINE = re.compile(r"^\d\d:\d\d:\d\d trial (\d+)( \(\w+\))? (complete|failed|timed_out|pruned)\b")


def autosys(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "autosys", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# ----------------------------------------------------------------------------- formatting


@pytest.mark.parametrize("value, text", [
    (12345.678, "12,346"), (1234567, "1,234,567"), (3.14159, "3.142"), (0.012345, "0.01235"), (42, "42"),
    (999.96, "1,000"), (0.0, "0"), (1.0, "1"), (10.5, "10.5"), (-2500.4, "-2,500"), (float("nan"), "nan"),
    (float("inf"), "inf"), (1e-7, "1e-07"), ("wal", "wal"), (True, "True"),
])
def test_numbers_have_thousands_separators_and_four_significant_digits(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize("metric, unit", [
    ("throughput", "ops/s"), ("p95_latency_ms", "ms"), ("p95_latency_us", "us"), ("ns_per_lookup", "ns/lookup"),
    ("wal_bytes_per_op", "B/op"), ("index_bytes", "B"), ("gflops", "GFLOP/s"), ("requests_per_second", "req/s"),
    ("miss_ratio", ""), ("hit_ratio", ""), ("loss", ""), ("rows_read_per_op", ""),
])
def test_units_are_guessed_from_metric_names(metric, unit):
    assert guess_unit(metric) == unit


def test_objective_units_declared_or_guessed_and_stored_only_when_declared():
    assert Objective("throughput").unit_of() == "ops/s"
    declared = Objective("score", "minimize", others=(("p95_latency_ms", "minimize"),), unit="tx/s")
    assert declared.unit_of() == "tx/s" and declared.unit_of("p95_latency_ms") == "ms"
    assert Objective.from_json(declared.to_json()) == declared
    assert "unit" not in Objective("throughput").to_json()
    assert format_quantity(12345.6, "ops/s") == "12,346 ops/s" and format_quantity(0.5, "") == "0.5"
    assert format_quantity(12.5, "%") == "12.5%" and format_quantity("-", "ms") == "-"
    assert better_text("minimize") == "lower is better" and better_text("maximize") == "higher is better"


def test_trial_lines_say_state_value_unit_direction_best_and_progress():
    objective = Objective("ns_per_lookup", "minimize")
    best = Trial(2, {}, TrialState.COMPLETE, value=180.25)
    done = Trial(5, {}, TrialState.COMPLETE, value=1234.5)
    assert trial_line(done, objective, best, 6, 40) == (
        "trial 5 complete: ns_per_lookup 1,234 ns/lookup (lower is better); best 180.2 ns/lookup (trial 2); 6 of 40 done"
    )
    default = Trial(0, {}, TrialState.COMPLETE, value=2.0, source="default")
    assert trial_line(default, Objective("throughput"), None, 1).startswith("trial 0 (default) complete: throughput 2 ops/s")
    assert trial_line(default, Objective("throughput"), None, 1).endswith("; no successful trial yet; 1 done")
    failed = Trial(7, {}, TrialState.FAILED, error="cannot connect to postgresql://u:secret@h/db\nTraceback ...")
    line = trial_line(failed, objective, best)
    assert line == "trial 7 failed: cannot connect to postgresql://u@h/db; best 180.2 ns/lookup (trial 2)"
    infeasible = Trial(8, {}, TrialState.COMPLETE, value=90.0, info={"infeasible": "index_bytes=9e+06 is above its limit"})
    assert "90 ns/lookup (lower is better), infeasible: index_bytes=9e+06 is above its limit" in trial_line(infeasible, objective)


# ----------------------------------------------------------------------------- the library's logger


def test_the_library_is_quiet_unless_logging_is_configured():
    import autosys  # noqa: F401

    handlers = logging.getLogger("autosys").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert logging.getLogger("autosys.study").getEffectiveLevel() > logging.INFO or not logging.getLogger().handlers


def test_log_trial_writes_one_info_line_and_computes_nothing_when_disabled(caplog):
    class Exploding:
        objective = Objective("throughput")
        budget = SimpleNamespace(trials=10)

        @property
        def best(self):
            raise AssertionError("the best was computed for a line nobody reads")

        def n_finished(self):
            raise AssertionError("counted for a line nobody reads")

    trial = Trial(3, {}, TrialState.COMPLETE, value=1500.0)
    logging.getLogger("autosys.study").setLevel(logging.WARNING)
    try:
        log_trial(Exploding(), trial)  # disabled: returns before touching the study
    finally:
        logging.getLogger("autosys.study").setLevel(logging.NOTSET)
    study = SimpleNamespace(objective=Objective("throughput"), best=Trial(1, {}, TrialState.COMPLETE, value=2000.0),
                            budget=SimpleNamespace(trials=10), n_finished=lambda: 4)
    with caplog.at_level(logging.INFO, logger="autosys.study"):
        log_trial(study, trial)
        log_trial(Exploding(), trial)  # a failure to describe the trial never reaches the study
    lines = [r.getMessage() for r in caplog.records if r.name == "autosys.study" and r.levelno == logging.INFO]
    assert lines == ["trial 3 complete: throughput 1,500 ops/s (higher is better); best 2,000 ops/s (trial 1); 4 of 10 done"]


# ----------------------------------------------------------------------------- the CLI without a terminal


def test_a_run_without_a_terminal_writes_one_line_per_trial_as_it_goes(tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as out:  # `autosys tune sqlite --budget 5 > log 2>&1`
        run = subprocess.run([sys.executable, "-m", "autosys", "tune", "sqlite", "--budget", "5", "--dir", str(tmp_path / "s"),
                              *SMALL], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=300)
    text = log.read_text()
    assert run.returncode == 0, text
    lines = text.splitlines()
    trial_lines = [line for line in lines if LINE.match(line)]
    assert sorted(int(LINE.match(line).group(1)) for line in trial_lines) == [0, 1, 2, 3, 4], text
    assert all("throughput" in line and "ops/s" in line and "of 5 done" in line for line in trial_lines if "complete" in line)
    # as it runs: every trial's line comes before the final table and summary
    summary = next(i for i, line in enumerate(lines) if line.startswith("trials: "))
    assert max(lines.index(line) for line in trial_lines) < summary
    assert "━" not in "".join(trial_lines) and "tuning" not in text  # no progress bar drawn into a file


def test_quiet_means_no_trial_lines(tmp_path):
    run = autosys("tune", "sqlite", "--budget", "2", "--quiet", "--dir", str(tmp_path / "s"), *SMALL)
    assert run.returncode == 0, run.stderr
    assert not [line for line in run.stderr.splitlines() if LINE.match(line)]


# ----------------------------------------------------------------------------- show --watch


def _finished_study(directory: Path, budget: int = 4) -> None:
    Study.create(directory, Quadratic(), tuner="random", budget=budget, seed=0).run().close()


def test_show_watch_returns_when_the_study_has_finished(tmp_path):
    _finished_study(tmp_path / "s")
    run = autosys("show", str(tmp_path / "s"), "--watch", "--interval", "0.2", timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "objective: minimize loss (lower is better)" in lines[0]
    assert len([line for line in lines if re.match(r"trial \d+ ", line)]) == 4
    assert lines[-1] == "finished: its trial budget is spent"


def test_show_watch_follows_a_running_study_to_its_end(tmp_path):
    tune = subprocess.Popen(
        [sys.executable, "-m", "autosys", "tune", "tests.systems_for_tests:Sleepy", "--log", str(tmp_path / "sleepy.log"),
         "--sleep", "0.4", "--budget", "6", "--tuner", "random", "--quiet", "--dir", str(tmp_path / "s")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "s" / "study.sqlite").exists() and tune.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        watch = autosys("show", str(tmp_path / "s"), "--watch", "--interval", "0.1", timeout=180)
        assert tune.wait(timeout=120) == 0, tune.stderr.read()
    finally:
        tune.kill()
    assert watch.returncode == 0, watch.stderr
    lines = [line for line in watch.stdout.splitlines() if re.match(r"trial \d+ ", line)]
    assert sorted(int(line.split()[1]) for line in lines) == list(range(6))  # each trial once, as it landed
    assert "of 6 done" in lines[-1] and watch.stdout.splitlines()[-1] == "finished: its trial budget is spent"


def test_watch_stops_at_its_deadline_or_when_nothing_runs(tmp_path):
    from autosys.cli.main import _watch_view
    from autosys.cli.watch import watch

    study = Study.create(tmp_path / "s", Quadratic(), tuner="random", budget=10, seed=0)
    study.run(stop_when=lambda s: s.n_finished() >= 2)  # stopped early: budget not spent, nothing running
    study.close()
    console = Console(file=open(tmp_path / "out", "w"), force_terminal=False, width=200)
    assert watch(tmp_path / "s", console, _watch_view, interval=0.05, timeout=0.3, idle=60).startswith("stopped watching after 0.3 s")
    assert watch(tmp_path / "s", console, _watch_view, interval=0.05, idle=0.2).startswith("not running")
    terminal = Console(file=open(tmp_path / "tty", "w"), force_terminal=True, width=120, height=30)
    assert watch(tmp_path / "s", terminal, _watch_view, interval=0.05, timeout=0.2, idle=60).startswith("stopped watching")
    drawn = (tmp_path / "tty").read_text()
    assert "2 of 10 trials done" in drawn and "loss" in drawn


def test_show_watch_refuses_bad_intervals_and_missing_studies(tmp_path):
    for args, needle in [(("--interval", "0"), "--interval must be above 0"), (("--timeout", "-1"), "--timeout must be above 0")]:
        run = autosys("show", str(tmp_path), "--watch", *args)
        assert run.returncode == 2 and needle in run.stderr, run.stderr
    run = autosys("show", str(tmp_path / "none"), "--watch")
    assert run.returncode == 2 and "no study found" in run.stderr and "Traceback" not in run.stderr
