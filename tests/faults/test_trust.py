"""Nothing stored is trusted to run, and no secret is stored or printed.

A study directory is data: a planted spec that names `os:system` (or any
`module:Class` the user did not name again) is refused before anything is
imported, and a planted `restart_command` is never run. A password given in a
URL appears nowhere in the study directory, the --json file, `autosys show`,
the report, or a PostgreSQL storage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from autosys.storage import SQLiteStorage

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "SECRET123"
SECRET_PG = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres"
#: a SQLite study small enough to make in about a second
SMALL_SQLITE = ["--records", "100", "--operations", "60", "--repeats", "1", "--seconds", "0.1"]


def autosys(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # `python -m autosys` from any working directory
    return subprocess.run([sys.executable, "-m", "autosys", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def error_lines(run: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in run.stderr, run.stderr
    return [line for line in run.stderr.splitlines() if line.strip()]


def plant(study_dir: Path, system: str, options: dict) -> None:
    """Edit the stored spec of a real study, as someone with write access to the directory could."""
    storage = SQLiteStorage(study_dir, create=False)
    spec = storage.load_spec()
    spec.update(system=system, system_options=options, budget={"trials": 4, "seconds": None})
    storage.save_spec(spec)
    storage.close()


@pytest.fixture(scope="module")
def sqlite_study(tmp_path_factory) -> Path:
    study_dir = tmp_path_factory.mktemp("trust") / "study"
    run = autosys("tune", "sqlite", "--budget", "2", "--tuner", "random", "--dir", str(study_dir), "--quiet", *SMALL_SQLITE)
    assert run.returncode == 0, run.stderr
    return study_dir


@pytest.fixture
def planted_copy(sqlite_study, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(sqlite_study, copy)
    return copy


# ----------------------------------------------------------------------------- planted systems


def test_a_planted_os_system_spec_is_refused_in_one_line_and_never_called(planted_copy, tmp_path):
    marker = tmp_path / "PWNED"
    plant(planted_copy, "os:system", {"command": f"touch {marker}"})
    run = autosys("tune", "--resume", str(planted_copy), "--quiet")
    lines = error_lines(run)
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "'os:system'" in lines[0] and "name it again" in lines[0]
    assert not marker.exists()
    assert len(SQLiteStorage(planted_copy, create=False).trials()) == 2  # nothing ran


def test_a_planted_module_is_not_even_imported_by_resume_show_or_report(planted_copy, tmp_path):
    marker = tmp_path / "IMPORTED"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "planted_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n")
    plant(planted_copy, "planted_mod:Evil", {})
    run = autosys("tune", "--resume", str(planted_copy), "--quiet", cwd=workdir)  # the module would be found here
    assert run.returncode == 2 and len(error_lines(run)) == 1 and "planted_mod:Evil" in run.stderr
    assert autosys("show", str(planted_copy), cwd=workdir).returncode == 0
    assert autosys("report", str(planted_copy), "--out", str(tmp_path / "report"), cwd=workdir).returncode == 0
    assert not marker.exists()


def test_a_module_path_named_again_resumes_and_another_is_refused(tmp_path):
    study_dir, quad = tmp_path / "quad", "tests.systems_for_tests:Quadratic"
    assert autosys("tune", quad, "--budget", "2", "--dir", str(study_dir), "--quiet").returncode == 0
    refused = autosys("tune", "--resume", str(study_dir), "--budget", "3", "--quiet")
    assert refused.returncode == 2 and len(error_lines(refused)) == 1
    assert f"autosys tune --resume DIR {quad}" in refused.stderr
    other = autosys("tune", "--resume", str(study_dir), "tests.systems_for_tests:Sleepy", "--budget", "3", "--quiet")
    assert other.returncode == 2 and len(error_lines(other)) == 1 and "made with system" in other.stderr
    named = autosys("tune", "--resume", str(study_dir), quad, "--budget", "3", "--quiet")
    assert named.returncode == 0, named.stderr
    assert len(SQLiteStorage(study_dir, create=False).trials()) == 3


# ----------------------------------------------------------------------------- planted commands


def test_a_planted_restart_command_is_never_run_and_said_in_one_line(planted_copy, tmp_path):
    pytest.importorskip("psycopg", reason="the postgres adapter needs psycopg 3")
    marker = tmp_path / "RESTARTED"
    plant(planted_copy, "postgres", {"url": PG, "allow_restart": True, "restart_command": f"sh -c 'touch {marker}'"})
    run = autosys("tune", "--resume", str(planted_copy), "--quiet")
    lines = error_lines(run)
    assert run.returncode == 2, run.stderr
    # one line says the stored command was ignored; one says why the study cannot go on without one
    assert len(lines) == 2 and lines[0].startswith("warning:") and "restart_command" in lines[0], run.stderr
    assert "restart_command" in lines[1] and lines[1].startswith("error:")
    assert not marker.exists()


def test_a_resume_refuses_options_that_would_change_the_study(planted_copy):
    run = autosys("tune", "--resume", str(planted_copy), "--records", "5000", "--quiet")
    lines = error_lines(run)
    assert run.returncode == 2 and len(lines) == 1 and "--records would change the study" in lines[0]


# ----------------------------------------------------------------------------- secrets


def _server_or_skip() -> None:
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
    try:
        psycopg.connect(PG, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {PG}: {str(exc).strip().splitlines()[0]}")


def _files_holding(folder: Path, needle: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_a_password_in_the_url_is_stored_and_printed_nowhere(tmp_path):
    _server_or_skip()
    study_dir, summary, report_dir = tmp_path / "pg-study", tmp_path / "summary.json", tmp_path / "report"
    common = ["--workload", "ycsb-a", "--records", "100", "--operations", "3000", "--concurrency", "1",
              "--seconds", "0.2", "--warmup", "0.05", "--knobs", "wal_writer_delay,bgwriter_delay", "--quiet"]
    run = autosys("tune", "postgres", "--url", SECRET_PG, "--budget", "2", "--tuner", "random", "--dir", str(study_dir),
                  "--json", str(summary), *common)
    assert run.returncode == 0, run.stderr
    # resumed with the URL (and its password) given again: accepted, since it is the stored URL
    again = autosys("tune", "--resume", str(study_dir), "--url", SECRET_PG, "--budget", "3", "--json", str(summary), "--quiet")
    assert again.returncode == 0, again.stderr
    stored = SQLiteStorage(study_dir, create=False)
    assert stored.load_spec()["system_options"]["url"] == PG and len(stored.trials()) == 3
    stored.close()
    show = autosys("show", str(study_dir))
    report = autosys("report", str(study_dir), "--out", str(report_dir))
    assert show.returncode == 0 and report.returncode == 0, show.stderr + report.stderr
    assert "postgresql://postgres@127.0.0.1:5432/postgres" in show.stdout  # the URL is shown, without its password
    for output in (run, again, show, report):
        assert SECRET not in output.stdout + output.stderr
    assert SECRET not in summary.read_text()
    assert _files_holding(study_dir, SECRET) == [] and _files_holding(report_dir, SECRET) == []


def test_a_password_in_the_storage_url_is_stored_and_printed_nowhere(tmp_path):
    _server_or_skip()
    from autosys.storage.postgres import PostgresStorage

    name = f"trust_{uuid.uuid4().hex[:10]}"
    storage_url = f"{SECRET_PG}?study={name}"
    summary = tmp_path / "summary.json"
    run = autosys("tune", "sqlite", "--budget", "2", "--tuner", "random", "--dir", str(tmp_path / "s"), "--storage",
                  storage_url, "--json", str(summary), "--quiet", *SMALL_SQLITE)
    storage = PostgresStorage(f"{PG}?study={name}", create=False)
    try:
        assert run.returncode == 0, run.stderr
        assert SECRET not in run.stdout + run.stderr and SECRET not in summary.read_text()
        rows = []
        for (table,) in storage.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema=%s", (storage.schema,)
        ).fetchall():
            rows += [str(row) for row in storage.conn.execute(f'SELECT * FROM "{table}"').fetchall()]
        assert rows and not [row for row in rows if SECRET in row]
        assert _files_holding(tmp_path / "s", SECRET) == []
    finally:
        storage.drop()
        storage.close()
