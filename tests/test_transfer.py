"""Transfer across hosts (autosys/learn/transfer.py): memory knobs scale with RAM, thread counts with cores,
clipped to the knob's range; values from elsewhere corrected by a few live measurements; and the
knowledge-base warm start (autosys/analysis/kb_warm_start.py) that uses both."""

from __future__ import annotations

import numpy as np
import pytest

from autosys.core.space import Bool, Categorical, Float, Int, Ordinal, Space
from autosys.core.system import Measurement, Objective, System
from autosys.learn.host import HostFingerprint
from autosys.learn.knowledge import entry_from_study, open_knowledge_base
from autosys.learn.transfer import (
    CORES, RAM, CorrectedModel, fit_correction, host_ratios, host_units, scale_config, unit_kind,
)
from autosys.run.study import Study

GIB = 1 << 30


def _host(ram_gib: float, cores: int) -> dict:
    return {"cpu_model": "test cpu", "cores": cores, "ram_bytes": int(ram_gib * GIB)}


SPACE = Space([
    Int("cache_size_kib", 64, 262_144, log=True, default=2_000),
    Ordinal("mmap_size_mib", (0, 1, 4, 16, 64, 256), default=0),
    Int("threads", 1, 16, default=2),
    Float("level_multiplier", 2.0, 20.0, default=10.0),
    Ordinal("page_size", (1024, 4096, 16384), default=4096),
    Categorical("journal", ("delete", "wal"), default="delete"),
    Bool("sync", default=True),
])
CONFIG = {"cache_size_kib": 2_000, "mmap_size_mib": 16, "threads": 2, "level_multiplier": 10.0, "page_size": 4096,
          "journal": "wal", "sync": True}


def test_which_knobs_scale_names_declared_units_and_exclusions():
    assert host_units(SPACE) == {"cache_size_kib": RAM, "mmap_size_mib": RAM, "threads": CORES}
    # server settings known to hold memory, thread and worker counts; disk sizes and LMDB's map are not memory
    assert unit_kind("shared_buffers") == RAM and unit_kind("innodb_buffer_pool_size") == RAM
    assert unit_kind("max_parallel_workers_per_gather") == CORES and unit_kind("innodb_read_io_threads") == CORES
    assert unit_kind("max_wal_size") is None and unit_kind("lmdb_map_size_mib") is None and unit_kind("page_size") is None
    # what the system declares wins over the name, both ways; an unknown unit scales nothing
    declared = host_units(SPACE, {"level_multiplier": "MiB", "threads": None, "page_size": "furlongs"})
    assert declared == {"cache_size_kib": RAM, "mmap_size_mib": RAM, "level_multiplier": RAM}


def test_memory_knobs_scale_with_ram_and_threads_with_cores():
    out = scale_config(CONFIG, SPACE, _host(8, 4), _host(32, 8))  # 4x the RAM, 2x the cores
    assert out["cache_size_kib"] == 8_000 and isinstance(out["cache_size_kib"], int)
    assert out["mmap_size_mib"] == 64  # an ordinal: the choice nearest 16 x 4
    assert out["threads"] == 4
    # knobs without a unit are left exactly as they were
    assert {k: out[k] for k in ("level_multiplier", "page_size", "journal", "sync")} == \
        {"level_multiplier": 10.0, "page_size": 4096, "journal": "wal", "sync": True}
    assert host_ratios(_host(8, 4), _host(32, 8)) == {RAM: 4.0, CORES: 2.0}


def test_scaling_is_clipped_to_the_range_keeps_integers_and_zero():
    big = dict(CONFIG, cache_size_kib=200_000, mmap_size_mib=0, threads=12)
    up = scale_config(big, SPACE, _host(4, 2), _host(64, 32))  # 16x
    assert up["cache_size_kib"] == 262_144 and up["threads"] == 16 and up["mmap_size_mib"] == 0  # 0 (off) stays off
    down = scale_config(dict(CONFIG, threads=1), SPACE, _host(64, 16), _host(1, 2))  # 1/64 RAM, 1/8 cores
    assert down["cache_size_kib"] == 64 and down["threads"] == 1 and down["mmap_size_mib"] == 1
    odd = scale_config(dict(CONFIG, cache_size_kib=1_001, threads=3), SPACE, _host(2, 2), _host(3, 3))  # 1.5x
    assert odd["cache_size_kib"] == 1_502 and odd["threads"] == 4  # 4.5 rounds to even
    assert all(isinstance(odd[k], int) for k in ("cache_size_kib", "threads"))
    SPACE.validate(up), SPACE.validate(down), SPACE.validate(odd)


def test_unknown_or_same_host_changes_nothing():
    assert scale_config(CONFIG, SPACE, None, _host(32, 8)) == CONFIG
    assert scale_config(CONFIG, SPACE, {"cpu_model": "x"}, _host(32, 8)) == CONFIG  # no RAM or cores recorded
    assert scale_config(CONFIG, SPACE, _host(8, 4), _host(8, 4)) == CONFIG


def test_a_scaled_config_the_space_refuses_is_returned_unscaled():
    from autosys.core.space import Forbid

    space = Space(list(SPACE), [Forbid("too big", cache_size_kib=(8_000,))])
    assert scale_config(CONFIG, space, _host(8, 4), _host(32, 4))["cache_size_kib"] == 2_000


def test_correction_from_a_few_pairs_is_a_robust_ratio_or_an_offset():
    c = fit_correction([(100.0, 300.0), (50.0, 150.0), (10.0, 31.0), (20.0, 400.0)])  # one pair disturbed
    assert c.kind == "ratio" and c.pairs == 4 and 3.0 <= c.factor <= 3.1 and c.apply(10.0) == pytest.approx(10 * c.factor)
    offset = fit_correction([(-1.0, 1.0), (0.5, 2.5), (2.0, 4.0)])  # a value not positive: a shift
    assert offset.kind == "offset" and offset.shift == pytest.approx(2.0) and offset.apply(1.0) == pytest.approx(3.0)
    assert fit_correction([]).apply(7.0) == 7.0 and fit_correction([(float("nan"), 1.0)]).kind == "none"
    with pytest.raises(ValueError):
        fit_correction([(-1.0, 1.0)], kind="ratio")


class _Linear:
    """A stand-in for an `autosys.learn.models.Model` fitted on another host."""

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        return X[:, 0] * 2.0 + 1.0, np.full(len(X), 0.5)


def test_a_model_from_another_host_is_corrected_by_a_few_measurements():
    model = CorrectedModel(_Linear())
    X = np.array([[1.0], [2.0], [4.0]])
    live = [1.5 * v for v in (3.0, 5.0, 9.0)]  # this host measures 1.5x what the model predicts
    assert model.calibrate(X[:2], live[:2]).factor == pytest.approx(1.5)
    mean, std = model.predict(X)
    assert mean == pytest.approx(live) and std == pytest.approx([0.75] * 3)
    assert list(model.rank(X)) == [0, 1, 2]


# ----------------------------------------------------------------------------- the warm start uses it


class Sized(System):
    """A deterministic system with a memory knob and a thread knob; the new workload runs 3x faster,
    and its default 6x (so a correction from the default alone is off by 2x)."""

    name = "sized"

    def __init__(self, workload: str = "old"):
        self.workload = workload

    def space(self):
        return Space([Int("cache_kib", 64, 1 << 20, log=True, default=1024), Int("threads", 1, 64, default=1),
                      Float("x", 0.0, 1.0, default=0.5)])

    @property
    def objective(self):
        return Objective("throughput", "maximize")

    def evaluate(self, config):
        base = 100.0 * (1.0 + config["x"]) * (1.0 + np.log2(config["cache_kib"]) / 20.0)
        scale = 1.0 if self.workload == "old" else (6.0 if config == self.space().default() else 3.0)
        return Measurement({"throughput": base * scale, "ops": 1.0 if self.workload == "old" else 1.1})


HERE = HostFingerprint(hostname="here", machine="x86_64", cpu_model="test cpu", vector_extensions=(), cores=8,
                       ram_bytes=16 * GIB, fsync_ms=1.0)


@pytest.fixture
def knowledge_base(tmp_path, monkeypatch):
    """A knowledge base holding one study of `Sized` made on a host with half the RAM and a quarter of the cores."""
    import autosys.analysis.kb_warm_start as kb_warm_start

    monkeypatch.setattr(kb_warm_start, "host_fingerprint", lambda *a, **k: HERE)
    past = Study.create(tmp_path / "past", Sized("old"), tuner="random", budget=10, seed=1, intensify=False).run()
    there = dict(HERE.to_json(), hostname="there", cores=2, ram_bytes=8 * GIB)
    entry = entry_from_study(past.spec, past.trials(), host=there, name="past", origin=str(tmp_path / "past"))
    base = tmp_path / "kb.db"
    with open_knowledge_base(base) as store:
        store.add(entry)
    yield str(base), entry
    past.close()


def test_warm_start_scales_seeds_to_this_host_and_corrects_values_by_the_seeds(tmp_path, knowledge_base):
    from autosys.analysis.kb_warm_start import warm_start_after_default

    base, entry = knowledge_base
    seen = []
    new = Study.create(tmp_path / "new", Sized("new"), tuner="random", budget=6, seed=2, intensify=False)
    new.run(callback=warm_start_after_default(base, done=seen.append))
    (result,) = seen
    assert result.done and result.seeded == 3 and result.scaled > 0
    best_there = [t.config for t in entry.ranked() if t.source != "default"][:3]
    seeded = [t.config for t in new.trials() if t.source == "warm_start"]
    assert [c["cache_kib"] for c in seeded] == [min(2 * c["cache_kib"], 1 << 20) for c in best_there]  # 2x the RAM
    assert [c["threads"] for c in seeded] == [min(4 * c["threads"], 64) for c in best_there]  # 4x the cores
    assert [c["x"] for c in seeded] == [c["x"] for c in best_there]
    # told once the seeds were measured, on this host's scale: 3x (the seeds), not 6x (the default alone);
    # the past default, moved to this host (2x the cache, 4x the threads), is no longer this default: told too
    assert result.told == len(entry.ranked()) and result.correction["pairs"] == 4
    assert result.correction["kind"] == "ratio" and 2.9 < result.correction["factor"] < 3.3
    told = [r.value for t, r in new.tuner.history if t.number < 0 and t.source == "warm_start"][-result.told:]
    there = sorted((t.value for t in entry.ranked()), reverse=True)
    assert sorted(told, reverse=True) == pytest.approx([v * result.correction["factor"] for v in there])
    new.close()


def test_immediate_warm_start_corrects_by_the_default_alone(tmp_path, knowledge_base):
    from autosys.analysis.kb_warm_start import warm_start_from_knowledge_base

    base, entry = knowledge_base
    new = Study.create(tmp_path / "now", Sized("new"), tuner="random", budget=1, seed=2, intensify=False).run()
    (default,) = new.trials()
    result = warm_start_from_knowledge_base(new, default, base)
    assert result.correction["pairs"] == 1 and result.correction["factor"] == pytest.approx(default.value / entry.default_value)
    assert result.told == len(entry.ranked()) and "knob values scaled to this host" in result.line()
    new.close()


def test_seeds_from_the_two_nearest_studies_take_turns_each_with_its_correction(tmp_path, knowledge_base):
    from autosys.analysis.kb_warm_start import warm_start_after_default

    base, first = knowledge_base
    other = Study.create(tmp_path / "other", Sized("old"), tuner="random", budget=8, seed=5, intensify=False).run()
    entry = entry_from_study(other.spec, other.trials(), host=dict(HERE.to_json(), ram_bytes=8 * GIB, cores=2),
                             name="other", origin=str(tmp_path / "other"))
    entry.signature["metrics"]["ops"] = 5.0  # its default measured otherwise: farther from "new" than the first study
    with open_knowledge_base(base) as store:
        store.add(entry)
    other.close()
    seen = []
    new = Study.create(tmp_path / "two", Sized("new"), tuner="random", budget=6, seed=2, intensify=False)
    new.run(callback=warm_start_after_default(base, studies=2, done=seen.append))
    (result,) = seen
    assert result.seeded == 3 and " + kb study 2 other" in result.origin and result.study_id == 1
    seeded = [t.config["x"] for t in new.trials() if t.source == "warm_start"]
    best = {name: [t.config["x"] for t in e.ranked() if t.source != "default"] for name, e in (("a", first), ("b", entry))}
    assert seeded == [best["a"][0], best["b"][0], best["a"][1]]  # in turns, the nearest first
    assert [c["pairs"] for c in result.corrections] == [3, 2]  # each: the default, and its own seeds
    assert result.told == len(first.ranked()) + len(entry.ranked())
    new.close()
