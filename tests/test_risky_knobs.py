"""Knobs whose values risk more than speed stay out of a study unless the user allows them (issue 18, item 4)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from autosys.core.registry import available_systems, make_system
from autosys.core.space import Categorical, Float, Int, InvalidConfig, Ordinal, Space
from autosys.core.system import SystemUnavailable
from autosys.core.trial import Result
from autosys.run.study import Study
from autosys.tuners import make_tuner
from autosys_adapters.sqlite.knobs import SQLiteKnobs

SMALL = dict(records=300, operations=200, repeats=1, seconds=0.3)


def _space() -> Space:
    return Space([
        Categorical("mode", ("a", "b", "c"), default="a", risk="availability: c locks others out", risky_values=("c",)),
        Ordinal("checkpoint", (0, 10, 100), default=10, risk="unbounded disk use", risky_values=(0,)),
        Int("threads", 1, 64, default=4, risk="memory: each thread takes a buffer"),  # risky as a whole
        Float("ratio", 0.0, 1.0, default=0.5),
    ])


def test_safe_space_never_yields_a_risky_value_from_any_tuner():
    safe = _space().safe()
    for name in ("random", "grid", "bo"):
        tuner = make_tuner(name, safe, seed=1)
        for _ in range(40 if name == "bo" else 200):
            suggestion = tuner.ask()
            config = suggestion.config
            assert config["mode"] != "c" and config["checkpoint"] != 0 and config["threads"] == 4
            tuner.tell(suggestion, Result.complete(config["ratio"] + (config["mode"] == "b")))


def test_safe_space_explains_a_risky_value_and_allowing_lets_it_in():
    with pytest.raises(InvalidConfig, match=r"mode risks availability.*--allow-risky mode"):
        _space().safe().validate({"mode": "c", "checkpoint": 10, "threads": 4, "ratio": 0.5})
    allowed = _space().safe(["mode"])
    assert allowed.validate({"mode": "c", "checkpoint": 10, "threads": 4, "ratio": 0.5})["mode"] == "c"
    with pytest.raises(InvalidConfig, match="checkpoint risks unbounded disk use"):
        allowed.validate({"mode": "c", "checkpoint": 0, "threads": 4, "ratio": 0.5})
    everything = _space().safe("all")
    assert everything.is_valid({"mode": "c", "checkpoint": 0, "threads": 64, "ratio": 0.5})


def test_allowing_an_unknown_or_riskless_knob_is_a_clear_error():
    with pytest.raises(InvalidConfig, match="cannot allow 'nope': unknown parameter"):
        _space().safe(["nope"])
    with pytest.raises(InvalidConfig, match="cannot allow 'ratio': it declares no risk"):
        _space().safe(["ratio"])


def test_a_risky_default_is_refused_and_risk_survives_json():
    with pytest.raises(ValueError, match="default must be safe"):
        Space([Categorical("mode", ("a", "c"), default="c", risk="x", risky_values=("c",))])
    again = Space.from_json(json.loads(json.dumps(_space().to_json())))
    assert again["mode"].risky_values == ("c",) and again["threads"].risk.startswith("memory")
    assert again.safe().to_json() == _space().safe().to_json()


def test_sqlite_declares_exclusive_locking_and_no_checkpoints_risky():
    space = SQLiteKnobs(**SMALL).space()
    assert space["locking_mode"].is_risky("exclusive") and space["wal_autocheckpoint"].is_risky(0)
    safe = space.safe()
    rng = np.random.default_rng(0)
    for _ in range(500):
        config = safe.sample(rng)
        assert config["locking_mode"] == "normal" and config.get("wal_autocheckpoint") != 0
        assert config["synchronous"] in ("full", "extra")  # durable: normal can lose WAL commits on power loss


def test_no_registered_systems_default_safe_study_space_takes_a_risky_value(tmp_path):
    checked = 0
    for name in available_systems():
        try:
            system = make_system(name, {})
            space = system.space()
        except (SystemUnavailable, ImportError, OSError) as exc:  # a server or an optional engine is missing
            print(f"skipped {name}: {exc}")
            continue
        risky = space.risky()
        safe = space.safe()
        rng = np.random.default_rng(3)
        for _ in range(200):
            config = safe.sample(rng)
            bad = [k for k, p in risky.items() if k in config and p.is_risky(config[k])]
            assert not bad, f"{name}: the safe space took risky values {bad}"
        assert not [k for k, p in risky.items() if p.is_risky(system.default().get(k, p.default_value()))]
        checked += 1
    assert checked >= 5


def test_study_stores_what_was_allowed_and_resume_keeps_it(tmp_path):
    study = Study.create(tmp_path / "s", SQLiteKnobs(**SMALL), budget=2, allow_risky=["locking_mode"])
    assert study.spec["allow_risky"] == ["locking_mode"]
    assert study.tuner.space.is_valid({**study.tuner.space.default(), "locking_mode": "exclusive"})
    study.storage.close()
    again = Study.resume(tmp_path / "s", system=SQLiteKnobs(**SMALL))
    assert again.tuner.space.is_valid({**again.tuner.space.default(), "locking_mode": "exclusive"})
    again.storage.close()
    plain = Study.create(tmp_path / "t", SQLiteKnobs(**SMALL), budget=2)
    assert not plain.tuner.space.is_valid({**plain.tuner.space.default(), "locking_mode": "exclusive"})
    plain.storage.close()


def _autosys(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autosys", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_refuses_a_risky_pin_unless_allowed(tmp_path):
    common = ("tune", "sqlite", "--records", "300", "--operations", "200", "--repeats", "1", "--budget", "2", "--quiet")
    refused = _autosys(*common, "--set", "locking_mode=exclusive", "--dir", str(tmp_path / "a"), cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "--allow-risky locking_mode" in refused.stderr and "Traceback" not in refused.stderr
    allowed = _autosys(*common, "--set", "locking_mode=exclusive", "--allow-risky", "locking_mode",
                       "--dir", str(tmp_path / "b"), "--json", str(tmp_path / "b.json"), cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    study = Study.resume(tmp_path / "b")
    tried = [trial.config.get("locking_mode") for trial in study.storage.trials()]
    study.storage.close()
    assert "exclusive" in tried, tried  # the pinned risky value was measured
    unknown = _autosys(*common, "--allow-risky", "cache_size_kib", "--dir", str(tmp_path / "c"), cwd=tmp_path)
    assert unknown.returncode == 2 and "declares no risk" in unknown.stderr


def test_sqlite_measures_the_wal_a_risky_value_leaves_behind(tmp_path):
    system = SQLiteKnobs(records=500, operations=1500, repeats=1, seconds=60)
    system.workdir = tmp_path
    system.setup()
    space = system.space().safe(["wal_autocheckpoint"])
    base = {**space.default(), "journal_mode": "wal"}
    checkpointed = system.evaluate(space.complete({**base, "wal_autocheckpoint": 100}))
    unbounded = system.evaluate(space.complete({**base, "wal_autocheckpoint": 0}))
    # YCSB-A updates half the operations, a 4 KiB page each: ~3 MiB of WAL, against 100 pages between checkpoints
    assert unbounded.metrics["wal_mib"] > 2 * checkpointed.metrics["wal_mib"] > 0
    assert unbounded.metrics["disk_mib"] > unbounded.metrics["wal_mib"]
