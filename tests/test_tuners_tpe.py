"""The numpy TPE (`tpe`): conformance, that its densities steer towards good regions, and its pending-trial liar."""

import numpy as np
import pytest

from autosys.checks.tuner import check_tuner
from autosys.core.space import Categorical, Float, Int, Space
from autosys.core.trial import Result
from autosys.tuners import make_tuner
from autosys.tuners.random_search import RandomSearch
from autosys.tuners.tpe import ParzenTuner, _NumericKernels, recency_weights


def _run(tuner, fn, n):
    for _ in range(n):
        trial = tuner.ask()
        tuner.tell(trial, Result.complete(fn(trial.config)))
    return min(r.value for _, r in tuner.history)


def _bowl(config):
    return sum((v - 0.3) ** 2 for k, v in config.items() if k.startswith("x"))


@pytest.mark.parametrize("multivariate", [True, False])
def test_tpe_passes_check_tuner(multivariate):
    report = check_tuner(lambda space, **kw: ParzenTuner(space, n_initial=5, multivariate=multivariate, **kw), steps=15)
    assert not report.failed


def test_tpe_is_registered():
    assert isinstance(make_tuner("tpe", Space([Float("x", 0.0, 1.0)])), ParzenTuner)


def test_tpe_beats_random_search_on_a_bowl():
    space = Space([Float(f"x{i}", 0.0, 1.0) for i in range(4)])
    tpe = [_run(ParzenTuner(space, seed=s), _bowl, 80) for s in range(3)]
    rnd = [_run(RandomSearch(space, seed=s), _bowl, 80) for s in range(3)]
    assert np.median(tpe) < 0.5 * np.median(rnd)


def test_tpe_learns_which_choice_and_integer_are_good():
    space = Space([Categorical("algo", ("a", "b", "c", "d")), Int("n", 1, 50), Float("x0", 0.0, 1.0)])

    def loss(c):
        return (0.0 if c["algo"] == "c" else 1.0) + abs(c["n"] - 40) / 50 + _bowl(c)

    tuner = ParzenTuner(space, seed=0)
    _run(tuner, loss, 60)
    late = [t.config for t, _ in tuner.history[-20:]]
    assert sum(c["algo"] == "c" for c in late) >= 12
    assert np.median([c["n"] for c in late]) == pytest.approx(40, abs=8)


def test_pending_trials_count_as_bad_so_a_batch_spreads_out():
    space = Space([Float("x", 0.0, 1.0)])
    tuner = ParzenTuner(space, seed=0, n_initial=5)
    _run(tuner, lambda c: (c["x"] - 0.7) ** 2, 20)
    good, rest, _ = tuner._split()
    batch = tuner.ask_batch(4)
    _, rest_pending, weights = tuner._split()
    assert len(rest_pending) == len(rest) + 4 and len(weights) == len(rest_pending)
    assert len({t.config["x"] for t in batch}) == 4


def test_kernel_widths_follow_the_neighbours_and_recency_ramps_old_results_down():
    k = _NumericKernels(np.array([0.1, 0.2, 0.6]))
    # middle point: the larger gap to a neighbour (0.4); outer points: the gap to their inner neighbour
    # (0.1 and 0.4), at least 1/(n kernels + 1) = 0.2 of the range
    assert k.sigma[:3] == pytest.approx([0.2, 0.4, 0.4])
    assert k.mu[-1] == 0.5 and k.sigma[-1] == 1.0  # the broad prior kernel
    assert np.exp(k.log_pdf(np.linspace(0, 1, 2001))).mean(0) == pytest.approx(np.ones(4), rel=1e-2)  # each integrates to 1 on [0, 1]
    w = recency_weights(40)
    assert len(w) == 40 and w[0] < w[7] < w[14] == w[15] == w[-1] == 1.0  # a ramp, then the newest 25 flat
    assert recency_weights(10).tolist() == [1.0] * 10
