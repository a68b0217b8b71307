"""The updatable learned index and its compiled B+tree anchor: exact after any insert/delete sequence."""

from __future__ import annotations

import bisect

import numpy as np
import pytest

pytest.importorskip("numba")

from hypothesis import given, settings, strategies as st  # noqa: E402

from autosys_adapters.learned_index.dynamic_btree import DynamicBTree  # noqa: E402
from autosys_adapters.learned_index.updatable import (DELETE, INSERT, LOOKUP, LOWER_BOUND, MAX_KEY,  # noqa: E402
                                              UpdatableConfig, UpdatableIndex)
from autosys_adapters.learned_index.updatable_system import (UpdatableIndexSystem, key_split,  # noqa: E402
                                                     mixed_stream)
from autosys.checks.system import check_system  # noqa: E402

NONE = int(MAX_KEY)
TOP = 2**64 - 2  # the largest key allowed

# keys from dense clusters, both ends of the key space and a sparse middle
KEYS = st.one_of(
    st.integers(0, 40),
    st.integers(1_000_000, 1_000_060),
    st.integers(2**40, 2**40 + 200),
    st.integers(0, 2**63),
    st.integers(TOP - 40, TOP),
)
OPS = st.lists(st.tuples(st.sampled_from((LOOKUP, INSERT, DELETE, LOWER_BOUND, INSERT, DELETE)), KEYS),
               min_size=1, max_size=400)
# small nodes, so that a few hundred inserts expand and split nodes
CONFIGS = st.builds(UpdatableConfig, max_node_slots=st.sampled_from((16, 32, 256)),
                    density_init=st.sampled_from((0.3, 0.5)), density_max=st.sampled_from((0.7, 0.9)),
                    bulk_fill=st.sampled_from((0.25, 1.0)), model=st.sampled_from(("least_squares", "endpoints")),
                    placement=st.sampled_from(("model", "even")))


def reference(initial: list[int], ops: list[tuple[int, int]]) -> tuple[list[int], dict[int, int]]:
    """The answers of a sorted-list + dict model, and its final contents."""
    table = {k: k for k in initial}
    ordered = sorted(table)
    out = []
    for i, (kind, key) in enumerate(ops):
        if kind == LOOKUP:
            out.append(table.get(key, NONE))
        elif kind == INSERT:
            out.append(int(key not in table))
            if key not in table:
                bisect.insort(ordered, key)
            table[key] = i + 7  # payloads differ from keys, so a payload read from a stale slot shows
        elif kind == DELETE:
            out.append(int(key in table))
            if key in table:
                del table[key]
                ordered.pop(bisect.bisect_left(ordered, key))
        else:
            j = bisect.bisect_left(ordered, key)
            out.append(ordered[j] if j < len(ordered) else NONE)
    return out, table


def replay(structure, ops):
    kinds = np.array([k for k, _ in ops], dtype=np.uint8)
    keys = np.array([key for _, key in ops], dtype=np.uint64)
    values = np.arange(len(ops), dtype=np.uint64) + np.uint64(7)
    return structure.run(kinds, keys, values).tolist()


@settings(max_examples=150, deadline=None)
@given(initial=st.sets(KEYS, max_size=300), ops=OPS, config=CONFIGS)
def test_updatable_index_answers_like_a_sorted_set_after_any_ops(initial, ops, config):
    index = UpdatableIndex(config).bulk_load(np.array(sorted(initial), dtype=np.uint64))
    expected, table = reference(sorted(initial), ops)
    assert replay(index, ops) == expected
    keys, values = index.items()
    assert keys.tolist() == sorted(table) and values.tolist() == [table[k] for k in sorted(table)]
    assert len(index) == len(table)
    # after the stream, every present key and every key just beside one is found (or not) exactly
    probes = sorted({p for k in list(table)[:50] for p in (k - 1, k, k + 1) if 0 <= p <= TOP} | {0, TOP})
    assert index.lookup(probes).tolist() == [table.get(p, NONE) for p in probes]
    ordered = sorted(table)
    assert index.lower_bound(probes).tolist() == [
        ordered[j] if j < len(ordered) else NONE for j in (bisect.bisect_left(ordered, p) for p in probes)]


@settings(max_examples=100, deadline=None)
@given(initial=st.sets(KEYS, max_size=300), ops=OPS,
       shape=st.sampled_from(((4, 3, 1.0), (8, 4, 0.5), (64, 16, 0.8))))
def test_btree_answers_like_a_sorted_set_after_any_ops(initial, ops, shape):
    tree = DynamicBTree(*shape).bulk_load(np.array(sorted(initial), dtype=np.uint64))
    expected, table = reference(sorted(initial), ops)
    assert replay(tree, ops) == expected
    assert tree.items()[0].tolist() == sorted(table)


def test_inserts_split_nodes_and_deletes_contract_them():
    rng = np.random.default_rng(3)
    index = UpdatableIndex(UpdatableConfig(max_node_slots=64, density_init=0.5, density_max=0.8))
    index.bulk_load(np.arange(0, 20_000, 10, dtype=np.uint64))
    nodes = index.n_nodes
    dense = np.arange(5_001, 5_400, dtype=np.uint64)  # a dense cluster inside one region: splits there
    fresh = rng.permutation(np.setdiff1d(np.arange(20_000, dtype=np.uint64), np.arange(0, 20_000, 10)))[:3_000]
    index.insert(np.concatenate([dense, fresh]))
    assert index.stats["splits"] > 0 and index.n_nodes > nodes and index.stats["expansions"] > 0
    present = np.union1d(np.union1d(np.arange(0, 20_000, 10), dense), fresh).astype(np.uint64)
    assert np.array_equal(index.items()[0], present)
    assert np.array_equal(index.lookup(present), present)
    index.delete(present[: present.size - 10])
    assert index.stats["contractions"] > 0 and len(index) == 10
    assert np.array_equal(index.items()[0], present[-10:])
    assert index.lower_bound([0]).tolist() == [int(present[-10])]


def test_pool_grows_when_inserts_outrun_it():
    index = UpdatableIndex(UpdatableConfig(max_node_slots=128)).bulk_load(np.arange(100, dtype=np.uint64) * 1000)
    keys = np.random.default_rng(0).permutation(100_000).astype(np.uint64)
    assert index.insert(keys).sum() == 100_000 - 100
    assert np.array_equal(index.items()[0], np.arange(100_000, dtype=np.uint64))


def test_bad_input_is_refused_with_a_clear_error():
    index = UpdatableIndex()
    with pytest.raises(ValueError, match="reserved"):
        index.insert([MAX_KEY])
    with pytest.raises(ValueError, match="sorted, distinct"):
        index.bulk_load(np.array([3, 1], dtype=np.uint64))
    with pytest.raises(ValueError, match="op kinds"):
        index.run([7], [1])
    with pytest.raises(ValueError, match="density_init"):
        UpdatableConfig(density_init=0.9, density_max=0.8)
    with pytest.raises(ValueError, match="fresh keys"):
        mixed_stream(np.arange(10, dtype=np.uint64), np.arange(2, dtype=np.uint64), 100, 0.5)


def test_workload_streams_insert_only_fresh_keys():
    base, fresh = key_split(np.arange(1_000, dtype=np.uint64), 600, seed=1)
    assert base.size == 600 and np.all(np.diff(base.astype(np.int64)) > 0)
    assert np.intersect1d(base, fresh).size == 0
    kinds, keys = mixed_stream(base, fresh, 500, 0.5, 0.1, seed=2)
    assert set(np.unique(kinds).tolist()) == {LOOKUP, INSERT, DELETE}
    assert np.isin(keys[kinds == INSERT], fresh).all() and np.isin(keys[kinds != INSERT], base).all()


def test_system_passes_check_system_at_small_size():
    system = UpdatableIndexSystem(n_keys=20_000, operations=4_000, repeats=2, distribution="osm")
    report = check_system(system, samples=10, study_budget=2)
    assert not report.failed
    m = system.evaluate(system.default())
    for name in ("ns_per_op", "lookup_ns", "insert_ns", "lookup_speedup", "insert_speedup", "index_bytes"):
        assert np.isfinite(m.metrics[name]) and m.metrics[name] > 0, name


def test_system_with_deletes_and_read_only_streams():
    deletes = UpdatableIndexSystem(n_keys=5_000, operations=2_000, insert_fraction=0.3, delete_fraction=0.3, repeats=1)
    assert np.isfinite(deletes.evaluate(deletes.default()).metrics["ns_per_op"])
    reads = UpdatableIndexSystem(n_keys=5_000, operations=2_000, insert_fraction=0.0, repeats=1)
    metrics = reads.evaluate(reads.default()).metrics
    assert "insert_ns" not in metrics and metrics["lookup_ns"] > 0


def test_timed_runs_count_cycles_per_kind_on_both_structures():
    base = np.arange(0, 40_000, 4, dtype=np.uint64)
    kinds, keys = mixed_stream(base, np.arange(1, 40_000, 4, dtype=np.uint64), 3_000, 0.5, seed=0)
    for structure in (UpdatableIndex(UpdatableConfig(max_node_slots=256)).bulk_load(base), DynamicBTree().bulk_load(base)):
        structure.run(kinds, keys, timed=True)
        assert structure.counts[LOOKUP] + structure.counts[INSERT] == 3_000
        assert structure.cycles[LOOKUP] > 0 and structure.cycles[INSERT] > 0 and structure.cycles[DELETE] == 0
