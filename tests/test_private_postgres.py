"""The private PostgreSQL cluster (adapters/dbserver/private.py): it starts, restarts with ALTER SYSTEM's
`shared_buffers`, runs durable by default, and is gone (folder and port) after the block, an exception too.

Each test initdb's a cluster of its own in a temporary folder on a free port; the shared server on
5432 is never touched. Skips, saying why, where initdb/pg_ctl are missing.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")

from autosys.core.system import SystemUnavailable  # noqa: E402
from autosys_adapters.dbserver import private  # noqa: E402
from autosys_adapters.workloads import pgbench  # noqa: E402
from autosys_adapters.dbserver.private import port_in_use, private_postgres  # noqa: E402


@pytest.fixture()
def available():
    try:
        private.check_available()
    except SystemUnavailable as exc:
        pytest.skip(f"no private PostgreSQL cluster can be made here: {exc}")


def _show(url: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(f"SHOW {name}").fetchone()[0]


def test_starts_restarts_with_alter_system_and_is_removed(available):
    with private_postgres() as cluster:
        assert cluster.url == f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        assert cluster.port != 5432 and port_in_use(cluster.port)
        assert (cluster.data / "PG_VERSION").exists()
        assert _show(cluster.url, "fsync") == "on" and _show(cluster.url, "synchronous_commit") == "on"
        before = _show(cluster.url, "shared_buffers")
        with psycopg.connect(cluster.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("ALTER SYSTEM SET shared_buffers = '48MB'")
        assert _show(cluster.url, "shared_buffers") == before  # restart-only: unchanged until the restart
        subprocess.run(shlex.split(cluster.restart_command), check=True, capture_output=True, timeout=120)
        assert _show(cluster.url, "shared_buffers") == "48MB" != before
        directory, port = cluster.directory, cluster.port
    assert not directory.exists()
    assert not port_in_use(port)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_exception_inside_the_block_still_removes_the_cluster(available, error):
    with pytest.raises(error):
        with private_postgres() as cluster:
            directory, port = cluster.directory, cluster.port
            assert port_in_use(port)
            raise error("boom")
    assert not directory.exists()
    assert not port_in_use(port)


def test_missing_binaries_say_what_to_install(tmp_path, monkeypatch):
    with pytest.raises(SystemUnavailable, match="apt install postgresql"):
        private.find_pg_binary("initdb", bin_dir=tmp_path)
    monkeypatch.setattr(pgbench, "DEBIAN_BIN_GLOB", str(tmp_path / "none" / "*" / "bin"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemUnavailable, match="initdb was not found"):
        with private_postgres():
            pass


def test_refuses_a_folder_it_did_not_make(available, tmp_path):
    (tmp_path / "someone-elses-file").write_text("keep me")
    with pytest.raises(ValueError, match="neither empty"):
        with private_postgres(directory=tmp_path):
            pass
    assert (tmp_path / "someone-elses-file").read_text() == "keep me"
