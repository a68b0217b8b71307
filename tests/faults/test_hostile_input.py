"""Hostile input is rejected before it reaches SQL, a shell, a file path or an unpickler."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autosys.executors import exclusive_lock, make_executor
from autosys.core.space import Categorical, Float, Int, InvalidConfig, Space
from autosys.storage import SQLiteStorage, StorageError

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_NAMES = ["x'; DROP TABLE trials; --", 'y"; SELECT 1', "cache size", "a;b", "../etc/passwd", "$(id)", "", "1abc"]


def autosys(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autosys", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_knob_names_with_quotes_semicolons_or_paths_are_rejected_by_the_space(name):
    for param in (Int(name, 0, 3), Float(name, 0.0, 1.0), Categorical(name, ("a", "b"))):
        with pytest.raises(ValueError, match="is not allowed"):
            Space([param])
    with pytest.raises(ValueError, match="is not allowed"):
        Space.from_dict({name: (0, 3)})


def test_ordinary_knob_names_still_work():
    space = Space([Int("cache_size", 0, 3), Float("wal.autocheckpoint", 0.0, 1.0), Categorical("journal-mode", ("a",))])
    assert list(space.params) == ["cache_size", "wal.autocheckpoint", "journal-mode"]


def test_hostile_knob_values_never_reach_the_database():
    from autosys.core.registry import make_system

    system = make_system("sqlite", {"records": 100, "operations": 50})
    config = system.default()
    for knob, value in [("journal_mode", "wal; DROP TABLE usertable"), ("journal_mode", "wal'--")]:
        with pytest.raises(InvalidConfig, match=knob):
            system.space().validate({**config, knob: value})
    run = autosys("tune", "sqlite", "--set", "x'; DROP TABLE t;--=1", "--dir", str(Path(tempfile.mkdtemp()) / "s"))
    assert run.returncode == 2 and "unknown parameter" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("workload", ["ycsb-a; touch PWNED", "$(touch PWNED)", "`touch PWNED`", "ycsb-a && touch PWNED"])
def test_shell_metacharacters_in_workload_names_are_rejected_and_never_run(tmp_path, workload):
    run = autosys("tune", "sqlite", "--workload", workload, "--budget", "1", "--dir", str(tmp_path / "s"), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "workload" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "PWNED").exists() and not (ROOT / "PWNED").exists()


def test_a_dask_scheduler_address_with_shell_or_path_tricks_is_refused():
    for address in ["tcp://h:1; rm -rf /", "file:///etc/passwd", "tcp://$(id):8786", "../../x"]:
        with pytest.raises(ValueError, match="scheduler address|unknown|must look like"):
            make_executor("dask", scheduler=address)


def test_lock_names_cannot_escape_the_temporary_directory(tmp_path):
    before = set(Path(tempfile.gettempdir()).parent.iterdir())
    with exclusive_lock("../../../../etc/evil; rm -rf /"):
        made = [p for p in Path(tempfile.gettempdir()).glob("autosys-exclusive-*evil*")]
    assert made and all(p.parent == Path(tempfile.gettempdir()) and ".." not in p.name and ";" not in p.name for p in made)
    assert set(Path(tempfile.gettempdir()).parent.iterdir()) == before


def test_study_files_are_json_and_a_planted_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "EXECUTED"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    storage = SQLiteStorage(tmp_path / "s")
    storage.save_spec({"system": "x"})
    payload = pickle.dumps(Exploit())
    storage.conn.execute("UPDATE spec SET body=? WHERE id=1", (payload,))
    storage.conn.execute("INSERT OR REPLACE INTO tuner_state(id, body, revision) VALUES (1, ?, 1)", (payload,))
    with pytest.raises(StorageError, match="corrupt"):
        storage.load_spec()
    with pytest.raises(StorageError, match="corrupt"):
        storage.load_tuner_state()
    assert not marker.exists()
    run = autosys("tune", "--resume", str(tmp_path / "s"))
    assert run.returncode == 2 and "corrupt" in run.stderr and not marker.exists()
