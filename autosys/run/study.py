"""A study: a budget, a tuner, a system, an executor and a storage, run as an ask/tell loop.

Every trial is stored before it runs (with the tuner's state, in one
transaction) and again when it ends (with the tuner's state after it was
told), so `Study.resume(directory)` after a crash or SIGKILL continues to
the full budget without repeating a finished trial; a trial that was running
when its process died is recorded as failed ("interrupted").

Trials run on an executor (`autosys.executors`): inline, isolated
subprocesses with timeouts, a local pool, or Dask. With N workers the study
asks the tuner for a trial whenever a worker is free, so up to N trials are
pending in the tuner at once (model-based tuners treat them as fantasies).

Several processes may run one study (`autosys tune --resume DIR` twice, or
on several hosts): every ask and tell happens inside one storage
transaction that first brings this process's tuner up to date (reloading the
shared tuner state when another process saved a newer one), trial numbers
and the budget are counted in storage, heartbeats show which trials are
alive, and trials whose process died are failed (and optionally retried).
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from autosys.core.evaluation import Outcome
from autosys.executors import Executor, SystemRef, TrialTimeout, WorkerLost, make_executor, run_trial
from autosys.run.isolation import no_fork
from autosys.core.registry import make_system
from autosys.run.selection import CONFIRM, best_trial, next_to_confirm, root_choices
from autosys.core.space import InvalidConfig
from autosys.storage import SQLiteStorage, Storage, StorageError, open_storage, storage_exists
from autosys.core.system import Objective, System
from autosys.core.trial import Result, Trial, TrialState
from autosys.tuners import make_tuner, tuner_class
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
        #: the stored tuner-state revision this process's tuner corresponds to
        self._tuner_revision = storage.tuner_revision() if hasattr(storage, "tuner_revision") else 0
        self._in_flight: dict[int, Trial] = {}
        self.grace = self.GRACE

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
        storage: str | None = None,
        confirm: int = 0,
    ) -> "Study":
        """Start a new study in `directory` (which must not hold one already).

        confirm: the last `confirm` trials of the trial budget are a final
        instead of tuner proposals: a few leading configs run in turns, side by
        side, and they decide the answer (autosys/selection.py), so it is not a
        lucky run, a drift of the host, or a config that breaks a limit when run again.

        storage: a postgresql://USER@HOST/DB URL to keep the study in
        PostgreSQL (study name: ?study=NAME, else the directory's name) instead
        of DIR/study.sqlite; `directory` still holds the work files.
        """
        directory = Path(directory)
        location = storage or directory
        if storage_exists(location, study=directory.name):
            existing = open_storage(location, create=False, study=directory.name)
            try:
                if existing.load_spec() is not None or existing.count():
                    raise StudyError(f"{directory} already holds a study; use resume, or choose another --dir")
            finally:
                existing.close()
        budget_ = Budget(budget, seconds)
        if confirm < 0 or (confirm and (budget_.trials is None or confirm >= budget_.trials)):
            raise ValueError(f"confirm must be 0 or more and less than the trial budget ({budget_.trials}), not {confirm}")
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
        tuner_obj = _build_tuner(tuner, tuner_space, system_obj, seed, tuner_options)
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
            "confirm": int(confirm),
            "created_at": time.time(),
        }
        storage_ = open_storage(location, study=directory.name)
        with storage_.transaction():  # a study exists with its spec and tuner state, or not at all
            storage_.save_spec(spec)
            storage_.save_tuner_state(tuner_obj.state_dict())
        return cls(system_obj, tuner_obj, storage_, budget=budget_, spec=spec, directory=directory)

    @classmethod
    def resume(
        cls,
        directory: str | Path,
        *,
        system: System | None = None,
        budget: int | None = None,
        seconds: float | None = None,
        grace: float | None = None,
        storage: str | None = None,
    ) -> "Study":
        """Reopen a study; trials left running by a dead process become failed ("interrupted").

        A trial is dead when its process on this host is gone, or (for other
        hosts) when its heartbeat is older than `grace` seconds (default
        `Study.GRACE`); `run` fails (or, with retries, re-runs) dead trials
        before anything else. Trials of live processes are left to them:
        several processes may resume and run one study at the same time.
        """
        directory = Path(directory)
        if storage is None and not (directory / SQLiteStorage.FILENAME).exists():
            raise StudyError(f"no study to resume in {directory} (expected {SQLiteStorage.FILENAME})")
        if storage is not None and not storage_exists(storage, study=directory.name):
            raise StudyError(f"no study {directory.name!r} to resume in {storage.split('@')[-1]}")
        storage = open_storage(storage or directory, create=False, study=directory.name)
        spec = storage.load_spec()
        if spec is None:
            raise StudyError(f"{directory}: the study file has no spec (it was never fully created)")
        if system is None:
            system = make_system(spec["system"], spec["system_options"])
        space = system.space()
        tuner_space = space.subspace(spec["fixed"]) if spec["fixed"] else space
        tuner = _build_tuner(spec["tuner"], tuner_space, system, spec["seed"], spec["tuner_options"])
        study_grace = cls.GRACE if grace is None else grace
        stored_budget = spec["budget"]
        budget_ = Budget(
            budget if budget is not None else stored_budget["trials"],
            seconds if seconds is not None else stored_budget["seconds"],
        )
        if budget_.trials != stored_budget["trials"] or budget_.seconds != stored_budget["seconds"]:
            spec["budget"] = {"trials": budget_.trials, "seconds": budget_.seconds}
            storage.save_spec(spec)
        study = cls(system, tuner, storage, budget=budget_, spec=spec, directory=directory)
        study.grace = study_grace
        study._tuner_revision = -1  # load the stored state and tell what finished while it was pending
        with storage.transaction():
            study._sync_tuner()
        return study

    # ------------------------------------------------------------------ running
    #: seconds between heartbeats of this process's running trials (and checks for dead ones)
    HEARTBEAT = 2.0
    #: a running trial whose heartbeat is older than this (s) is declared dead; on this host a
    #: trial whose process is gone is declared dead at once
    GRACE = 30.0

    @property
    def objective(self) -> Objective:
        return self.system.objective

    def n_finished(self) -> int:
        return self.storage.count(FINISHED)

    def remaining(self) -> int | None:
        """Trials still to finish before the trial budget is spent (None without a trial budget)."""
        if self.budget.trials is None:
            return None
        return max(self.budget.trials - self.n_finished(), 0)

    def run(
        self,
        callback: Callback | None = None,
        *,
        executor: Executor | str | None = None,
        workers: int | None = None,
        timeout: float | None = None,
        retries: int = 0,
        heartbeat: float | None = None,
        grace: float | None = None,
        stop_when: Callable[["Study"], bool] | None = None,
    ) -> "Study":
        """Run trials until the budget is spent (counting trials of other processes on this study).

        executor: an `Executor`, or a name ("inline", "subprocess", "pool",
            "dask") built here with `workers` and `timeout` and shut down at
            the end; the default is inline, or subprocess when a timeout is given.
        retries: how many more times a trial whose worker died is run: in
            place when an executor lost its worker, as a new trial of the same
            config when a process working on this study died.
        heartbeat, grace: seconds between heartbeats, and without one before a
            trial of another host is declared dead (defaults HEARTBEAT, GRACE).
        stop_when: asked before each new trial; True ends the study early (e.g.
            `autosys.tuners.stopping.stop_on_stagnation(patience)`); running trials finish.
        """
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        owned = not isinstance(executor, Executor)
        if owned:
            kind = executor or ("subprocess" if timeout is not None else "inline")
            executor = make_executor(str(kind), workers=workers, timeout=timeout)
        assert isinstance(executor, Executor)
        heartbeat = heartbeat or self.HEARTBEAT
        grace = self.grace if grace is None else grace
        start = time.monotonic()
        if self.system.workdir is None and self.directory is not None:
            self.system.workdir = self.directory / "work"
            self.system.workdir.mkdir(parents=True, exist_ok=True)
        in_process = executor.in_process
        target: System | SystemRef = self.system if in_process else SystemRef.of(self.system, self.system.workdir)
        slots = 1 if (self.system.exclusive and executor.local) else max(1, executor.workers)
        futures: dict[cf.Future, Trial] = {}
        attempts: dict[int, int] = {}
        beat = _Heartbeat(self.storage, self._in_flight, heartbeat)
        failed = False
        stopped = False
        if in_process:
            self.system.setup()
        try:
            beat.start()
            last_check = -float("inf")
            while True:
                if time.monotonic() - last_check >= heartbeat:
                    adopted, failed_dead = self._reap(grace, retries)
                    for record in adopted:  # trials of dead processes, to run again here
                        self._in_flight[record.number] = record
                        futures[executor.submit(run_trial, target, record.config)] = record
                    if callback is not None:
                        for record in failed_dead:
                            callback(self, record)
                    last_check = time.monotonic()
                stopped = stopped or (stop_when is not None and stop_when(self))
                while len(futures) < slots and not self._out_of_time(start) and not stopped:
                    record = self._claim()
                    if record is None:
                        break
                    self._in_flight[record.number] = record
                    futures[executor.submit(run_trial, target, record.config)] = record
                if not futures:
                    # trials other processes still run may yet fail and be retried: wait them out
                    if stopped or self._out_of_time(start) or not self.storage.count((TrialState.RUNNING,)):
                        break
                    time.sleep(heartbeat)
                    continue
                done, _ = cf.wait(list(futures), timeout=heartbeat, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    record = futures.pop(future)
                    outcome, lost = _outcome_of(future)
                    tries = attempts.get(record.number, 1)
                    if lost and tries <= retries:
                        attempts[record.number] = tries + 1
                        self.storage.set_attempts(record.number, tries + 1)
                        record.info["attempts"] = tries + 1
                        futures[executor.submit(run_trial, target, record.config)] = record
                        continue
                    self._in_flight.pop(record.number, None)
                    self._finish(record, outcome, callback)
        except BaseException as exc:
            failed = True
            if isinstance(exc, KeyboardInterrupt):
                reason = "interrupted by the user (Ctrl-C)"
            else:
                reason = f"interrupted: the study stopped on {type(exc).__name__}: {exc}"
            for future in futures:
                future.cancel()
            for record in list(self._in_flight.values()):
                record.state, record.error = TrialState.FAILED, reason
                try:
                    self._finish(record, Outcome(TrialState.FAILED, error=reason), None)
                except Exception:
                    pass  # the storage itself may be what failed; resume will mark the trial
            raise
        finally:
            beat.stop()
            self._in_flight.clear()
            if owned:
                executor.shutdown(wait=not failed, cancel_futures=True)
            if in_process:
                self.system.teardown()
        return self

    def _out_of_time(self, start: float) -> bool:
        return self.budget.seconds is not None and time.monotonic() - start >= self.budget.seconds

    def _has_default(self) -> bool:
        return any(t.source == "default" for t in self.storage.trials())

    def _claim(self) -> Trial | None:
        """Record the next trial as running (the default first); None when the trial budget is taken."""
        with self.storage.transaction():
            if self.budget.trials is not None and self.storage.count() >= self.budget.trials:
                return None
            self._sync_tuner()
            if self.spec.get("evaluate_default", True) and not self._has_default():
                return self.storage.claim_trial(Trial(number=-1, config=self.system.default(), source="default"))
            confirm = int(self.spec.get("confirm", 0))
            if confirm and self.budget.trials is not None and self.storage.count() >= self.budget.trials - confirm:
                config = next_to_confirm(self.storage.trials(), self.objective, confirm, root_choices(self.tuner.space))
                if config is not None:  # nothing feasible yet: keep searching instead
                    return self.storage.claim_trial(Trial(number=-1, config=config, source=CONFIRM, seed=self.spec["seed"]))
            proposal = self.tuner.ask()
            record = Trial(
                number=-1,
                config=proposal.config,
                source=proposal.source,
                seed=self.spec["seed"],
                info={"tuner_number": proposal.number},
            )
            self.storage.claim_trial(record, tuner_state=self.tuner.state_dict())
            self._tuner_revision = self.storage.tuner_revision()
            return record

    def _sync_tuner(self) -> bool:
        """Bring this process's tuner up to date with the study (inside a storage transaction).

        Reloads the stored tuner state when another process saved a newer one,
        then tells the tuner every finished trial it has not been told (a
        trial finished by another process, or failed because its process died).
        """
        revision = self.storage.tuner_revision()
        if revision != self._tuner_revision:
            state = self.storage.load_tuner_state()
            if state is not None:
                self.tuner.load_state_dict(state)
            self._tuner_revision = revision
        told = {t.number for t, _ in self.tuner.history}
        changed = False
        for stored in self.storage.finished_for_tuner(told):
            number = stored.info["tuner_number"]
            trial = self.tuner.pending.get(number) or Trial(number=number, config=stored.config, source=stored.source)
            self.tuner.tell(trial, _result_of(stored))
            changed = True
        if changed:
            self._tuner_revision = self.storage.save_tuner_state(self.tuner.state_dict())
        return changed

    def _reap(self, grace: float, retries: int) -> tuple[list[Trial], list[Trial]]:
        """Fail the trials whose process died; returns (adopted to run again here, failed for good).

        A dead trial is re-run (same number, same config, attempts + 1) while
        its attempts do not exceed `retries`; the others are told to the tuner
        as failed.
        """
        with self.storage.transaction():
            dead = self.storage.reap(grace)
            adopted = []
            for trial in dead:
                if retries and self.storage.attempts(trial.number) <= retries:
                    self.storage.adopt(trial.number)
                    trial.state, trial.error, trial.finished_at = TrialState.RUNNING, None, None
                    trial.info["attempts"] = self.storage.attempts(trial.number)
                    adopted.append(trial)
            if dead:
                self._sync_tuner()
        return adopted, [t for t in dead if t not in adopted]

    def _finish(self, trial: Trial, outcome: Outcome, callback: Callback | None) -> None:
        trial.state = outcome.state
        trial.value = outcome.value
        trial.metrics = outcome.metrics
        trial.error = outcome.error or outcome.info.get("infeasible")
        trial.info = {**trial.info, **outcome.info, "seconds": outcome.seconds}
        with self.storage.transaction():
            self._sync_tuner()
            if self.storage.finish_trial(trial):
                number = trial.info.get("tuner_number")
                if number is not None:
                    proposal = self.tuner.pending.get(number) or Trial(number=number, config=trial.config, source=trial.source)
                    self.tuner.tell(proposal, outcome.result)
                else:
                    try:
                        self.tuner.space.validate(trial.config)
                    except InvalidConfig:
                        pass  # outside the --set subspace: a baseline only, nothing for the tuner
                    else:
                        self.tuner.warm_start([(trial.config, outcome.result)])
                self._tuner_revision = self.storage.save_tuner_state(self.tuner.state_dict())
        if callback is not None:
            callback(self, trial)

    # ------------------------------------------------------------------ results
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]:
        return self.storage.trials(states)

    def feasible_trials(self) -> list[Trial]:
        return [t for t in self.storage.trials((TrialState.COMPLETE,)) if "infeasible" not in t.info]

    @property
    def best(self) -> Trial | None:
        """The best feasible config's representative trial (the default included), or None.

        Configs are ranked by the conservative median of their runs (of their
        final runs, with `confirm`), and one that broke a limit in any run is
        out (autosys/selection.py); a config run once is ranked by that run.
        """
        return best_trial(self.storage.trials(), self.objective)

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


def _outcome_of(future: cf.Future) -> tuple[Outcome, bool]:
    """What a finished future means for its trial, and whether its worker was lost (retryable)."""
    try:
        outcome = future.result()
    except TrialTimeout as exc:
        return Outcome(TrialState.TIMED_OUT, error=str(exc)), False
    except WorkerLost as exc:
        return Outcome(TrialState.FAILED, error=f"worker lost: {exc}"), True
    except cf.CancelledError:
        return Outcome(TrialState.FAILED, error="cancelled before it ran"), False
    except Exception as exc:  # e.g. distributed.KilledWorker, a pickling error
        name = type(exc).__name__
        lost = name == "KilledWorker"
        return Outcome(TrialState.FAILED, error=f"{'worker lost: ' if lost else ''}{name}: {exc}"), lost
    if not isinstance(outcome, Outcome):
        return Outcome(TrialState.FAILED, error=f"the executor returned {type(outcome).__name__}, not an Outcome"), False
    return outcome, False


class _Heartbeat:
    """A thread that stamps this process's running trials every `interval` s, on its own connection."""

    def __init__(self, storage: Storage, running: Mapping[int, Trial], interval: float):
        self.storage, self.running, self.interval = storage, running, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="autosys-heartbeat", daemon=True)

    def start(self) -> None:
        if hasattr(self.storage, "clone"):
            self._thread.start()

    def _loop(self) -> None:
        # no_fork: a measurement forked while this thread is inside SQLite would inherit SQLite's
        # mutex held, and hang on its first SQLite call (autosys/isolation.py)
        try:
            with no_fork():
                storage = self.storage.clone()
        except Exception:
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    with no_fork():
                        storage.heartbeat(list(self.running))
                except Exception:
                    pass  # a busy or broken file: the study's own writes will report it
        finally:
            with no_fork():
                storage.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def _build_tuner(name: str, space, system: System, seed: int, options: Mapping[str, Any] | None) -> Tuner:
    """The named tuner; a system's `features(config)` goes to tuners that take `features` (cost models),
    and its objective's metrics to tuners that take `objectives` (multi-objective)."""
    options = dict(options or {})
    features = getattr(system, "features", None)
    accepted = inspect.signature(tuner_class(name)).parameters
    if callable(features) and "features" not in options and "features" in accepted:
        options["features"] = features
    if "objectives" in accepted and "objectives" not in options:  # multi-objective tuners (ParEGO)
        options["objectives"] = [list(pair) for pair in system.objective.metrics]
    return make_tuner(name, space, direction=system.objective.direction, seed=seed, **options)


def _result_of(trial: Trial) -> Result:
    if trial.state == TrialState.COMPLETE and "infeasible" not in trial.info:
        return Result(TrialState.COMPLETE, trial.value, trial.metrics)
    return Result(trial.state if trial.state != TrialState.COMPLETE else TrialState.FAILED, None, trial.metrics, trial.error)


def open_study(directory: str | Path, storage: str | None = None) -> tuple[SQLiteStorage, dict]:
    """Open a study's storage for inspection (show, report) without its system.

    storage: a postgresql:// URL when the study lives there (named after the directory).
    """
    storage = open_storage(storage or directory, create=False, study=Path(directory).name)
    spec = storage.load_spec()
    if spec is None:
        raise StorageError(f"{directory}: no study spec in the file")
    return storage, spec


__all__ = ["Budget", "Study", "StudyError", "open_study"]
