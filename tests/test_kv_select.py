"""The kv system: conditional space, real evaluations, caps as limits, workloads, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from autosys_adapters.kv.engines import ENGINES
from autosys_adapters.kv.workloads import KV_PRESETS, load_kv_workload, prepare
from autosys_adapters.kv.system import KVSelect
from autosys.core.space import InvalidConfig

SMALL = dict(records=600, operations=600, seconds=5.0)


def test_conditional_knobs_appear_only_with_their_engine():
    system = KVSelect(**SMALL)
    space = system.space()
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        config = space.sample(rng)
        engine = config["engine"]
        seen.add(engine)
        for name in config:
            if name != "engine":
                assert name.startswith(engine + "_"), (engine, name)
        assert space.validate(config) == config
    assert seen == set(system.engines)
    # a knob of another engine is dropped by validation, never applied
    clean = space.validate({"engine": "dict", "sqlite_page_size": 4096})
    assert clean == {"engine": "dict"}
    if "rocksdb" in system.engines:
        level = space.complete({"engine": "rocksdb", "rocksdb_compaction": "level"})
        universal = space.complete({"engine": "rocksdb", "rocksdb_compaction": "universal"})
        assert "rocksdb_level_multiplier" in level and "rocksdb_level_multiplier" not in universal
    if "lmdb" in system.engines:
        assert "lmdb_map_async" not in space.complete({"engine": "lmdb", "lmdb_writemap": False})
        assert "lmdb_map_async" in space.complete({"engine": "lmdb", "lmdb_writemap": True})


def test_bad_knob_value_is_invalid_config():
    space = KVSelect(**SMALL).space()
    with pytest.raises(InvalidConfig, match="sqlite_page_size"):
        space.validate(space.complete({"engine": "sqlite", "sqlite_page_size": 3000}))


@pytest.mark.parametrize("workload", ["ycsb-a", "ycsb-e", "absent-reads", "delete-heavy"])
def test_every_engine_reads_the_same_data(workload, tmp_path):
    """The same stream gives the same read hits on every engine: they store the same thing."""
    system = KVSelect(workload=workload, **SMALL)
    system.workdir = tmp_path
    space = system.space()
    hits = {}
    for engine in system.engines:
        config = space.complete({"engine": engine})
        if engine == "sqlite":
            config["sqlite_synchronous"] = "off"
        if engine == "lmdb":
            config["lmdb_sync"] = False
        m = system.evaluate(config)
        assert m.metrics["throughput"] > 0
        assert m.metrics["operations_done"] == 600
        assert m.metrics["p95_latency_us"] > 0
        assert m.metrics["memory_bytes"] >= 0 and m.metrics["disk_bytes"] >= 0
        hits[engine] = m.metrics["read_hits"]
    assert len(set(hits.values())) == 1, hits
    assert list(tmp_path.iterdir()) == []  # every store is removed after its run


def test_a_forked_run_measures_the_same_stream_and_leaves_nothing_behind(tmp_path):
    """isolate=True runs each measurement in a forked child; in-process gives the same reads."""
    hits = {}
    for isolate in (True, False):
        system = KVSelect(workload="ycsb-a", isolate=isolate, **SMALL)
        system.workdir = tmp_path
        m = system.evaluate(system.space().complete({"engine": "sorteddict"}))
        assert m.metrics["operations_done"] == 600 and m.metrics["memory_bytes"] > 0
        hits[isolate] = m.metrics["read_hits"]
        assert system._counter == 1  # the store counter lives in the parent
    assert hits[True] == hits[False]
    assert list(tmp_path.iterdir()) == []


def test_isolated_runs_stay_in_process_once_rocksdb_ran_here(tmp_path):
    """RocksDB's background threads do not survive a fork: a child of a process that opened it would
    wait forever for a flush, so such a process measures in-process."""
    pytest.importorskip("rocksdict", reason="RocksDB needs the kv extra (rocksdict)")
    from autosys_adapters.kv.engines import rocksdb_started_here

    system = KVSelect(workload="ycsb-a", isolate=True, **SMALL)
    system.workdir = tmp_path
    config = system.space().complete({"engine": "rocksdb"})
    first = system.evaluate(config)  # forked (unless an earlier test opened RocksDB in this process)
    system.isolate = False
    system.evaluate(config)  # in-process: RocksDB's threads now live here
    assert rocksdb_started_here()
    system.isolate = True
    again = system.evaluate(config)  # must not fork now: it would hang
    assert again.metrics["read_hits"] == first.metrics["read_hits"]


def test_absent_reads_miss_and_caps_become_limits(tmp_path):
    system = KVSelect(workload="absent-reads", memory_cap_mb=1.5, disk_cap_mb=20, **SMALL)
    limits = {limit.metric: limit.max for limit in system.objective.limits}
    assert limits == {"memory_bytes": 1.5 * 2**20, "disk_bytes": 20 * 2**20}
    prepared = system.prepared()
    reads = sum(1 for op in prepared.ops if op == 0)
    system.workdir = tmp_path
    hits = system.evaluate({"engine": "dict"}).metrics["read_hits"]
    assert 0.1 * reads < hits < 0.35 * reads  # 80% of reads aim at absent keys
    assert KVSelect(**SMALL).objective.limits == ()


def test_workload_file_with_kv_settings(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"mix": {"scan": 1}, "records": 300, "operations": 50, "memory_cap_mb": 2,
                                "absent_fraction": 0.5}))
    w = load_kv_workload(str(path))
    assert (w.name, w.base.records, w.memory_cap_mb, w.absent_fraction) == ("mine", 300, 2.0, 0.5)
    assert load_kv_workload(str(path), memory_cap_mb=5).memory_cap_mb == 5.0  # the option wins
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        load_kv_workload({"colour": "red"})
    with pytest.raises(ValueError, match="absent_fraction"):
        load_kv_workload({"absent_fraction": 2})
    with pytest.raises(ValueError, match="neither a preset"):
        KVSelect(workload="no-such-workload")


def test_prepared_stream_is_deterministic():
    w = load_kv_workload("ycsb-d", records=500, operations=400)
    a, b = prepare(w, seed=3), prepare(w, seed=3)
    assert a.keys == b.keys and a.values == b.values and a.ops == b.ops
    assert prepare(w, seed=4).keys != a.keys
    assert len(KV_PRESETS) >= 8


def test_engines_option_restricts_the_space():
    system = KVSelect(engines="dict,sqlite", **SMALL)
    assert system.space()["engine"].choices == ("dict", "sqlite")
    with pytest.raises(ValueError, match="unknown engine"):
        KVSelect(engines="dict,btree")


def test_cli_tune_kv_writes_json(tmp_path):
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps({"mix": {"read": 0.5, "update": 0.5}, "records": 400, "operations": 400}))
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "autosys.cli.main", "tune", "kv", "--workload", str(workload), "--budget", "4",
           "--dir", str(tmp_path / "study"), "--json", str(out), "--quiet", "--seconds", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["system"] == "kv"
    assert summary["trials"]["complete"] + summary["trials"]["failed"] == 4
    assert summary["best"]["metrics"]["throughput"] > 0
    assert summary["best"]["config"]["engine"] in ENGINES


def test_replay_rates_are_consistent(tmp_path):
    """Net-of-wait throughput is never below the wall-clock rate and stays finite."""
    import math

    from autosys_adapters.kv.engines import DictEngine
    from autosys_adapters.kv.replay import replay

    system = KVSelect(workload="ycsb-a", **SMALL)
    prepared = system.prepared()
    for _ in range(20):
        engine = DictEngine().open()
        engine.load(prepared.load_items)
        r = replay(engine, prepared, seconds=5.0)
        assert r["done"] == len(prepared)
        assert math.isfinite(r["throughput"]) and r["throughput_wall"] <= r["throughput_raw"] * (1 + 1e-9)
        # host-speed normalisation rescales at most the whole busy time by the measured slowdown
        bounds = sorted([r["throughput_raw"], r["throughput_raw"] * r["host_slowdown"]])
        assert bounds[0] * (1 - 1e-9) <= r["throughput"] <= bounds[1] * (1 + 1e-9)
    plain = replay(DictEngine().open(), prepared, seconds=5.0, normalize=False)
    assert plain["throughput"] == plain["throughput_raw"] and plain["host_slowdown"] == 1.0


def test_replay_reports_the_peak_of_an_engine_whose_memory_falls():
    """A probed engine's memory is sampled during the run: a flush that frees memory before the end
    does not hide the peak (RocksDB's memtables); an engine without a probe reports no peak."""
    from autosys_adapters.kv.engines import DictEngine
    from autosys_adapters.kv.replay import PROBE_EVERY, replay

    class Flushing(DictEngine):
        """Memory grows by one unit per put and drops to 0 every 1000 puts (a flush)."""

        def _open(self):
            super()._open()
            self.held = 0

        def put(self, key, value):
            super().put(key, value)
            self.held = 0 if self.held >= 1000 else self.held + 1

        def memory_probe(self):
            return lambda: self.held

    system = KVSelect(workload="insert-heavy", records=600, operations=6000, seconds=30.0)
    prepared = system.prepared()
    engine = Flushing().open()
    engine.load(prepared.load_items)
    r = replay(engine, prepared, seconds=30.0, normalize=False)
    assert r["done"] == len(prepared)
    assert r["memory_peak"] >= 1000 - PROBE_EVERY  # some sample lands near the top of a cycle
    plain = DictEngine().open()
    assert replay(plain, prepared, seconds=30.0, normalize=False)["memory_peak"] == 0


def test_rocksdb_memory_is_probed_during_the_run(tmp_path):
    """RocksDB's memory rises and falls with its memtables: the replay samples it (a peak > 0), and
    KVSelect reports at least that peak."""
    pytest.importorskip("rocksdict")
    from autosys_adapters.kv.engines import make_engine
    from autosys_adapters.kv.replay import replay

    system = KVSelect(workload="insert-heavy", records=500, operations=4000, seconds=5.0, engines="rocksdb")
    config = system.space().complete({"engine": "rocksdb", "rocksdb_write_buffer_kib": 64})
    engine = make_engine(config).open(tmp_path / "db")
    try:
        engine.load(system.prepared().load_items)
        r = replay(engine, system.prepared(), seconds=5.0, normalize=False)
    finally:
        engine.close()
    assert r["done"] == 4000 and r["memory_peak"] > 0
    system.setup()
    try:
        m = system.evaluate(config).metrics
    finally:
        system.teardown()
    assert m["memory_bytes"] > 0 and m["operations_done"] == 4000


def test_defaults_fit_a_memory_cap_and_ranges_stay():
    """Under a memory cap the memory budgets' defaults are shares of it (clipped to the knob's range,
    never above the library default); without one, the catalogue's defaults; the ranges never change."""
    plain = KVSelect(workload="ycsb-b", **SMALL).space()
    capped = KVSelect(workload="ycsb-b", memory_cap_mb=4.0, **SMALL).space()
    tiny = KVSelect(workload="ycsb-b", memory_cap_mb=0.1, **SMALL).space()
    if "rocksdb_write_buffer_kib" in plain.params:
        assert plain.params["rocksdb_write_buffer_kib"].default == 65536
        assert capped.params["rocksdb_write_buffer_kib"].default == 512  # 4 MiB / 8
        assert capped.params["rocksdb_block_cache_kib"].default == 1024  # 4 MiB / 4
        assert tiny.params["rocksdb_write_buffer_kib"].default == 64  # clipped to the range's low end
        for name in ("rocksdb_write_buffer_kib", "rocksdb_block_cache_kib"):
            assert (capped.params[name].low, capped.params[name].high) == (plain.params[name].low, plain.params[name].high)
    assert capped.params["sqlite_cache_kib"].default == 1024
    assert KVSelect(workload="ycsb-b", memory_cap_mb=1000, **SMALL).space().params["sqlite_cache_kib"].default == 2000
    assert capped.default()["engine"] == plain.default()["engine"]


def test_one_slow_calibration_does_not_inflate_a_replays_throughput(monkeypatch):
    """The host slowdown is the smaller of the calibrations around the replay: one read slow
    (a preemption, an engine's background flush) must not scale the rate up."""
    from autosys_adapters.kv.engines import DictEngine
    from autosys_adapters.kv import replay as replay_module
    from autosys.run.hostspeed import HostSpeed

    readings = iter([3.0, 1.0])
    monkeypatch.setattr(HostSpeed, "slowdown", staticmethod(lambda *a, **k: next(readings)))
    system = KVSelect(workload="ycsb-a", **SMALL)
    prepared = system.prepared()
    engine = DictEngine().open()
    engine.load(prepared.load_items)
    r = replay_module.replay(engine, prepared, seconds=5.0)
    assert r["host_slowdown"] == 1.0
    assert r["throughput"] <= r["throughput_raw"] * (1 + 1e-9)
