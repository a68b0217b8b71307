"""`check_system`: a conformance suite any adapter (also a user's) can be run through.

It checks the contract a study relies on — the space samples and validates,
the default is valid and evaluates, the objective metric comes back finite,
bad configs are refused with `InvalidConfig`, failures inside `evaluate` stay
inside the study — and reports every failed check at once, each with a
message saying what to fix.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autosys.core.evaluation import evaluate_config
from autosys.core.space import InvalidConfig, Space
from autosys.core.system import Objective, System
from autosys.core.trial import TrialState


class ConformanceError(AssertionError):
    """A system broke the adapter contract; the message lists every failed check."""


@dataclass
class CheckReport:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"PASS {c}" for c in self.passed] + [f"SKIP {c}" for c in self.skipped] + [f"FAIL {c}" for c in self.failed]
        return "\n".join(lines)


def check_system(system: System, *, samples: int = 20, study_budget: int = 3, seed: int = 0,
                 raise_on_failure: bool = True) -> CheckReport:
    """Run the conformance checks on `system`; raises `ConformanceError` listing failures.

    `study_budget` trials are run in a throw-away study directory (set 0 to skip
    that check for systems whose trials are expensive). A system that sets a
    class attribute `deterministic = True` is also checked to measure the same
    metrics twice for the same config.
    """
    report = CheckReport()

    def check(name: str, ok: bool, why: str = "") -> bool:
        (report.passed if ok else report.failed).append(name if ok else f"{name}: {why}")
        return ok

    label = type(system).__name__
    space = None
    try:
        space = system.space()
        check("space() returns a non-empty Space", isinstance(space, Space) and len(space) > 0,
              f"got {type(space).__name__} with {len(space) if isinstance(space, Space) else 0} parameters")
    except Exception as exc:
        check("space() returns a non-empty Space", False, f"raised {type(exc).__name__}: {exc}")

    objective = None
    try:
        objective = system.objective
        check("objective is an Objective naming a metric", isinstance(objective, Objective) and bool(objective.metric),
              f"got {objective!r}")
    except Exception as exc:
        check("objective is an Objective naming a metric", False, f"raised {type(exc).__name__}: {exc}")

    default = None
    if isinstance(space, Space):
        try:
            default = space.validate(system.default())
            check("default() is a valid config", True)
        except Exception as exc:
            check("default() is a valid config", False, f"{type(exc).__name__}: {exc}")
        rng = np.random.default_rng(seed)
        bad = []
        for _ in range(samples):
            try:
                config = space.sample(rng)
                space.validate(config)
                json.dumps(config)
            except Exception as exc:
                bad.append(f"{type(exc).__name__}: {exc}")
        check(f"{samples} sampled configs validate and are JSON-able", not bad, bad[0] if bad else "")
        try:
            space.validate({**(default or {}), "__no_such_knob__": 1})
            check("an unknown knob is refused with InvalidConfig", False, "validate accepted it")
        except InvalidConfig:
            check("an unknown knob is refused with InvalidConfig", True)
        try:
            Space.from_json(json.loads(json.dumps(space.to_json())))
            report.passed.append("space survives a JSON round trip")
        except ValueError as exc:
            report.skipped.append(f"space JSON round trip (predicate constraints need their functions: {exc})")

    try:
        json.dumps(system.options())
        check("constructor options are JSON-able (a study can be resumed)", True)
    except TypeError as exc:
        check("constructor options are JSON-able (a study can be resumed)", False, str(exc))

    if default is not None and isinstance(objective, Objective):
        system.setup()
        try:
            outcome = evaluate_config(system, default)
            ok = outcome.state == TrialState.COMPLETE and outcome.value is not None and math.isfinite(outcome.value)
            check(f"the default evaluates to a finite {objective.metric!r}", ok, outcome.error or f"value {outcome.value}")
            if ok and getattr(system, "deterministic", False):
                again = evaluate_config(system, default)
                check("evaluate is deterministic (deterministic = True)", again.metrics == outcome.metrics,
                      f"{outcome.metrics} then {again.metrics}")
            elif ok:
                report.skipped.append("determinism (the system does not declare deterministic = True)")
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
                check(f"a {study_budget}-trial study runs and records every trial",
                      len(trials) == study_budget and all(t.state.finished for t in trials),
                      f"{len(trials)} trials recorded")
            except Exception as exc:
                check(f"a {study_budget}-trial study runs and records every trial", False,
                      f"an exception escaped the study: {type(exc).__name__}: {exc}")

    if report.failed and raise_on_failure:
        raise ConformanceError(f"{label} does not conform to the System contract:\n  " + "\n  ".join(report.failed))
    return report
