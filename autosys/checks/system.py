"""`check_system`: a conformance suite any adapter (also a user's) can be run through.

It checks the contract a study relies on — the space samples and validates,
the default is valid and evaluates, the objective metric comes back finite,
bad configs are refused with `InvalidConfig`, failures inside `evaluate` stay
inside the study, a declared fidelity is honoured (the lowest one measures, says
so and does less work; one outside [min, full] is refused), a declared
predictor predicts — and reports every failed check at once, each named
(`default_evaluates`) with a message saying what to fix (autosys/checks/report.py).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from autosys.checks.report import CheckReport, ConformanceError
from autosys.core.evaluation import check_measurement, evaluate_config
from autosys.core.fidelity import Fidelity, InvalidFidelity, measured_at
from autosys.core.space import InvalidConfig, Space
from autosys.core.system import Objective, System
from autosys.core.trial import TrialState


def check_system(system: System, *, samples: int = 20, study_budget: int = 3, seed: int = 0,
                 raise_on_failure: bool = True) -> CheckReport:
    """Run the conformance checks on `system`; raises `ConformanceError` listing failures.

    `study_budget` trials are run in a throw-away study directory (set 0 to skip
    that check for systems whose trials are expensive). A system that sets a
    class attribute `deterministic = True` is also checked to measure the same
    metrics twice for the same config.
    """
    report = CheckReport(type(system).__name__)
    check = report.check

    space = None
    try:
        space = system.space()
        check("space", isinstance(space, Space) and len(space) > 0,
              f"space() must return a non-empty Space, got {type(space).__name__} with "
              f"{len(space) if isinstance(space, Space) else 0} parameters")
    except Exception as exc:
        check("space", False, f"space() raised {type(exc).__name__}: {exc}")

    objective = None
    try:
        objective = system.objective
        check("objective", isinstance(objective, Objective) and bool(objective.metric),
              f"objective must be an Objective naming a metric, got {objective!r}")
    except Exception as exc:
        check("objective", False, f"objective raised {type(exc).__name__}: {exc}")

    default = None
    if isinstance(space, Space):
        try:
            default = space.validate(system.default())
            check("default_valid", True)
        except Exception as exc:
            check("default_valid", False, f"default() is not a valid config: {type(exc).__name__}: {exc}")
        rng = np.random.default_rng(seed)
        bad = []
        for _ in range(samples):
            try:
                config = space.sample(rng)
                space.validate(config)
                json.dumps(config)
            except Exception as exc:
                bad.append(f"{type(exc).__name__}: {exc}")
        check("samples_valid", not bad, f"a sampled config does not validate or is not JSON-able: {bad[0] if bad else ''}")
        try:
            space.validate({**(default or {}), "__no_such_knob__": 1})
            check("unknown_knob_refused", False, "validate accepted an unknown knob (it must raise InvalidConfig)")
        except InvalidConfig:
            check("unknown_knob_refused", True)
        try:
            Space.from_json(json.loads(json.dumps(space.to_json())))
            check("space_json_round_trip", True)
        except ValueError as exc:
            report.skip("space_json_round_trip", f"predicate constraints need their functions: {exc}")

    try:
        json.dumps(system.options())
        check("options_json", True)
    except TypeError as exc:
        check("options_json", False, f"constructor options are not JSON-able, so a study cannot be resumed: {exc}")

    if default is not None and isinstance(objective, Objective):
        system.setup()
        try:
            outcome = evaluate_config(system, default)
            ok = outcome.state == TrialState.COMPLETE and outcome.value is not None and math.isfinite(outcome.value)
            check("default_evaluates", ok, f"the default must evaluate to a finite {objective.metric!r}: "
                  + (outcome.error or f"value {outcome.value}"))
            if ok and getattr(system, "deterministic", False):
                again = evaluate_config(system, default)
                check("deterministic", again.metrics == outcome.metrics,
                      f"deterministic = True, but evaluate measured {outcome.metrics} then {again.metrics}")
            elif ok:
                report.skip("deterministic", "the system does not declare deterministic = True")
            if ok:
                _check_fidelity(system, default, objective, outcome.info, report)
                _check_predictor(system, default, report)
            _check_monitors(system, report)
        finally:
            system.teardown()

    if study_budget > 0 and not report.failed:
        from autosys.run.study import Study

        with tempfile.TemporaryDirectory(prefix="autosys-check-") as tmp:
            try:
                study = Study.create(Path(tmp) / "study", system, tuner="random", budget=study_budget, seed=seed)
                study.run()
                trials = study.trials()
                study.close()
                check("study_runs", len(trials) == study_budget and all(t.state.finished for t in trials),
                      f"a {study_budget}-trial study recorded {len(trials)} finished trials")
            except Exception as exc:
                check("study_runs", False, f"an exception escaped a {study_budget}-trial study: {type(exc).__name__}: {exc}")

    if raise_on_failure:
        report.raise_for_failures("System")
    return report


def _check_monitors(system: System, report: CheckReport) -> None:
    """Each monitor `monitors()` returns gives a reading with at least one finite number (autosys/run/monitoring.py)."""
    from autosys.run.monitoring import has_monitors, probe_monitors

    if not has_monitors(system):
        report.skip("monitors_read", "the system declares no monitors (System.monitors)")
        return
    readings, problems = probe_monitors(system)
    if not readings and not problems:
        report.skip("monitors_read", "monitors() returned no monitor")
        return
    report.check("monitors_read", not problems,
                 "a study samples every monitor during trials, and these give no usable reading: "
                 + "; ".join(f"{name}: {why}" for name, why in problems.items()))


def _check_fidelity(system: System, default: dict, objective: Objective, full_info: dict, report: CheckReport) -> None:
    """A declared fidelity: the lowest measures a finite objective, records itself, costs less; out of range is refused."""
    check = report.check
    try:
        fidelity = system.fidelity()
    except Exception as exc:
        check("fidelity", False, f"fidelity() raised {type(exc).__name__}: {exc}")
        return
    if fidelity is None:
        report.skip("fidelity", "the system declares no fidelity (it is measured at full fidelity only)")
        return
    if not isinstance(fidelity, Fidelity):
        check("fidelity", False, f"fidelity() must return an autosys.core.fidelity.Fidelity or None, got {type(fidelity).__name__}")
        return
    full = measured_at(full_info)
    check("fidelity_recorded", full is not None and full.get("value") == fidelity.full,
          f"evaluate(config) must record info['fidelity'] (autosys.core.fidelity.stamp) at the full value {fidelity.full:g}, got {full}")
    try:
        low = check_measurement(system.evaluate(dict(default), fidelity=fidelity.min), objective)
        error = low.error
    except Exception as exc:
        low, error = None, f"{type(exc).__name__}: {exc}"
    ok = low is not None and error is None and low.value is not None and math.isfinite(low.value)
    check("fidelity_lowest_evaluates", ok,
          f"evaluate(default, fidelity={fidelity.min:g}) must measure a finite {objective.metric!r}: {error}")
    if ok:
        record = measured_at(low.info)
        check("fidelity_lowest_recorded", record is not None and record.get("value") == fidelity.min,
              f"evaluate at fidelity {fidelity.min:g} must record it in info['fidelity'], got {record}")
        if fidelity.min == fidelity.max:
            report.skip("fidelity_cheaper", f"the fidelity has one value ({fidelity.max:g}): nothing cheaper to compare")
        elif record is not None and full is not None:
            check("fidelity_cheaper", float(record.get("work", math.inf)) < float(full.get("work", -math.inf)),
                  f"at fidelity {fidelity.min:g} the measurement did {record.get('work')} units of work, not less than"
                  f" the {full.get('work')} of full fidelity {fidelity.max:g}")
    step = 1 if fidelity.integer else 0
    outside = (fidelity.min - step if step else fidelity.min / 2, fidelity.max + step if step else fidelity.max * 2)
    refused = []
    for value in outside:
        try:
            system.evaluate(dict(default), fidelity=value)
            refused.append(f"fidelity={value:g} was measured")
        except InvalidFidelity:
            pass
        except Exception as exc:
            refused.append(f"fidelity={value:g} raised {type(exc).__name__} ({exc}), not InvalidFidelity")
    check("fidelity_out_of_range_refused", not refused,
          f"a fidelity outside [{fidelity.min:g}, {fidelity.max:g}] must raise InvalidFidelity"
          f" (system.resolve_fidelity does it): {'; '.join(refused)}")


def _check_predictor(system: System, default: dict, report: CheckReport) -> None:
    """A declared predictor returns a finite number for the default config."""
    try:
        predictor = system.predictor()
    except Exception as exc:
        report.check("predictor", False, f"predictor() raised {type(exc).__name__}: {exc}")
        return
    if predictor is None:
        report.skip("predictor", "the system declares no predictor")
        return
    try:
        value = float(predictor(dict(default)))
        report.check("predictor", math.isfinite(value), f"the predictor returned {value} for the default config")
    except Exception as exc:
        report.check("predictor", False, f"the predictor raised {type(exc).__name__}: {exc} on the default config")


__all__ = ["CheckReport", "ConformanceError", "check_system"]
