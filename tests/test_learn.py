"""The shared loop: models behind one interface, datasets from storage, retraining on a schedule."""

import time

import numpy as np
import pytest

from autosys.analysis.dataset import Retrainer, study_dataset
from autosys.learn.models import MODELS, make_model
from autosys.online.monitor import CounterMonitor
from autosys.run.study import Study
from tests.systems_for_tests import Quadratic


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_fits_predicts_with_std_and_ranks(name):
    rng = np.random.default_rng(0)
    X = rng.random((80, 3))
    y = ((X - 0.3) ** 2).sum(axis=1)
    y_with_failures = y.copy()
    y_with_failures[:5] = np.nan  # failed trials must be dropped, not learned
    model = make_model(name).fit(X, y_with_failures)
    mean, std = model.predict(X[:20])
    assert mean.shape == std.shape == (20,) and np.all(std >= 0) and np.all(np.isfinite(mean))
    # ranking puts a clearly good point ahead of a clearly bad one
    order = model.rank(np.array([[0.3, 0.3, 0.3], [1.0, 1.0, 1.0]]))
    assert order[0] == 0
    with pytest.raises(ValueError):
        make_model(name).fit(X, np.full(len(X), np.nan))


def test_dataset_from_a_study_has_context_and_losses(tmp_path):
    system = Quadratic(fail="raise")
    study = Study.create(tmp_path / "s", system, budget=12, seed=1)
    counter = CounterMonitor("app")

    def record_context(study_, trial):
        counter.record("op", 0.001)
        study_.storage.add_observations("app", [(time.time(), {"marker": 1.0})])

    study.run(callback=record_context)
    data = study_dataset(study.storage, system.space(), direction="minimize")
    ok = [t for t in study.feasible_trials()]
    assert len(data) == len(ok) and len(data) < 12  # failed and infeasible trials left out
    assert data.columns[-3:] == system.space().names
    by_number = {t.number: t.value for t in ok}
    assert np.allclose(data.y, [by_number[n] for n in data.trial_numbers])  # minimize: loss == value


def test_retrainer_refits_on_schedule_and_ignores_nan():
    retrainer = Retrainer(make_model("knn"), every=4, min_rows=6)
    rng = np.random.default_rng(1)
    refits = [retrainer.add(rng.random(2), float(i)) for i in range(12)]
    assert not retrainer.add(rng.random(2), float("nan"))
    assert refits.index(True) == 5 and sum(refits) == 2 and retrainer.fits == 2
    mean, _ = retrainer.predict(rng.random((3, 2)))
    assert mean.shape == (3,)
    with pytest.raises(RuntimeError):
        Retrainer(make_model("knn")).predict(np.zeros((1, 2)))


def test_context_is_the_mean_of_observations_inside_the_window(tmp_path):
    from autosys.analysis.dataset import context_of
    from autosys.storage import SQLiteStorage

    storage = SQLiteStorage(tmp_path / "s")
    storage.add_observations("app", [(10.0, {"tput": 1.0}), (11.0, {"tput": 3.0}), (20.0, {"tput": 100.0})])
    storage.add_observations("sys", [(10.5, {"cpu": 50.0, "bad": float("nan")})])
    assert context_of(storage, 9.0, 12.0) == {"app.tput": 2.0, "sys.cpu": 50.0}
    assert context_of(storage, 9.0, 12.0, sources=["sys"]) == {"sys.cpu": 50.0}
