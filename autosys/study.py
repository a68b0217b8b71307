"""A study: a budget, a tuner, a system and a storage, run as an ask/tell loop.

Every trial is stored before it runs (with the tuner's state, in one
transaction) and again when it ends, so `Study.resume(directory)` after a
crash or SIGKILL continues to the full budget without repeating a finished
trial; a trial that was running when the process died is recorded as failed
("interrupted").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from autosys.evaluation import Outcome, evaluate_config
from autosys.registry import make_system
from autosys.space import InvalidConfig
from autosys.storage import SQLiteStorage, Storage, StorageError
from autosys.system import Objective, System
from autosys.trial import Result, Trial, TrialState
from autosys.tuners import make_tuner
from autosys.tuners.base import Tuner

FINISHED = (TrialState.COMPLETE, TrialState.FAILED, TrialState.TIMED_OUT)


class StudyError(RuntimeError):
    """A study cannot be created or resumed as asked (shown to users as one line)."""


@dataclass
class Budget:
    """Stop after `trials` finished trials (the default's included) or `seconds` of wall time."""

    trials: int | None = 20
    seconds: float | None = None

    def __post_init__(self):
        if self.trials is None and self.seconds is None:
            raise ValueError("a budget needs a trial count, a time limit, or both")
        if self.trials is not None and self.trials < 1:
            raise ValueError(f"the trial budget must be at least 1, not {self.trials}")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"the time budget must be positive, not {self.seconds}")


Callback = Callable[["Study", Trial], None]


class Study:
    """Runs and records the tuning of one system. Build with `create` or `resume`."""

    def __init__(
        self,
        system: System,
        tuner: Tuner,
        storage: Storage,
        *,
        budget: Budget,
        spec: Mapping[str, Any],
        directory: Path | None = None,
    ):
        self.system = system
        self.tuner = tuner
        self.storage = storage
        self.budget = budget
        self.spec = dict(spec)
        self.directory = directory

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        directory: str | Path,
        system: str | System,
        *,
        system_options: Mapping[str, Any] | None = None,
        tuner: str = "random",
        tuner_options: Mapping[str, Any] | None = None,
        budget: int | None = 20,
        seconds: float | None = None,
        seed: int = 0,
        fixed: Mapping[str, Any] | None = None,
        evaluate_default: bool = True,
    ) -> "Study":
        """Start a new study in `directory` (which must not hold one already)."""
        directory = Path(directory)
        if (directory / SQLiteStorage.FILENAME).exists():
            raise StudyError(f"{directory} already holds a study; use resume, or choose another --dir")
        budget_ = Budget(budget, seconds)
        if isinstance(system, str):
            system_name, system_obj = system, make_system(system, system_options)
        else:
            system_obj = system
            system_name = getattr(system, "_registry_name", None) or type(system).__name__
            system_options = system.options()
        space = system_obj.space()
        fixed_clean = {}
        if fixed:
            fixed_clean = {k: v for k, v in space.subspace(fixed).default().items() if k in fixed}
        tuner_space = space.subspace(fixed_clean) if fixed_clean else space
        if fixed_clean:
            try:
                space.complete(fixed_clean)
            except InvalidConfig as exc:
                pinned = ", ".join(f"{k}={v}" for k, v in fixed_clean.items())
                raise InvalidConfig(f"pinning {pinned} leaves no valid config: {exc}") from None
        tuner_obj = make_tuner(
            tuner, tuner_space, direction=system_obj.objective.direction, seed=seed, **dict(tuner_options or {})
        )
        spec = {
            "system": system_name,
            "system_options": dict(system_options or {}),
            "tuner": tuner,
            "tuner_options": dict(tuner_options or {}),
            "seed": seed,
            "budget": {"trials": budget_.trials, "seconds": budget_.seconds},
            "fixed": fixed_clean,
            "objective": system_obj.objective.to_json(),
            "space": space.to_json(),
            "evaluate_default": evaluate_default,
            "created_at": time.time(),
        }
        storage = SQLiteStorage(directory)
        storage.save_spec(spec)
        storage.save_tuner_state(tuner_obj.state_dict())
        return cls(system_obj, tuner_obj, storage, budget=budget_, spec=spec, directory=directory)

    @classmethod
    def resume(
        cls,
        directory: str | Path,
        *,
        system: System | None = None,
        budget: int | None = None,
        seconds: float | None = None,
    ) -> "Study":
        """Reopen a study; trials left running by a dead process become failed ("interrupted")."""
        directory = Path(directory)
        if not (directory / SQLiteStorage.FILENAME).exists():
            raise StudyError(f"no study to resume in {directory} (expected {SQLiteStorage.FILENAME})")
        storage = SQLiteStorage(directory, create=False)
        spec = storage.load_spec()
        if spec is None:
            raise StudyError(f"{directory}: the study file has no spec (it was never fully created)")
        if system is None:
            system = make_system(spec["system"], spec["system_options"])
        space = system.space()
        tuner_space = space.subspace(spec["fixed"]) if spec["fixed"] else space
        tuner = make_tuner(
            spec["tuner"],
            tuner_space,
            direction=system.objective.direction,
            seed=spec["seed"],
            **spec["tuner_options"],
        )
        state = storage.load_tuner_state()
        if state is not None:
            tuner.load_state_dict(state)
        storage.mark_interrupted()
        # tell the tuner what finished while its saved state still listed it as pending
        for stored in storage.trials(FINISHED):
            number = stored.info.get("tuner_number")
            if number is not None and number in tuner.pending:
                tuner.tell(tuner.pending[number], _result_of(stored))
        stored_budget = spec["budget"]
        budget_ = Budget(
            budget if budget is not None else stored_budget["trials"],
            seconds if seconds is not None else stored_budget["seconds"],
        )
        spec["budget"] = {"trials": budget_.trials, "seconds": budget_.seconds}
        storage.save_spec(spec)
        return cls(system, tuner, storage, budget=budget_, spec=spec, directory=directory)

    # ------------------------------------------------------------------ running
    @property
    def objective(self) -> Objective:
        return self.system.objective

    def n_finished(self) -> int:
        return len(self.storage.trials(FINISHED))

    def remaining(self) -> int | None:
        if self.budget.trials is None:
            return None
        return max(self.budget.trials - self.n_finished(), 0)

    def run(self, callback: Callback | None = None) -> "Study":
        """Run trials until the budget is spent; safe to call again after a crash via `resume`."""
        start = time.monotonic()
        if self.system.workdir is None and self.directory is not None:
            self.system.workdir = self.directory / "work"
            self.system.workdir.mkdir(parents=True, exist_ok=True)
        self.system.setup()
        try:
            if self.spec.get("evaluate_default", True) and not self._has_default():
                if self.remaining() != 0:
                    self._run_default(callback)
            while self.remaining() != 0:
                if self.budget.seconds is not None and time.monotonic() - start >= self.budget.seconds:
                    break
                self._run_one(callback)
        finally:
            self.system.teardown()
        return self

    def _has_default(self) -> bool:
        return any(t.source == "default" for t in self.storage.trials())

    def _run_default(self, callback: Callback | None) -> None:
        config = self.system.default()
        trial = self.storage.add_trial(Trial(number=-1, config=config, source="default"))
        outcome = self._evaluate(trial)
        self._finish(trial, outcome, callback)
        try:
            self.tuner.space.validate(config)
        except InvalidConfig:
            return  # outside the --set subspace: a baseline only, nothing for the tuner
        self.tuner.warm_start([(config, outcome.result)])
        self.storage.save_tuner_state(self.tuner.state_dict())

    def _run_one(self, callback: Callback | None) -> None:
        proposal = self.tuner.ask()
        record = Trial(
            number=-1,
            config=proposal.config,
            source=proposal.source,
            seed=self.spec["seed"],
            info={"tuner_number": proposal.number},
        )
        self.storage.add_trial(record, tuner_state=self.tuner.state_dict())
        outcome = self._evaluate(record)
        self._finish(record, outcome, callback)
        self.tuner.tell(proposal, outcome.result)
        self.storage.save_tuner_state(self.tuner.state_dict())

    def _evaluate(self, trial: Trial) -> Outcome:
        try:
            return evaluate_config(self.system, trial.config)
        except KeyboardInterrupt:
            trial.state, trial.error = TrialState.FAILED, "interrupted by the user (Ctrl-C)"
            self.storage.finish_trial(trial)
            raise

    def _finish(self, trial: Trial, outcome: Outcome, callback: Callback | None) -> None:
        trial.state = outcome.state
        trial.value = outcome.value
        trial.metrics = outcome.metrics
        trial.error = outcome.error or outcome.info.get("infeasible")
        trial.info = {**trial.info, **outcome.info, "seconds": outcome.seconds}
        self.storage.finish_trial(trial)
        if callback is not None:
            callback(self, trial)

    # ------------------------------------------------------------------ results
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]:
        return self.storage.trials(states)

    def feasible_trials(self) -> list[Trial]:
        return [t for t in self.storage.trials((TrialState.COMPLETE,)) if "infeasible" not in t.info]

    @property
    def best(self) -> Trial | None:
        """The best feasible completed trial (the default included), or None."""
        best: Trial | None = None
        for trial in self.feasible_trials():
            if best is None or self.objective.better(trial.value, best.value):
                best = trial
        return best

    @property
    def default_trial(self) -> Trial | None:
        return next((t for t in self.storage.trials() if t.source == "default"), None)

    def dataframe(self) -> pd.DataFrame:
        """One row per trial: number, state, value, config.* and metrics.* columns."""
        rows = []
        for t in self.storage.trials():
            row: dict[str, Any] = {
                "number": t.number,
                "state": t.state.value,
                "source": t.source,
                "value": t.value,
                "error": t.error,
                "seconds": t.duration,
                "feasible": t.state == TrialState.COMPLETE and "infeasible" not in t.info,
            }
            row.update({f"config.{k}": v for k, v in t.config.items()})
            row.update({f"metrics.{k}": v for k, v in t.metrics.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        self.dataframe().to_csv(path, index=False)
        return path

    def summary(self) -> dict[str, Any]:
        """The JSON the CLI's --json writes: default vs best, trial counts, baselines."""

        def entry(trial: Trial | None) -> dict | None:
            if trial is None:
                return None
            return {"number": trial.number, "config": trial.config, "metrics": trial.metrics, "error": trial.error}

        trials = self.storage.trials()
        out: dict[str, Any] = {
            "system": self.spec["system"],
            "system_options": self.spec["system_options"],
            "tuner": self.spec["tuner"],
            "seed": self.spec["seed"],
            "objective": self.objective.to_json(),
            "default": entry(self.default_trial),
            "best": entry(self.best),
            "trials": {
                "complete": sum(t.state == TrialState.COMPLETE for t in trials),
                "failed": sum(t.state == TrialState.FAILED for t in trials),
                "timed_out": sum(t.state == TrialState.TIMED_OUT for t in trials),
                "infeasible": sum("infeasible" in t.info for t in trials),
            },
        }
        baselines = getattr(self.system, "baselines", None)
        if callable(baselines):
            try:
                out["baselines"] = baselines()
            except Exception as exc:  # a baseline that fails must not hide the study's result
                out["baselines"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def close(self) -> None:
        self.storage.close()


def _result_of(trial: Trial) -> Result:
    if trial.state == TrialState.COMPLETE and "infeasible" not in trial.info:
        return Result(TrialState.COMPLETE, trial.value, trial.metrics)
    return Result(trial.state if trial.state != TrialState.COMPLETE else TrialState.FAILED, None, trial.metrics, trial.error)


def open_study(directory: str | Path) -> tuple[SQLiteStorage, dict]:
    """Open a study's storage read-only-ish for inspection (show, report) without its system."""
    storage = SQLiteStorage(directory, create=False)
    spec = storage.load_spec()
    if spec is None:
        raise StorageError(f"{directory}: no study spec in the file")
    return storage, spec


__all__ = ["Budget", "Study", "StudyError", "open_study"]
