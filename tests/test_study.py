"""Study semantics: failures become failed trials, the tuner keeps asking, results are stored."""

import json
import math

import pytest

from autosys.storage import SQLiteStorage, StorageError
from autosys.run.study import Study, StudyError
from autosys.core.trial import TrialState
from tests.systems_for_tests import Quadratic


@pytest.mark.parametrize("fail", ["raise", "nan", "none-result", "missing-metric"])
def test_bad_objectives_become_failed_trials_and_tuning_goes_on(tmp_path, fail):
    study = Study.create(tmp_path / "s", Quadratic(fail=fail), tuner="random", budget=30, seed=1)
    study.run()
    trials = study.trials()
    assert len(trials) == 30
    failed = [t for t in trials if t.state == TrialState.FAILED]
    bad_kind = [t for t in trials if t.config["kind"] == "c"]
    assert bad_kind and {t.number for t in failed} == {t.number for t in bad_kind}
    expected = {"raise": "boom in evaluate", "nan": "is nan", "none-result": "returned None", "missing-metric": "no 'loss' metric"}
    assert all(expected[fail] in t.error for t in failed)
    assert all(t.value is None for t in failed)
    # every failure was told to the tuner, never as a number
    assert len(study.tuner.history) == 30
    assert all(not r.ok for t, r in study.tuner.history if t.config["kind"] == "c")
    assert study.best is not None and study.best.config["kind"] != "c"


def test_metric_limits_make_trials_infeasible_not_best(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), tuner="random", budget=25, seed=3)
    study.run()
    infeasible = [t for t in study.trials() if "infeasible" in t.info]
    assert infeasible, "n > 5 gives size > 50, which the objective's limit forbids"
    assert all(t.config["n"] > 5 for t in infeasible)
    assert study.best.config["n"] <= 5
    assert study.summary()["trials"]["infeasible"] == len(infeasible)


def test_default_is_evaluated_first_and_reported(tmp_path):
    system = Quadratic()
    study = Study.create(tmp_path / "s", system, budget=5, seed=0).run()
    assert study.trials()[0].source == "default"
    assert study.default_trial.config == system.default()
    summary = json.loads(json.dumps(study.summary()))
    assert summary["default"]["config"] == system.default()
    assert summary["best"]["metrics"]["loss"] <= summary["default"]["metrics"]["loss"]
    assert summary["trials"]["complete"] + summary["trials"]["failed"] == 5


def test_same_seed_same_trials_different_seed_different(tmp_path):
    def configs(seed, name):
        study = Study.create(tmp_path / name, Quadratic(), tuner="random", budget=12, seed=seed).run()
        return [t.config for t in study.trials()]

    assert configs(5, "a") == configs(5, "b")
    assert configs(5, "a2") != configs(6, "c")


def test_grid_tuner_runs_through_a_study(tmp_path):
    # without re-runs (intensify=False): every trial but the default's is a grid point
    study = Study.create(tmp_path / "s", Quadratic(), tuner="grid", tuner_options={"resolution": 3}, budget=15,
                         intensify=False).run()
    configs = [json.dumps(t.config, sort_keys=True) for t in study.trials() if t.source == "grid"]
    assert len(configs) == len(set(configs)) == 14


def test_dataframe_and_csv_export(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(fail="nan"), budget=10, seed=2).run()
    df = study.dataframe()
    assert len(df) == 10
    assert {"number", "state", "value", "config.x", "metrics.loss"} <= set(df.columns)
    path = study.to_csv(tmp_path / "trials.csv")
    assert path.read_text().count("\n") == 11


def test_fixed_knobs_pin_the_tuner(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), budget=8, fixed={"kind": "a", "n": "3"}).run()
    tuned = [t for t in study.trials() if t.source != "default"]
    assert all(t.config["kind"] == "a" and t.config["n"] == 3 for t in tuned)


def test_resume_continues_to_budget_and_budget_can_grow(tmp_path):
    Study.create(tmp_path / "s", Quadratic(), budget=6, seed=4).run().close()
    again = Study.resume(tmp_path / "s", system=Quadratic(), budget=10).run()
    numbers = [t.number for t in again.trials()]
    assert numbers == list(range(10))
    keys = [json.dumps(t.config, sort_keys=True) for t in again.trials()]
    assert len(set(keys)) == 10


def test_create_refuses_existing_and_resume_needs_a_study(tmp_path):
    Study.create(tmp_path / "s", Quadratic(), budget=1)
    with pytest.raises(StudyError, match="already holds a study"):
        Study.create(tmp_path / "s", Quadratic(), budget=1)
    with pytest.raises(StudyError, match="no study to resume"):
        Study.resume(tmp_path / "empty")


def test_corrupted_storage_file_gives_a_clear_error(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(), budget=3).run()
    study.close()
    path = tmp_path / "s" / "study.sqlite"
    for suffix in ("-wal", "-shm"):
        (tmp_path / "s" / f"study.sqlite{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="not a readable autosys study"):
        SQLiteStorage(path, create=False)


def test_non_finite_metrics_are_never_read_back_as_numbers(tmp_path):
    study = Study.create(tmp_path / "s", Quadratic(fail="nan"), budget=20, seed=1).run()
    for trial in study.trials():
        if trial.state == TrialState.FAILED:
            assert trial.value is None and math.isnan(trial.metrics["loss"])


def test_stop_on_stagnation_ends_the_study_early(tmp_path):
    from autosys.tuners.stopping import stop_on_stagnation

    study = Study.create(tmp_path / "s", Quadratic(), tuner="grid", tuner_options={"resolution": 3}, budget=200, seed=0)
    study.run(stop_when=stop_on_stagnation(patience=8))
    trials = study.trials()
    assert 8 < len(trials) < 200
    def best(ts):
        return min((t.value for t in ts if t.value is not None and "infeasible" not in t.info), default=float("inf"))

    assert best(trials[-8:]) >= best(trials[:-8])  # the last 8 trials brought no improvement


def test_runs_given_one_name_at_once_each_get_their_own_study(tmp_path):
    import threading

    made, errors = [], []

    def create():
        try:
            made.append(Study.create(tmp_path / "same", Quadratic(), budget=1, unique=True).directory)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(made)) == 6
    assert all((d / "study.sqlite").exists() for d in made)
    assert {d.name for d in made} == {"same", *(f"same-{n}" for n in range(2, 7))}


def test_a_directory_holding_other_files_is_refused_and_left_alone(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    with pytest.raises(StudyError, match="already holds other files"):
        Study.create(folder, Quadratic(), budget=1)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert Study.create(empty, Quadratic(), budget=1).directory == empty


def test_a_creation_that_fails_leaves_no_directory(tmp_path):
    from autosys.core.space import InvalidConfig

    with pytest.raises(InvalidConfig, match="leaves no valid config"):
        Study.create(tmp_path / "s", Quadratic(), budget=3, fixed={"kind": "b", "n": 8})
    assert not (tmp_path / "s").exists()


def test_each_trial_attempt_has_its_own_workspace_and_a_failed_ones_is_removed(tmp_path):
    from autosys.core.space import Categorical, Space
    from autosys.core.system import Measurement

    class Keeper(Quadratic):
        def space(self):
            return Space([Categorical("kind", ("a", "c"))])

        def evaluate(self, config):
            folder = self.scratch_dir()
            assert not any(folder.iterdir()), "an attempt's folder starts empty"
            (folder / "out.txt").write_text(config["kind"])
            if config["kind"] == "c":
                raise RuntimeError("fails, leaving a file")
            return Measurement({"loss": 1.0, "size": 1.0})

    study = Study.create(tmp_path / "s", Keeper(), budget=8, seed=0).run()
    kept = sorted((tmp_path / "s" / "work").iterdir())
    complete = [t for t in study.trials() if t.state == TrialState.COMPLETE]
    assert any(t.state == TrialState.FAILED for t in study.trials()), "kind c fails"
    assert len(kept) == len(complete) and all(p.name.startswith("trial-") and "-attempt-1-" in p.name for p in kept)
    assert {p.name.split("-")[1] for p in kept} == {str(t.number) for t in complete}
    assert all((p / "out.txt").read_text() == "a" for p in kept)
