"""The knowledge base of finished studies: kb list/show/add/forget, crash safety under SIGKILL, a clear
error for a corrupt file, concurrent writers on PostgreSQL, and `tune`'s warm start from the nearest study."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autosys.cli import kb as kb_cli
from autosys.cli.main import app as main_app
from autosys.core.space import Categorical, Float, Space
from autosys.core.trial import Trial, TrialState
from autosys.learn.host import host_distance, host_fingerprint
from autosys.learn.knowledge import (
    KnowledgeBaseError, PostgresKnowledgeBase, open_knowledge_base, workload_signature,
)
from autosys.learn.mapping import nearest, workload_distance
from autosys.run.study import Study, open_study
from tests.knowledge_entries import make_entry as _entry
from tests.systems_for_tests import Shop

ROOT = Path(__file__).resolve().parents[1]
SHOP = "tests.systems_for_tests:Shop"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"



def _study(directory: Path, workload: str, budget: int = 12, seed: int = 7) -> Path:
    Study.create(directory, Shop(workload), tuner="random", budget=budget, seed=seed, intensify=False).run().close()
    return directory


def _kb(runner_args: list[str], kb: Path | str):
    result = CliRunner(env={"COLUMNS": "250"}).invoke(kb_cli.app, [*runner_args, "--kb", str(kb)], prog_name="autosys kb")
    return result, " ".join(result.output.split())


# ----------------------------------------------------------------------------- add, list, show, forget


def test_add_list_show_forget_roundtrip(tmp_path):
    base = tmp_path / "kb.db"
    a1, b = _study(tmp_path / "a1", "a1"), _study(tmp_path / "b", "b")
    result, text = _kb(["add", str(a1), str(b)], base)
    assert result.exit_code == 0, text
    assert "added study 1" in text and "added study 2" in text

    result, text = _kb(["list"], base)
    assert result.exit_code == 0, text
    assert "2 studies" in text and text.count(SHOP) == 2 and " a1 " in text and " b " in text

    # what is stored is what the study holds: every trial, with its value, best first in `ranked`
    storage, spec = open_study(a1)
    trials = storage.trials()
    storage.close()
    with open_knowledge_base(base) as store:
        entry = store.get(1)
    assert entry is not None and entry.system == spec["system"] and entry.n_trials == len(trials) == 12
    assert [t.value for t in entry.trials] == [t.value for t in trials]
    assert [t.config for t in entry.trials] == [t.config for t in trials]
    best = max(trials, key=lambda t: t.value)
    assert entry.ranked()[0].config == best.config and entry.best_value == best.value
    assert entry.signature["options"]["workload"] == "a1" and "throughput" in entry.signature["metrics"]
    assert entry.host["cores"] >= 1 and entry.host["ram_bytes"] > 0

    result, text = _kb(["show", "1"], base)
    assert result.exit_code == 0, text
    assert f"{best.config['x']:.4g}"[:4] in text and "workload" in text

    # adding the same study again updates its entry instead of doubling it
    result, text = _kb(["add", str(a1)], base)
    assert result.exit_code == 0 and "updated study 1" in text, text
    result, text = _kb(["forget", "2"], base)
    assert result.exit_code == 0 and "forgot study 2" in text
    with open_knowledge_base(base) as store:
        assert [s.name for s in store.studies()] == ["a1"]
    result, text = _kb(["forget", "2"], base)
    assert result.exit_code == 2 and "no study 2" in text
    result, text = _kb(["show", "99"], base)
    assert result.exit_code == 2 and "no study 99" in text


def test_list_of_a_missing_base_says_it_is_empty_and_creates_nothing(tmp_path):
    result, text = _kb(["list"], tmp_path / "none.db")
    assert result.exit_code == 0 and "empty" in text
    assert not (tmp_path / "none.db").exists()


def test_signature_holds_options_default_metrics_and_monitor_means_when_present():
    spec = {"system_options": {"workload": "w", "records": 100, "weird": {"nested": 1}}}
    plain = [Trial(number=0, config={}, state=TrialState.COMPLETE, value=1.0, source="default", metrics={"t": 5.0})]
    assert workload_signature(spec, plain) == {"options": {"workload": "w", "records": 100}, "metrics": {"t": 5.0}, "monitors": {}}
    monitored = [
        Trial(number=0, config={}, state=TrialState.COMPLETE, value=1.0, source="default", metrics={"t": 5.0},
              info={"monitors": {"cpu": {"mean": 0.25, "max": 1}, "hits": 3, "bad": {"mean": float("nan")}, "odd": "x"}}),
        Trial(number=1, config={}, state=TrialState.COMPLETE, value=2.0, source="random", info={"monitors": {"cpu": {"mean": 0.75}}}),
    ]
    assert workload_signature(spec, monitored)["monitors"] == {"cpu": 0.25, "hits": 3.0}  # the default's
    no_default = [monitored[1], Trial(number=2, config={}, state=TrialState.COMPLETE, value=1.0, info={"monitors": {"cpu": {"mean": 0.25}}})]
    assert workload_signature(spec, no_default)["monitors"] == {"cpu": 0.5}  # else the mean over trials


# ----------------------------------------------------------------------------- crash safety, corruption


_ADD_CHILD = """
import sys
sys.path.insert(0, {root!r})
from tests.knowledge_entries import make_entry as _entry
from autosys.learn.knowledge import open_knowledge_base
store = open_knowledge_base(sys.argv[1])
print("adding", flush=True)
store.add(_entry(int(sys.argv[2]), sys.argv[3]))
print("added", flush=True)
"""


def _spawn_add(location: str, n_trials: int, tag: str, pause: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, AUTOSYS_KB_TEST_PAUSE=str(pause))
    return subprocess.Popen([sys.executable, "-c", _ADD_CHILD.format(root=str(ROOT)), location, str(n_trials), tag],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _in_transaction_sqlite(path: Path) -> bool:
    """Whether another process holds the file's write lock now (it is inside its add)."""
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    finally:
        conn.close()


def _kill_inside_add(location: str, wait_inside) -> None:
    child = _spawn_add(location, 200, "killed", pause=0.05)  # 200 rows, 10 s: the kill lands inside the transaction
    try:
        assert child.stdout.readline().strip() == "adding", child.stderr.read()
        deadline = time.monotonic() + 20
        while not wait_inside():
            assert time.monotonic() < deadline, "the child never began its transaction"
            time.sleep(0.05)
        time.sleep(0.3)  # a few trial rows written, uncommitted
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def _whole_or_absent(location: str) -> list[str]:
    with open_knowledge_base(location) as store:
        studies = store.studies(with_trials=True)  # raises if any study lacks a trial it says it has
        for s in studies:
            assert len(s.trials) == s.n_trials
        return [s.name for s in studies]


def test_sigkill_while_a_study_adds_itself_leaves_it_whole_or_absent_sqlite(tmp_path):
    location = str(tmp_path / "kb.db")
    with open_knowledge_base(location) as store:
        store.add(_entry(5, "before"))
    _kill_inside_add(location, lambda: _in_transaction_sqlite(Path(location)))
    assert _whole_or_absent(location) == ["before"]
    done = _spawn_add(location, 50, "after")  # the base takes new studies after the crash
    out, errors = done.communicate(timeout=60)
    assert done.returncode == 0, errors
    assert _whole_or_absent(location) == ["before", "after"]
    with open_knowledge_base(location) as store:
        assert sqlite3.connect(location).execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert store.studies()[1].n_trials == 50


def test_a_corrupt_file_is_one_clear_error_naming_it(tmp_path):
    garbage = tmp_path / "kb.db"
    garbage.write_bytes(b"this is not a database at all\x00" * 200)
    with pytest.raises(KnowledgeBaseError) as raised:
        open_knowledge_base(garbage)
    message = str(raised.value)
    assert str(garbage) in message and "not a readable autosys knowledge base" in message and "Move it aside" in message
    result, text = _kb(["list"], garbage)
    assert result.exit_code == 2 and str(garbage) in text and "Traceback" not in result.output

    # a real SQLite file of something else (a study) is refused, not written into
    study = _study(tmp_path / "s", "a1", budget=2)
    with pytest.raises(KnowledgeBaseError, match="not a knowledge base"):
        open_knowledge_base(study / "study.sqlite")

    # a row damaged behind its back: the error names the base and the study
    good = tmp_path / "good.db"
    with open_knowledge_base(good) as store:
        store.add(_entry(3, "x"))
    conn = sqlite3.connect(good)
    conn.execute("UPDATE kb_trials SET config = '{broken' WHERE number = 1")
    conn.commit()
    conn.close()
    with open_knowledge_base(good) as store:
        with pytest.raises(KnowledgeBaseError, match="study 1 trial 1's config"):
            store.get(1)

    # a tune with a corrupt base still tunes, says why it could not use the base, and leaves the file alone
    before = garbage.read_bytes()
    result = CliRunner().invoke(main_app, ["tune", SHOP, "--budget", "3", "--tuner", "random", "--dir", str(tmp_path / "t"),
                                           "--quiet", "--kb", str(garbage)])
    assert result.exit_code == 0, result.output
    assert "warning: no warm start" in result.output and "was not added" in result.output
    assert garbage.read_bytes() == before


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.fixture()
def pg_database():
    """A database of its own on the local server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (pip install 'autosys-toolkit[db]')")
    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432 ({str(exc).strip()[:80]})")
    name = f"autosys_kb_test_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


_CONCURRENT_CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from tests.knowledge_entries import make_entry
from autosys.learn.knowledge import open_knowledge_base
location, go, tag = sys.argv[1:4]
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.01)
store = open_knowledge_base(location)  # both open an empty database at once: they race to make the schema too
start = time.time()
for i in range(12):
    store.add(make_entry(20, f"{{tag}}-{{i}}"))
print(start, time.time(), flush=True)
"""


def test_two_processes_share_a_postgres_base_without_losing_entries(pg_database, tmp_path):
    go = tmp_path / "go"
    env = dict(os.environ, AUTOSYS_KB_TEST_PAUSE="0.005")  # 0.1 s per add: the two writers interleave
    writers = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_CHILD.format(root=str(ROOT)), pg_database, str(go), f"w{w}"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(2)]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    go.touch()
    spans = []
    for writer in writers:
        out, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
        spans.append(tuple(map(float, out.split())))
    (s0, e0), (s1, e1) = spans
    assert s0 < e1 and s1 < e0, f"the writers did not overlap: {spans}"  # else this tests nothing
    names = _whole_or_absent(pg_database)
    assert sorted(names) == sorted(f"w{w}-{i}" for w in range(2) for i in range(12))
    with open_knowledge_base(pg_database) as store:
        studies = store.studies()
        assert all(s.n_trials == 20 for s in studies) and len({s.id for s in studies}) == 24


def test_sigkill_while_adding_to_postgres_leaves_nothing_half_written(pg_database):
    with open_knowledge_base(pg_database) as store:
        store.add(_entry(5, "before"))
        assert isinstance(store, PostgresKnowledgeBase)

    def inside() -> bool:  # the child holds the base's write lock
        import psycopg

        with psycopg.connect(pg_database, autocommit=True) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            ).fetchone()[0] > 0

    _kill_inside_add(pg_database, inside)
    deadline = time.monotonic() + 30
    while inside() and time.monotonic() < deadline:  # the server notices the dead client and rolls back
        time.sleep(0.1)
    assert _whole_or_absent(pg_database) == ["before"]


# ----------------------------------------------------------------------------- tune's warm start


def _tune(tmp_path: Path, name: str, *extra: str):
    out = tmp_path / f"{name}.json"
    result = CliRunner().invoke(main_app, ["tune", SHOP, "--workload", "a2", "--budget", "8", "--tuner", "random",
                                           "--no-intensify", "--dir", str(tmp_path / name), "--quiet", "--json", str(out),
                                           *extra])
    assert result.exit_code == 0, result.output
    storage, _ = open_study(tmp_path / name)
    trials = storage.trials()
    storage.close()
    return " ".join(result.output.split()), trials, json.loads(out.read_text())


def test_tune_warm_starts_from_the_nearest_past_study_and_says_so(tmp_path, monkeypatch):
    base = tmp_path / "kb.db"
    monkeypatch.setenv("AUTOSYS_KB", str(base))
    b = _study(tmp_path / "past-b", "b", budget=15)
    a1 = _study(tmp_path / "past-a1", "a1", budget=15)
    assert _kb(["add", str(b), str(a1)], base)[0].exit_code == 0  # b is 1, a1 is 2
    with open_knowledge_base(base) as store:
        near, second = store.get(2), store.get(1)

    def best_configs(study):  # its best configs, the default left out (measured already), no repeats
        configs = []
        for t in study.ranked():
            if t.config != Shop().default() and t.config not in configs:
                configs.append(t.config)
        return configs

    # tune draws on the two nearest past studies (TuneKnowledge.WARM_STUDIES), taking turns, nearest first
    expected = []
    for pair in zip(best_configs(near), best_configs(second)):
        expected += [c for c in pair if c not in expected]

    text, trials, summary = _tune(tmp_path, "warm")
    assert "warm start: from kb study 2 past-a1" in text and "same host" in text and "+ kb study 1 past-b" in text
    assert "3 configs seeded" in text
    seeded = [t for t in trials if t.source == "warm_start"]
    assert [t.config for t in seeded] == expected[:3]
    assert trials[0].source == "default" and trials[1].source == "warm_start"
    assert summary["warm_start"]["seeded"] == 3 and "past-a1" in summary["warm_start"]["from"]
    # the past results were told once the seeds were measured here, each study corrected by its own pairs
    assert summary["warm_start"]["told"] > 0 and len(summary["warm_start"]["corrections"]) == 2
    # the new study added itself; a later tune of the same workload maps to it (distance 0 on the options)
    assert "knowledge base: added study 3" in text
    again, _, summary = _tune(tmp_path, "again")
    assert "warm start: from kb study 3 warm" in again

    cold, trials, summary = _tune(tmp_path, "cold", "--warm-start", "none")
    assert "warm start" not in cold and not any(t.source == "warm_start" for t in trials)
    assert "warm_start" not in summary

    from_dir, trials, summary = _tune(tmp_path, "from-dir", "--warm-start", str(b))
    assert f"warm start: from study {b}" in from_dir
    assert trials[1].source == "warm_start"


def test_tune_off_neither_warm_starts_nor_adds(tmp_path):
    text, trials, _ = _tune(tmp_path, "off", "--kb", "off")
    assert "warm start" not in text and "knowledge base" not in text
    assert not any(t.source == "warm_start" for t in trials)


def test_bad_warm_start_value_is_one_line(tmp_path):
    result = CliRunner().invoke(main_app, ["tune", SHOP, "--dir", str(tmp_path / "x"), "--warm-start", "sometimes"])
    assert result.exit_code == 2 and "--warm-start takes auto, none or a study directory" in result.output
    assert not (tmp_path / "x").exists()


def test_nearest_prefers_the_same_host_when_workloads_tie():
    here = host_fingerprint(measure_fsync=False).to_json()
    elsewhere = dict(here, cpu_model="another cpu", cores=here["cores"] * 4, vector_extensions=[])
    assert host_distance(here, here) == 0 and host_distance(here, elsewhere) > 0.3
    far, near = _entry(6, "same"), _entry(6, "same")
    far.host, near.host = elsewhere, here
    far.id, near.id, far.added_at, near.added_at = 1, 2, 2.0, 1.0  # the far one is newer: only the host decides
    space = Space([Float("x", 0.0, 1.0)])
    (match,) = nearest([far, near], system="toy", space=space, signature=far.signature, host=here)
    assert match.study is near and match.host == 0
    assert nearest([far], system="other", space=space, signature=far.signature, host=here) == []
    other_space = Space([Categorical("y", ("a", "b"))])
    assert nearest([far], system="toy", space=other_space, signature=far.signature, host=here) == []


def test_workload_distance_weighs_options_metrics_and_monitors_apart():
    base = {"options": {"workload": "a", "seed": 1}, "metrics": {"t": 100.0}, "monitors": {"cpu": 1.0, "system.cpu_percent": 10.0}}
    assert workload_distance(base, base) == 0
    busy_host = dict(base, monitors={"cpu": 1.0, "system.cpu_percent": 90.0})
    assert workload_distance(base, busy_host) == 0  # host-wide readings are not the workload
    other = {"options": {"workload": "b", "seed": 2}, "metrics": {"t": 50.0}, "monitors": {"cpu": 1.0}}
    assert workload_distance(base, other) == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # options, metrics, monitors
    assert workload_distance(base, {"options": {"workload": "a", "seed": 9}}) == 0  # the seed is not the workload


def test_python_studies_warm_start_and_add_themselves_as_tune_does(tmp_path):
    from autosys.analysis.kb_warm_start import warm_start_after_default
    from autosys.learn.knowledge import add_study

    base = str(tmp_path / "kb.db")
    past = Study.create(tmp_path / "past", Shop("a1"), tuner="random", budget=10, seed=3, intensify=False).run()
    assert add_study(past, base)[:2] == (1, False) and add_study(past, base)[:2] == (1, True)  # again: replaced, same id
    past.close()
    seen = []
    new = Study.create(tmp_path / "new", Shop("a2"), tuner="random", budget=6, seed=4, intensify=False)
    new.run(callback=warm_start_after_default(base, done=seen.append))
    (result,) = seen
    assert result.done and result.study_id == 1 and result.seeded >= 1, result
    assert [t.source for t in new.trials()][1:1 + result.seeded] == ["warm_start"] * result.seeded
    new.close()
