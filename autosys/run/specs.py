"""Checks a study spec read back from storage before anything is built from it.

A spec that lacks a key or holds a value of the wrong type (a hand-edited or
damaged study, or one planted in shared storage) is refused with one line
naming the key, instead of a `KeyError` from deep inside `resume`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from autosys.run.multifidelity import MultiFidelity, MultiFidelityError

#: key -> the JSON types its value may have (None allowed where listed)
REQUIRED: dict[str, tuple[type, ...]] = {
    "system": (str,),
    "system_options": (dict,),
    "tuner": (str,),
    "tuner_options": (dict,),
    "seed": (int, type(None)),
    "budget": (dict,),
    "fixed": (dict,),
    "objective": (dict,),
}
BUDGET_KEYS = ("trials", "seconds")


class SpecError(ValueError):
    """A stored study spec that is incomplete or malformed."""


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", int: "an integer", float: "a number", type(None): "null"}
    return " or ".join(names[t] for t in types)


def validate_spec(spec: Mapping[str, Any], where: object = "the study") -> None:
    """Raise `SpecError` (one line naming the key) unless `spec` has every key `resume` reads, well typed."""
    if not isinstance(spec, Mapping):
        raise SpecError(f"{where}: the stored spec is not a JSON object")
    for key, types in REQUIRED.items():
        if key not in spec:
            raise SpecError(f"{where}: the stored spec has no {key!r}; the study cannot be resumed")
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise SpecError(f"{where}: the stored spec's {key!r} must be {_type_names(types)}, not {value!r}")
    budget = spec["budget"]
    for key in BUDGET_KEYS:
        if key not in budget:
            raise SpecError(f"{where}: the stored spec's 'budget' has no {key!r}; the study cannot be resumed")
    trials, seconds = budget["trials"], budget["seconds"]
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise SpecError(f"{where}: the stored spec's budget 'trials' must be a positive integer or null, not {trials!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not math.isfinite(seconds) or seconds <= 0):
        raise SpecError(f"{where}: the stored spec's budget 'seconds' must be a positive number or null, not {seconds!r}")
    if spec["seed"] is not None and spec["seed"] < 0:
        raise SpecError(f"{where}: the stored spec's 'seed' must be 0 or more, not {spec['seed']}")
    _check_multifidelity(spec.get("multifidelity"), where)
    allow = spec.get("allow_risky", "all")
    if allow != "all" and not (isinstance(allow, list) and all(isinstance(name, str) for name in allow)):
        raise SpecError(f"{where}: the stored spec's 'allow_risky' must be \"all\" or a list of knob names, not {allow!r}")


def _check_multifidelity(schedule: Any, where: object) -> None:
    """A stored multi-fidelity schedule: None, or its settings plus two or more increasing positive rungs."""
    if schedule is None:
        return
    if not isinstance(schedule, Mapping):
        raise SpecError(f"{where}: the stored spec's 'multifidelity' must be an object or null, not {schedule!r}")
    rungs = schedule.get("rungs")
    if (not isinstance(rungs, list) or len(rungs) < 2
            or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0 for r in rungs)
            or any(a >= b for a, b in zip(rungs, rungs[1:]))):
        raise SpecError(f"{where}: the stored spec's multifidelity 'rungs' must be two or more increasing positive "
                        f"numbers, not {rungs!r}")
    settings = {k: v for k, v in schedule.items() if k != "rungs"}
    try:
        MultiFidelity.from_json(settings)
    except (MultiFidelityError, TypeError) as exc:
        raise SpecError(f"{where}: the stored spec's 'multifidelity' is malformed: {exc}") from None


__all__ = ["REQUIRED", "SpecError", "validate_spec"]
