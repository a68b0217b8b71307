"""Non-learned baselines: every one answers exactly numpy.searchsorted(keys, q, side='left')."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosys_adapters.learned_index import baselines
from autosys_adapters.learned_index.keys import as_key_array, generate, make_queries

U64_MAX = int(np.iinfo(np.uint64).max)
# (name, options): the compiled ones in several shapes (prefetch off/on, tiny nodes, no lock-step)
VARIANTS = [
    ("binary", {}),
    ("eytzinger", {}),
    ("eytzinger", {"prefetch": 0, "batch": 1}),
    ("eytzinger", {"prefetch": 3, "batch": 3}),
    ("kary", {}),
    ("kary", {"node_keys": 2, "batch": 1}),
    ("kary", {"node_keys": 8}),
    ("btrees", {}),
    ("pgm", {}),
]


def _make(name: str, options: dict):
    reason = baselines.unavailable(name)
    if reason:
        pytest.skip(reason)
    return baselines.make(name, **options)


def _check(name: str, options: dict, keys: np.ndarray, queries: np.ndarray) -> None:
    got = _make(name, options).build(keys).lookup(queries)
    want = np.searchsorted(keys, queries, side="left")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def _ids(variant) -> str:
    name, options = variant
    return name + "".join(f"-{k}{v}" for k, v in options.items())


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 17, 300])
def test_small_key_sets_with_duplicates_and_edges(variant, n):
    rng = np.random.default_rng(n)
    keys = np.sort(rng.integers(10, 60, n)).astype(np.uint64)  # many duplicates
    edges = np.array([U64_MAX, U64_MAX - 1, 2**63, 2**62], dtype=np.uint64)
    _check(*variant, keys, np.concatenate([np.arange(0, 70, dtype=np.uint64), edges]))
    _check(*variant, keys.astype(np.float64), np.r_[np.arange(0.0, 70.0, 0.5), -1e300, 1e300, np.inf, -np.inf])


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
@pytest.mark.parametrize("distribution", ["lognormal", "osm", "fb", "uniform_dense"])
def test_generated_key_sets(variant, distribution):
    keys = generate(distribution, 5_000, seed=3)
    _check(*variant, keys, make_queries(keys, 2_000, seed=4))


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_key_at_the_dtype_maximum(variant):
    keys = np.array([0, 5, U64_MAX, U64_MAX], dtype=np.uint64)  # equals the padding value
    _check(*variant, keys, np.array([0, 1, 5, 6, U64_MAX - 1, U64_MAX], dtype=np.uint64))


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_negative_float_keys_from_user_files(variant):
    keys = as_key_array(np.array([-7, -3, -3, 0, 4, 2**40]))  # negative ints become float64
    assert keys.dtype == np.float64
    _check(*variant, keys, np.array([-8.0, -7.0, -3.5, -3.0, -0.0, 0.0, 3.9, 4.0, 2.0**40, 2.0**41]))


u64 = st.integers(0, U64_MAX)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(u64 | st.integers(0, 40), max_size=80), queries=st.lists(u64 | st.integers(0, 45), max_size=40))
def test_compiled_baselines_match_searchsorted_uint64(keys, queries):
    k = np.sort(np.array(keys, dtype=np.uint64))
    q = np.array(queries, dtype=np.uint64)
    for name, options in VARIANTS[:7]:
        _check(name, options, k, q)


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(finite, max_size=80), queries=st.lists(finite, max_size=40))
def test_compiled_baselines_match_searchsorted_float64(keys, queries):
    k = np.sort(np.array(keys, dtype=np.float64))
    q = np.array(queries, dtype=np.float64)
    for name, options in VARIANTS[:7]:
        _check(name, options, k, q)


@settings(max_examples=25, deadline=None)
@given(keys=st.lists(u64 | st.integers(0, 40), max_size=60), queries=st.lists(u64 | st.integers(0, 45), max_size=30))
def test_package_baselines_match_searchsorted(keys, queries):
    k = np.sort(np.array(keys, dtype=np.uint64))
    q = np.array(queries, dtype=np.uint64)
    for name, options in VARIANTS[7:]:
        _check(name, options, k, q)


def test_eytzinger_is_bfs_order_and_cache_line_aligned():
    pytest.importorskip("numba")
    index = baselines.make("eytzinger").build(np.arange(1, 8, dtype=np.uint64))
    np.testing.assert_array_equal(index.tree[1:], [4, 2, 6, 1, 3, 5, 7])
    assert index.tree.ctypes.data % 64 == 0


def test_kary_levels_separate_children():
    pytest.importorskip("numba")
    index = baselines.make("kary", node_keys=2).build(np.arange(10, dtype=np.uint64))
    # leaves [0 1][2 3][4 5][6 7][8 9]; level above: nodes of 3 children, separators = first keys of children 1, 2
    np.testing.assert_array_equal(index.levels[: index.offsets[-2]], [6, U64_MAX, 2, 4, 8, U64_MAX])


def test_bad_input_is_rejected_in_one_line():
    with pytest.raises(ValueError, match="unknown baseline 'skiplist'"):
        baselines.unavailable("skiplist")
    with pytest.raises(ValueError, match="prefetch must be 0 or 3..6"):
        baselines.Eytzinger(prefetch=1)
    if baselines.unavailable("kary") is None:
        with pytest.raises(ValueError, match="keys must be a 1-d uint64 or float64 array"):
            baselines.make("kary").build(np.array(["a"]))
