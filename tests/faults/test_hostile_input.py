"""Hostile input is rejected before it reaches SQL, a shell, a file path or an unpickler."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autosys.core.hostlocks import lock_dir

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


def test_lock_names_cannot_escape_the_lock_directory(tmp_path):
    locks = lock_dir()
    before = set(locks.parent.iterdir())
    with exclusive_lock("../../../../etc/evil; rm -rf /"):
        made = [p for p in locks.glob("autosys-exclusive-*evil*")]
    assert made and all(p.parent == locks and ".." not in p.name and ";" not in p.name for p in made)
    assert set(locks.parent.iterdir()) == before


def test_host_locks_do_not_follow_a_processes_tmpdir(tmp_path, monkeypatch):
    """Two processes with different TMPDIRs must still exclude each other: locks live in one host-wide folder."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("AUTOSYS_LOCK_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() re-reads TMPDIR
    assert lock_dir() != tmp_path
    with exclusive_lock("tmpdir-independent"):
        assert not list(tmp_path.iterdir())
    monkeypatch.setenv("AUTOSYS_LOCK_DIR", str(tmp_path / "locks"))
    assert lock_dir() == tmp_path / "locks"


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


# ----------------------------------------------------------------------------- bad input is one line, nothing created


def assert_one_line_and_nothing_made(run: subprocess.CompletedProcess, needle: str, *paths: Path) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert needle in run.stderr, run.stderr
    for path in paths:
        assert not path.exists(), f"{path} was created"


@pytest.mark.parametrize(
    "flag, value, needle",
    [
        ("--budget", "-1", "--budget must be at least 1"),
        ("--budget", "0", "--budget must be at least 1"),
        ("--budget", "nan", "'--budget'"),
        ("--budget", "inf", "'--budget'"),
        ("--time-budget", "nan", "--time-budget must be a finite number"),
        ("--time-budget", "inf", "--time-budget must be a finite number"),
        ("--time-budget", "-5", "--time-budget must be above 0"),
        ("--trial-timeout", "nan", "--trial-timeout must be a finite number"),
        ("--trial-timeout", "inf", "--trial-timeout must be a finite number"),
        ("--trial-timeout", "-1", "--trial-timeout must be above 0"),
        ("--patience", "-3", "--patience must be at least 1"),
        ("--patience", "nan", "'--patience'"),
        ("--seed", "-1", "--seed must be at least 0"),
        ("--seed", "nan", "'--seed'"),
        ("--seed", str(2**70), "--seed must be at most"),
        ("--confirm", "-2", "--confirm must be at least 0"),
        ("--confirm", "inf", "'--confirm'"),
        ("--workers", "-4", "--workers must be at least 1"),
        ("--workers", "nan", "'--workers'"),
    ],
)
def test_every_numeric_flag_of_tune_refuses_nan_inf_and_negatives_naming_the_flag(tmp_path, flag, value, needle):
    study, out = tmp_path / "s", tmp_path / "out.json"
    run = autosys("tune", "sqlite", flag, value, "--dir", str(study), "--json", str(out), cwd=tmp_path)
    assert_one_line_and_nothing_made(run, needle, study, out, tmp_path / "studies")


def test_numeric_flags_are_checked_on_resume_too(tmp_path):
    run = autosys("tune", "--resume", str(tmp_path / "nowhere"), "--time-budget", "nan", cwd=tmp_path)
    assert_one_line_and_nothing_made(run, "--time-budget must be a finite number", tmp_path / "nowhere")


def test_an_unwritable_json_path_is_refused_before_the_study_starts(tmp_path):
    (tmp_path / "a-file").write_text("x")
    for target, needle in [
        (tmp_path / "a-file" / "out.json", "is not a directory"),
        (tmp_path, "is a directory"),
        (Path("/proc/autosys-out.json"), "is not writable"),
    ]:
        study = tmp_path / "s"
        run = autosys("tune", "sqlite", "--budget", "2", "--dir", str(study), "--json", str(target), cwd=tmp_path)
        assert_one_line_and_nothing_made(run, f"--json {target}", study, tmp_path / "studies")
        assert needle in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def _bad_traces(tmp_path: Path) -> list[tuple[Path, str]]:
    import numpy as np

    from autosys_adapters.pagecache.traces import ORACLE_DTYPE

    files = []

    def text(name: str, body: str, needle: str) -> None:
        path = tmp_path / name
        path.write_text(body)
        files.append((path, needle))

    text("neg.txt", "1\n2\n-3\n", "page id -3 is negative")
    text("frac.txt", "1\n2.5\n", "page id '2.5' is not an integer")
    text("nan.txt", "1\nnan\n", "page id 'nan' is not an integer")
    text("huge.txt", f"1\n{2**70}\n", "out of range")
    text("neg.csv", "page\n4\n-1\n", "page id -1 is negative")
    text("nan.csv", "page\n4\nNaN\n", "page id 'NaN' is not an integer")
    text("huge.csv", f"page\n4\n{2**64}\n", "out of range")
    for name, arr, needle in [
        ("neg.npy", np.array([1, -7]), "negative page id"),
        ("nan.npy", np.array([1.0, np.nan]), "not an integer page id"),
        ("frac.npy", np.array([1.0, 2.5]), "not an integer page id"),
        ("huge.npy", np.array([1, 2**64 - 1], dtype=np.uint64), "above 2^63-1"),
        ("hugef.npy", np.array([1.0, 1e30]), "not an integer page id"),
        ("strings.npy", np.array(["1", "2"]), "must be integers"),
    ]:
        np.save(tmp_path / name, arr)
        files.append((tmp_path / name, needle))
    rec = np.zeros(2, dtype=ORACLE_DTYPE)
    rec["id"] = [1, 2**63 + 5]
    rec.tofile(tmp_path / "huge.oracleGeneral")
    files.append((tmp_path / "huge.oracleGeneral", "above 2^63-1"))
    return files


def test_a_page_trace_with_bad_ids_is_one_line_in_every_format_and_no_study_is_made(tmp_path):
    pytest.importorskip("numba", reason="the page-policy simulator needs the compiled extra")
    for trace, needle in _bad_traces(tmp_path):
        study = tmp_path / f"study-{trace.name}"
        run = autosys("tune", "page-policy", "--trace", str(trace), "--column", "page" if trace.suffix == ".csv" else "0",
                      "--budget", "2", "--dir", str(study), cwd=tmp_path)
        assert_one_line_and_nothing_made(run, needle, study, tmp_path / "studies")
        assert trace.name in run.stderr


def test_trace_readers_refuse_bad_ids_with_trace_error(tmp_path):
    from autosys_adapters.pagecache.traces import Trace, TraceError, read_trace

    for trace, needle in _bad_traces(tmp_path):
        fmt = "csv" if trace.suffix == ".csv" else "auto"
        with pytest.raises(TraceError, match=needle.replace("^", r"\^").replace("(", r"\(")):
            read_trace(trace, fmt, "page" if fmt == "csv" else 0)
    for ids in ([1, -2], [1.0, float("nan")], [2**70]):
        with pytest.raises(TraceError):
            Trace(ids)


BAD_WORKLOADS = [
    ("nan-records.json", '{"records": NaN}', "records must be a whole number, not nan"),
    ("frac-records.json", '{"records": 2.5}', "records must be a whole number, not 2.5"),
    ("neg-operations.json", '{"operations": -5}', "operations must be at least 1, not -5"),
    ("inf-operations.json", '{"operations": Infinity}', "operations must be a whole number, not inf"),
    ("huge-records.json", '{"records": 100000000000000}', "GiB of memory, but only"),
    ("huge-records.toml", "records = 1e15\n", "GiB of memory, but only"),
    ("nan-mix.json", '{"mix": {"read": NaN, "update": 0.5}}', "the weight of operation 'read' must be a finite number"),
    ("inf-mix.toml", 'mix = { read = inf, update = 1.0 }\n', "the weight of operation 'read' must be a finite number"),
    ("zero-mix.json", '{"mix": {"read": 0, "update": 0}}', "weights must be non-negative and not all zero"),
    ("neg-mix.json", '{"mix": {"read": -1, "update": 2}}', "the weight of operation 'read' must be a finite number >= 0"),
]


@pytest.mark.parametrize("system", ["sqlite", "kv"])
def test_a_workload_file_with_bad_counts_or_mix_is_one_line_and_no_study_is_made(tmp_path, system):
    for name, body, needle in BAD_WORKLOADS:
        path = tmp_path / name
        path.write_text(body)
        study = tmp_path / f"study-{name}"
        run = autosys("tune", system, "--workload", str(path), "--budget", "2", "--dir", str(study), cwd=tmp_path)
        assert_one_line_and_nothing_made(run, needle, study, tmp_path / "studies")


def test_database_workload_kinds_refuse_bad_counts_and_mixes():
    from autosys_adapters.workloads import load_benchmark

    for spec, needle in [
        ({"kind": "tpcc", "items": 7.5}, "items must be a whole number"),
        ({"kind": "tpcc", "items": 10**12}, "GiB of memory"),
        ({"kind": "tpcc", "mix": {"payment": float("nan")}}, "the weight of transaction 'payment'"),
        ({"kind": "analytic", "batch": -1}, "batch must be at least 1"),
        ({"kind": "analytic", "operations": float("nan")}, "operations must be a whole number"),
        ({"kind": "pgbench", "scale": 0.5}, "scale must be a whole number"),
    ]:
        with pytest.raises(ValueError, match=needle):
            load_benchmark(spec)
    bench = load_benchmark({"records": 300.0, "operations": 200})  # a whole float (TOML 3e2) is a count
    assert bench.workload.records == 300 and isinstance(bench.workload.records, int)


@pytest.mark.parametrize("key", ["budget", "tuner", "system", "seed", "fixed", "budget.trials"])
def test_resuming_a_spec_missing_a_key_is_one_line_naming_it_and_changes_nothing(tmp_path, key):
    from autosys.core.registry import make_system
    from autosys.run.study import Study

    directory = tmp_path / "s"
    study = Study.create(directory, make_system("sqlite", {"records": 100, "operations": 50, "repeats": 1}),
                         tuner="random", budget=2)
    study.close()
    storage = SQLiteStorage(directory, create=False)
    spec = storage.load_spec()
    if "." in key:
        outer, inner = key.split(".")
        del spec[outer][inner]
    else:
        del spec[key]
    storage.save_spec(spec)
    storage.close()
    before = sorted(p.name for p in directory.rglob("*"))
    data = (directory / SQLiteStorage.FILENAME).read_bytes()
    run = autosys("tune", "--resume", str(directory), cwd=tmp_path)
    assert_one_line_and_nothing_made(run, f"has no {key.split('.')[-1]!r}", tmp_path / "studies")
    assert sorted(p.name for p in directory.rglob("*")) == before
    assert (directory / SQLiteStorage.FILENAME).read_bytes() == data


def test_numeric_flags_of_the_trace_commands_are_one_line(tmp_path):
    out = tmp_path / "z.txt"
    for args, needle in [
        (("generate", "zipf", "--out", str(out), "--requests", "-5"), "--requests must be a finite number"),
        (("generate", "zipf", "--out", str(out), "--alpha", "nan"), "--alpha must be a finite number"),
        (("simulate", str(out), "--cache-size", "inf"), "--cache-size must be a finite number"),
    ]:
        assert_one_line_and_nothing_made(autosys("trace", *args, cwd=tmp_path), needle, out)
