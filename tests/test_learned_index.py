"""Learned indexes answer exactly what numpy.searchsorted answers, on every kind of key set."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autosys_adapters.learned_index import PGM, RMI, PGMConfig, RMIConfig, compiled
from autosys_adapters.learned_index.keys import GENERATORS, generate, load_keys, make_queries

BACKENDS = ["numpy"] + (["numba"] if compiled.available() else [])

RMI_CONFIGS = [
    RMIConfig(),
    RMIConfig(root="radix", transform="log", leaf="cubic", leaves=512),
    RMIConfig(root="radix", leaves=300, search="linear"),
    RMIConfig(stages=3, root="cubic", transform="log", mid_models=32, leaves=1024, search="linear"),
    RMIConfig(root="linear", leaf="linear_spline", bounds="global", leaves=64),
    RMIConfig(stages=3, root="linear_spline", search="exponential", leaves=2048),
]
PGM_CONFIGS = [PGMConfig(), PGMConfig(epsilon=4, epsilon_recursive=2, search="linear"), PGMConfig(epsilon=256, search="exponential")]


def build(kind, keys, config, backend):
    return (RMI if kind == "rmi" else PGM)(keys, config, backend=backend)


ALL_CONFIGS = [("rmi", c) for c in RMI_CONFIGS] + [("pgm", c) for c in PGM_CONFIGS]


def edge_queries(keys: np.ndarray) -> np.ndarray:
    """Min, max, their neighbours, values outside the range, plus a random mix."""
    mix = make_queries(keys, 3_000, seed=5)
    if keys.dtype.kind == "u":
        lo, hi = int(keys[0]), int(keys[-1])
        extra = [lo, hi, max(lo - 1, 0), min(hi + 1, 2**64 - 1), 0, 2**64 - 1]
    else:
        lo, hi = float(keys[0]), float(keys[-1])
        extra = [lo, hi, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf), -1e300, 1e300]
    return np.concatenate([mix, np.array(extra, dtype=keys.dtype)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind,config", ALL_CONFIGS, ids=lambda v: getattr(v, "__class__", type(v)).__name__)
@pytest.mark.parametrize("distribution", sorted(GENERATORS))
def test_every_distribution_matches_searchsorted(distribution, kind, config, backend):
    keys = generate(distribution, 20_000, seed=3)
    index = build(kind, keys, config, backend)
    q = edge_queries(keys)
    np.testing.assert_array_equal(index.lookup(q), np.searchsorted(keys, q, side="left"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind,config", ALL_CONFIGS)
def test_duplicates_and_float_keys(kind, config, backend):
    rng = np.random.default_rng(0)
    runs = np.repeat(rng.normal(0, 1e3, 500), rng.integers(1, 200, 500))  # long runs of equal keys
    keys = np.sort(np.concatenate([runs, rng.normal(0, 1, 2_000)]))
    index = build(kind, keys, config, backend)
    q = np.concatenate([edge_queries(keys), keys[::7], np.unique(keys) + 1e-9])
    np.testing.assert_array_equal(index.lookup(q), np.searchsorted(keys, q))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind,config", ALL_CONFIGS)
@pytest.mark.parametrize(
    "keys",
    [
        np.array([], dtype=np.uint64),
        np.array([7], dtype=np.uint64),
        np.array([5, 5, 5, 5], dtype=np.uint64),
        np.array([0, 2**64 - 1], dtype=np.uint64),
        np.array([-3.5], dtype=np.float64),
    ],
    ids=["empty", "one", "all-equal", "extremes", "one-float"],
)
def test_tiny_arrays(keys, kind, config, backend):
    index = build(kind, keys, config, backend)
    if keys.dtype.kind == "u":
        q = np.array([0, 1, 4, 5, 6, 7, 8, 2**63, 2**64 - 2, 2**64 - 1], dtype=np.uint64)
    else:
        q = np.array([-1e9, -3.5, -3.4999, 0.0, 1e9])
    np.testing.assert_array_equal(index.lookup(q), np.searchsorted(keys, q))


uint_keys = st.lists(st.integers(0, 2**64 - 1), max_size=300).map(lambda v: np.sort(np.array(v, dtype=np.uint64)))
small_uint_keys = st.lists(st.integers(0, 1_000), max_size=300).map(lambda v: np.sort(np.array(v, dtype=np.uint64)))
float_keys = st.lists(
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False), max_size=300
).map(lambda v: np.sort(np.array(v, dtype=np.float64)))
rmi_configs = st.builds(
    RMIConfig,
    stages=st.sampled_from([2, 3]),
    root=st.sampled_from(["linear", "linear_spline", "cubic", "radix"]),
    transform=st.sampled_from(["identity", "log"]),
    mid_models=st.integers(1, 40),
    leaf=st.sampled_from(["linear", "linear_spline", "cubic"]),
    leaves=st.integers(1, 200),
    bounds=st.sampled_from(["leaf", "global"]),
    search=st.sampled_from(["binary", "linear", "exponential"]),
    batch=st.sampled_from([1, 3, 16, 64]),
)
pgm_configs = st.builds(
    PGMConfig,
    epsilon=st.integers(1, 64),
    epsilon_recursive=st.integers(1, 8),
    search=st.sampled_from(["binary", "linear", "exponential"]),
    batch=st.sampled_from([1, 3, 16, 64]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.one_of(uint_keys, small_uint_keys, float_keys), config=st.one_of(rmi_configs, pgm_configs),
       data=st.data(), backend=st.sampled_from(BACKENDS))
def test_property_random_key_sets(keys, config, data, backend):
    index = (RMI if isinstance(config, RMIConfig) else PGM)(keys, config, backend=backend)
    if keys.dtype.kind == "u":
        extra = data.draw(st.lists(st.integers(0, 2**64 - 1), max_size=50))
        q = np.concatenate([keys, np.array(extra, dtype=np.uint64), keys + np.uint64(1), keys - np.uint64(1)])
    else:
        extra = data.draw(st.lists(st.floats(-2e12, 2e12, allow_nan=False), max_size=50))
        q = np.concatenate([keys, np.array(extra, dtype=np.float64), np.nextafter(keys, np.inf), np.nextafter(keys, -np.inf)])
    np.testing.assert_array_equal(index.lookup(q), np.searchsorted(keys, q))


@pytest.mark.parametrize("backend", BACKENDS)
def test_leaf_bounds_hold_for_existing_keys(backend):
    """Per-leaf error bounds are right: no existing key ever needs a repair (monotone routing)."""
    keys = generate("lognormal", 50_000, seed=1)
    for config in [RMIConfig(root="radix", transform="log", leaves=500), RMIConfig(stages=3, mid_models=64)]:
        index = RMI(keys, config, backend=backend)
        index.lookup(keys[np.random.default_rng(0).permutation(keys.size)])
        assert index.last_repairs == 0
    pgm = PGM(np.unique(keys), PGMConfig(epsilon=16), backend=backend)
    pgm.lookup(np.unique(keys))
    assert pgm.last_repairs == 0


def test_pgm_segments_respect_epsilon():
    keys = np.unique(generate("osm", 30_000, seed=2))
    for eps in (2, 16, 128):
        pgm = PGM(keys, PGMConfig(epsilon=eps), backend="numpy")
        seg = np.searchsorted(pgm.seg_keys[: pgm.segments], keys, side="right") - 1
        pred = pgm.seg_p0[seg] + pgm.seg_slope[seg] * (keys.astype(float) - pgm.seg_keys[seg].astype(float))
        assert np.abs(pred - np.arange(keys.size)).max() <= eps + 1e-6
    assert PGM(keys, PGMConfig(epsilon=2)).segments > PGM(keys, PGMConfig(epsilon=128)).segments


def test_size_counts_model_arrays():
    keys = generate("uniform_sparse", 10_000)
    leaf = RMI(keys, RMIConfig(leaves=100, bounds="leaf"), backend="numpy")
    glob = RMI(keys, RMIConfig(leaves=100, bounds="global"), backend="numpy")
    expo = RMI(keys, RMIConfig(leaves=100, search="exponential"), backend="numpy")
    assert leaf.size_bytes - glob.size_bytes == 99 * 8  # one int32 pair per leaf instead of one in all
    assert expo.size_bytes < glob.size_bytes
    assert RMI(keys, RMIConfig(leaves=100, leaf="cubic")).size_bytes > leaf.size_bytes


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="sorted"):
        RMI(np.array([3, 1, 2], dtype=np.uint64))
    with pytest.raises(ValueError, match="finite"):
        PGM(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="root"):
        RMIConfig(root="quadratic")
    with pytest.raises(ValueError, match="negative"):
        RMI(np.array([1, 2], dtype=np.uint64)).lookup(np.array([-1]))


# --------------------------------------------------------------------------- key files and queries


def test_generators_are_seeded_and_sorted():
    for name in GENERATORS:
        a, b = generate(name, 5_000, seed=9), generate(name, 5_000, seed=9)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.uint64 and a.size == 5_000 and bool(np.all(a[1:] >= a[:-1]))
    assert not np.array_equal(generate("lognormal", 100, 1), generate("lognormal", 100, 2))
    with pytest.raises(ValueError, match="unknown key distribution"):
        generate("zipf", 10)


def test_load_keys_npy_and_text(tmp_path):
    np.save(tmp_path / "k.npy", np.array([5, 3, 3, 9], dtype=np.int64))
    np.testing.assert_array_equal(load_keys(tmp_path / "k.npy"), np.array([3, 3, 5, 9], dtype=np.uint64))
    (tmp_path / "k.txt").write_text("18446744073709551615\n7\n\n7\n0\n")
    loaded = load_keys(tmp_path / "k.txt")
    assert loaded.dtype == np.uint64 and loaded.tolist() == [0, 7, 7, 2**64 - 1]
    (tmp_path / "f.txt").write_text("2.5\n-1\n1e3\n")
    np.testing.assert_array_equal(load_keys(tmp_path / "f.txt"), [-1.0, 2.5, 1000.0])


def test_load_keys_rejects_nan_and_text(tmp_path):
    (tmp_path / "nan.txt").write_text("1\n2\nnan\n")
    with pytest.raises(ValueError, match="line 3"):
        load_keys(tmp_path / "nan.txt")
    (tmp_path / "word.txt").write_text("1\nbanana\n")
    with pytest.raises(ValueError, match=r"line 2: 'banana' is not a number"):
        load_keys(tmp_path / "word.txt")
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="NaN"):
        load_keys(tmp_path / "nan.npy")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="numbers"):
        load_keys(tmp_path / "s.npy")
    with pytest.raises(ValueError, match="does not exist"):
        load_keys(tmp_path / "missing.npy")


def test_queries_are_shuffled_mixes_of_hits_and_misses():
    keys = generate("lognormal", 50_000, seed=1)
    q = make_queries(keys, 20_000, seed=2)
    assert q.dtype == keys.dtype and q.size == 20_000
    hit = np.isin(q, keys)
    assert 0.4 < hit.mean() < 0.75
    assert (q < keys[0]).any() and (q > keys[-1]).any()
    assert not bool(np.all(q[1:] >= q[:-1]))  # not sorted
    np.testing.assert_array_equal(q, make_queries(keys, 20_000, seed=2))
