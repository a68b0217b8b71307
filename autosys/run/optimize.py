"""One-call optimization of a plain Python function: `minimize(fn, space)` / `maximize`.

The function is wrapped as a `System` and run through the same `Study` the CLI
uses, so failures, NaN and constraints behave exactly as for real systems.
`fn` receives the config as a dict and returns a number (or a dict of
metrics holding `metric`); raising or returning NaN records a failed trial.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from autosys.core.space import Config, Space
from autosys.core.system import Measurement, Objective, System
from autosys.tuners.base import Tuner


class FunctionSystem(System):
    """A plain function as a System: the config dict in, a number (or metrics dict) out."""

    name = "function"

    def __init__(self, fn: Callable[[Config], Any], space: Space, direction: str = "minimize", metric: str = "value"):
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        self.fn = fn
        self._space = space
        self._objective = Objective(metric, direction)

    def space(self) -> Space:
        return self._space

    @property
    def objective(self) -> Objective:
        return self._objective

    def evaluate(self, config: Config) -> Measurement:
        value = self.fn(dict(config))
        if isinstance(value, Mapping):
            return Measurement(metrics={k: float(v) for k, v in value.items()})
        return Measurement(metrics={self._objective.metric: float(value)})


@dataclass
class OptimizeResult:
    """The outcome of `minimize` / `maximize`."""

    best_config: Config | None
    best_value: float | None
    trials: pd.DataFrame
    tuner: Tuner
    study: Any = None
    directory: Path | None = None
    n_failed: int = 0
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"OptimizeResult(best_value={self.best_value!r}, best_config={self.best_config!r}, "
            f"trials={len(self.trials)}, failed={self.n_failed})"
        )


def _as_space(space: Space | Mapping[str, Any]) -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, Mapping):
        return Space.from_dict(space)
    raise TypeError(f"space must be a Space or a dict of name -> (low, high) / [choices], not {type(space).__name__}")


def build_tuner(tuner: str | Tuner | Callable[..., Tuner], space: Space, direction: str, seed: int | None, **options: Any) -> Tuner:
    """A tuner from a registered name (CLI names plus this package's strategies), an instance or a factory."""
    if isinstance(tuner, Tuner):
        if options:
            raise ValueError("tuner options apply only when the tuner is given by name")
        return tuner
    if isinstance(tuner, str):
        from autosys.tuners import tuner_class

        return tuner_class(tuner)(space, direction=direction, seed=seed, **options)
    if callable(tuner):
        return tuner(space, direction=direction, seed=seed, **options)
    raise TypeError(f"tuner must be a name, a Tuner or a factory, not {type(tuner).__name__}")


def _optimize(
    fn: Callable[[Config], Any],
    space: Space | Mapping[str, Any],
    *,
    direction: str,
    tuner: str | Tuner | Callable[..., Tuner] = "meta",
    budget: int = 100,
    seed: int | None = 0,
    directory: str | Path | None = None,
    evaluate_default: bool = False,
    callback: Callable | None = None,
    tuner_options: Mapping[str, Any] | None = None,
) -> OptimizeResult:
    from autosys.storage import SQLiteStorage
    from autosys.run.study import Budget, Study

    if budget < 1:
        raise ValueError(f"budget must be at least 1, not {budget}")
    space_ = _as_space(space)
    system = FunctionSystem(fn, space_, direction)
    tuner_obj = build_tuner(tuner, space_, direction, seed, **dict(tuner_options or {}))
    if tuner_obj.direction != direction:
        raise ValueError(f"the tuner was built to {tuner_obj.direction}, but this call asks to {direction}")
    temporary = directory is None
    path = Path(tempfile.mkdtemp(prefix="autosys-opt-")) if temporary else Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if (path / SQLiteStorage.FILENAME).exists():
        raise ValueError(f"{path} already holds a study; choose another directory")
    storage = SQLiteStorage(path)
    spec = {
        "system": "function",
        "system_options": {},
        "tuner": tuner if isinstance(tuner, str) else type(tuner_obj).__name__,
        "tuner_options": dict(tuner_options or {}),
        "seed": seed,
        "budget": {"trials": budget, "seconds": None},
        "fixed": {},
        "objective": system.objective.to_json(),
        "space": space_.to_json(),
        "evaluate_default": evaluate_default,
    }
    storage.save_spec(spec)
    study = Study(system, tuner_obj, storage, budget=Budget(budget, None), spec=spec, directory=path)
    system.workdir = path / "work"
    try:
        study.run(callback)
        best = study.best
        frame = study.dataframe()
        failed = int((frame["state"] != "complete").sum()) if len(frame) else 0
    finally:
        if temporary:
            study.close()
            shutil.rmtree(path, ignore_errors=True)
    return OptimizeResult(
        best_config=None if best is None else dict(best.config),
        best_value=None if best is None else best.value,
        trials=frame,
        tuner=tuner_obj,
        study=None if temporary else study,
        directory=None if temporary else path,
        n_failed=failed,
    )


def minimize(fn: Callable[[Config], Any], space: Space | Mapping[str, Any], *, tuner: str | Tuner | Callable[..., Tuner] = "meta",
             budget: int = 100, seed: int | None = 0, **kwargs: Any) -> OptimizeResult:
    """Minimize `fn(config)` over `space` with `budget` evaluations.

    `space` is a `Space` or a dict such as {"x": (-5.0, 5.0), "n": (1, 64),
    "kind": ["a", "b"]}. `tuner` is a name as for the CLI's --tuner ("meta",
    "bo", "random", ...), a Tuner instance, or a factory(space, direction=,
    seed=). Pass `directory=` to keep the study on disk (then `study` is open),
    `evaluate_default=True` to try the space's default first, `tuner_options=`
    for the tuner's keyword options.
    """
    return _optimize(fn, space, direction="minimize", tuner=tuner, budget=budget, seed=seed, **kwargs)


def maximize(fn: Callable[[Config], Any], space: Space | Mapping[str, Any], *, tuner: str | Tuner | Callable[..., Tuner] = "meta",
             budget: int = 100, seed: int | None = 0, **kwargs: Any) -> OptimizeResult:
    """Maximize `fn(config)` over `space`; see `minimize`."""
    return _optimize(fn, space, direction="maximize", tuner=tuner, budget=budget, seed=seed, **kwargs)


__all__ = ["FunctionSystem", "OptimizeResult", "build_tuner", "maximize", "minimize"]
