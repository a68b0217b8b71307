"""The simulator's policies: reference checks, Belady's optimality, libCacheSim agreement."""

from __future__ import annotations

import gc
from collections import OrderedDict

import numpy as np
import pytest

pytest.importorskip("numba", reason="the page-cache simulator compiles its kernels with numba (pip install autosys-toolkit[compiled])")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache.learned import N_FEATURES  # noqa: E402
from autosys_adapters.pagecache.simulator import POLICIES, PreparedTrace, capacity_of, gap_closed, simulate  # noqa: E402

CLASSIC = ["lru", "fifo", "clock", "lfu", "arc", "2q", "s3fifo", "sieve", "tinylfu"]
ONLINE = CLASSIC + ["lecar"]


def ref_lru(ids, cap):
    cache, misses = OrderedDict(), 0
    for x in ids:
        if x in cache:
            cache.move_to_end(x)
        else:
            misses += 1
            if len(cache) >= cap:
                cache.popitem(last=False)
            cache[x] = True
    return misses


def ref_fifo(ids, cap):
    cache, order, misses = set(), [], 0
    for x in ids:
        if x not in cache:
            misses += 1
            if len(cache) >= cap:
                cache.discard(order.pop(0))
            cache.add(x)
            order.append(x)
    return misses


def ref_belady(ids, cap):
    nxt = T.next_access(np.array(ids))
    cache: dict[int, int] = {}
    misses = 0
    for t, x in enumerate(ids):
        if x not in cache:
            misses += 1
            if len(cache) >= cap:
                del cache[max(cache, key=cache.get)]
        cache[x] = nxt[t]
    return misses


@pytest.fixture(scope="module")
def zipf_trace():
    return PreparedTrace.of(T.zipf(20_000, 2_000, 0.8, seed=7))


@pytest.mark.parametrize("cap", [1, 3, 50])
def test_lru_fifo_belady_match_reference(cap):
    ids = T.zipf(3000, 200, 0.7, seed=cap).ids.tolist()
    tr = PreparedTrace.of(T.Trace(ids))
    assert simulate(tr, cap, "lru").misses == ref_lru(ids, cap)
    assert simulate(tr, cap, "fifo").misses == ref_fifo(ids, cap)
    assert simulate(tr, cap, "belady").misses == ref_belady(ids, cap)


def test_every_policy_runs_and_reports(zipf_trace):
    cap = capacity_of(0.1, zipf_trace.n_obj)
    lru = simulate(zipf_trace, cap, "lru").miss_ratio
    opt = simulate(zipf_trace, cap, "belady").miss_ratio
    assert opt < lru
    for name in ONLINE:
        r = simulate(zipf_trace, cap, name)
        assert opt <= r.miss_ratio <= 1.0
        # compulsory misses are a floor for everyone
        assert r.misses >= zipf_trace.n_obj
        assert r.byte_miss_ratio == pytest.approx(r.miss_ratio)  # uniform page sizes
    # scan-resistant policies beat LRU on skewed traffic
    for name in ("arc", "s3fifo", "2q", "tinylfu"):
        assert simulate(zipf_trace, cap, name).miss_ratio < lru


def test_a_cache_holding_everything_misses_only_once_per_page(zipf_trace):
    for name in ONLINE + ["belady"]:
        assert simulate(zipf_trace, zipf_trace.n_obj, name).misses == zipf_trace.n_obj, name


def test_loop_larger_than_cache_defeats_lru_not_belady():
    tr = PreparedTrace.of(T.loop(10_000, 101))
    assert simulate(tr, 100, "lru").miss_ratio == 1.0
    assert simulate(tr, 100, "fifo").miss_ratio == 1.0
    assert simulate(tr, 100, "belady").miss_ratio < 0.05
    assert simulate(tr, 100, "lecar", experts=("lru", "mru")).miss_ratio < 0.5


def test_knobs_change_behaviour(zipf_trace):
    cap = capacity_of(0.05, zipf_trace.n_obj)
    assert simulate(zipf_trace, cap, "clock", bits=1).misses != simulate(zipf_trace, cap, "clock", bits=3).misses
    assert simulate(zipf_trace, cap, "s3fifo", small_ratio=0.02).misses != simulate(zipf_trace, cap, "s3fifo", small_ratio=0.4).misses
    assert simulate(zipf_trace, cap, "2q", kin=0.1).misses != simulate(zipf_trace, cap, "2q", kin=0.5).misses
    assert simulate(zipf_trace, cap, "lfu", aging=True).misses != simulate(zipf_trace, cap, "lfu", aging=False).misses
    assert simulate(zipf_trace, cap, "lfu", history=True).misses != simulate(zipf_trace, cap, "lfu", history=False).misses
    assert simulate(zipf_trace, cap, "tinylfu", reset=2).misses != simulate(zipf_trace, cap, "tinylfu", reset=500).misses


def test_bad_input_is_rejected(zipf_trace):
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        simulate(zipf_trace, 10, "nope")
    with pytest.raises(ValueError, match="at least one page"):
        simulate(zipf_trace, 0, "lru")
    with pytest.raises(ValueError, match="at least two experts"):
        simulate(zipf_trace, 10, "lecar", experts=("lru",))
    with pytest.raises(ValueError, match="positive"):
        capacity_of(0, 100)


def test_gap_closed():
    assert gap_closed(0.5, 0.5, 0.3) == 0.0
    assert gap_closed(0.3, 0.5, 0.3) == 1.0
    assert gap_closed(0.4, 0.5, 0.3) == pytest.approx(0.5)
    assert gap_closed(0.6, 0.5, 0.3) < 0


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(0, 30), min_size=1, max_size=300),
    cap=st.integers(1, 20),
    policy=st.sampled_from(ONLINE),
)
def test_belady_is_never_beaten(ids, cap, policy):
    tr = PreparedTrace.of(T.Trace(ids))
    opt = simulate(tr, cap, "belady").misses
    assert opt == ref_belady(ids, cap)
    assert simulate(tr, cap, policy).misses >= opt


@settings(max_examples=15, deadline=None)
@given(ids=st.lists(st.integers(0, 40), min_size=20, max_size=400), cap=st.integers(2, 15))
def test_belady_is_never_beaten_by_learned_sampling_policies(ids, cap):
    tr = PreparedTrace.of(T.Trace(ids))
    opt = simulate(tr, cap, "belady").misses
    assert simulate(tr, cap, "lrb", retrain=1000).misses >= opt
    assert simulate(tr, cap, "rl", weights=np.eye(N_FEATURES)[0] - 0.5 * np.eye(N_FEATURES)[4]).misses >= opt


# --------------------------------------------------------------------------- libCacheSim cross-check


def _lcs_miss_ratio(lcs, cls, path, cap_bytes):
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
    ratio, _ = cls(cap_bytes, hashpower=16).process_trace(reader)
    # never reader.close(): with garbage collection it double-frees (FIELD-NOTES)
    return ratio


@pytest.mark.parametrize("make", [lambda: T.zipf(30_000, 3_000, 0.8, seed=2), lambda: T.scan_loop_hot(30_000, seed=2)])
@pytest.mark.parametrize("fraction", [0.01, 0.1])
def test_lru_fifo_belady_equal_libcachesim(tmp_path, make, fraction):
    lcs = pytest.importorskip("libcachesim", reason="cross-check needs libcachesim (pip install autosys-toolkit[pagecache])")
    trace = make()
    path = T.write_oracle_general(trace, tmp_path / "t.oracleGeneral")
    tr = PreparedTrace.of(T.read_trace(path))
    cap = capacity_of(fraction, tr.n_obj)
    for name, cls in (("lru", lcs.LRU), ("fifo", lcs.FIFO), ("belady", lcs.Belady), ("sieve", lcs.Sieve), ("clock", lcs.Clock)):
        ours = simulate(tr, cap, name).misses
        theirs = _lcs_miss_ratio(lcs, cls, path, cap * T.DEFAULT_PAGE_SIZE) * len(tr)
        assert ours == round(theirs), name
    gc.collect()


def test_policy_table_is_complete():
    assert set(CLASSIC + ["belady", "lecar", "lrb", "cacheus", "glcache", "rl"]) == set(POLICIES)
