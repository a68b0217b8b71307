"""Pareto fronts, non-dominated sorting and ParEGO."""

import numpy as np
import pytest

from autosys.core.space import Float, Space
from autosys.core.trial import Result
from autosys.tuners.multiobjective import ParEGO, dominates, hypervolume_2d, non_dominated_sort, pareto_front
from autosys.tuners.random_search import RandomSearch


def test_non_dominated_sort_orders_fronts():
    F = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]])
    fronts = non_dominated_sort(F)
    assert [sorted(f.tolist()) for f in fronts] == [[0, 1, 2], [3], [4], [5]]
    assert dominates(F[1], F[3]) and not dominates(F[0], F[2])
    assert non_dominated_sort(np.zeros((0, 2))) == []


def test_pareto_front_honours_directions_and_skips_failures():
    results = [
        Result.complete(1, {"tput": 100, "p95": 10}),
        Result.complete(1, {"tput": 200, "p95": 20}),
        Result.complete(1, {"tput": 150, "p95": 30}),  # dominated by the second
        Result.failed("crash"),
        Result.complete(1, {"tput": 300}),  # p95 missing: not comparable
    ]
    assert pareto_front(results, [("tput", "maximize"), ("p95", "minimize")]) == [0, 1]
    with pytest.raises(ValueError, match="direction"):
        pareto_front(results, [("tput", "up")])


def test_hypervolume_2d():
    assert hypervolume_2d(np.array([[0.0, 1.0], [1.0, 0.0]]), [2.0, 2.0]) == pytest.approx(3.0)


def _zdt1(config):
    x = np.array(list(config.values()))
    f1 = x[0]
    g = 1 + 9 * x[1:].mean()
    return {"f1": float(f1), "f2": float(g * (1 - np.sqrt(f1 / g)))}


def _run(tuner, n):
    for _ in range(n):
        trial = tuner.ask()
        metrics = _zdt1(trial.config)
        tuner.tell(trial, Result.complete(metrics["f1"], metrics))
    F = np.array([[r.metrics["f1"], r.metrics["f2"]] for _, r in tuner.history])
    return hypervolume_2d(F, [1.1, 11.0])


def test_parego_covers_more_of_the_front_than_random_search():
    space = Space([Float(f"x{i}", 0.0, 1.0) for i in range(3)])
    objectives = [("f1", "minimize"), ("f2", "minimize")]
    hv_parego = _run(ParEGO(space, objectives=objectives, seed=0, n_candidates=300), 30)
    hv_random = np.median([_run(RandomSearch(space, seed=s), 30) for s in range(3)])
    assert hv_parego > hv_random
    tuner = ParEGO(space, objectives=objectives, seed=0)
    _run(tuner, 8)
    front = tuner.pareto_trials()
    assert 1 <= len(front) <= 8


def test_parego_needs_two_valid_objectives():
    space = Space([Float("x", 0.0, 1.0)])
    with pytest.raises(ValueError, match="two objectives"):
        ParEGO(space, objectives=[("f1", "minimize")])
