"""Sized (byte-capacity) policies: reference models, chunked runs, the page kernels and libCacheSim agree."""

from __future__ import annotations

import gc
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosys_adapters.pagecache import policies as P
from autosys_adapters.pagecache import traces as T
from autosys_adapters.pagecache.sized import SIZED_POLICIES, SizedState, byte_capacity, footprint_bytes, simulate_sized


def ref_lru_fifo(ids, sizes, cap, promote):
    """Textbook sized LRU/FIFO: evict oldest until the new object fits; larger than the cache = not admitted."""
    cache: OrderedDict[int, int] = OrderedDict()
    used = misses = mbytes = 0
    for x, z in zip(ids, sizes):
        if x in cache:
            if promote:
                cache.move_to_end(x)
            continue
        misses += 1
        mbytes += z
        if z > cap:
            continue
        while used + z > cap:
            _, v = cache.popitem(last=False)
            used -= v
        cache[x] = z
        used += z
    return misses, mbytes


def sized_trace(n=20_000, objects=2_000, seed=0, lo=100, hi=20_000):
    tr = T.zipf(n, objects, 0.8, seed=seed)
    rng = np.random.default_rng(seed + 1)
    per_object = rng.integers(lo, hi, int(tr.ids.max()) + 1)
    return T.Trace(tr.ids, sizes=per_object[tr.ids], name="sized-zipf")


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.integers(0, 30), min_size=1, max_size=300), sizes=st.lists(st.integers(1, 50), min_size=31, max_size=31),
       cap=st.integers(1, 200))
def test_lru_and_fifo_match_a_reference_model(ids, sizes, cap):
    ids = np.array(ids)
    z = np.array(sizes)[ids]  # each object keeps one size
    p = T.PreparedTrace.of(T.Trace(ids, sizes=z))
    for name, promote in (("lru", True), ("fifo", False)):
        s = simulate_sized(p.ids, p.sizes, p.n_obj, cap, name)
        assert (s.misses, s.miss_bytes) == ref_lru_fifo(p.ids.tolist(), p.sizes.tolist(), cap, promote), name


@settings(max_examples=25, deadline=None)
@given(ids=st.lists(st.integers(0, 40), min_size=1, max_size=400), cap=st.integers(1, 30))
def test_unit_sizes_equal_the_page_kernels(ids, cap):
    """With every object one byte, a byte capacity is a page count: the page kernels must agree."""
    p = T.PreparedTrace.of(T.Trace(ids))
    ones = np.ones(len(p), np.int64)
    page = {"lru": P.lru(p.ids, p.n_obj, cap), "fifo": P.fifo(p.ids, p.n_obj, cap), "sieve": P.sieve(p.ids, p.n_obj, cap),
            "belady": P.belady(p.ids, p.nxt, p.n_obj, cap)}
    for name, miss in page.items():
        assert simulate_sized(p.ids, ones, p.n_obj, cap, name, nxt=p.nxt).misses == int(miss.sum()), name


@pytest.mark.parametrize("policy", SIZED_POLICIES)
def test_chunked_feeding_equals_one_pass(policy):
    p = T.PreparedTrace.of(sized_trace(8_000, 800, seed=3))
    cap = byte_capacity(0.05, footprint_bytes(p.ids, p.sizes, p.n_obj))
    whole = simulate_sized(p.ids, p.sizes, p.n_obj, cap, policy, nxt=p.nxt)
    nxt = np.where(p.nxt >= len(p), -1, p.nxt)
    state = SizedState.new(policy, p.n_obj, cap)
    for lo in range(0, len(p), 777):
        state.feed(p.ids[lo:lo + 777], p.sizes[lo:lo + 777], nxt[lo:lo + 777])
    assert (state.misses, state.miss_bytes) == (whole.misses, whole.miss_bytes)
    assert 0 < state.byte_miss_ratio <= 1


def test_objects_larger_than_the_cache_always_miss_and_evict_nothing():
    ids = np.array([0, 1, 0, 1, 2, 0, 1], np.int32)
    sizes = np.array([10, 10, 10, 10, 5000, 10, 10], np.int64)
    for policy in ("lru", "fifo", "sieve", "s3fifo"):
        s = simulate_sized(ids, sizes, 3, 1000, policy)
        assert s.misses == 3, policy  # two cold misses and the oversized object; 0 and 1 stay
    s = simulate_sized(ids, sizes, 3, 1000, "belady", nxt=T.next_access(ids))
    assert s.misses == 3


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown sized policy"):
        SizedState.new("arc", 4, 100)
    with pytest.raises(ValueError, match="at least 1"):
        SizedState.new("lru", 4, 0)
    with pytest.raises(ValueError, match="knobs"):
        SizedState.new("lru", 4, 10, small_ratio=0.1)
    with pytest.raises(ValueError, match="small_ratio"):
        SizedState.new("s3fifo", 4, 10, small_ratio=1.5)
    state = SizedState.new("lru", 4, 10)
    with pytest.raises(ValueError, match="dense"):
        state.feed(np.array([5]), np.array([1]))
    with pytest.raises(ValueError, match="at least 1 byte"):
        state.feed(np.array([1]), np.array([0]))
    with pytest.raises(ValueError, match="next-access"):
        SizedState.new("belady", 4, 10).feed(np.array([1]), np.array([1]))


# --------------------------------------------------------------------------- libCacheSim with sizes


@pytest.mark.parametrize("make", [lambda: sized_trace(30_000, 3_000, seed=2),
                                  lambda: sized_trace(30_000, 3_000, seed=5, lo=512, hi=65_536)])
@pytest.mark.parametrize("fraction", [0.01, 0.1])
def test_sized_policies_equal_libcachesim(tmp_path, make, fraction):
    lcs = pytest.importorskip("libcachesim", reason="cross-check needs libcachesim (pip install autosys-toolkit[pagecache])")
    trace = make()
    path = T.write_oracle_general(trace, tmp_path / "t.oracleGeneral")
    p = T.PreparedTrace.of(trace)
    cap = byte_capacity(fraction, footprint_bytes(p.ids, p.sizes, p.n_obj))
    classes = {"lru": lcs.LRU, "fifo": lcs.FIFO, "sieve": lcs.Sieve, "s3fifo": lcs.S3FIFO, "belady": lcs.Belady}
    for name, cls in classes.items():
        ours = simulate_sized(p.ids, p.sizes, p.n_obj, cap, name, nxt=p.nxt)
        reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
        ratio, byte_ratio = cls(cap, hashpower=16).process_trace(reader)  # readers are never closed (FIELD-NOTES)
        assert ours.misses == round(ratio * len(p)), name
        assert ours.byte_miss_ratio == pytest.approx(byte_ratio, rel=1e-9, abs=1e-12), name
    gc.collect()


@pytest.mark.slow
def test_sized_policies_equal_libcachesim_on_a_recorded_rocksdb_trace(tmp_path):
    """A real variable-size trace: RocksDB's block reads recorded with strace (block sizes differ)."""
    lcs = pytest.importorskip("libcachesim", reason="cross-check needs libcachesim (pip install autosys-toolkit[pagecache])")
    pytest.importorskip("rocksdict", reason="recording RocksDB needs rocksdict (pip install autosys-toolkit[kv])")
    from autosys_adapters.pagecache.strace_log import strace_available

    ok, why = strace_available()
    if not ok:
        pytest.skip(f"needs strace with ptrace allowed: {why}")
    from autosys_adapters.pagecache.server_traces import record_rocksdb

    trace = record_rocksdb(ops=4_000, keys=30_000, block_cache_mb=1, scan_share=0.2, workdir=tmp_path).trace
    assert len(np.unique(trace.sizes)) > 1
    path = T.write_oracle_general(trace, tmp_path / "rocks.oracleGeneral")
    p = T.PreparedTrace.of(T.read_trace(path))
    classes = {"lru": lcs.LRU, "fifo": lcs.FIFO, "sieve": lcs.Sieve, "s3fifo": lcs.S3FIFO, "belady": lcs.Belady}
    for fraction in (0.05, 0.2):
        cap = byte_capacity(fraction, footprint_bytes(p.ids, p.sizes, p.n_obj))
        for name, cls in classes.items():
            ours = simulate_sized(p.ids, p.sizes, p.n_obj, cap, name, nxt=p.nxt)
            reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
            ratio, byte_ratio = cls(cap, hashpower=16).process_trace(reader)
            assert ours.misses == round(ratio * len(p)), (name, fraction)
            assert ours.byte_miss_ratio == pytest.approx(byte_ratio, rel=1e-9), (name, fraction)
    gc.collect()


def test_page_policy_system_tunes_the_byte_miss_ratio(tmp_path):
    from autosys_adapters.pagecache.system import SIZED_CHOICES, PagePolicySystem

    trace = sized_trace(20_000, 2_000, seed=7)
    path = T.write_oracle_general(trace, tmp_path / "s.oracleGeneral")
    system = PagePolicySystem(str(path), cache_size=0.1, metric="byte_miss_ratio", sized=True)
    assert system.objective.metric == "byte_miss_ratio"
    assert set(system.space()["policy"].choices) == set(SIZED_CHOICES)
    p = T.PreparedTrace.of(trace)
    cap = byte_capacity(0.1, footprint_bytes(p.ids, p.sizes, p.n_obj))
    assert system.capacity == cap
    m = system.evaluate({"policy": "sieve"}).metrics
    ref = simulate_sized(p.ids, p.sizes, p.n_obj, cap, "sieve")
    lru = simulate_sized(p.ids, p.sizes, p.n_obj, cap, "lru").byte_miss_ratio
    opt = simulate_sized(p.ids, p.sizes, p.n_obj, cap, "belady", nxt=p.nxt).byte_miss_ratio
    assert m["byte_miss_ratio"] == pytest.approx(ref.byte_miss_ratio)
    assert m["miss_ratio"] == pytest.approx(ref.miss_ratio)
    assert m["gap_closed"] == pytest.approx((lru - ref.byte_miss_ratio) / (lru - opt))
    with pytest.raises(ValueError, match="metric"):
        PagePolicySystem(str(path), metric="hit_ratio")
