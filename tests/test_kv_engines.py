"""One behavioural suite for every key-value engine, against a dict-plus-sorted reference."""

from __future__ import annotations

import bisect
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autosys_adapters.kv.engines import ENGINES, available_engines, make_engine
from autosys.core.space import Space

AVAILABLE, MISSING = available_engines()


class Reference:
    """The obvious model: a dict for values, a sorted list of keys for scans."""

    def __init__(self):
        self.d: dict[bytes, bytes] = {}
        self.keys: list[bytes] = []

    def get(self, key):
        return self.d.get(key)

    def put(self, key, value):
        if key not in self.d:
            bisect.insort(self.keys, key)
        self.d[key] = value

    def delete(self, key):
        if key in self.d:
            del self.d[key]
            self.keys.pop(bisect.bisect_left(self.keys, key))

    def scan(self, start, limit):
        i = bisect.bisect_left(self.keys, start)
        return [(k, self.d[k]) for k in self.keys[i : i + max(limit, 0)]]


def engine_params():
    out = []
    for name in ENGINES:
        marks = [] if name in AVAILABLE else [pytest.mark.skip(reason=MISSING.get(name, "unavailable"))]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def knob_configs(name: str) -> list[dict]:
    """The engine's defaults plus a few non-default knob settings worth checking for correctness."""
    space = Space([p for p in [*_engine_param(), *ENGINES[name].params()]])
    configs = [space.complete({"engine": name})]
    if name == "rocksdb":  # tiny memtables force flushes and compactions during the test
        configs.append(
            space.complete(
                {"engine": name, "rocksdb_write_buffer_kib": 64, "rocksdb_compaction": "universal", "rocksdb_bloom_bits": 10,
                 "rocksdb_memtable": "vector", "rocksdb_block_size": 1024}
            )
        )
    if name == "lmdb":
        configs.append(space.complete({"engine": name, "lmdb_sync": False, "lmdb_writemap": True, "lmdb_map_async": True}))
    if name == "sqlite":
        configs.append(
            space.complete({"engine": name, "sqlite_journal": "wal", "sqlite_synchronous": "off", "sqlite_without_rowid": True,
                            "sqlite_page_size": 1024})
        )
    if name == "sorteddict":
        configs.append(space.complete({"engine": name, "sorteddict_load": 50}))
    return configs


def _engine_param():
    from autosys.core.space import Categorical

    return [Categorical("engine", tuple(ENGINES))]


key_st = st.binary(min_size=1, max_size=6)
value_st = st.binary(min_size=0, max_size=40)
op_st = st.one_of(
    st.tuples(st.just("put"), key_st, value_st),
    st.tuples(st.just("get"), key_st, st.just(b"")),
    st.tuples(st.just("delete"), key_st, st.just(b"")),
    st.tuples(st.just("scan"), st.one_of(st.just(b""), key_st), st.integers(0, 12)),
)


@pytest.mark.parametrize("name", engine_params())
def test_engine_agrees_with_reference_under_random_operations(name, tmp_path_factory):
    configs = knob_configs(name)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ops=st.lists(op_st, max_size=60), which=st.integers(0, len(configs) - 1))
    def check(ops, which):
        ref = Reference()
        engine = make_engine(configs[which]).open(tmp_path_factory.mktemp(name))
        try:
            for op, key, arg in ops:
                if op == "put":
                    engine.put(key, arg)
                    ref.put(key, arg)
                elif op == "get":
                    assert engine.get(key) == ref.get(key)
                elif op == "delete":
                    engine.delete(key)
                    ref.delete(key)
                else:
                    assert [tuple(x) for x in engine.scan(key, arg)] == ref.scan(key, arg)
            assert [tuple(x) for x in engine.scan(b"", 10_000)] == ref.scan(b"", 10_000)
        finally:
            engine.close()

    check()


@pytest.mark.parametrize("name", engine_params())
def test_bulk_load_then_footprint(name, tmp_path):
    items = [(b"k%06d" % i, b"v" * 50) for i in range(2000)]
    for config in knob_configs(name):
        path = tmp_path / f"{name}-{len(config)}"
        engine = make_engine(config).open(path)
        try:
            engine.load(items)
            assert engine.get(b"k000123") == b"v" * 50
            assert [k for k, _ in engine.scan(b"k001990", 100)] == [b"k%06d" % i for i in range(1990, 2000)]
            assert engine.get(b"k000123~") is None
            engine.scan(b"", 2000)  # touch everything so caches and maps hold some of it
            assert engine.memory_bytes() >= 0
            if name in ("dict", "sorteddict"):
                assert engine.memory_bytes() > 2000 * 50  # holds every value itself
                assert engine.disk_bytes() == 0
            else:
                assert engine.disk_bytes() > 0
        finally:
            engine.close()
        engine.close()  # closing twice is safe


def test_missing_engine_is_left_out_with_a_reason(monkeypatch):
    # simulate an uninstalled package: a None entry in sys.modules makes `import rocksdict` fail
    monkeypatch.setitem(sys.modules, "rocksdict", None)
    monkeypatch.setitem(sys.modules, "lmdb", None)
    ok, missing = available_engines()
    assert "rocksdb" not in ok and "lmdb" not in ok
    assert "rocksdict" in missing["rocksdb"] and "lmdb" in missing["lmdb"]
    assert {"dict", "sqlite"} <= set(ok)

    from autosys_adapters.kv.system import KVSelect

    system = KVSelect()
    space = system.space()
    assert set(space["engine"].choices) == set(ok)
    assert not any(n.startswith(("rocksdb_", "lmdb_")) for n in space.names)
    assert system.missing_engines.keys() == {"rocksdb", "lmdb"}
    assert "left out" in system.describe_engines()["rocksdb"]
    assert system.default()["engine"] == "sqlite"  # the default falls back to what is there


def test_unknown_engine_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown engine 'btree'"):
        available_engines(["btree"])


def test_every_engine_spec_knob_is_prefixed_and_conditional():
    for name, spec in ENGINES.items():
        for param in spec.params():
            assert param.name.startswith(name + "_")
            assert param.condition is not None
