"""`check_tuner`: a conformance suite any tuner (also a user's) can be run through, like sklearn's check_estimator.

`check_tuner(factory)` drives a tuner through the edges every strategy must
handle: seeded determinism, failed and NaN results, known constraints,
conditional parameters, batches of pending trials, maximization, and a JSON
save/restore round trip that continues exactly where it left off. Like
`check_system` it runs every check, returns a `CheckReport` (`"save_restore"
in report` says whether that check passed) and raises `ConformanceError`
listing every failed check by name with what to fix.
"""

from __future__ import annotations

import json
import math
from typing import Callable, Sequence

from autosys.checks.report import CheckReport, ConformanceError
from autosys.checks.system import check_system
from autosys.core.space import Bool, Categorical, Condition, Constraint, Float, Int, InvalidConfig, Space
from autosys.core.trial import Result, Trial, TrialState
from autosys.tuners.base import Tuner

# =========================================================================== tuners

TunerFactory = Callable[..., Tuner]  # factory(space, direction=..., seed=...) -> Tuner


def mixed_space() -> Space:
    """Floats (one log-scaled), ints (one log-scaled), a categorical, a bool and one constraint."""
    return Space(
        [
            Float("x", -2.0, 2.0),
            Float("lr", 1e-4, 1.0, log=True),
            Int("n", 1, 8),
            Int("size", 1, 1024, log=True),
            Categorical("kind", ("a", "b", "c")),
            Bool("flag"),
        ],
        [Constraint("x_plus_n", lambda c: c["x"] + c["n"] <= 8.5, "x + n must not exceed 8.5")],
    )


def conditional_space() -> Space:
    """An engine choice whose knobs exist only for one engine."""
    return Space(
        [
            Categorical("engine", ("hash", "tree", "lsm")),
            Int("fanout", 2, 64, condition=Condition("engine", ("tree",))),
            Float("bloom_bits", 1.0, 20.0, condition=Condition("engine", ("lsm",))),
            Float("load", 0.1, 0.9),
        ]
    )


def mixed_objective(config: dict) -> float:
    """A smooth-ish loss over `mixed_space` with a unique best region."""
    kind = {"a": 0.5, "b": 0.0, "c": 1.0}[config["kind"]]
    return (
        (config["x"] - 0.5) ** 2
        + (math.log10(config["lr"]) + 2) ** 2 / 4
        + (config["n"] - 3) ** 2 / 10
        + (math.log2(config["size"]) - 6) ** 2 / 20
        + kind
        + (0.3 if config["flag"] else 0.0)
    )


def conditional_objective(config: dict) -> float:
    base = (config["load"] - 0.7) ** 2
    if config["engine"] == "tree":
        return base + abs(math.log2(config["fanout"]) - 4) / 4
    if config["engine"] == "lsm":
        return base + (config["bloom_bits"] - 10) ** 2 / 100 - 0.2
    return base + 0.5


def _result(value: float | None, state: TrialState = TrialState.COMPLETE) -> Result:
    if value is None:
        return Result.failed("check_tuner: simulated failure", state)
    return Result(TrialState.COMPLETE, value)


def _drive(tuner: Tuner, objective: Callable[[dict], float], steps: int, *, fail_every: int = 0, nan_every: int = 0) -> list[dict]:
    configs = []
    for i in range(steps):
        trial = tuner.ask()
        try:
            tuner.space.validate(trial.config)
        except InvalidConfig as exc:
            raise _Failed(f"suggested an invalid config {trial.config}: {exc}") from None
        configs.append(dict(trial.config))
        if fail_every and i % fail_every == fail_every - 1:
            tuner.tell(trial, _result(None))
        elif nan_every and i % nan_every == nan_every - 1:
            tuner.tell(trial, Result(TrialState.COMPLETE, float("nan")))
        else:
            value = objective(trial.config)
            tuner.tell(trial, _result(-value if tuner.direction == "maximize" else value))
    return configs


class _Failed(Exception):
    """One check failed; the message says why."""


def _check(name: str, condition: bool, detail: str) -> None:
    if not condition:
        raise _Failed(detail)


def _label(factory: TunerFactory) -> str:
    inner = getattr(factory, "func", factory)  # functools.partial
    return getattr(inner, "__qualname__", None) or type(inner).__name__


def check_tuner(factory: TunerFactory, *, steps: int = 20, checks: Sequence[str] | None = None,
                raise_on_failure: bool = True) -> CheckReport:
    """Run `factory`'s tuner through the conformance checks; raises `ConformanceError` listing failures.

    `factory(space, direction=..., seed=...)` must build a fresh tuner. Use
    `steps` >= the tuner's initial design so its model-based path is exercised.
    """
    all_checks: dict[str, Callable[[TunerFactory, int], None]] = {
        "valid_suggestions": _check_valid,
        "seeded_determinism": _check_determinism,
        "failed_and_nan_results": _check_failures,
        "constraints": _check_constraints,
        "conditional_space": _check_conditional,
        "batch_pending": _check_batch,
        "maximize": _check_maximize,
        "enqueue_and_warm_start": _check_enqueue_warm,
        "save_restore": _check_save_restore,
    }
    names = list(checks) if checks is not None else list(all_checks)
    unknown = [n for n in names if n not in all_checks]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {', '.join(all_checks)}")
    report = CheckReport(_label(factory))
    for name in names:
        try:
            all_checks[name](factory, steps)
            report.check(name, True)
        except _Failed as exc:
            report.check(name, False, str(exc))
        except Exception as exc:  # the tuner itself raised: that is a failure of this check, not of the suite
            report.check(name, False, f"raised {type(exc).__name__}: {exc}")
    if raise_on_failure:
        report.raise_for_failures("Tuner")
    return report


def _check_valid(factory, steps):
    tuner = factory(mixed_space(), direction="minimize", seed=0)
    _check("valid_suggestions", isinstance(tuner, Tuner), f"the factory returned {type(tuner).__name__}, not a Tuner")
    _drive(tuner, mixed_objective, steps)
    numbers = [t.number for t, _ in tuner.history]
    _check("valid_suggestions", numbers == sorted(set(numbers)), f"trial numbers are not unique and increasing: {numbers}")
    _check("valid_suggestions", not tuner.pending, "told trials are still pending")


def _check_determinism(factory, steps):
    a = _drive(factory(mixed_space(), direction="minimize", seed=3), mixed_objective, steps)
    b = _drive(factory(mixed_space(), direction="minimize", seed=3), mixed_objective, steps)
    _check("seeded_determinism", a == b, "two tuners with the same seed and the same results suggested different configs")
    c = _drive(factory(mixed_space(), direction="minimize", seed=4), mixed_objective, steps)
    _check("seeded_determinism", a != c, "different seeds gave identical suggestions (is the seed ignored?)")


def _check_failures(factory, steps):
    tuner = factory(mixed_space(), direction="minimize", seed=0)
    _drive(tuner, mixed_objective, steps, fail_every=3, nan_every=4)
    n_bad = sum(1 for _, r in tuner.history if not r.ok)
    _check("failed_and_nan_results", n_bad > 0, "the failures told were not recorded")
    _check(
        "failed_and_nan_results",
        all(math.isfinite(loss) for _, loss in tuner.observations),
        "a failed or NaN result reached the observations",
    )
    # a run where everything fails must still produce valid suggestions
    tuner = factory(mixed_space(), direction="minimize", seed=1)
    _drive(tuner, mixed_objective, max(5, steps // 2), fail_every=1)


def _check_constraints(factory, steps):
    space = mixed_space()
    tuner = factory(space, direction="minimize", seed=0)
    for config in _drive(tuner, mixed_objective, steps):
        _check("constraints", space.satisfies_constraints(config), f"suggested {config} violates a constraint")


def _check_conditional(factory, steps):
    space = conditional_space()
    tuner = factory(space, direction="minimize", seed=0)
    for config in _drive(tuner, conditional_objective, steps):
        active = set(space.active_names(config))
        _check("conditional_space", set(config) == active, f"{config} carries inactive or misses active parameters")


def _check_batch(factory, steps):
    tuner = factory(mixed_space(), direction="minimize", seed=0)
    _drive(tuner, mixed_objective, steps)
    batch = tuner.ask_batch(4)
    _check("batch_pending", len({t.number for t in batch}) == 4, "a batch reused trial numbers")
    _check("batch_pending", len(tuner.pending) == 4, "a batch's trials are not all pending")
    for trial in reversed(batch):  # out of order, as parallel workers finish
        tuner.space.validate(trial.config)
        tuner.tell(trial, _result(mixed_objective(trial.config)))
    _check("batch_pending", not tuner.pending, "trials told out of order stay pending")


def _check_maximize(factory, steps):
    tuner = factory(mixed_space(), direction="maximize", seed=0)
    _drive(tuner, mixed_objective, steps)
    losses = [loss for _, loss in tuner.observations]
    values = [r.value for _, r in tuner.history if r.ok]
    _check("maximize", losses == [-v for v in values], "a maximizing tuner's losses are not the negated values")


def _check_enqueue_warm(factory, steps):
    space = mixed_space()
    tuner = factory(space, direction="minimize", seed=0)
    pinned = {"x": 0.5, "lr": 0.01, "n": 3, "size": 64, "kind": "b", "flag": False}
    tuner.warm_start([(dict(pinned, x=1.0), _result(1.0)), (dict(pinned, x=-1.0), _result(None))])
    tuner.enqueue(pinned)
    trial = tuner.ask()
    _check("enqueue_and_warm_start", trial.config == space.validate(pinned), "the enqueued config was not asked first")
    tuner.tell(trial, _result(mixed_objective(trial.config)))
    _drive(tuner, mixed_objective, steps)
    _check(
        "enqueue_and_warm_start",
        len(tuner.observations) == steps + 2,
        f"expected {steps + 2} observations after warm start, enqueue and {steps} steps, got {len(tuner.observations)}",
    )


def _check_save_restore(factory, steps):
    for space, objective in ((mixed_space(), mixed_objective), (conditional_space(), conditional_objective)):
        tuner = factory(space, direction="minimize", seed=5)
        outside = space.default()
        tuner.warm_start([(outside, _result(objective(outside)))])  # from elsewhere: the state must keep it
        _drive(tuner, objective, steps, fail_every=5)
        pending = tuner.ask()  # still running when saved: it must be tellable after the restore
        state = json.loads(json.dumps(tuner.state_dict()))  # must survive JSON
        _check("save_restore", "history" not in state, "the state holds the history (the caller keeps it)")
        # the history as a study keeps it: its stored trials, read back from JSON
        told = [[t.number, t.config, t.source, r.state.value, r.value, r.metrics, r.error] for t, r in tuner.told()]
        history = [
            (Trial(number=n, config=c, source=src), Result(TrialState(st), v, m, e))
            for n, c, src, st, v, m, e in json.loads(json.dumps(told))
        ]
        clone = factory(space, direction="minimize", seed=5)
        clone.load_state_dict(state, history)
        _check("save_restore", set(clone.pending) == {pending.number}, "a pending trial was lost by the restore")
        for each in (tuner, clone):
            each.tell(pending, _result(objective(pending.config)))
        a = _drive(tuner, objective, max(3, steps // 3))
        b = _drive(clone, objective, max(3, steps // 3))
        _check("save_restore", a == b, "a restored tuner suggests differently from the original")


__all__ = ["CheckReport", "check_system", "ConformanceError", "check_tuner", "conditional_space", "mixed_space", "mixed_objective", "conditional_objective"]
