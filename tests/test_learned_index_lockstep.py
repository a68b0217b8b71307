"""The lock-step searches stay exact on awkward keys: PGM's binary top, shared and per-query window widths.

The compiled last mile searches a whole batch with one shared width unless a
few windows are far wider than the rest; the PGM can find its segment by a
binary search over the segments' first keys (`top="binary"`). Both must
answer exactly what numpy.searchsorted answers: duplicates (runs longer than
any error bound), big gaps, keys at 0 and at the dtype's maximum, absent keys,
queries outside the key range, and batches that do not divide the queries.
"""

from __future__ import annotations

import numpy as np
import pytest

from autosys_adapters.learned_index import PGM, RMI, PGMConfig, RMIConfig, compiled
from autosys_adapters.learned_index.keys import make_queries

BACKENDS = ["numpy"] + (["numba"] if compiled.available() else [])
U64_MAX = np.iinfo(np.uint64).max


def awkward_keys(seed: int = 0) -> np.ndarray:
    """Dense runs, long duplicate runs, huge gaps, and both ends of the uint64 range."""
    rng = np.random.default_rng(seed)
    dense = np.arange(1_000, 6_000, dtype=np.uint64)
    dups = np.repeat(rng.integers(10**6, 10**7, 40, dtype=np.uint64), rng.integers(1, 700, 40))
    sparse = rng.integers(2**40, 2**62, 3_000, dtype=np.uint64)
    far = np.array([0, 0, 1, 2**63, U64_MAX - 1, U64_MAX, U64_MAX], dtype=np.uint64)
    return np.sort(np.concatenate([dense, dups, sparse, far]))


def awkward_queries(keys: np.ndarray) -> np.ndarray:
    """Every key, its neighbours (mostly absent), a random mix and the extremes, shuffled."""
    near = np.concatenate([keys, keys - np.uint64(1), keys + np.uint64(1)])  # wraps at the ends: still valid queries
    extra = np.array([0, 1, 999, 6_000, 2**39, 2**62, 2**63 - 1, U64_MAX], dtype=np.uint64)
    q = np.concatenate([near, make_queries(keys, 2_000, seed=3), extra])
    return q[np.random.default_rng(1).permutation(q.size)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 7, 64, 128])
@pytest.mark.parametrize("epsilon", [2, 16, 300])
def test_pgm_binary_top_is_exact_on_awkward_keys(backend, batch, epsilon):
    keys = awkward_keys()
    index = PGM(keys, PGMConfig(epsilon=epsilon, top="binary", batch=batch), backend=backend)
    q = awkward_queries(keys)
    np.testing.assert_array_equal(index.lookup(q), np.searchsorted(keys, q, side="left"))


def test_pgm_binary_top_builds_one_level_and_matches_the_recursive_one():
    keys = awkward_keys(2)
    flat = PGM(keys, PGMConfig(epsilon=8, top="binary"))
    deep = PGM(keys, PGMConfig(epsilon=8, epsilon_recursive=2))
    assert flat.levels == 1 and deep.levels > 1
    assert flat.segments == deep.segments and flat.size_bytes < deep.size_bytes
    q = awkward_queries(keys)
    np.testing.assert_array_equal(flat.lookup(q), deep.lookup(q))


def test_pgm_rejects_an_unknown_top():
    with pytest.raises(ValueError, match="top"):
        PGMConfig(top="radix")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 5, 64])
@pytest.mark.parametrize("bounds", ["leaf", "global"])
def test_rmi_windows_of_mixed_widths_are_exact(backend, batch, bounds):
    # a radix root over these keys leaves some leaves nearly exact and others (the duplicate runs,
    # the far keys) with wide error ranges, so batches mix narrow and wide windows
    keys = awkward_keys(4)
    cfg = RMIConfig(stages=3, root="radix", transform="log", mid_models=64, leaves=256, bounds=bounds, batch=batch)
    index = RMI(keys, cfg, backend=backend)
    q = awkward_queries(keys)
    np.testing.assert_array_equal(index.lookup(q), np.searchsorted(keys, q, side="left"))


@pytest.mark.skipif(not compiled.available(), reason="needs numba")
@pytest.mark.parametrize("n", [1, 2, 3, 8, 1_000])
@pytest.mark.parametrize("batch", [1, 3, 16, 64])
def test_compiled_binary_search_is_exact_for_small_and_duplicate_keys(n, batch):
    rng = np.random.default_rng(n)
    keys = np.sort(rng.integers(0, max(2, n // 3), n).astype(np.uint64))  # many duplicates
    q = np.concatenate([keys, keys + np.uint64(1), np.array([0, U64_MAX], dtype=np.uint64)])
    np.testing.assert_array_equal(compiled.binary_search(keys, q, batch), np.searchsorted(keys, q, side="left"))


@pytest.mark.skipif(not compiled.available(), reason="needs numba")
def test_float_keys_with_a_binary_top():
    rng = np.random.default_rng(5)
    keys = np.sort(np.concatenate([rng.normal(0, 1e3, 3_000), np.repeat(-7.5, 500), [-1e300, 1e300]]))
    q = np.concatenate([keys, np.nextafter(keys, np.inf), rng.normal(0, 2e3, 2_000), [-np.inf, np.inf]])
    for backend in BACKENDS:
        index = PGM(keys, PGMConfig(epsilon=4, top="binary", batch=32), backend=backend)
        np.testing.assert_array_equal(index.lookup(q), np.searchsorted(keys, q, side="left"))
