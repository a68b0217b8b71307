"""Held-out judging in experiments/page_policy.py and the analytic SQLite trace.

The experiment counts each policy's misses on the held-out part of one
cold-start run over the whole trace; libCacheSim's cache processes the tuning
part and then the rest. These tests check the two ways agree exactly where the
policies are the same, and that the new recorder workload is real and
reproducible.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.experiment_modules import experiment_module

pytest.importorskip("numba", reason="the page-cache simulator compiles its kernels with numba")

from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache.simulator import PreparedTrace, simulate  # noqa: E402



@pytest.fixture(scope="module")
def pp():
    yield from experiment_module("page_policy")


def test_tuning_split_keeps_both_parts(pp):
    assert pp.tuning_split(10, 0.5) == 5
    assert pp.tuning_split(3, 0.01) == 1 and pp.tuning_split(3, 0.99) == 2
    with pytest.raises(ValueError, match="tuning share"):
        pp.tuning_split(10, 1.0)
    with pytest.raises(ValueError, match="at least two requests"):
        pp.tuning_split(1, 0.5)


def test_held_out_counts_only_the_rest_of_one_warm_run(pp):
    trace = T.scan_loop_hot(20_000, seed=3)
    tr = PreparedTrace.of(trace)
    split = pp.tuning_split(len(trace), 0.5)
    whole = simulate(tr, 300, "lru").misses
    first = simulate(PreparedTrace.of(trace.head(split)), 300, "lru").misses
    held = pp.held_out_miss_ratio(tr, split, 300, "lru")
    assert held * (len(trace) - split) == pytest.approx(whole - first)
    # a warm cache misses less on the held-out part than a cold start on it alone
    cold = T.Trace(trace.ids[split:])
    assert held < simulate(cold, 300, "lru").miss_ratio
    assert pp.held_out_miss_ratio(tr, split, 300, "belady") < held


@pytest.mark.parametrize("policy, cls", [("lru", "LRU"), ("arc", "ARC"), ("s3fifo", "S3FIFO")])
def test_libcachesim_held_out_equals_the_simulators(pp, tmp_path, policy, cls):
    pytest.importorskip("libcachesim")
    trace = T.scan_loop_hot(30_000, seed=1)
    tr = PreparedTrace.of(trace)
    split = pp.tuning_split(len(trace), 0.4)
    full = T.write_oracle_general(trace, tmp_path / "t.oracleGeneral")
    cap = 500
    ours = pp.held_out_miss_ratio(tr, split, cap, policy)
    theirs = pp.lcs_held_out(full, split, cls, cap * 4096)
    assert round(ours * (len(trace) - split)) == round(theirs * (len(trace) - split))


def test_every_trace_is_named_once_and_enough_are_real(pp):
    names = [s.name for s in pp.TRACES]
    assert len(names) == len(set(names)) >= 6
    assert sum(s.real for s in pp.TRACES) >= 4


def test_analytic_sqlite_workload_is_reproducible_and_index_heavy():
    pytest.importorskip("apsw")
    from autosys_adapters.pagecache.recorder import record_sqlite

    a = record_sqlite("analytic", ops=60, seed=2, sqlite_cache_pages=2)
    b = record_sqlite("analytic", ops=60, seed=2, sqlite_cache_pages=2)
    assert np.array_equal(a.ids, b.ids) and len(a) > 1_000
    assert not a.writes.any()  # a read-only reporting mix
    c = record_sqlite("analytic", ops=60, seed=3, sqlite_cache_pages=2)
    assert not np.array_equal(a.ids[: len(c)], c.ids[: len(a)])
    # reuse: far more requests than distinct pages, yet the workload spans much of the file
    assert a.footprint > 200 and len(a) > 3 * a.footprint
