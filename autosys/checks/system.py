"""`check_system`: a conformance suite any adapter (also a user's) can be run through.

It checks the contract a study relies on — the space samples and validates,
the default is valid and evaluates, the objective metric comes back finite,
bad configs are refused with `InvalidConfig`, failures inside `evaluate` stay
inside the study — and reports every failed check at once, each named
(`default_evaluates`) with a message saying what to fix (autosys/checks/report.py).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from autosys.checks.report import CheckReport, ConformanceError
from autosys.core.evaluation import evaluate_config
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


__all__ = ["CheckReport", "ConformanceError", "check_system"]
