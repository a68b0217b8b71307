"""Executors: the concurrent.futures-style interface, isolation, timeouts, exclusivity, parallel studies."""

import os
import time

import pytest

from autosys.core.evaluation import Outcome
from autosys.executors import (
    InlineExecutor,
    PoolExecutor,
    SubprocessExecutor,
    SystemRef,
    TrialTimeout,
    WorkerLost,
    make_executor,
    run_trial,
)
from autosys.core.registry import make_system
from autosys.run.study import Study
from autosys.core.trial import TrialState
from tests.faults.systems import ExclusiveSleepy, MemoryHog, Printer
from tests.systems_for_tests import Quadratic


def test_inline_runs_now_and_keeps_exceptions_in_the_future():
    ex = InlineExecutor()
    assert ex.submit(sum, [1, 2]).result() == 3
    future = ex.submit(int, "x")
    assert future.done() and isinstance(future.exception(), ValueError)


def test_pool_reuses_its_workers_and_replaces_a_dead_one():
    with PoolExecutor(2) as ex:
        pids = {f.result() for f in [ex.submit(os.getpid) for _ in range(6)]}
        assert len(pids) == 2 and os.getpid() not in pids
        with pytest.raises(WorkerLost, match="exited with code 7"):
            ex.submit(os._exit, 7).result()
        with pytest.raises(WorkerLost, match="SIGKILL"):
            ex.submit(os.kill, 0, 9).result()  # kills the worker's own process group
        assert ex.submit(sum, [2, 3]).result() == 5  # a fresh worker took its place


def test_subprocess_gives_every_call_a_fresh_process_and_enforces_the_timeout():
    with SubprocessExecutor(1, timeout=1.0) as ex:
        assert ex.submit(os.getpid).result() != ex.submit(os.getpid).result()
        with pytest.raises(TrialTimeout, match="timed out after 1 s"):
            ex.submit(time.sleep, 30).result()
        assert ex.submit(sum, [1]).result() == 1


def test_exceptions_of_the_call_come_back_as_they_were():
    with PoolExecutor(1) as ex:
        with pytest.raises(ZeroDivisionError):
            ex.submit(divmod, 1, 0).result()


def test_a_trial_that_prints_does_not_corrupt_the_answer():
    with PoolExecutor(1) as ex:
        outcome = ex.submit(run_trial, SystemRef.of(Printer()), {"x": 0.5}).result()
    assert isinstance(outcome, Outcome) and outcome.state == TrialState.COMPLETE and outcome.value == 0.5


def test_memory_limit_turns_a_hog_into_a_failed_trial(tmp_path):
    study = Study.create(tmp_path / "s", MemoryHog(mb=4096), budget=6, seed=0)
    study.run(executor=PoolExecutor(1, memory_mb=1024))
    trials = study.trials()
    hogs = [t for t in trials if t.config["x"] > 0.5]
    assert len(trials) == 6 and hogs
    assert all(t.state == TrialState.FAILED and "MemoryError" in t.error for t in hogs)
    assert all(t.state == TrialState.COMPLETE for t in trials if t.config["x"] <= 0.5)


def test_registry_systems_are_rebuilt_in_the_worker_with_their_options(tmp_path):
    system = make_system("tests.systems_for_tests:Sleepy", {"log": str(tmp_path / "log"), "sleep": 0.0})
    ref = SystemRef.of(system, tmp_path / "work")
    assert ref.name == "tests.systems_for_tests:Sleepy" and ref.pickled is None
    with PoolExecutor(1) as ex:
        outcome = ex.submit(run_trial, ref, {"x": 0.1, "k": 5}).result()
    assert outcome.state == TrialState.COMPLETE
    worker_pid = (tmp_path / "log").read_text().split()[2]
    assert worker_pid != str(os.getpid())
    assert any(p.name.startswith("worker-") for p in (tmp_path / "work").iterdir())


def test_make_executor_rejects_what_it_cannot_do():
    for kwargs, needle in [
        ({"kind": "threads"}, "unknown executor 'threads'"),
        ({"kind": "inline", "timeout": 3}, "cannot enforce a trial timeout"),
        ({"kind": "inline", "workers": 4}, "one trial at a time"),
        ({"kind": "pool", "workers": 0}, "at least 1"),
        ({"kind": "pool", "scheduler": "tcp://h:1"}, "needs the dask executor"),
    ]:
        with pytest.raises(ValueError, match=needle):
            make_executor(**kwargs)


def test_parallel_study_keeps_a_batch_pending_and_spends_exactly_the_budget(tmp_path):
    log = tmp_path / "log"
    system = make_system("tests.systems_for_tests:Sleepy", {"log": str(log), "sleep": 0.2})
    study = Study.create(tmp_path / "s", system, budget=10, seed=3, intensify=False)  # every trial a tuner proposal
    pending_seen = []
    study.run(callback=lambda s, t: pending_seen.append(len(s.tuner.pending)), executor="pool", workers=2)
    trials = study.trials()
    assert [t.number for t in trials] == list(range(10)) and all(t.state == TrialState.COMPLETE for t in trials)
    assert max(pending_seen) >= 1  # another trial was still running in the tuner's view when one finished
    assert len(study.tuner.history) == 10 and not study.tuner.pending
    starts = [line for line in log.read_text().splitlines() if line.startswith("start")]
    assert len(starts) == 10 and len({line.split()[1] for line in starts}) == 10
    assert len({line.split()[2] for line in starts}) == 2  # two worker processes shared the work
    # the two ran at the same time: some trial started before the previous one ended
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert any(a == b == "start" for a, b in zip(events, events[1:]))


def test_parallel_study_with_random_search_gives_the_same_configs_as_sequential(tmp_path):
    # the tuner's proposals only (intensify=False): re-runs depend on when results arrive
    seq = Study.create(tmp_path / "a", Quadratic(), tuner="random", budget=8, seed=5, intensify=False).run()
    par = Study.create(tmp_path / "b", Quadratic(), tuner="random", budget=8, seed=5, intensify=False).run(executor="pool", workers=2)
    key = lambda study: sorted(str(sorted(t.config.items())) for t in study.trials())  # noqa: E731
    assert key(seq) == key(par)


def test_exclusive_systems_never_overlap_on_one_host(tmp_path):
    log = tmp_path / "log"
    study = Study.create(tmp_path / "s", ExclusiveSleepy(log=str(log), sleep=0.15), budget=6, seed=1)
    study.run(executor="pool", workers=2)
    assert len(study.trials((TrialState.COMPLETE,))) == 6
    # even two executors on the same host at once are serialised by the host lock
    with PoolExecutor(2) as ex:
        ref = SystemRef.of(ExclusiveSleepy(log=str(log), sleep=0.15))
        futures = [ex.submit(run_trial, ref, {"x": 0.5, "k": k}) for k in range(1, 5)]
        assert all(f.result().state == TrialState.COMPLETE for f in futures)
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["start", "end"] * 10


def test_batch_crash_state_lists_every_pending_trial_and_resume_tells_them(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), budget=6, seed=2, evaluate_default=False)
    first, second = study._claim(), study._claim()
    stored = study.storage.load_tuner_state()
    assert {p["number"] for p in stored["pending"]} == {first.info["tuner_number"], second.info["tuner_number"]}
    study.storage.mark_interrupted()  # as if the process had died with both running
    study.close()
    again = Study.resume(tmp_path / "s", system=Quadratic())
    assert not again.tuner.pending and len(again.tuner.history) == 2
    again.run()
    trials = again.trials()
    assert len(trials) == 6 and sum(t.state == TrialState.FAILED for t in trials) == 2


def test_cli_trial_timeout_and_workers_options(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out.json"
    run = subprocess.run(
        [sys.executable, "-m", "autosys", "tune", "tests.faults.systems:ForkAndHang", "--pids", str(tmp_path / "pids"),
         "--budget", "2", "--trial-timeout", "1", "--executor", "subprocess", "--workers", "2",
         "--dir", str(tmp_path / "s"), "--json", str(out), "--quiet"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["trials"]["timed_out"] == 2
    bad = subprocess.run([sys.executable, "-m", "autosys", "tune", "tests.faults.systems:Printer", "--workers", "2",
                          "--dir", str(tmp_path / "t")], cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--workers needs --executor" in bad.stderr
