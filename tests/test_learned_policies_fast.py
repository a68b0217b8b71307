"""The compiled learned policies: LRB-style (trees walked in numba), Cacheus, GL-Cache-style groups."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="the page-cache simulator compiles its kernels with numba (pip install autosys-toolkit[compiled])")
pytest.importorskip("sklearn", reason="the learned policies fit scikit-learn gradient boosting")

from numba import njit  # noqa: E402

from autosys_adapters.pagecache import traces as T  # noqa: E402
from autosys_adapters.pagecache._lrb_kernels import (  # noqa: E402
    MISSING_CODE,
    code_age_ends,
    log_code,
    log_codes,
    predict_code_rows,
    predict_coded,
)
from autosys_adapters.pagecache.gbdt_export import (  # noqa: E402
    bit_predict_many,
    bitvector,
    complete,
    complete_predict_many,
    flatten_hgb,
    forest_predict_many,
)
from autosys_adapters.pagecache.gbdt_train import fit_complete_forest  # noqa: E402
from autosys_adapters.pagecache.learned import run_lrb_reference  # noqa: E402
from autosys_adapters.pagecache.lrb import kernel_model, run_lrb_detailed  # noqa: E402
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


@njit(cache=False)
def coded_prediction(age, fx, i, rows, masks, value, base, leaf_lim):
    return predict_coded(log_code(age), fx, i, rows, masks, value, base, leaf_lim, np.empty(masks.shape[1], np.uint64))


def test_bitvector_layout_predicts_exactly_what_the_trees_predict(model):
    rng = np.random.default_rng(4)
    X = rng.normal(scale=2.0, size=(5_000, 6))
    for forest in (complete(flatten_hgb(model)), fit_complete_forest(X, X[:, 0] * X[:, 1], trees=7, depth=6, bins=32)):
        probe = np.vstack([X, np.unique(forest.threshold[np.isfinite(forest.threshold)])[:, None].repeat(6, 1)])
        ref = complete_predict_many(probe, *forest.arrays)  # includes inputs exactly at every threshold
        np.testing.assert_array_equal(bit_predict_many(probe, *bitvector(forest, 6).arrays), ref)
    with pytest.raises(ValueError, match="depth"):
        bitvector(fit_complete_forest(X, X[:, 0], trees=1, depth=7), 6)


def test_log_codes_are_monotone_bytes_and_exact_for_small_values():
    v = np.arange(300_000, dtype=np.int64)
    c = log_codes(v)
    assert c.dtype == np.uint8 and np.all(np.diff(c.astype(int)) >= 0)
    assert len(np.unique(c[:15])) == 15  # exact below 15
    assert log_codes(np.array([2 ** 40]))[0] < MISSING_CODE  # a gap never seen stays above every real gap
    ends = code_age_ends()
    for code in np.unique(c)[:-1]:
        assert c[ends[code]] <= code < c[ends[code] + 1]  # the last value of each code


def test_coded_model_matches_the_trees_and_its_cached_predictions_hold_to_their_limit():
    rng = np.random.default_rng(2)
    X = rng.integers(0, 240, size=(4_000, 6)).astype(np.float64)
    y = np.log1p(X[:, 0]) + np.sin(X[:, 1] / 30) + 0.1 * rng.normal(size=4_000)
    forest = fit_complete_forest(X, y, trees=12, depth=5, bins=16)
    rows, masks, value, base, leaf_lim = kernel_model(forest, 6)
    codes = rng.integers(0, 256, size=(3_000, 6)).astype(np.uint8)
    np.testing.assert_array_equal(predict_code_rows(codes, rows, masks, value, base),
                                  complete_predict_many(codes.astype(np.float64), *forest.arrays))
    # the age limit: with the other codes fixed, the prediction is the same for every age up to it

    def at_age(age, fx, i):
        return coded_prediction(age, fx, i, rows, masks, value, base, leaf_lim)

    fx = codes
    for i in range(200):
        age = int(rng.integers(0, 5_000))
        s, lim = at_age(age, fx, i)
        assert lim >= age
        later = [a for a in (age + 1, (age + min(lim, 10 ** 7)) // 2, min(lim, 10 ** 7)) if a <= lim]
        assert all(at_age(a, fx, i)[0] == s for a in later), (age, lim)
        if lim < 10 ** 7:  # the limit is tight for at least one tree: one more and something may change
            assert at_age(lim + 1, fx, i)[1] > lim


# --------------------------------------------------------------------------- LRB


@pytest.mark.parametrize("trainer", ["numba", "sklearn"])
def test_lrb_prediction_cache_changes_nothing(mixed, trainer):
    cap = capacity_of(0.1, mixed.n_obj)
    for knobs in ({"stale": 0.0}, {"train_rows": 1_000}):
        cached = run_lrb_detailed(mixed, cap, retrain=5_000, trees=8, trainer=trainer, **knobs)
        full = run_lrb_detailed(mixed, cap, retrain=5_000, trees=8, trainer=trainer, cache_predictions=False, **knobs)
        assert cached.retrains >= (5 if knobs.get("stale") == 0.0 else 2)
        np.testing.assert_array_equal(cached.miss, full.miss)
        assert cached.model_evaluations < full.model_evaluations / 3  # the cache is why it is fast


def test_lrb_refits_only_when_the_model_goes_stale():
    tr = PreparedTrace.of(T.zipf(200_000, 20_000, 0.8, seed=4))  # stationary: one good model keeps working
    cap = capacity_of(0.1, tr.n_obj)
    every = run_lrb_detailed(tr, cap, retrain=5_000, stale=0.0)
    adaptive = run_lrb_detailed(tr, cap, retrain=5_000)
    capped = run_lrb_detailed(tr, cap, retrain=5_000, stale=1e9, max_skip=3)
    first = every.checks - every.retrains + 1  # the first check with enough labelled samples fits
    assert every.checks == adaptive.checks == 39 and first <= 3
    assert adaptive.retrains <= every.retrains / 3
    assert abs(adaptive.miss.mean() - every.miss.mean()) < 0.005
    assert adaptive.train_seconds < every.train_seconds
    assert capped.retrains == 1 + (every.checks - first) // 4  # the first fit, then one after every 3 skipped checks
    # a phase change (a loop, then a zipf over other pages) makes the model stale: it refits and keeps up
    shift = PreparedTrace.of(T.Trace(np.concatenate([np.tile(np.arange(3_000), 20),
                                                     10_000 + T.zipf(60_000, 20_000, 0.8, seed=5).ids])))
    frozen = run_lrb_detailed(shift, 2_000, retrain=5_000, stale=1e9, max_skip=100)
    every = run_lrb_detailed(shift, 2_000, retrain=5_000, stale=0.0)
    adaptive = run_lrb_detailed(shift, 2_000, retrain=5_000, max_skip=100)
    assert frozen.retrains <= 2 < adaptive.retrains
    assert adaptive.miss.mean() <= every.miss.mean() + 0.005 < frozen.miss.mean()


def test_lrb_label_horizon_follows_the_cache_size():
    # checks far more often than a page lives in the cache: with labels censored at the check interval every page
    # looks never requested again and the model does worse than LRU; the default horizon (half the cache) fixes it
    tr = PreparedTrace.of(T.zipf(150_000, 60_000, 0.8, seed=3))
    cap = capacity_of(0.3, tr.n_obj)
    lru = simulate(tr, cap, "lru").miss_ratio
    short = run_lrb_detailed(tr, cap, retrain=1_000, horizon=1).miss.mean()  # horizon = the check interval
    auto = run_lrb_detailed(tr, cap, retrain=1_000).miss.mean()
    assert auto < lru - 0.02 and auto < short - 0.02


def test_lrb_trains_on_a_row_sample():
    tr = PreparedTrace.of(T.zipf(100_000, 10_000, 0.8, seed=6))
    cap = capacity_of(0.1, tr.n_obj)
    few = run_lrb_detailed(tr, cap, retrain=5_000, stale=0.0, train_rows=500)
    allrows = run_lrb_detailed(tr, cap, retrain=5_000, stale=0.0)
    np.testing.assert_array_equal(few.miss, run_lrb_detailed(tr, cap, retrain=5_000, stale=0.0, train_rows=500).miss)
    assert few.train_seconds < allrows.train_seconds
    assert few.miss.mean() < simulate(tr, cap, "lru").miss_ratio  # still learns


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
    for bad in ({"stale": -0.1}, {"train_rows": 50}, {"max_skip": -1}, {"depth": 7}, {"horizon": -5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            simulate(mixed, 100, "lrb", **bad)
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
