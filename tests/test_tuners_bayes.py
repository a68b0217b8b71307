"""Bayesian optimization: the fast GP, encodings, acquisitions, constraints, failures and batches."""

import math

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from autosys.core.space import Bool, Categorical, Condition, Constraint, Float, Int, Ordinal, Space
from autosys.checks.tuner import conditional_space, mixed_space
from autosys.core.trial import Result
from autosys.tuners.bayes import BayesOpt, ForestBayesOpt, SpaceEncoder, expected_improvement
from autosys.tuners.random_search import RandomSearch
from autosys.learn.surrogates import ForestSurrogate, GaussianProcess, standardize


def test_gp_likelihood_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    X = rng.random((25, 3))
    y = np.sin(4 * X).sum(1)
    y = (y - y.mean()) / y.std()
    gp = GaussianProcess()
    theta = np.array([-0.5, 0.2, 1.0, 0.3, -4.0])
    analytic = gp._nll(theta, X, y)[1]
    numeric = approx_fprime(theta, lambda t: gp._nll(t, X, y)[0], 1e-6)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-3)


def test_gp_fits_a_smooth_function_and_knows_where_it_is_unsure():
    rng = np.random.default_rng(1)
    X = rng.random((40, 2))
    f = lambda X: np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    gp = GaussianProcess().fit(X, f(X), rng)
    Xt = rng.random((200, 2))
    mu, sd = gp.predict(Xt)
    assert np.sqrt(np.mean((mu - f(Xt)) ** 2)) < 0.05
    _, sd_train = gp.predict(X)
    _, sd_far = gp.predict(np.array([[3.0, 3.0]]))
    assert sd_far[0] > 10 * sd_train.mean()
    assert gp.lengthscales.shape == (2,)


def test_gp_fitted_noise_is_small_on_noiseless_and_large_on_noisy_data():
    rng = np.random.default_rng(2)
    X = rng.random((60, 1))
    clean = np.sin(6 * X[:, 0])
    noisy = clean + rng.normal(0, 0.5, 60)
    gp_clean = GaussianProcess().fit(X, clean / clean.std(), rng)
    gp_noisy = GaussianProcess().fit(X, noisy / noisy.std(), rng)
    assert math.exp(gp_noisy.theta[-1]) > 20 * math.exp(gp_clean.theta[-1])


def test_forest_surrogate_uncertainty_comes_from_tree_spread():
    rng = np.random.default_rng(3)
    X = rng.random((50, 2))
    model = ForestSurrogate("et", n_estimators=20).fit(X, X.sum(1), rng)
    mu, sd = model.predict(X[:5])
    assert np.all(sd > 0) and np.allclose(mu, X[:5].sum(1), atol=0.3)
    with pytest.raises(ValueError, match="forest kind"):
        ForestSurrogate("xgb")


def test_standardize_warps_heavy_tails():
    y = np.exp(np.linspace(0, 12, 50))  # spans 5 orders of magnitude
    z, mean, std = standardize(y, warp=True)
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    # the warp evens out the long right tail instead of squashing most values together
    from scipy.stats import skew

    z_plain, _, _ = standardize(y, warp=False)
    assert abs(skew(z)) < 0.5 * abs(skew(z_plain))


def test_expected_improvement_is_larger_where_mean_is_lower_or_spread_larger():
    ei = expected_improvement(np.array([0.0, -1.0, 0.0]), np.array([0.1, 0.1, 1.0]), best=0.0)
    assert ei[1] > ei[0] and ei[2] > ei[0]


# ----------------------------------------------------------------------------- encoding


def test_encoder_snap_matches_space_encode_decode_on_mixed_and_conditional_spaces():
    rng = np.random.default_rng(4)
    for space in (mixed_space(), conditional_space()):
        enc = SpaceEncoder(space)
        U = rng.random((300, len(space)))
        expected = np.array([space.encode(space.decode(u)) for u in U])
        np.testing.assert_allclose(enc.snap(U), expected, atol=1e-12)


def test_encoder_one_hot_expands_unordered_categoricals_only():
    space = Space(
        [
            Categorical("engine", ("a", "b", "c", "d")),
            Ordinal("page", (1, 2, 4, 8)),
            Bool("flag"),
            Float("x", 0.0, 1.0),
        ]
    )
    assert SpaceEncoder(space, "onehot").n_features == 4 + 1 + 1 + 1
    assert SpaceEncoder(space, "index").n_features == 4
    F = SpaceEncoder(space).features(np.array([[0.6, 0.1, 0.9, 0.3]]))
    assert F[0, :4].tolist() == [0, 0, 1, 0] and F[0, -1] == 0.3
    with pytest.raises(ValueError, match="categorical encoding"):
        SpaceEncoder(space, "binary")


# ----------------------------------------------------------------------------- the tuner


def _run(tuner, fn, n):
    best = math.inf
    for _ in range(n):
        trial = tuner.ask()
        value = fn(trial.config)
        tuner.tell(trial, Result.complete(value) if value is not None else Result.failed("boom"))
        if value is not None:
            best = min(best, value)
    return best


def _sphere(config):
    return sum((v - 0.3) ** 2 for v in config.values())


def test_bo_beats_random_search_on_a_5d_bowl():
    space = Space([Float(f"x{i}", -1.0, 1.0) for i in range(5)])
    bo = _run(BayesOpt(space, seed=0, n_candidates=500), _sphere, 30)
    rs = min(_run(RandomSearch(space, seed=s), _sphere, 30) for s in range(3))
    assert bo < 0.1 * rs


def test_bo_handles_integers_log_scales_and_categoricals():
    space = Space([Int("n", 1, 64, log=True), Float("lr", 1e-5, 1.0, log=True), Categorical("kind", ("a", "b", "c", "d"))])

    def fn(c):
        return (math.log2(c["n"]) - 3) ** 2 + (math.log10(c["lr"]) + 3) ** 2 + (0 if c["kind"] == "c" else 2)

    tuner = BayesOpt(space, seed=1)
    best = _run(tuner, fn, 30)
    assert best < 0.5
    configs = [t.config for t, _ in tuner.history]
    assert len({space.config_key(c) for c in configs}) == len(configs)  # no repeats


def test_bo_respects_known_constraints():
    space = Space(
        [Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)],
        [Constraint("budget", lambda c: c["x"] + c["y"] <= 1.0)],
    )
    tuner = BayesOpt(space, seed=2)
    _run(tuner, lambda c: -(c["x"] + 2 * c["y"]), 25)  # best lies on the constraint boundary
    assert all(c["x"] + c["y"] <= 1.0 for c in (t.config for t, _ in tuner.history))
    best = min(tuner.observations, key=lambda o: o[1])
    assert best[1] < -1.6  # the optimum is -2 at (0, 1), on the constraint's edge


def test_bo_learns_unknown_constraints_from_failures():
    space = Space([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])

    def fn(c):  # fails in the right half, where the unconstrained optimum (x=1) would be
        return None if c["x"] > 0.5 else -c["x"] - 0.1 * c["y"]

    def deep_failures(tuner):  # the constrained optimum is on the edge x=0.5; count probes well past it
        return sum(1 for t, r in tuner.history[15:] if not r.ok and t.config["x"] > 0.6)

    bo = BayesOpt(space, seed=3)
    _run(bo, fn, 40)
    rs = RandomSearch(space, seed=3)
    _run(rs, fn, 40)
    assert deep_failures(bo) < 0.5 * deep_failures(rs)
    assert min(loss for _, loss in bo.observations) < -0.49


def test_failed_and_nan_results_never_reach_the_model():
    space = Space([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    tuner = BayesOpt(space, seed=4, n_initial=4)
    for i in range(14):
        trial = tuner.ask()
        if i % 3 == 0:
            result = Result.complete(float("nan"))
        elif i % 3 == 1:
            result = Result.complete(float("inf"))
        else:
            result = Result.complete(trial.config["x"])
        tuner.tell(trial, result)
    assert len(tuner.model.y) == len(tuner.observations) < 14
    assert np.all(np.isfinite(tuner.model.y))


def test_bo_maximizes():
    space = Space([Float("x", 0.0, 1.0)])
    tuner = BayesOpt(space, direction="maximize", seed=5)
    for _ in range(15):
        trial = tuner.ask()
        tuner.tell(trial, Result.complete(-((trial.config["x"] - 0.7) ** 2)))
    best = max((r.value, t.config["x"]) for t, r in tuner.history)
    assert abs(best[1] - 0.7) < 0.02


@pytest.mark.parametrize("batch", ["kriging_believer", "cl_min", "cl_max"])
def test_batch_suggestions_are_spread_out(batch):
    space = Space([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    tuner = BayesOpt(space, seed=6, batch=batch)
    _run(tuner, lambda c: (c["x"] - 0.5) ** 2 + (c["y"] - 0.5) ** 2, 12)
    batch_trials = tuner.ask_batch(4)
    pts = np.array([[t.config["x"], t.config["y"]] for t in batch_trials])
    gaps = [np.linalg.norm(pts[i] - pts[j]) for i in range(4) for j in range(i + 1, 4)]
    assert min(gaps) > 1e-3
    for t in batch_trials:
        tuner.tell(t, Result.complete(0.0))
    assert not tuner.pending


def test_bo_on_a_conditional_space_keeps_inactive_params_out():
    space = conditional_space()
    tuner = BayesOpt(space, seed=7)
    _run(tuner, lambda c: (c["load"] - 0.7) ** 2 + (0 if c["engine"] != "tree" else abs(c["fanout"] - 16) / 64), 20)
    for trial, _ in tuner.history:
        assert set(trial.config) == set(space.active_names(trial.config))


@pytest.mark.slow
def test_forest_bo_finds_the_best_categories():
    space = Space([Categorical("a", tuple("abcdef")), Categorical("b", tuple("uvwxyz")), Float("x", 0.0, 1.0)])
    tuner = ForestBayesOpt(space, seed=8, surrogate_options={"n_estimators": 20})
    best = _run(tuner, lambda c: (c["a"] != "d") + (c["b"] != "w") + c["x"], 30)
    assert best < 1.1


def test_bo_options_are_validated():
    space = Space([Categorical("a", tuple("abcdef")), Float("x", 0.0, 1.0)])
    with pytest.raises(ValueError, match="acquisition"):
        BayesOpt(space, acquisition="ucb-ish")
    with pytest.raises(ValueError, match="batch"):
        BayesOpt(space, batch="liar")
    with pytest.raises(ValueError, match="surrogate"):
        BayesOpt(space, surrogate="svm")


def test_hedge_gains_move_and_survive_restore():
    space = Space([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    tuner = BayesOpt(space, seed=9)
    _run(tuner, lambda c: (c["x"] - 0.2) ** 2 + c["y"], 15)
    assert np.any(tuner._hedge_gains != 0)
    clone = BayesOpt(space, seed=9)
    clone.load_state_dict(tuner.state_dict(), tuner.told())
    np.testing.assert_allclose(clone._hedge_gains, tuner._hedge_gains)


def _engines_space() -> Space:
    """A KV-like conditional space: engines without knobs or with a few categorical ones (few distinct configs)."""
    return Space([
        Categorical("engine", ("hash", "sorted", "btree", "lsm")),
        Ordinal("load", (50, 100, 200, 500, 1000), condition=Condition("engine", ("sorted",))),
        Bool("sync", condition=Condition("engine", ("btree",))),
        Bool("writemap", condition=Condition("engine", ("btree",))),
        Bool("readahead", condition=Condition("engine", ("btree",))),
        Ordinal("map_mib", (64, 256, 1024, 4096), condition=Condition("engine", ("btree",))),
        Float("cache", 0.0, 1.0, condition=Condition("engine", ("lsm",))),
    ])


def _engines_loss(c) -> float | None:
    """hash and sorted break a cap (fail); btree is best with sync off and writemap on."""
    if c["engine"] in ("hash", "sorted"):
        return None
    if c["engine"] == "lsm":
        return -0.5 - 0.1 * c["cache"]
    return -(0.1 + 0.5 * (not c["sync"]) + 0.4 * c["writemap"]) - 0.01 * c["readahead"]


def test_first_new_counts_distinct_rows_not_copies_of_a_tried_config():
    space = _engines_space()
    tuner = ForestBayesOpt(space, seed=0)
    tried = {"engine": "btree", "sync": True, "writemap": False, "readahead": True, "map_mib": 64}
    tuner.tell(tuner.ask(), Result.complete(1.0))  # something in the history
    tuner.enqueue(tried)
    tuner.tell(tuner.ask(), Result.complete(0.5))
    fresh = {"engine": "btree", "sync": False, "writemap": False, "readahead": True, "map_mib": 64}
    rows = tuner.encoder.snap(np.array([space.encode(tried)] * 300 + [space.encode(fresh)]))
    assert tuner._first_new(np.arange(len(rows)), rows) == space.validate(fresh)


def test_forest_bo_never_re_proposes_a_tried_config_in_a_space_of_few_configs():
    """The refined candidates collapse onto the incumbent; the fallback once re-drew failed configs at random."""
    space = _engines_space()
    for seed in range(3):
        tuner = ForestBayesOpt(space, seed=seed, surrogate_options={"n_estimators": 20})
        _run(tuner, _engines_loss, 30)
        keys = [space.config_key(t.config) for t, _ in tuner.history]
        assert len(keys) == len(set(keys)), seed  # a failed hash or sorted config among the repeats, before


def test_re_runs_of_one_config_do_not_use_up_the_initial_design():
    """Intensification's re-runs reach the tuner as warm starts of the same config: one point of the design, not six."""
    space = _engines_space()
    tuner = ForestBayesOpt(space, seed=0, n_initial=5, random_fraction=0.0)
    default = space.default()
    tuner.warm_start([(default, Result.complete(-0.3))] * 6, keep=False)
    tuner.warm_start([({"engine": "lsm", "cache": 0.5}, Result.complete(-0.55))], keep=False)
    for expected in (1, 2, 3):
        tuner.tell(tuner.ask(), Result.complete(0.0))
        # the design, not the model (which needs 5 distinct configs); a row dealt onto a tried config is skipped
        assert tuner._fits == 0 and tuner._design_used >= expected


def test_forest_bo_interleaves_random_configs_after_the_design():
    space = _engines_space()
    seen_model = []
    for fraction in (0.0, 1.0):
        tuner = ForestBayesOpt(space, seed=1, n_initial=5, random_fraction=fraction,
                               surrogate_options={"n_estimators": 10})
        original = tuner._model_point
        calls = []
        tuner._model_point = lambda c, l: calls.append(1) or original(c, l)
        _run(tuner, _engines_loss, 12)
        seen_model.append(len(calls))
        keys = [space.config_key(t.config) for t, _ in tuner.history]
        assert len(keys) == len(set(keys))
    assert seen_model == [7, 0]  # 12 asks, 5 from the design; with fraction 1 none of the rest asks the model
    assert ForestBayesOpt(space).random_fraction == 0.2 and BayesOpt(space).random_fraction == 0.0
    with pytest.raises(ValueError, match="random_fraction"):
        ForestBayesOpt(space, random_fraction=1.5)
