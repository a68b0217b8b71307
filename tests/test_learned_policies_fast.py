"""The compiled learned policies: LRB-style (trees walked in numba), Cacheus, GL-Cache-style groups."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="the page-cache simulator compiles its kernels with numba (pip install autosys-toolkit[compiled])")
pytest.importorskip("sklearn", reason="the learned policies fit scikit-learn gradient boosting")

from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache._lrb_kernels import node_age_limits, predict_until  # noqa: E402
from autosys_adapters.pagecache.gbdt_export import (  # noqa: E402
    complete,
    complete_predict_many,
    flatten_hgb,
    forest_predict_many,
)
from autosys_adapters.pagecache.gbdt_train import fit_complete_forest  # noqa: E402
from autosys_adapters.pagecache.learned import run_lrb_reference  # noqa: E402
from autosys_adapters.pagecache.lrb import run_lrb_detailed  # noqa: E402
from autosys_adapters.pagecache.simulator import PreparedTrace, capacity_of, simulate  # noqa: E402
from autosys_adapters.pagecache.system import CHOICES, policy_space, simulator_args  # noqa: E402

FAST = ("lrb", "cacheus", "glcache")


@pytest.fixture(scope="module")
def mixed():
    return PreparedTrace.of(T.scan_loop_hot(40_000, seed=3))


@pytest.fixture(scope="module")
def model():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3_000, 6))
    y = 2 * X[:, 0] + np.sin(3 * X[:, 1]) + X[:, 2] * X[:, 3] + 0.1 * rng.normal(size=3_000)
    return HistGradientBoostingRegressor(max_iter=20, max_depth=5, early_stopping=False, random_state=0).fit(X, y)


def max_resident(ids: np.ndarray, miss: np.ndarray) -> int:
    """The most pages that must have been cached at once: a hit at b on a page last requested at a means the page
    stayed cached over [a, b] (it cannot leave and come back without a miss)."""
    prev = np.full(len(ids), -1)
    last: dict[int, int] = {}
    for t, x in enumerate(ids.tolist()):
        prev[t] = last.get(x, -1)
        last[x] = t
    hits = np.flatnonzero(miss == 0)
    assert np.all(prev[hits] >= 0), "a hit on a page never requested before"
    delta = np.zeros(len(ids) + 1, np.int64)
    np.add.at(delta, prev[hits], 1)
    np.add.at(delta, hits, -1)
    return int(np.cumsum(delta).max(initial=0))


# --------------------------------------------------------------------------- tree export


def test_exported_trees_predict_exactly_what_sklearn_predicts(model):
    X = np.random.default_rng(1).normal(scale=2.0, size=(5_000, 6))
    ref = model.predict(X)
    flat = flatten_hgb(model)
    full = complete(flat)
    assert flat.n_trees == 20 and full.depth <= 5
    np.testing.assert_allclose(forest_predict_many(X, *flat.arrays), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(complete_predict_many(X, *full.arrays), ref, rtol=0, atol=1e-12)


def test_compiled_trainer_fits_as_well_as_sklearn(model):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3_000, 6))
    y = 2 * X[:, 0] + np.sin(3 * X[:, 1]) + X[:, 2] * X[:, 3] + 0.1 * rng.normal(size=3_000)
    Xt = rng.normal(size=(3_000, 6))
    yt = 2 * Xt[:, 0] + np.sin(3 * Xt[:, 1]) + Xt[:, 2] * Xt[:, 3]
    ours = fit_complete_forest(X, y, trees=20, depth=5, bins=32)
    again = fit_complete_forest(X, y, trees=20, depth=5, bins=32)
    mse = np.mean((complete_predict_many(Xt, *ours.arrays) - yt) ** 2)
    np.testing.assert_array_equal(ours.threshold, again.threshold)  # deterministic
    assert mse < 0.5 * yt.var()  # it learns
    assert mse < 1.25 * np.mean((model.predict(Xt) - yt) ** 2)  # about as well as sklearn's 20 trees of depth 5
    with pytest.raises(ValueError, match="depth"):
        fit_complete_forest(X, y, depth=0)


def test_cached_prediction_holds_for_every_age_up_to_its_limit(model):
    full = complete(flatten_hgb(model))
    node_lim = node_age_limits(full.feature, full.threshold)
    idx = np.empty(full.feature.shape[0], np.int64)
    rng = np.random.default_rng(2)
    for _ in range(300):
        f = rng.normal(size=6)
        age = int(rng.integers(0, 50))
        f[0] = np.log1p(age)
        s, lim = predict_until(f, idx, *full.arrays, node_lim)
        assert s == pytest.approx(model.predict(f[None])[0], abs=1e-12)
        assert lim >= age
        for later in {age, min(lim, age + 1), min(lim, 10 ** 6), (age + min(lim, 10 ** 6)) // 2}:
            g = f.copy()
            g[0] = np.log1p(later)
            assert predict_until(g, idx, *full.arrays, node_lim)[0] == s, (age, later, lim)


# --------------------------------------------------------------------------- LRB


@pytest.mark.parametrize("trainer", ["numba", "sklearn"])
def test_lrb_prediction_cache_changes_nothing(mixed, trainer):
    cap = capacity_of(0.1, mixed.n_obj)
    cached = run_lrb_detailed(mixed, cap, retrain=5_000, trees=8, trainer=trainer)
    full = run_lrb_detailed(mixed, cap, retrain=5_000, trees=8, trainer=trainer, cache_predictions=False)
    assert cached.retrains >= 5
    np.testing.assert_array_equal(cached.miss, full.miss)
    assert cached.model_evaluations < full.model_evaluations / 3  # the cache is why it is fast


def test_lrb_trains_and_beats_sampled_lru(mixed):
    cap = capacity_of(0.1, mixed.n_obj)
    untrained = simulate(mixed, cap, "lrb", retrain=10 ** 9).miss_ratio  # no model ever: sampled LRU
    trained = simulate(mixed, cap, "lrb", retrain=5_000).miss_ratio
    assert simulate(mixed, cap, "belady").miss_ratio <= trained < untrained


def test_fast_and_reference_lrb_agree_where_their_designs_coincide(mixed):
    # before any model both are sampled LRU (oldest of m random cached pages); their random streams differ
    cap = capacity_of(0.1, mixed.n_obj)
    fast = run_lrb_detailed(mixed, cap, sample=32, retrain=10 ** 9).miss.mean()
    ref = run_lrb_reference(mixed, cap, sample=32, retrain=10 ** 9).mean()
    assert abs(fast - ref) < 0.01


# --------------------------------------------------------------------------- all three


def policy_miss(tr, cap, policy, **knobs):
    from autosys_adapters.pagecache.simulator import POLICIES

    if policy != "cacheus":
        knobs.setdefault("retrain", 5_000)
    return POLICIES[policy](tr, cap, **knobs)


@pytest.mark.parametrize("policy", FAST)
@pytest.mark.parametrize("fraction", [0.02, 0.1])
def test_counts_capacity_and_optimality_bound(mixed, policy, fraction):
    cap = capacity_of(fraction, mixed.n_obj)
    miss = policy_miss(mixed, cap, policy)
    assert len(miss) == len(mixed) and set(np.unique(miss).tolist()) <= {0, 1}
    misses, hits = int(miss.sum()), int((miss == 0).sum())
    assert hits + misses == len(mixed)
    assert max_resident(mixed.ids, miss) <= cap
    assert misses >= simulate(mixed, cap, "belady").misses >= mixed.n_obj


@pytest.mark.parametrize("policy", FAST)
def test_a_working_set_that_fits_stops_missing_after_warm_up(policy):
    # a scan fills the cache with pages never seen again, then a loop over 50 pages runs in a 64-page cache
    ids = np.concatenate([np.arange(500), 1_000 + np.tile(np.arange(50), 600)])
    tr = PreparedTrace.of(T.Trace(ids))
    miss = policy_miss(tr, 64, policy, **({} if policy == "cacheus" else {"retrain": 2_000}))
    assert miss[:550].sum() == 550  # the scan and the loop's first pass miss
    assert miss[len(ids) // 2:].sum() == 0


@pytest.mark.parametrize("policy", FAST)
def test_deterministic_for_a_seed(mixed, policy):
    cap = capacity_of(0.05, mixed.n_obj)
    a = policy_miss(mixed, cap, policy, seed=7)
    np.testing.assert_array_equal(a, policy_miss(mixed, cap, policy, seed=7))


def test_cacheus_follows_the_better_expert_on_a_loop():
    # a loop just over the cache: LRU misses every request; CR-LFU (ties to the most recent) keeps most of it
    tr = PreparedTrace.of(T.loop(20_000, 120))
    assert simulate(tr, 100, "lru").miss_ratio == 1.0
    assert simulate(tr, 100, "cacheus").miss_ratio < 0.5


def test_glcache_learns_to_beat_group_fifo():
    tr = PreparedTrace.of(T.zipf(100_000, 10_000, 0.9, seed=5))
    cap = capacity_of(0.02, tr.n_obj)
    fifo_groups = simulate(tr, cap, "glcache", retrain=10 ** 9).miss_ratio  # no model: oldest group first
    assert simulate(tr, cap, "glcache", retrain=10_000).miss_ratio < fifo_groups


def test_bad_knobs_are_refused(mixed):
    with pytest.raises(ValueError, match="sample"):
        simulate(mixed, 100, "lrb", sample=0)
    with pytest.raises(ValueError, match="trainer"):
        simulate(mixed, 100, "lrb", retrain=5_000, trainer="xgboost")
    with pytest.raises(ValueError, match="groups"):
        simulate(mixed, 100, "glcache", groups=1)
    with pytest.raises(ValueError, match="ghost"):
        simulate(mixed, 100, "cacheus", ghost=0)


def test_the_page_policy_system_offers_them_with_their_knobs():
    assert set(FAST) <= set(CHOICES)
    space = policy_space()
    assert simulator_args(space.validate({"policy": "lrb", "lrb_sample": 16, "lrb_retrain": 10_000,
                                          "lrb_trees": 8, "lrb_deltas": 2})) == (
        "lrb", {"sample": 16, "retrain": 10_000, "trees": 8, "deltas": 2})
    assert simulator_args(space.validate({"policy": "cacheus", "cacheus_ghost": 1.0})) == ("cacheus", {"ghost": 1.0})
    assert simulator_args(space.validate({"policy": "glcache", "glcache_groups": 16})) == ("glcache", {"groups": 16})
