"""Optuna interop: an autosys study to an Optuna storage and back, so Optuna's plots and optuna-dashboard read it.

`export_study(DIR, URL)` writes every trial of a study into an Optuna storage
(any RDB URL Optuna takes: sqlite:///file.db, postgresql://..., mysql://...)
as an Optuna study of the same direction, one FrozenTrial per trial:

- distributions from the study's space: Float/Int (with log) as Float/IntDistribution,
  Categorical, Ordinal and Bool as CategoricalDistribution (Optuna has no ordered
  choices); a conditional parameter is in a trial only when it was active, which is
  what Optuna's define-by-run studies look like;
- states: complete -> COMPLETE with the objective metric as the value; complete but
  breaking a limit (infeasible) -> COMPLETE with a violated Optuna constraint, so
  Optuna's best trial and plots treat it as infeasible, as autosys does, and the value
  stays visible; failed and timed out -> FAIL; pruned -> PRUNED with its partial value
  as step 0; running -> RUNNING (a snapshot of a live study);
- user attributes: source, metrics, seconds, error, the infeasible reason, seed, and the
  autosys state and number; the study's attribute `autosys.spec` holds the study spec
  (secret-free, as stored), so an import gets the exact space back.

`import_study(URL, NAME, DIR)` does the reverse into a new study directory. The
space is the exported spec's when every trial fits it; otherwise it is rebuilt
from the distributions, a parameter present in only some trials becoming
conditional on the categorical parameter whose values decide when it is there.
What cannot be mapped (multi-objective studies, two ranges for one name, names
autosys refuses, presence no categorical explains) is refused in one line.

Only single-objective: a study's other objectives stay in each trial's `metrics`.
Nothing read from an Optuna storage runs: it is data (names are rebuilt only
through the registry when an imported study is resumed, as for any stored spec).

May import: `autosys.run` and below (optuna lazily: the `bench` extra).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from autosys.core.space import Bool, Categorical, Condition, Float, Int, InvalidConfig, Ordinal, Param, Space
from autosys.core.spec import redact_text, strip_url_password
from autosys.core.system import Objective
from autosys.core.trial import Trial, TrialState
from autosys.run.specs import SpecError, validate_spec
from autosys.run.study import claim_directory, open_study
from autosys.storage import SQLiteStorage, dumps
from autosys.tuners.optuna_sampler import quiet_optuna, require_optuna

#: the study attribute that carries the autosys spec
SPEC_ATTR = "autosys.spec"
#: the system name of a study imported from a native Optuna study (it has no system: show and report only)
IMPORTED_SYSTEM = "optuna-import"


class OptunaInteropError(ValueError):
    """A study or storage that cannot be exported or imported as asked (shown as one line)."""


@dataclass
class Transfer:
    """What an export or import did: the Optuna study, the storage (password left out) and the trial counts by state."""

    study_name: str
    url: str
    directory: Path
    states: dict[str, int] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        return sum(self.states.values())


# --------------------------------------------------------------------------- storage URLs


def sqlalchemy_url(url: str) -> str:
    """The URL with a driver that is installed: postgresql:// uses psycopg 3 when psycopg2 is absent,
    mysql:// uses PyMySQL when mysqlclient is absent (the drivers of the `db` extra)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        raise OptunaInteropError(
            f"{redact_text(url)!r} is not an Optuna storage URL (e.g. sqlite:///study.db, postgresql://user@host/db)"
        )
    if scheme in ("postgresql", "postgres") and not _installed("psycopg2") and _installed("psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "mysql" and not _installed("MySQLdb") and _installed("pymysql"):
        return f"mysql+pymysql://{rest}"
    return url


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def open_optuna_storage(url: str):
    """An Optuna RDB storage for `url`; a one-line `OptunaInteropError` when it cannot be opened."""
    optuna = require_optuna()
    target = sqlalchemy_url(url)
    try:
        with quiet_optuna():
            return optuna.storages.RDBStorage(target)
    except Exception as exc:  # sqlalchemy's URL, driver and connection errors, optuna's schema checks
        raise OptunaInteropError(f"cannot open Optuna storage {redact_text(url)}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The first line of an error (drivers add SQL and links below it), passwords left out."""
    text = str(exc).strip()
    return redact_text(text.splitlines()[0] if text else type(exc).__name__)


def _close(storage: Any) -> None:
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def study_names(url: str) -> list[str]:
    """The names of the Optuna studies in the storage `url`, sorted."""
    optuna = require_optuna()
    storage = open_optuna_storage(url)
    try:
        return sorted(optuna.get_all_study_names(storage))
    finally:
        _close(storage)


# --------------------------------------------------------------------------- distributions


def distribution_of(param: Param):
    """The Optuna distribution of an autosys parameter (choices must be None, bool, int, float or str)."""
    dists = require_optuna().distributions
    if isinstance(param, Categorical):  # Ordinal and Bool too: Optuna has no ordered choices
        bad = [c for c in param.choices if c is not None and not isinstance(c, (bool, int, float, str))]
        if bad:
            raise OptunaInteropError(f"parameter {param.name!r}: choice {bad[0]!r} cannot be an Optuna choice "
                                     "(only None, bool, int, float, str)")
        return dists.CategoricalDistribution(tuple(param.choices))
    if isinstance(param, Int):
        return dists.IntDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Float):
        return dists.FloatDistribution(param.low, param.high, log=param.log)
    raise OptunaInteropError(f"parameter {param.name!r} of kind {param.kind!r} has no Optuna distribution")


#: most values a stepped Optuna int becomes as an autosys Ordinal
MAX_STEPPED = 10_000


def param_of(name: str, distribution: Any) -> Param:
    """The autosys parameter of an Optuna distribution (without its condition)."""
    dists = require_optuna().distributions
    if isinstance(distribution, dists.CategoricalDistribution):
        choices = tuple(distribution.choices)
        return Bool(name) if set(choices) == {False, True} and len(choices) == 2 and all(
            isinstance(c, bool) for c in choices) else Categorical(name, choices)
    if isinstance(distribution, dists.IntDistribution):
        if distribution.step != 1:
            values = tuple(range(distribution.low, distribution.high + 1, distribution.step))
            if len(values) > MAX_STEPPED:
                raise OptunaInteropError(f"parameter {name!r}: an integer range with step {distribution.step} and "
                                         f"{len(values)} values cannot be mapped (autosys integers have step 1)")
            return Ordinal(name, values)
        return Int(name, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, dists.FloatDistribution):
        if distribution.low == distribution.high:
            return Categorical(name, (distribution.low,))
        return Float(name, distribution.low, distribution.high, log=distribution.log)  # a step is dropped: values stay valid
    raise OptunaInteropError(f"parameter {name!r}: Optuna distribution {type(distribution).__name__} cannot be mapped")


# --------------------------------------------------------------------------- export


def export_study(directory: str | Path, url: str, *, study_name: str | None = None,
                 storage: str | None = None) -> Transfer:
    """Write the study in `directory` (kept in `storage` when given: a postgresql:// URL) to the Optuna storage `url`.

    study_name: the Optuna study's name (default: the directory's name); a
    name the storage already holds is refused, never overwritten.
    """
    optuna = require_optuna()
    source, spec = open_study(directory, storage)
    try:
        trials = source.trials()
    finally:
        source.close()
    space = _space_of(spec)
    if space is None:
        raise OptunaInteropError(f"{directory}: the study spec has no readable space")
    objective = Objective.from_json(spec["objective"])
    distributions = {p.name: distribution_of(p) for p in space}
    frozen = [_frozen_trial(t, distributions) for t in trials]  # a trial that cannot map fails before writing
    name = study_name or Path(directory).name
    target = open_optuna_storage(url)
    try:
        if name in optuna.get_all_study_names(target):
            raise OptunaInteropError(f"{redact_text(url)} already holds an Optuna study named {name!r}; "
                                     "choose another --study-name")
        with quiet_optuna():
            study = optuna.create_study(storage=target, study_name=name, direction=objective.direction)
            try:
                study.set_user_attr(SPEC_ATTR, json.loads(dumps(spec)))
                study.add_trials(frozen)
            except BaseException:
                optuna.delete_study(study_name=name, storage=target)  # no half-written study is left behind
                raise
    except OptunaInteropError:
        raise
    except Exception as exc:  # the database refused a write
        raise OptunaInteropError(f"cannot write to Optuna storage {redact_text(url)}: {_reason(exc)}") from None
    finally:
        _close(target)
    return Transfer(name, strip_url_password(url), Path(directory), _count(f.state.name.lower() for f in frozen))


def _space_of(spec: Mapping[str, Any]) -> Space | None:
    """The spec's space, parameters and declarative constraints only (a predicate cannot be rebuilt from data)."""
    data = spec.get("space")
    if not isinstance(data, Mapping):
        return None
    constraints = [c for c in data.get("constraints", []) if isinstance(c, Mapping) and c.get("kind") == "forbid"]
    try:
        return Space.from_json({"params": data.get("params", []), "constraints": constraints})
    except (KeyError, TypeError, ValueError):
        return None


def _time(stamp: float | None) -> dt.datetime | None:
    return None if stamp is None else dt.datetime.fromtimestamp(stamp)


def _frozen_trial(trial: Trial, distributions: Mapping[str, Any]):
    optuna = require_optuna()
    states = optuna.trial.TrialState
    unknown = [k for k in trial.config if k not in distributions]
    if unknown:
        raise OptunaInteropError(f"trial {trial.number}: parameter {unknown[0]!r} is not in the study's space")
    value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
    user_attrs: dict[str, Any] = {
        "autosys_number": trial.number,
        "autosys_state": trial.state.value,
        "source": trial.source,
        "metrics": json.loads(dumps(trial.metrics)),
        "seconds": trial.duration,
    }
    if trial.error:
        user_attrs["error"] = trial.error
    if trial.seed is not None:
        user_attrs["seed"] = trial.seed
    system_attrs: dict[str, Any] = {}
    intermediate: dict[int, float] = {}
    if trial.state == TrialState.COMPLETE and value is not None:
        state = states.COMPLETE
        if trial.infeasible:
            user_attrs["infeasible"] = str(trial.info["infeasible"])
            system_attrs["constraints"] = [1.0]  # Optuna's mark of a violated constraint (> 0)
    elif trial.state.value == "pruned":
        state = states.PRUNED
        if value is not None:
            intermediate[0] = value
    elif trial.state.finished:
        state = states.FAIL
        if trial.state == TrialState.COMPLETE:
            user_attrs.setdefault("error", "complete without a finite value")
    else:
        state = states.RUNNING
    started = _time(trial.started_at) or _time(trial.finished_at) or dt.datetime.now()
    finished = (_time(trial.finished_at) or started) if state.is_finished() else None
    params = {k: trial.config[k] for k in distributions if k in trial.config}  # in space order: parents first
    frozen = optuna.trial.FrozenTrial(
        number=-1, trial_id=-1, state=state, value=value if state == states.COMPLETE else None,
        datetime_start=started, datetime_complete=finished, params=params,
        distributions={k: distributions[k] for k in params}, user_attrs=user_attrs,
        system_attrs=system_attrs, intermediate_values=intermediate,
    )
    try:
        frozen._validate()  # Optuna's own check (values inside their distributions); add_trials runs it again
    except ValueError as exc:
        raise OptunaInteropError(f"trial {trial.number} does not fit its Optuna distributions: {exc}") from None
    return frozen


# --------------------------------------------------------------------------- import


def import_study(url: str, study_name: str, directory: str | Path) -> Transfer:
    """Make a new study directory from the Optuna study `study_name` in the storage `url`.

    The imported study shows, reports and ranks knobs like any other. A study
    that autosys exported keeps its spec (system, options, space), so it can
    be resumed like the original; a native Optuna study gets the system
    "optuna-import" (none to run: it is for show, report and importance).
    """
    optuna = require_optuna()
    source = open_optuna_storage(url)
    try:
        names = optuna.get_all_study_names(source)
        if study_name not in names:
            raise OptunaInteropError(f"no Optuna study {study_name!r} in {redact_text(url)}; it holds: "
                                     f"{', '.join(sorted(names)) or 'no study'}")
        with quiet_optuna():
            study = optuna.load_study(study_name=study_name, storage=source)
        if len(study.directions) != 1:
            raise OptunaInteropError(f"Optuna study {study_name!r} has {len(study.directions)} objectives; "
                                     "autosys imports single-objective studies only")
        direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
        frozen = study.get_trials(deepcopy=True)
        attrs = dict(study.user_attrs)
    finally:
        _close(source)
    spec, space = _spec_for(attrs, frozen, direction, url, study_name)
    objective = Objective.from_json(spec["objective"])
    trials = [_trial_of(f, objective) for f in frozen]
    _check_fits(space, trials)
    directory, made = claim_directory(directory)
    try:
        storage = SQLiteStorage(directory)
        try:
            with storage.transaction():  # the study exists with all its trials, or not at all
                storage.save_spec(spec)
                for trial in trials:
                    state = trial.state
                    storage.claim_trial(trial)  # recorded as running first, as every trial is
                    trial.state = state
                    storage.finish_trial(trial)
        finally:
            storage.close()
    except BaseException:
        _remove(directory, made)
        raise
    return Transfer(study_name, strip_url_password(url), directory, _count(t.state.value for t in trials))


def _spec_for(attrs: Mapping[str, Any], frozen: Sequence[Any], direction: str, url: str,
              study_name: str) -> tuple[dict, Space]:
    """The exported spec when present, valid and fitting every trial; else one built from the trials."""
    origin = {"optuna_storage": strip_url_password(url), "study_name": study_name}
    spec = attrs.get(SPEC_ATTR)
    if isinstance(spec, dict):
        try:
            validate_spec(spec, f"Optuna study {study_name!r}")
            space = _space_of(spec)
            objective = Objective.from_json(spec["objective"])
        except (SpecError, KeyError, TypeError, ValueError):
            space = None
        if space is not None and objective.direction == direction and all(
            _fits(space, dict(f.params)) for f in frozen if _reference(f)
        ):
            return {**spec, "imported_from": origin}, space
    space = space_from_trials(frozen)
    spec = {
        "system": IMPORTED_SYSTEM,
        "system_options": {},
        "tuner": "optuna",
        "tuner_options": {},
        "seed": None,
        "budget": {"trials": max(len(frozen), 1), "seconds": None},
        "fixed": {},
        "objective": Objective("value", direction).to_json(),  # type: ignore[arg-type]
        "space": space.to_json(),
        "evaluate_default": False,
        "confirm": 0,
        "intensify": False,
        "created_at": time.time(),
        "imported_from": origin,
    }
    return spec, space


def _reference(frozen: Any) -> bool:
    """Trials whose parameters are complete (failed ones may stop half-way through suggesting)."""
    return frozen.state.name in ("COMPLETE", "PRUNED")


def _fits(space: Space, config: Mapping[str, Any]) -> bool:
    try:
        return set(space.validate(config)) == set(config)
    except InvalidConfig:
        return False


def space_from_trials(frozen: Sequence[Any]) -> Space:
    """An autosys space from the distributions of Optuna trials, conditions inferred from which trials hold a parameter."""
    order: list[str] = []
    dists: dict[str, tuple[Any, int]] = {}
    for f in frozen:
        for name, dist in f.distributions.items():
            if name not in dists:
                dists[name] = (dist, f.number)
                order.append(name)
            elif dists[name][0] != dist:
                raise OptunaInteropError(f"parameter {name!r} has different ranges in trials {dists[name][1]} and "
                                         f"{f.number} ({dists[name][0]} vs {dist}); autosys needs one range per parameter")
    params = {name: param_of(name, dists[name][0]) for name in order}
    reference = [dict(f.params) for f in frozen if _reference(f)] or [dict(f.params) for f in frozen]
    conditions: dict[str, Condition] = {}
    for name in order:
        holding = [c for c in reference if name in c]
        lacking = [c for c in reference if name not in c]
        if not lacking:
            continue
        condition = _infer_condition(name, order, params, holding, lacking)
        if condition is None:
            raise OptunaInteropError(f"parameter {name!r} is in only some trials and no categorical parameter's value "
                                     "decides when: it cannot be mapped to an autosys condition")
        conditions[name] = condition
    placed: list[str] = []
    while len(placed) < len(order):  # parents before their children, else the first-seen order
        for name in order:
            if name not in placed and (name not in conditions or conditions[name].parent in placed):
                placed.append(name)
                break
        else:
            raise OptunaInteropError(f"the inferred conditions of {', '.join(n for n in order if n not in placed)} form a cycle")
    built = []
    for name in placed:
        param = params[name]
        if name in conditions:
            param = replace(param, condition=conditions[name])
        built.append(param)
    try:
        return Space(built)
    except ValueError as exc:
        raise OptunaInteropError(f"the Optuna study's parameters cannot be an autosys space: {exc}") from None


def _infer_condition(name: str, order: list[str], params: Mapping[str, Param], holding: list[dict],
                     lacking: list[dict]) -> Condition | None:
    """The categorical parameter, seen before `name`, that is present wherever `name` is and whose values there
    and elsewhere do not overlap: the closest that is also seen without `name` (the parent, not a sibling that
    always comes with it) first, else the closest at all."""
    before = order[: order.index(name)]
    found: list[tuple[str, set[str]]] = []
    for parent in reversed(before):
        if not isinstance(params[parent], Categorical) or not all(parent in c for c in holding):
            continue
        with_it = {repr(c[parent]) for c in holding}
        without = {repr(c[parent]) for c in lacking if parent in c}
        if with_it & without:
            continue
        if without:
            found.insert(0, (parent, with_it))
            break
        found.append((parent, with_it))
    if not found:
        return None
    parent, with_it = found[0]
    choices = params[parent].choices  # type: ignore[attr-defined]
    return Condition(parent, tuple(c for c in choices if repr(c) in with_it))


def _trial_of(frozen: Any, objective: Objective) -> Trial:
    attrs = frozen.user_attrs
    name = frozen.state.name
    value = frozen.value if frozen.value is not None and math.isfinite(frozen.value) else None
    metrics = {k: float(v) for k, v in (attrs.get("metrics") or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)} if isinstance(attrs.get("metrics"), dict) else {}
    info: dict[str, Any] = {"optuna_number": frozen.number}
    error = attrs.get("error") if isinstance(attrs.get("error"), str) else None
    if name == "COMPLETE" and value is not None:
        state = TrialState.COMPLETE
        metrics.setdefault(objective.metric, value)
        if any(v > 0 for v in frozen.constraints.values()):
            reason = attrs.get("infeasible") if isinstance(attrs.get("infeasible"), str) else "broke an Optuna constraint"
            info["infeasible"] = reason
            error = error or reason
    elif name == "PRUNED" and hasattr(TrialState, "PRUNED"):
        state = TrialState("pruned")
        steps = sorted(frozen.intermediate_values)
        value = frozen.intermediate_values[steps[-1]] if steps else None
        error = error or "pruned in Optuna"
    else:
        state = TrialState.TIMED_OUT if attrs.get("autosys_state") == "timed_out" else TrialState.FAILED
        value = None
        error = error or {"COMPLETE": "complete in Optuna without a finite value", "PRUNED": "pruned in Optuna",
                          "FAIL": "failed in Optuna"}.get(name, f"{name.lower()} in Optuna when imported")
    started = frozen.datetime_start.timestamp() if frozen.datetime_start else None
    finished = frozen.datetime_complete.timestamp() if frozen.datetime_complete else None
    finished = finished or started or time.time()
    seed = attrs.get("seed") if isinstance(attrs.get("seed"), int) and not isinstance(attrs.get("seed"), bool) else None
    source = attrs.get("source") if isinstance(attrs.get("source"), str) else "optuna"
    return Trial(number=frozen.number, config=dict(frozen.params), state=state, value=value, metrics=metrics,
                 error=error, seed=seed, source=source, info=info, started_at=started or finished, finished_at=finished)


def _check_fits(space: Space, trials: Sequence[Trial]) -> None:
    for trial in trials:
        if trial.state == TrialState.COMPLETE and not _fits(space, trial.config):
            raise OptunaInteropError(f"Optuna trial {trial.number}'s parameters {trial.config} do not fit the space")


def _remove(directory: Path, made: bool) -> None:
    if made:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for path in directory.glob(f"{SQLiteStorage.FILENAME}*"):
        path.unlink(missing_ok=True)


def _count(states) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in states:
        out[state] = out.get(state, 0) + 1
    return out


__all__ = ["IMPORTED_SYSTEM", "OptunaInteropError", "SPEC_ATTR", "Transfer", "distribution_of", "export_study",
           "import_study", "open_optuna_storage", "param_of", "space_from_trials", "sqlalchemy_url", "study_names"]
