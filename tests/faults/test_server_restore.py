"""Servers are left exactly as found: a full settings snapshot before equals the one after.

Against the real PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306)
servers, each case skips with the reason when its server or driver is
absent. The snapshots here are the tests' own (every `pg_settings` row plus
the text of `postgresql.auto.conf`; every `SHOW GLOBAL VARIABLES` row), taken
on plain connections, not the adapters' code. Cases: a normal study, a
process SIGKILLed while a trial has a setting changed and then the next run,
trials killed at `--trial-timeout`, and a run via `localhost` after a killed
run via `127.0.0.1`; each first asserts the server really was changed, so
none passes by changing nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from autosys.core.trial import TrialState
from autosys.run.study import Study
from tests.mariadb_server import connect_or_skip, global_variables

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")


@dataclass(frozen=True)
class Dialect:
    """How a test reaches one server and builds the smallest study on it."""

    name: str
    connect: Callable[[str], Any]  # host -> plain autocommit connection (skips when absent)
    snapshot: Callable[[Any], dict]
    bench_databases: Callable[[Any], list[str]]
    options: Callable[[str], dict]  # host -> system options

    def system(self, host: str = "127.0.0.1", **extra):
        from autosys.core.registry import make_system

        return make_system(self.name, {**self.options(host), **extra})


# ----------------------------------------------------------------------------- PostgreSQL


def _pg_connect(host: str):
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
    url = PG_URL.replace("127.0.0.1", host)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {url}: {str(exc).strip().splitlines()[0]}")


def _pg_snapshot(conn) -> dict:
    rows = conn.execute("SELECT name, setting, source, pending_restart FROM pg_settings WHERE name <> 'application_name'")
    auto = conn.execute("SELECT pg_read_file('postgresql.auto.conf')").fetchone()[0]
    return {"pg_settings": sorted(rows.fetchall()), "postgresql.auto.conf": auto}


def _pg_bench_databases(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'autosys_bench_%%'").fetchall()]


def _pg_options(host: str) -> dict:
    return dict(
        url=PG_URL.replace("127.0.0.1", host), workload="ycsb-a", records=100, concurrency=1, seconds=0.3, warmup=0.05,
        knobs="wal_writer_delay,bgwriter_delay,checkpoint_completion_target",
    )


# ----------------------------------------------------------------------------- MariaDB


def _mysql_connect(host: str):
    return connect_or_skip(host if MYSQL_HOST == "127.0.0.1" else MYSQL_HOST)


_mysql_snapshot = global_variables


def _mysql_bench_databases(conn) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'autosys_bench_%%'")
        return [r[0] for r in cur.fetchall()]


def _mysql_options(host: str) -> dict:
    return dict(
        host=host if MYSQL_HOST == "127.0.0.1" else MYSQL_HOST, workload="ycsb-a", records=100, concurrency=1,
        seconds=0.3, warmup=0.05, knobs="innodb_io_capacity,innodb_flush_neighbors,innodb_max_dirty_pages_pct",
    )


DIALECTS = {
    "postgres": Dialect("postgres", _pg_connect, _pg_snapshot, _pg_bench_databases, _pg_options),
    "mysql": Dialect("mysql", _mysql_connect, _mysql_snapshot, _mysql_bench_databases, _mysql_options),
}


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request, tmp_path, monkeypatch) -> Dialect:
    """One dialect whose server is reachable, with the restore state kept under tmp_path."""
    d = DIALECTS[request.param]
    d.connect("127.0.0.1").close()
    monkeypatch.setenv("AUTOSYS_STATE_DIR", str(tmp_path / "state"))
    return d


@contextlib.contextmanager
def _no_run_in_flight(d: Dialect):
    """Hold the server's host-wide lock, so no autosys run (another test's too) is mid-change while we look."""
    fd = os.open(d.system().lock_path(), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _changed(d: Dialect, before: dict) -> bool:
    conn = d.connect("127.0.0.1")
    try:
        return d.snapshot(conn) != before
    finally:
        conn.close()


def _assert_as_found(d: Dialect, before: dict, databases: list[str], tmp_path: Path) -> None:
    with _no_run_in_flight(d):
        conn = d.connect("127.0.0.1")
        try:
            after = d.snapshot(conn)
            changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)} if d.name == "mysql" else None
            assert after == before, f"the server was left changed: {changed or _pg_diff(before, after)}"
            assert d.bench_databases(conn) == databases
        finally:
            conn.close()
    assert not list((tmp_path / "state").glob("*.json")), "a restore state file was left behind"


def _pg_diff(before: dict, after: dict) -> list:
    rows = set(after["pg_settings"]) ^ set(before["pg_settings"])
    auto = [] if before["postgresql.auto.conf"] == after["postgresql.auto.conf"] else [after["postgresql.auto.conf"]]
    return sorted(rows) + auto


def _baseline(d: Dialect) -> tuple[dict, list[str]]:
    with _no_run_in_flight(d):
        conn = d.connect("127.0.0.1")
        try:
            return d.snapshot(conn), d.bench_databases(conn)
        finally:
            conn.close()


# ----------------------------------------------------------------------------- (a) a normal run


def test_a_normal_study_leaves_the_server_as_found(dialect, tmp_path):
    before, databases = _baseline(dialect)
    changed_during = []
    study = Study.create(tmp_path / "study", dialect.system(), tuner="random", budget=3, seed=3)
    study.run(callback=lambda s, t: changed_during.append(_changed(dialect, before)))
    study.close()
    assert [t.state for t in study.trials()] == [TrialState.COMPLETE] * 3, [t.error for t in study.trials()]
    assert any(changed_during), "no trial changed a server setting: this run proves nothing"
    _assert_as_found(dialect, before, databases, tmp_path)


# ----------------------------------------------------------------------------- (b), (d) SIGKILL, then the next run

KILLED_RUN = """
import sys
from autosys.core.registry import make_system
from autosys.run.study import Study
options = {options!r}
study = Study.create({directory!r}, make_system({name!r}, options), tuner="random", budget=3, seed=5,
                     evaluate_default=False)
study.run()
"""


def _killed_mid_trial(d: Dialect, host: str, before: dict, tmp_path: Path) -> None:
    """Run a study whose trials measure for 30 s via `host`; SIGKILL it once a setting is changed."""
    options = {**d.options(host), "seconds": 30.0}
    script = KILLED_RUN.format(options=options, directory=str(tmp_path / "killed"), name=d.name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (list((tmp_path / "state").glob("*.json")) and _changed(d, before)):  # its own change
            assert proc.poll() is None, f"the run ended before changing anything: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "the run never changed a setting"
            time.sleep(0.1)
        time.sleep(0.3)  # well inside the 30 s measurement
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _changed(d, before), "the killed run left nothing changed: this case proves nothing"
    assert list((tmp_path / "state").glob("*.json")), "the killed run left no restore state"


@pytest.mark.parametrize("first,then", [("127.0.0.1", "127.0.0.1"), ("127.0.0.1", "localhost")], ids=["same-host", "localhost-after-127"])
def test_a_run_after_a_sigkilled_one_restores_it(dialect, tmp_path, first, then):
    before, databases = _baseline(dialect)
    _killed_mid_trial(dialect, first, before, tmp_path)
    system = dialect.system(then)
    assert system.identity() == dialect.system(first).identity()  # one server, whatever its address is called
    study = Study.create(tmp_path / "next", system, tuner="random", budget=1, seed=1)
    study.run()
    study.close()
    assert study.trials()[0].state == TrialState.COMPLETE, study.trials()[0].error
    _assert_as_found(dialect, before, databases, tmp_path)


# ----------------------------------------------------------------------------- (c) trials killed at their timeout


@pytest.mark.slow
def test_trials_killed_at_their_timeout_are_restored(dialect, tmp_path):
    """Each trial measures for 30 s and is killed (its process group) at 4 s, with settings changed."""
    before, databases = _baseline(dialect)
    changed_when_killed = []
    study = Study.create(tmp_path / "study", dialect.system(seconds=30.0), tuner="random", budget=2, seed=7,
                         evaluate_default=False)
    study.run(timeout=4.0, callback=lambda s, t: changed_when_killed.append(_changed(dialect, before)))
    study.close()
    assert [t.state for t in study.trials()] == [TrialState.TIMED_OUT] * 2, [t.error for t in study.trials()]
    assert all(changed_when_killed), "a trial was killed before it changed a setting: this case proves nothing"
    _assert_as_found(dialect, before, databases, tmp_path)


# ----------------------------------------------------------------------------- side effects


def test_mariadb_side_effect_innodb_io_capacity_max_is_restored(tmp_path, monkeypatch):
    d = DIALECTS["mysql"]
    conn = d.connect("127.0.0.1")
    monkeypatch.setenv("AUTOSYS_STATE_DIR", str(tmp_path / "state"))
    before, databases = _baseline(d)
    raised = before["innodb_io_capacity_max"]
    system = d.system(knobs="innodb_io_capacity")
    high = min(int(system.space().params["innodb_io_capacity"].high), 2 * int(raised) + 1000)
    assert high > int(raised), "cannot test: innodb_io_capacity cannot go above innodb_io_capacity_max here"
    try:
        system.apply({"innodb_io_capacity": high})
        with conn.cursor() as cur:
            cur.execute("SELECT @@innodb_io_capacity_max")
            assert int(cur.fetchone()[0]) >= high != int(raised)  # the server raised it as a side effect
    finally:
        system.teardown()
        conn.close()
    assert "RESTORE innodb_io_capacity_max" in system.sent
    _assert_as_found(d, before, databases, tmp_path)


# ----------------------------------------------------------------------------- two runs on one host

HOLDER = """
import sys, time
from autosys.core.registry import make_system
system = make_system({name!r}, {options!r})
system.setup()  # the snapshot is taken: this run now holds the server
print("ready", flush=True)
sys.stdin.read()  # until the test closes stdin
system.teardown()
"""


def test_a_second_run_waits_for_the_first_even_with_another_state_folder(dialect, tmp_path, monkeypatch):
    """Otherwise the second would take the first one's changes for the state it found, and put them back."""
    before, databases = _baseline(dialect)
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUTOSYS_STATE_DIR": str(tmp_path / "other-state")}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(name=dialect.name, options=dialect.options("127.0.0.1"))],
                              cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        second = dialect.system("localhost")
        second.LOCK_WAIT_SECONDS = 0.5
        with pytest.raises(Exception, match="another autosys run"):
            second.setup()
        assert second.sent == []
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    _assert_as_found(dialect, before, databases, tmp_path)
