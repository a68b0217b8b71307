"""The SQLite adapter on a real database file."""

import sqlite3

import numpy as np
import pytest

from autosys_adapters.sqlite.knobs import SQLiteKnobs, apply_pragmas
from autosys.core.space import InvalidConfig
from autosys.run.study import Study
from autosys.tuners import make_tuner

SMALL = dict(records=500, operations=300, repeats=2, seconds=0.5)


def test_durable_constraint_is_never_violated_by_any_suggestion():
    space = SQLiteKnobs().space()
    for name in ("random", "grid"):
        tuner = make_tuner(name, space, seed=0)
        for _ in range(300):
            config = tuner.ask().config
            assert config["synchronous"] not in ("off", "normal")  # normal: a WAL commit can roll back on power loss
            assert config["journal_mode"] not in ("off", "memory")
    with pytest.raises(InvalidConfig, match="durable"):
        space.validate({**space.default(), "synchronous": "off"})
    relaxed = SQLiteKnobs(durable=False).space()
    assert relaxed.is_valid({**space.default(), "synchronous": "off"})


def test_evaluate_measures_real_file_with_repeats(tmp_path):
    system = SQLiteKnobs(**SMALL)
    system.workdir = tmp_path
    system.setup()
    m = system.evaluate(system.default())
    assert m.metrics["throughput"] > 0 and m.metrics["p95_latency_ms"] > 0
    assert len(m.samples["throughput"]) == 2
    assert 0 < m.metrics["operations_done"] <= 300  # capped by `seconds` on a slow disk
    # the base file holds exactly the loaded records, and every trial copy is cleaned up
    base = next(tmp_path.glob("base-*.db"))
    assert sqlite3.connect(base).execute("SELECT COUNT(*) FROM usertable").fetchone()[0] == 500
    assert not list(tmp_path.glob("trial-*"))


def test_page_size_is_applied_by_rebuilding_the_base_file(tmp_path):
    system = SQLiteKnobs(**SMALL)
    system.workdir = tmp_path
    config = system.space().complete({"page_size": 8192})
    system.evaluate(config)
    base = next(tmp_path.glob("base-*-8192p.db"))
    assert sqlite3.connect(base).execute("PRAGMA page_size").fetchone()[0] == 8192


def test_pragmas_take_effect_on_the_connection(tmp_path):
    system = SQLiteKnobs(durable=False)  # synchronous=normal gives up durability in WAL mode
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    config = system.space().complete(
        {"journal_mode": "wal", "synchronous": "normal", "cache_size_kib": 4096, "wal_autocheckpoint": 100, "temp_store": "memory"}
    )
    apply_pragmas(conn, config)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert conn.execute("PRAGMA cache_size").fetchone()[0] == -4096
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 100
    assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2


def test_workload_stream_is_deterministic_across_instances(tmp_path):
    a, b = SQLiteKnobs(seed=3, **SMALL), SQLiteKnobs(seed=3, **SMALL)
    assert np.array_equal(a._operations().keys, b._operations().keys)
    assert not np.array_equal(a._operations().keys, SQLiteKnobs(seed=4, **SMALL)._operations().keys)


def test_a_short_study_finds_wal_beats_default(tmp_path):
    system = SQLiteKnobs(**SMALL)
    # single runs decide here (intensify=False): four trials leave no room for paired re-runs
    study = Study.create(tmp_path / "s", system, budget=4, seed=0, fixed={"journal_mode": "wal", "synchronous": "full"},
                         intensify=False)
    study.run()
    assert study.best.source != "default"
    assert study.best.value > study.default_trial.value


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="neither a preset"):
        SQLiteKnobs(workload="nope")
    with pytest.raises(ValueError, match="repeats"):
        SQLiteKnobs(repeats=0)
