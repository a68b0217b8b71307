"""Trust-region BO, exact pending-trial fantasies and the incremental GP update behind them."""

import numpy as np
import pytest

from autosys.checks.tuner import check_tuner
from autosys.core.space import Float, Space
from autosys.core.trial import Result
from autosys.learn.surrogates import GaussianProcess
from autosys.tuners.bayes import BayesOpt
from autosys.tuners.trust_region import TrustRegionBO


def _bowl(config):
    return sum((v - 0.3) ** 2 for v in config.values())


def _run(tuner, fn, n):
    for _ in range(n):
        trial = tuner.ask()
        tuner.tell(trial, Result.complete(fn(trial.config)))
    return min(r.value for _, r in tuner.history)


def test_trust_region_bo_passes_check_tuner():
    report = check_tuner(lambda space, **kw: TrustRegionBO(space, n_candidates=200, **kw), steps=12)
    assert not report.failed and "save_restore" in report


def test_trust_region_shrinks_on_failures_and_grows_on_successes():
    space = Space([Float(f"x{i}", 0.0, 1.0) for i in range(4)])
    tuner = TrustRegionBO(space, seed=1, n_candidates=200, failure_tol=2, success_tol=2)
    _run(tuner, _bowl, tuner.n_initial)
    start = tuner.length
    for _ in range(2):  # two own proposals that do not improve: the region halves
        tuner.tell(tuner.ask(), Result.complete(1e6))
    assert tuner.length == pytest.approx(start / 2)
    for k in range(2):  # two own improvements: it doubles back
        tuner.tell(tuner.ask(), Result.complete(-1.0 - k))
    assert tuner.length == pytest.approx(start)


def test_trust_region_candidates_stay_near_the_incumbent_when_small():
    space = Space([Float(f"x{i}", 0.0, 1.0) for i in range(5)])
    tuner = TrustRegionBO(space, seed=2, n_candidates=300)
    _run(tuner, _bowl, 12)
    tuner.length = 0.05
    U = np.array([space.encode(c) for c, _ in tuner.observations])
    y = np.array([l for _, l in tuner.observations])
    cands = tuner._candidates(U, y)
    center = U[int(np.argmin(y))]
    half = tuner._weights(5) * tuner.length / 2
    assert np.all(np.abs(cands - center) <= half + 1e-12)
    assert np.all((cands != center).sum(1) >= 1)  # every candidate moves at least one knob


def test_trust_region_restarts_when_it_collapses_and_state_replays():
    space = Space([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    tuner = TrustRegionBO(space, seed=3, n_candidates=100, failure_tol=1, length_min=0.1)
    _run(tuner, _bowl, tuner.n_initial)
    for _ in range(5):  # every own proposal fails: 0.8 -> 0.4 -> 0.2 -> 0.1 -> 0.05 < 0.1: restart
        tuner.tell(tuner.ask(), Result.complete(1e6))
    assert tuner.region()["restarts_at"] > 0
    clone = TrustRegionBO(space, seed=3, n_candidates=100, failure_tol=1, length_min=0.1)
    clone.load_state_dict(tuner.state_dict(), tuner.told())
    assert clone.region() == tuner.region()
    assert clone.ask().config == tuner.ask().config


def test_trust_region_beats_random_on_a_bowl():
    space = Space([Float(f"x{i}", 0.0, 1.0) for i in range(5)])
    tr = _run(TrustRegionBO(space, seed=4, n_candidates=300), _bowl, 30)
    from autosys.tuners.random_search import RandomSearch

    rs = _run(RandomSearch(space, seed=4), _bowl, 30)
    assert tr < rs


def test_incremental_condition_on_matches_a_full_refactor():
    rng = np.random.default_rng(0)
    X, Xn = rng.random((30, 3)), rng.random((3, 3))
    y = np.sin(X * 3).sum(1)
    gp = GaussianProcess().fit(X, (y - y.mean()) / y.std(), rng)
    yn = np.array([0.1, -0.2, 0.3])
    fast = gp.condition_on(Xn, yn)
    slow = GaussianProcess()
    slow.theta = gp.theta.copy()
    slow._factor(np.vstack([X, Xn]), np.concatenate([gp.y, yn]))
    Xs = rng.random((50, 3))
    for a, b in zip(fast.predict(Xs), slow.predict(Xs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_exact_fantasies_collapse_the_uncertainty_at_pending_points():
    rng = np.random.default_rng(1)
    X = rng.random((20, 2))
    y = np.cos(4 * X).sum(1)
    gp = GaussianProcess(noise_bounds=(0.05, 0.5)).fit(X, (y - y.mean()) / y.std(), rng)  # a noisy model
    Xp = np.array([[0.5, 0.5]])
    mu, _ = gp.predict(Xp)
    _, sd_noisy = gp.condition_on(Xp, mu).predict(Xp)
    _, sd_exact = gp.condition_on(Xp, mu, exact=True).predict(Xp)
    assert sd_exact[0] < 0.1 * sd_noisy[0]


@pytest.mark.parametrize("exact", [True, False])
def test_bo_pending_trials_enter_the_model_as_exact_fantasies_by_default(exact):
    space = Space([Float(f"x{i}", 0.0, 1.0) for i in range(3)])
    rng = np.random.default_rng(5)
    tuner = BayesOpt(space, seed=5, n_candidates=300, exact_fantasies=exact,
                     surrogate_options={"noise_bounds": (0.05, 0.5)})
    _run(tuner, lambda c: _bowl(c) + 0.05 * rng.normal(), 15)
    pending = tuner.ask()
    configs, losses = tuner._training_data()
    U = tuner.encoder.snap(np.array([space.encode(c) for c in configs]))
    y = (losses - losses.mean()) / losses.std()
    model = tuner.model.fit(tuner.encoder.features(U), y, rng, optimize=False)
    Up = tuner.encoder.features(tuner.encoder.snap(np.array([space.encode(pending.config)])))
    _, sd = tuner._with_fantasies(model, y).predict(Up)
    assert (sd[0] < 0.01) == exact
