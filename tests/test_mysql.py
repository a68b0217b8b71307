"""The MariaDB/MySQL knob adapter against the real server at 127.0.0.1:3306 (skips if unreachable).

The server is shared: every test restores what it changes; none restarts it.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

pymysql = pytest.importorskip("pymysql", reason="pymysql is not installed (pip install 'autosys-toolkit[db]')")

from autosys_adapters.dbserver.mysql import MySQLKnobs  # noqa: E402
from autosys.core.evaluation import evaluate_config  # noqa: E402
from autosys.core.space import InvalidConfig  # noqa: E402
from autosys.run.study import Study  # noqa: E402
from autosys.core.trial import TrialState  # noqa: E402
from tests.mariadb_server import connect_or_skip, global_variables  # noqa: E402

HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")


def _server():
    return connect_or_skip(HOST)


@pytest.fixture()
def server():
    conn = _server()
    yield conn
    conn.close()


_snapshot = global_variables


def _bench_databases(conn) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'autosys_bench_%%'")
        return [r[0] for r in cur.fetchall()]


def small(tmp_path, **kw) -> MySQLKnobs:
    options = dict(
        host=HOST, workload="tpcc-like", records=200, concurrency=2, seconds=0.4, warmup=0.1,
        knobs="innodb_io_capacity,innodb_flush_neighbors,innodb_max_dirty_pages_pct,sort_buffer_size,"
        "innodb_log_buffer_size,innodb_flush_log_at_trx_commit",
        state_file=str(tmp_path / "mysql-state.json"),
    )
    options.update(kw)
    return MySQLKnobs(**options)


def test_space_comes_from_system_variables_and_keeps_durability(server, tmp_path):
    space = small(tmp_path).space()
    assert "innodb_log_buffer_size" not in space.params  # read-only: needs a restart
    assert "innodb_flush_log_at_trx_commit" not in space.params  # pinned at 1 while durable
    assert "innodb_flush_log_at_trx_commit" in small(tmp_path, durable=False).space().params
    assert space.params["innodb_io_capacity"].low >= 100  # the server's own minimum


def test_settings_restored_after_a_study(server, tmp_path):
    before = _snapshot(server)
    system = small(tmp_path)
    study = Study.create(tmp_path / "study", system, tuner="random", budget=3, seed=2)
    study.run()
    assert all(t.state == TrialState.COMPLETE for t in study.trials()), [t.error for t in study.trials()]
    assert any(s.startswith("SET innodb_io_capacity") for s in system.sent)
    assert _snapshot(server) == before
    assert system.database not in _bench_databases(server)
    study.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"innodb_log_buffer_size": 64 * 1024 * 1024},  # read-only, no permission to restart
        {"no_such_knob": 1},
        {"innodb_io_capacity": 10},  # below the server's minimum of 100
        {"innodb_io_capacity = 0, GLOBAL innodb_flush_log_at_trx_commit": 0},
        {"innodb_flush_log_at_trx_commit": 0},  # durability pinned
    ],
)
def test_bad_knobs_are_rejected_before_anything_is_sent(server, tmp_path, bad):
    before = _snapshot(server)
    system = small(tmp_path)
    with pytest.raises(InvalidConfig):
        system.apply(bad)
    assert system.sent == []
    assert _snapshot(server) == before


def test_killed_connection_mid_trial_fails_the_trial(server, tmp_path):
    before = _snapshot(server)
    system = small(tmp_path, seconds=20.0, statement_timeout=10.0)
    system.setup()
    try:
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault("o", evaluate_config(system, system.default())), daemon=True)
        start = time.monotonic()
        worker.start()
        killed = 0
        while time.monotonic() - start < 15 and not killed:
            time.sleep(0.3)
            with server.cursor() as cur:
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND COMMAND <> 'Sleep'", (system.database,))
                ids = [r[0] for r in cur.fetchall()]
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", (system.database,))
                ids = ids or [r[0] for r in cur.fetchall()]
                for pid in ids:
                    try:
                        cur.execute("KILL CONNECTION %s", (int(pid),))
                        killed += 1
                    except pymysql.err.OperationalError:  # that client had just finished
                        pass
        assert killed
        worker.join(timeout=30)
        assert not worker.is_alive(), "a killed connection hung the trial"
        assert result["o"].state == TrialState.FAILED and "mid-trial" in result["o"].error
    finally:
        system.teardown()
    assert _snapshot(server) == before
    assert system.database not in _bench_databases(server)
