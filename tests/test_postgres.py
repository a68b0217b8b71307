"""The PostgreSQL knob adapter against the real server at 127.0.0.1:5432 (skips if unreachable).

The server is shared: every test restores what it changes, and no test
restarts the server or touches a restart-only knob.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")

from autosys_adapters.dbserver.postgres import PostgresKnobs  # noqa: E402
from autosys.core.evaluation import evaluate_config  # noqa: E402
from autosys.core.space import InvalidConfig  # noqa: E402
from autosys.core.system import SystemUnavailable  # noqa: E402
from autosys.run.study import Study  # noqa: E402
from autosys.core.trial import TrialState  # noqa: E402

URL = os.environ.get("AUTOSYS_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _server():
    try:
        return psycopg.connect(URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {URL}: {str(exc).strip().splitlines()[0]}")


@pytest.fixture()
def server():
    conn = _server()
    yield conn
    conn.close()


def _snapshot(conn) -> dict:
    """Every pg_settings row (but this connection's own name) and the text of postgresql.auto.conf."""
    rows = conn.execute("SELECT name, setting, source, pending_restart FROM pg_settings WHERE name <> 'application_name'")
    auto = conn.execute("SELECT pg_read_file('postgresql.auto.conf')").fetchone()[0]
    return {"settings": sorted(rows.fetchall()), "auto": auto}


def _bench_databases(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'autosys_bench_%%'").fetchall()]


def small(tmp_path, **kw) -> PostgresKnobs:
    options = dict(
        url=URL, workload="tpcc-like", records=200, concurrency=2, seconds=0.4, warmup=0.1,
        knobs="wal_writer_delay,checkpoint_completion_target,bgwriter_delay,commit_delay,synchronous_commit,fsync,full_page_writes,shared_buffers",
        state_file=str(tmp_path / "pg-state.json"),
    )
    options.update(kw)
    return PostgresKnobs(**options)


def test_space_comes_from_pg_settings_and_keeps_durability(server, tmp_path):
    system = small(tmp_path)
    space = system.space()
    assert "shared_buffers" not in space.params  # restart-only, not allowed
    assert "fsync" not in space.params and "full_page_writes" not in space.params  # pinned on
    row = server.execute("SELECT min_val, max_val, reset_val FROM pg_settings WHERE name = 'wal_writer_delay'").fetchone()
    param = space.params["wal_writer_delay"]
    assert param.low >= int(row[0]) and param.high <= int(row[1]) and param.default == int(row[2])
    with pytest.raises(InvalidConfig, match="durable"):
        space.validate({**space.default(), "synchronous_commit": "off"})
    assert "fsync" in small(tmp_path, durable=False).space().params


def test_settings_restored_after_a_study(server, tmp_path):
    before = _snapshot(server)
    system = small(tmp_path)
    study = Study.create(tmp_path / "study", system, tuner="random", budget=3, seed=1)
    changed = []
    study.run(callback=lambda s, t: changed.append(dict(t.config)))
    assert study.n_finished() == 3
    assert all(t.state == TrialState.COMPLETE for t in study.trials()), [t.error for t in study.trials()]
    assert any(c["wal_writer_delay"] != changed[0]["wal_writer_delay"] for c in changed[1:])  # it did change things
    assert any(s.startswith("SET wal_writer_delay") for s in system.sent)
    assert _snapshot(server) == before
    assert system.database not in _bench_databases(server)
    assert not (tmp_path / "pg-state.json").exists()
    study.close()


def test_restart_only_knob_is_never_changed_without_permission(server, tmp_path):
    before = _snapshot(server)
    system = small(tmp_path)
    with pytest.raises(InvalidConfig, match="restart"):
        system.apply({"shared_buffers": 32768})
    outcome = evaluate_config(system, {**system.default(), "shared_buffers": 32768})
    assert outcome.state == TrialState.FAILED and "invalid config" in outcome.error
    with pytest.raises(ValueError, match="restart_command"):
        small(tmp_path, allow_restart=True)
    assert system.sent == []
    assert _snapshot(server) == before
    system.teardown()


@pytest.mark.parametrize(
    "bad",
    [
        {"no_such_knob": 1},
        {"wal_writer_delay": 10**9},  # above pg_settings' max
        {"wal_writer_delay": -5},
        {"wal_writer_delay = 1; ALTER SYSTEM SET fsync = off; --": 1},
        {"work_mem": "4MB'; DROP DATABASE postgres; --"},
    ],
)
def test_bad_knobs_are_rejected_before_anything_is_sent(server, tmp_path, bad):
    before = _snapshot(server)
    system = small(tmp_path)
    with pytest.raises(InvalidConfig):
        system.apply(bad)
    assert system.sent == []
    assert _snapshot(server) == before
    system.teardown()


def test_server_going_away_mid_trial_fails_the_trial_quickly(server, tmp_path):
    before = _snapshot(server)
    system = small(tmp_path, seconds=20.0, statement_timeout=10.0)
    system.setup()
    try:
        result = {}

        def run():
            result["outcome"] = evaluate_config(system, system.default())

        worker = threading.Thread(target=run, daemon=True)
        start = time.monotonic()
        worker.start()
        killed = 0
        while time.monotonic() - start < 15 and not killed:
            time.sleep(0.3)
            killed = server.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'autosys-bench'"
                " AND datname = %s",
                (system.database,),
            ).fetchone()[0]
        assert killed, "the benchmark connections never appeared"
        worker.join(timeout=30)
        assert not worker.is_alive(), "a terminated connection hung the trial"
        outcome = result["outcome"]
        assert outcome.state == TrialState.FAILED
        assert "mid-trial" in outcome.error and "terminat" in outcome.error.lower()
        assert time.monotonic() - start < 20  # well before the 20 s run would have ended
    finally:
        system.teardown()
    assert _snapshot(server) == before
    assert system.database not in _bench_databases(server)


def test_a_sigkilled_run_is_restored_by_the_next_one(server, tmp_path):
    before = _snapshot(server)
    state = tmp_path / "pg-state.json"
    script = textwrap.dedent(
        f"""
        import os, signal
        from autosys_adapters.dbserver.postgres import PostgresKnobs
        s = PostgresKnobs(url={URL!r}, workload="ycsb-a", records=100, knobs="wal_writer_delay,bgwriter_delay",
                          state_file={str(state)!r})
        s.setup()
        s.apply({{"wal_writer_delay": 777, "bgwriter_delay": 555}})
        print(s.database, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=os.getcwd())
    assert proc.returncode == -9, proc.stderr
    database = proc.stdout.strip()
    assert server.execute("SELECT setting FROM pg_settings WHERE name = 'wal_writer_delay'").fetchone()[0] == "777"
    assert database in _bench_databases(server)
    assert state.exists()
    # the next run against this server restores before doing anything else
    PostgresKnobs(url=URL, workload="ycsb-a", records=100, knobs="wal_writer_delay", state_file=str(state)).space()
    deadline = time.monotonic() + 10
    while _snapshot(server) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _snapshot(server) == before
    assert database not in _bench_databases(server)
    assert not state.exists()


def _killed_run_state(tmp_path, server) -> tuple:
    """The state file of a run SIGKILLed after setup (its database made, nothing changed yet)."""
    state = tmp_path / "pg-state.json"
    script = textwrap.dedent(
        f"""
        import os, signal
        from autosys_adapters.dbserver.postgres import PostgresKnobs
        s = PostgresKnobs(url={URL!r}, workload="ycsb-a", records=100, knobs="wal_writer_delay", state_file={str(state)!r})
        s.setup()
        print(s.database, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=os.getcwd())
    assert proc.returncode == -9, proc.stderr
    database = proc.stdout.strip()
    assert database in _bench_databases(server)
    return state, database


def _pretend_it_found(state, name: str, value: str) -> None:
    """Edit the killed run's snapshot as if the restart-only `name` had been `value` when it began."""
    import json

    data = json.loads(state.read_text())
    data["snapshot"]["settings"][name][0] = value
    state.write_text(json.dumps(data))


def test_recovery_that_restarts_reconnects_after_the_restart(server, tmp_path):
    """A restart ends every connection: recovery must go on with a new one (it once did not).

    The killed run's snapshot says max_connections was 99; only a restart could
    put that back. The stand-in restart command ends the admin connections (what
    a restart does to them) without restarting the shared server, so the value
    stays 100 and recovery reports it in one clear line, from a fresh connection.
    """
    before = _snapshot(server)
    state, database = _killed_run_state(tmp_path, server)
    _pretend_it_found(state, "max_connections", "99")
    marker = tmp_path / "restarted"
    fake_restart = tmp_path / "fake_restart.py"
    fake_restart.write_text(
        "import pathlib, psycopg\n"
        f"c = psycopg.connect({URL!r}, autocommit=True)\n"
        "c.execute(\"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'autosys-admin'\")\n"
        f"p = pathlib.Path({str(marker)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
    )
    system = PostgresKnobs(
        url=URL, workload="ycsb-a", records=100, knobs="wal_writer_delay", state_file=str(state),
        allow_restart=True, restart_command=f"{sys.executable} {fake_restart}",
    )
    with pytest.raises(SystemUnavailable, match=r"could not restore max_connections \(now '100', was '99'\)"):
        system.space()  # reads the catalog, which first recovers what the killed run left
    assert marker.read_text() == "x"  # restarted once, then reported instead of looping
    assert database not in _bench_databases(server)
    assert state.exists()  # kept for a run that can restore it
    assert _snapshot(server) == before
    state.unlink()  # the server never was at 99: no later run may try to put that back


def test_a_restart_only_difference_without_a_restart_command_is_one_clear_line(server, tmp_path):
    before = _snapshot(server)
    state, database = _killed_run_state(tmp_path, server)
    _pretend_it_found(state, "max_connections", "99")
    system = PostgresKnobs(url=URL, workload="ycsb-a", records=100, knobs="wal_writer_delay", state_file=str(state))
    with pytest.raises(SystemUnavailable) as info:
        system.space()
    message = str(info.value)
    assert "\n" not in message and "max_connections" in message and "--restart-command" in message
    assert "RESTART" not in system.sent
    assert database not in _bench_databases(server)
    assert state.exists()
    assert _snapshot(server) == before
    state.unlink()  # the server never was at 99: no later run may try to put that back
