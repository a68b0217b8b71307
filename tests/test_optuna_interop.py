"""Optuna interop: studies exported to Optuna storage (and imported back), Optuna's plots on them,
and Optuna samplers as autosys tuners passing `check_tuner`.

Needs the `bench` extra (optuna); the plot tests need plotly, the CMA-ES check cmaes,
the PostgreSQL test a server at 127.0.0.1:5432 (each skips with its reason otherwise).
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from functools import partial
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install 'autosys-toolkit[bench]')")

from autosys.analysis.optuna_io import (  # noqa: E402
    IMPORTED_SYSTEM, SPEC_ATTR, OptunaInteropError, export_study, import_study, space_from_trials, sqlalchemy_url,
)
from autosys.checks.tuner import check_tuner, conditional_objective, conditional_space  # noqa: E402
from autosys.core.plugins import PluginError  # noqa: E402
from autosys.core.space import Categorical, Condition, Float, Int, Space  # noqa: E402
from autosys.core.system import Limit, Measurement, Objective, System  # noqa: E402
from autosys.core.trial import Result, Trial, TrialState  # noqa: E402
from autosys.run.study import Study, open_study  # noqa: E402
from autosys.storage import SQLiteStorage  # noqa: E402
from autosys.tuners import UnknownTuner, make_tuner, tuner_class  # noqa: E402
from autosys.tuners.optuna_sampler import OptunaSampler, OptunaUnavailable, sampler_tuner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Engines(System):
    """`check_tuner`'s conditional space (an engine whose knobs exist for one engine) with its loss;
    a limit on `size` makes some configs infeasible, and a load below 0.3 fails."""

    name = "engines"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def space(self) -> Space:
        return conditional_space()

    @property
    def objective(self) -> Objective:
        return Objective("loss", "minimize", limits=(Limit("size", max=0.8),))

    def evaluate(self, config):
        if config["load"] < 0.3:
            raise RuntimeError("load too low to measure: overflow of the warm-up")
        return Measurement({"loss": conditional_objective(config), "size": config["load"]})


def _sqlite_url(tmp_path: Path, name: str = "optuna.db") -> str:
    return f"sqlite:///{tmp_path / name}"


@pytest.fixture(scope="module")
def engines_study(tmp_path_factory) -> Path:
    """A real study of a conditional space, run with an Optuna sampler as the tuner."""
    directory = tmp_path_factory.mktemp("studies") / "engines"
    study = Study.create(directory, Engines(), tuner="optuna:TPESampler", budget=16, seed=2, intensify=False)
    study.run()
    study.close()
    return directory


@pytest.fixture(scope="module")
def exported(engines_study, tmp_path_factory) -> str:
    """The URL of an Optuna storage holding `engines_study` exported as the Optuna study "engines"."""
    url = _sqlite_url(tmp_path_factory.mktemp("optuna"))
    export_study(engines_study, url)
    return url


def _stored(directory: Path) -> list[Trial]:
    storage, _ = open_study(directory)
    try:
        return storage.trials()
    finally:
        storage.close()


def _write_study(directory: Path, space: Space, objective: Objective, trials: list[Trial]) -> Path:
    """A study directory holding exactly these trials (every state, set by hand)."""
    storage = SQLiteStorage(directory)
    storage.save_spec({
        "system": "quadratic", "system_options": {}, "tuner": "random", "tuner_options": {}, "seed": 0,
        "budget": {"trials": max(len(trials), 1), "seconds": None}, "fixed": {}, "objective": objective.to_json(),
        "space": space.to_json(), "evaluate_default": True, "confirm": 0, "intensify": False, "created_at": time.time(),
    })
    for trial in trials:
        state = trial.state
        storage.claim_trial(trial)
        if state.finished:
            trial.state = state
            storage.finish_trial(trial)
    storage.close()
    return directory


# --------------------------------------------------------------------------- export and import


def test_round_trip_keeps_configs_values_states_and_attributes(engines_study, tmp_path):
    url = _sqlite_url(tmp_path)
    done = export_study(engines_study, url)
    original = _stored(engines_study)
    assert done.study_name == "engines" and done.trials == len(original) == 16

    study = optuna.load_study(study_name="engines", storage=url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.user_attrs[SPEC_ATTR]["system"].endswith("Engines")
    frozen = study.get_trials()
    assert any(t.infeasible for t in original) and any(t.state == TrialState.FAILED for t in original)
    for trial, exported in zip(original, frozen):
        assert exported.user_attrs["autosys_number"] == trial.number
        assert exported.user_attrs["source"] == trial.source
        assert exported.params == trial.config  # conditional knobs only where active
        if trial.feasible:
            assert exported.state.name == "COMPLETE" and exported.value == trial.value and not exported.constraints
        elif trial.infeasible:  # kept with its value, marked as breaking a constraint
            assert exported.state.name == "COMPLETE" and exported.value == trial.value
            assert max(exported.constraints.values()) > 0 and "size" in exported.user_attrs["infeasible"]
        else:
            assert exported.state.name == "FAIL" and "overflow" in exported.user_attrs["error"]
    best_feasible = min(t.value for t in original if t.feasible)
    assert study.best_value == best_feasible  # Optuna's best skips the infeasible, as autosys does

    done = import_study(url, "engines", tmp_path / "back")
    assert done.trials == 16
    back = _stored(tmp_path / "back")
    for a, b in zip(original, back):
        assert (a.number, a.config, a.state, a.value, a.source, a.error, a.infeasible) == \
            (b.number, b.config, b.state, b.value, b.source, b.error, b.infeasible)
        assert {k: v for k, v in a.metrics.items() if math.isfinite(v)} == b.metrics
        assert b.duration == pytest.approx(a.duration, abs=1e-3)
    _, spec = open_study(tmp_path / "back")
    assert spec["space"] == _spec_space(engines_study) and spec["imported_from"]["study_name"] == "engines"


def _spec_space(directory: Path) -> dict:
    storage, spec = open_study(directory)
    storage.close()
    return spec["space"]


def test_every_state_maps_both_ways(tmp_path):
    space = Space([Float("x", 0.001, 10.0, log=True), Int("n", 1, 1024, log=True), Categorical("mode", ("a", "b"))])
    objective = Objective("ops", "maximize")
    config = {"x": 0.5, "n": 8, "mode": "b"}
    now = time.time()
    pruned = TrialState("pruned") if hasattr(TrialState, "PRUNED") else None
    trials = [
        Trial(0, dict(config), TrialState.COMPLETE, 100.0, {"ops": 100.0}, started_at=now, finished_at=now + 2),
        Trial(1, dict(config, x=1.0), TrialState.FAILED, None, error="boom", started_at=now, finished_at=now + 1),
        Trial(2, dict(config, x=2.0), TrialState.TIMED_OUT, None, error="timed out after 5 s", started_at=now),
        Trial(3, dict(config, x=3.0), TrialState.RUNNING, started_at=now),
    ]
    if pruned is not None:
        trials.append(Trial(4, dict(config, x=4.0), pruned, 40.0, {"ops": 40.0}, error="pruned at rung 1",
                            started_at=now, finished_at=now + 1))
    directory = _write_study(tmp_path / "all", space, objective, trials)
    url = _sqlite_url(tmp_path)
    export_study(directory, url, study_name="all-states")

    frozen = optuna.load_study(study_name="all-states", storage=url).get_trials()
    assert [t.state.name for t in frozen][:4] == ["COMPLETE", "FAIL", "FAIL", "RUNNING"]
    assert frozen[0].value == 100.0 and frozen[0].duration.total_seconds() == pytest.approx(2.0, abs=1e-3)
    assert frozen[2].user_attrs["autosys_state"] == "timed_out"
    dists = frozen[0].distributions
    assert dists["x"] == optuna.distributions.FloatDistribution(0.001, 10.0, log=True)
    assert dists["n"] == optuna.distributions.IntDistribution(1, 1024, log=True)
    assert dists["mode"] == optuna.distributions.CategoricalDistribution(("a", "b"))
    if pruned is not None:
        assert frozen[4].state.name == "PRUNED" and frozen[4].intermediate_values == {0: 40.0}

    import_study(url, "all-states", tmp_path / "back")
    back = _stored(tmp_path / "back")
    assert [t.state for t in back][:4] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.TIMED_OUT, TrialState.FAILED]
    assert "unfinished" in back[3].error or "running" in back[3].error
    assert back[2].error == "timed out after 5 s"
    if pruned is not None:
        assert back[4].state == pruned and back[4].value == 40.0


@pytest.mark.slow
def test_conditional_kv_space_exports_only_active_knobs_and_imports_its_conditions(tmp_path):
    kv = pytest.importorskip("autosys_adapters.kv.system", reason="the kv adapter's dependencies are missing")
    space = kv.KVSelect().space()
    assert space.is_conditional
    rng = np.random.default_rng(0)
    trials = []
    for number in range(30):
        config = space.sample(rng)
        trials.append(Trial(number, config, TrialState.COMPLETE, float(rng.random()), {"ops": 1.0},
                            started_at=1.0, finished_at=2.0))
    directory = _write_study(tmp_path / "kv", space, Objective("ops", "maximize"), trials)
    url = _sqlite_url(tmp_path)
    export_study(directory, url)
    study = optuna.load_study(study_name="kv", storage=url)
    for trial, exported in zip(trials, study.get_trials()):
        assert set(exported.params) == set(space.active_names(trial.config)) == set(trial.config)

    # a native Optuna reader has no autosys spec: the conditions are inferred from which trials hold which knob
    study.set_user_attr(SPEC_ATTR, None)
    import_study(url, "kv", tmp_path / "inferred")
    _, spec = open_study(tmp_path / "inferred")
    inferred = Space.from_json(spec["space"])
    assert spec["system"] == IMPORTED_SYSTEM
    for param in inferred:
        original = space[param.name].condition
        assert (param.condition.parent if param.condition else None) == (original.parent if original else None), param.name
        if original is not None:
            assert set(param.condition.values) <= set(original.values)
    for trial in trials:
        assert inferred.validate(trial.config) == trial.config


def test_native_define_by_run_study_imports_with_inferred_conditions(tmp_path):
    url = _sqlite_url(tmp_path)

    def objective(trial):
        kind = trial.suggest_categorical("classifier", ["svm", "forest"])
        if kind == "svm":
            kernel = trial.suggest_categorical("kernel", ["rbf", "linear"])
            c = trial.suggest_float("C", 1e-3, 1e3, log=True)
            if kernel == "rbf":
                return c + trial.suggest_float("gamma", 1e-4, 1.0, log=True)
            return c
        return float(trial.suggest_int("depth", 2, 32))

    study = optuna.create_study(study_name="native", storage=url, sampler=optuna.samplers.RandomSampler(seed=1))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=24)
    import_study(url, "native", tmp_path / "native")
    _, spec = open_study(tmp_path / "native")
    space = Space.from_json(spec["space"])
    assert space["kernel"].condition == Condition("classifier", ("svm",))
    assert space["gamma"].condition == Condition("kernel", ("rbf",))
    assert space["depth"].condition == Condition("classifier", ("forest",))
    assert space["C"].log and isinstance(space["depth"], Int)
    back = _stored(tmp_path / "native")
    assert [t.value for t in back] == [t.value for t in study.trials]
    assert all(t.source == "optuna" and t.metrics == {"value": t.value} for t in back)


# --------------------------------------------------------------------------- Optuna's own plots


def test_optunas_plots_run_on_the_exported_studies(engines_study, exported):
    pytest.importorskip("plotly", reason="plotly is not installed")
    from optuna.visualization import plot_optimization_history, plot_parallel_coordinate, plot_param_importances

    study = optuna.load_study(study_name="engines", storage=exported)
    trials = _stored(engines_study)

    history = plot_optimization_history(study)
    points = sum(len(trace.x) for trace in history.data if trace.mode == "markers")
    assert points == sum(t.state == TrialState.COMPLETE for t in trials)  # feasible and infeasible both drawn
    importances = plot_param_importances(study)
    assert {"engine", "load"} <= set(importances.data[0].y)  # conditional knobs too, where Optuna can rank them
    parallel = plot_parallel_coordinate(study)
    labels = set(parallel.layout.xaxis.ticktext or ())  # Optuna 5 draws lines; older ones a Parcoords trace
    labels |= {d["label"] for d in getattr(parallel.data[0], "dimensions", None) or ()}
    assert {"engine", "load", "Objective Value"} <= labels


def test_optuna_dashboard_serves_the_exported_study(exported):
    dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed")
    import json
    from wsgiref.util import setup_testing_defaults

    app = dashboard.wsgi(exported)

    def get(path: str) -> tuple[str, bytes]:
        environ: dict = {}
        setup_testing_defaults(environ)
        environ["PATH_INFO"] = path
        status: list[str] = []
        body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
        return status[0], body

    status, body = get("/api/studies")
    (summary,) = json.loads(body)["study_summaries"]
    assert status.startswith("200") and summary["study_name"] == "engines"
    status, body = get(f"/api/studies/{summary['study_id']}")
    trials = json.loads(body)["trials"]
    assert status.startswith("200") and len(trials) == 16
    assert {p["name"] for t in trials for p in t["params"]} == {"engine", "fanout", "bloom_bits", "load"}
    status, body = get(f"/api/studies/{summary['study_id']}/param_importances")
    assert status.startswith("200") and "load" in body.decode()


# --------------------------------------------------------------------------- the sampler as a tuner


@pytest.mark.parametrize("sampler", ["TPESampler", "RandomSampler", "QMCSampler", "NSGAIISampler", "CmaEsSampler"])
def test_optuna_sampler_tuner_passes_check_tuner(sampler):
    if sampler == "CmaEsSampler":
        pytest.importorskip("cmaes", reason="Optuna's CmaEsSampler needs cmaes")
    report = check_tuner(tuner_class(f"optuna:{sampler}"), steps=12)
    assert not report.failed and "save_restore" in report and "conditional_space" in report


def test_the_built_in_name_takes_the_sampler_as_an_option():
    tuner = make_tuner("optuna", conditional_space(), seed=1, sampler="RandomSampler")
    assert tuner.sampler == "RandomSampler" and tuner_class("optuna") is OptunaSampler
    check_tuner(partial(OptunaSampler, sampler="TPESampler", sampler_options={"n_startup_trials": 4}), steps=10)
    assert sampler_tuner("TPESampler") is tuner_class("optuna:TPESampler")  # one class per sampler name


def test_a_study_with_the_optuna_tuner_resumes_exactly_where_it_stopped(tmp_path):
    whole = Study.create(tmp_path / "whole", Engines(), tuner="optuna:TPESampler", budget=14, seed=5).run()
    # stopped half way, as a killed run would be (same budget: how re-runs are shared out depends on it)
    first = Study.create(tmp_path / "cut", Engines(), tuner="optuna:TPESampler", budget=14, seed=5)
    first.run(stop_when=lambda study: study.n_finished() >= 7)
    assert first.n_finished() == 7
    first.close()
    resumed = Study.resume(tmp_path / "cut", budget=14, system=Engines(), tuner="optuna:TPESampler").run()
    assert [t.config for t in resumed.trials()] == [t.config for t in whole.trials()]
    state = resumed.storage.load_tuner_state()
    assert state["name"] == "optuna:TPESampler" and state["extra"]["sampler"] == "TPESampler"
    assert all(isinstance(op, int) for op in state["extra"]["ops"])  # the order of asks and tells, nothing else
    whole.close()
    resumed.close()


def test_a_restored_tuner_continues_identically_after_pending_and_failed_trials():
    space = conditional_space()
    tuner = OptunaSampler(space, seed=3)
    for i in range(10):
        trial = tuner.ask()
        tuner.tell(trial, Result.failed("x") if i % 4 == 3 else Result.complete(conditional_objective(trial.config)))
    pending = tuner.ask_batch(2)
    clone = OptunaSampler(space, seed=3)
    clone.load_state_dict(tuner.state_dict(), tuner.told())
    for each in (tuner, clone):
        for trial in reversed(pending):
            each.tell(trial, Result.complete(conditional_objective(trial.config)))
    assert [tuner.ask().config for _ in range(5)] == [clone.ask().config for _ in range(5)]


# --------------------------------------------------------------------------- clear errors


def test_unknown_sampler_names_and_options_are_refused_without_importing_them():
    with pytest.raises(UnknownTuner, match="unknown Optuna sampler 'os.system'; choose one of TPESampler"):
        tuner_class("optuna:os.system")
    with pytest.raises(ValueError, match="unknown Optuna sampler 'BruteForceSampler'"):
        OptunaSampler(conditional_space(), sampler="BruteForceSampler")
    with pytest.raises(ValueError, match="TPESampler has no option 'bogus'"):
        OptunaSampler(conditional_space(), sampler_options={"bogus": 1})
    with pytest.raises(ValueError, match="only plain numbers"):
        OptunaSampler(conditional_space(), sampler_options={"n_startup_trials": [1]})
    with pytest.raises(ValueError, match="runs TPESampler, not 'RandomSampler'"):
        tuner_class("optuna:TPESampler")(conditional_space(), sampler="RandomSampler")


def test_gp_sampler_without_torch_says_what_to_install():
    pytest.importorskip("optuna")
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed")
    with pytest.raises(OptunaUnavailable, match="GPSampler needs torch"):
        tuner_class("optuna:GPSampler")(conditional_space())


def test_without_optuna_the_error_names_the_extra(monkeypatch, tmp_path, engines_study):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(OptunaUnavailable, match=r"needs optuna; install the bench extra"):
        OptunaSampler(conditional_space())
    assert issubclass(OptunaUnavailable, PluginError)  # `autosys tune` prints it as one line
    with pytest.raises(OptunaUnavailable, match="bench"):
        export_study(engines_study, _sqlite_url(tmp_path))


def test_bad_urls_names_and_studies_are_one_line_errors(engines_study, exported, tmp_path):
    url = exported
    with pytest.raises(OptunaInteropError, match="is not an Optuna storage URL"):
        export_study(engines_study, "optuna.db")
    with pytest.raises(OptunaInteropError, match="cannot open Optuna storage postgresql://someone@127.0.0.1:1/x"):
        export_study(engines_study, "postgresql://someone:hunter2@127.0.0.1:1/x")
    with pytest.raises(OptunaInteropError, match="already holds an Optuna study named 'engines'"):
        export_study(engines_study, url)
    with pytest.raises(OptunaInteropError, match="no Optuna study 'other' .*; it holds: engines"):
        import_study(url, "other", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    two = _sqlite_url(tmp_path, "two.db")
    optuna.create_study(study_name="two", storage=two, directions=["minimize", "maximize"])
    with pytest.raises(OptunaInteropError, match="has 2 objectives"):
        import_study(two, "two", tmp_path / "y")
    assert sqlalchemy_url("postgresql://u@h/db").startswith(("postgresql+psycopg://", "postgresql://"))


def test_a_parameter_with_two_ranges_cannot_be_imported(tmp_path):
    url = _sqlite_url(tmp_path)
    study = optuna.create_study(study_name="drift", storage=url)
    for high in (1.0, 2.0):
        study.add_trial(optuna.trial.create_trial(
            params={"x": 0.5}, distributions={"x": optuna.distributions.FloatDistribution(0.0, high)}, value=1.0))
    with pytest.raises(OptunaInteropError, match="'x' has different ranges in trials 0 and 1"):
        import_study(url, "drift", tmp_path / "drift")
    with pytest.raises(OptunaInteropError, match="cannot be an autosys space"):
        space_from_trials([optuna.trial.create_trial(
            params={"a b": 1}, distributions={"a b": optuna.distributions.IntDistribution(0, 3)}, value=1.0)])


def _autosys(capsys, *args: str) -> tuple[int, str, str]:
    from autosys.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_cli_export_and_import(engines_study, tmp_path, capsys):
    url = _sqlite_url(tmp_path)
    code, out, err = _autosys(capsys, "export", str(engines_study), "--to", "optuna", url, "--study-name", "e")
    assert code == 0, err
    assert "exported 16 trials" in out and "optuna-dashboard" in out
    code, out, err = _autosys(capsys, "import", "optuna", url, "--dir", str(tmp_path / "back"))
    assert code == 0, err
    assert "imported 16 trials" in out and len(_stored(tmp_path / "back")) == 16
    code, out, err = _autosys(capsys, "export", str(engines_study), "--to", "mlflow", url)
    assert code == 2 and err.strip().count("\n") == 0 and "unknown format 'mlflow'" in err
    code, out, err = _autosys(capsys, "import", "optuna", url, "--study-name", "nope", "--dir", str(tmp_path / "x"))
    assert code == 2 and err.strip().count("\n") == 0 and "no Optuna study 'nope'" in err


# --------------------------------------------------------------------------- PostgreSQL


def test_export_to_postgresql_then_import_back(engines_study, tmp_path):
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'autosys-toolkit[db]')")
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable: {str(exc).strip().splitlines()[0]}")
    database = f"autosys_optuna_{uuid.uuid4().hex[:8]}"  # a database of its own, dropped after: the server is left as found
    conn.execute(f'CREATE DATABASE "{database}"')
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{database}"
        export_study(engines_study, url)
        study = optuna.load_study(study_name="engines", storage=sqlalchemy_url(url))
        assert len(study.trials) == 16
        import_study(url, "engines", tmp_path / "back")
        assert [t.config for t in _stored(tmp_path / "back")] == [t.config for t in _stored(engines_study)]
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.close()
