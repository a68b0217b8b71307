"""The PostgreSQL storage: same study semantics as SQLite, shared by processes through one database."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autosys.storage import SCHEMA_VERSION, PostgresStorage, StorageError
from autosys.run.study import Study
from autosys.core.trial import Trial, TrialState
from tests.systems_for_tests import Quadratic

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL storage needs psycopg 3")
ROOT = Path(__file__).resolve().parents[2]
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def database():
    name = f"autosys_test_{os.getpid()}"
    try:
        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({str(exc).strip()[:80]})")
    admin.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_a_study_runs_and_resumes_in_postgresql(database, tmp_path):
    study = Study.create(tmp_path / "quad", Quadratic(), budget=6, seed=1, storage=database)
    assert isinstance(study.storage, PostgresStorage) and study.storage.schema_version == SCHEMA_VERSION
    study.run().close()
    assert not (tmp_path / "quad" / "study.sqlite").exists()
    again = Study.resume(tmp_path / "quad", system=Quadratic(), budget=9, storage=database).run()
    trials = again.trials()
    assert [t.number for t in trials] == list(range(9)) and all(t.state.finished for t in trials)
    assert again.best is not None and len(again.tuner.history) == 9
    again.close()


def test_budget_claims_and_late_results_are_exact_in_postgresql(database):
    storage = PostgresStorage(database, study="claims")
    claimed = [storage.claim_trial(Trial(-1, {"x": i}), limit=3) for i in range(5)]
    assert [c.number for c in claimed[:3]] == [0, 1, 2] and claimed[3:] == [None, None]
    storage.mark_interrupted()
    late = claimed[0]
    late.state, late.value = TrialState.COMPLETE, 2.0
    assert storage.finish_trial(late) is False and storage.events("late_result")
    storage.drop()


def test_hostile_study_names_are_refused(database):
    for name in ["x; DROP SCHEMA public", 'a"b', "../x", ""]:
        with pytest.raises(StorageError, match="study name"):
            PostgresStorage(database + f"?study={name}" if name else database)


def test_two_processes_share_a_postgresql_study_without_duplicates(database, tmp_path):
    from autosys.core.registry import make_system

    log, budget = tmp_path / "trials.log", 12
    system = make_system("tests.systems_for_tests:Sleepy", {"log": str(log), "sleep": 0.2})
    Study.create(tmp_path / "shared", system, budget=budget, seed=3, storage=database).close()
    procs = [
        subprocess.Popen([sys.executable, "-m", "autosys", "tune", "--resume", str(tmp_path / "shared"),
                          "tests.systems_for_tests:Sleepy", "--storage", database, "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    storage = PostgresStorage(database, study="shared", create=False)
    trials = storage.trials()
    assert [t.number for t in trials] == list(range(budget)) and all(t.state == TrialState.COMPLETE for t in trials)
    starts = collections.Counter(line.split()[1] for line in log.read_text().splitlines() if line.startswith("start"))
    # a config may be stored more than once (paired re-runs of the incumbent); no stored trial runs twice
    per_trial = collections.Counter(f"{t.config['x']:.12f}-{t.config['k']}" for t in trials)
    assert sum(starts.values()) == budget and starts == per_trial, "a trial was run twice"
    storage.drop()
