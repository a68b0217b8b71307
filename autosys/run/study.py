"""A study: a budget, a tuner, a system, an executor and a storage, run as an ask/tell loop.

Every trial is stored before it runs (with the tuner's small extra state:
random state, pending proposals, model extras; in one transaction) and again
when it ends; the tuner's history is never stored twice: a tuner is rebuilt
from the stored trials plus that extra state. So `Study.resume(directory)`
after a crash or SIGKILL continues to the full budget without repeating a
finished trial; a trial that was running when its process died is recorded
as failed ("interrupted").

Trials run on an executor (`autosys.executors`): inline, isolated
subprocesses with timeouts, a local pool, or Dask. With N workers the study
asks the tuner for a trial whenever a worker is free, so up to N trials are
pending in the tuner at once (model-based tuners treat them as fantasies).

Several processes may run one study (`autosys tune --resume DIR` twice, or
on several hosts): every ask and tell happens inside one storage
transaction that first brings this process's tuner up to date (rebuilding
it from the trials when another process saved a newer extra state), trial numbers
and the budget are counted in storage, heartbeats show which trials are
alive, and trials whose process died are failed (and optionally retried).
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from autosys.core.evaluation import Outcome
from autosys.core.plugins import check_stored_name
from autosys.executors import Executor, SystemRef, TrialTimeout, WorkerLost, make_executor, run_trial
from autosys.executors.base import release_workspace
from autosys.run.monitoring import DEFAULT_INTERVAL as DEFAULT_MONITOR_INTERVAL, run_monitored_trial
from autosys.run.isolation import no_fork
from autosys.core.registry import make_system, rebuild_system
from autosys.core.spec import redact_options
from autosys.run.intensify import INTENSIFY, next_rerun, race_state
from autosys.run.progress import log_trial
from autosys.run.multifidelity import (
    MultiFidelity,
    MultiFidelityError,
    calibrate,
    calibrated,
    config_rung_values,
    race_rung,
)
from autosys.run.selection import (
    CONFIRM, ConfigRuns, best_trial, gain_over_default, next_to_confirm, root_choices, runs_of,
)
from autosys.run.specs import validate_spec
from autosys.core.space import ALLOW_ALL, InvalidConfig, config_key
from autosys.storage import SQLiteStorage, Storage, StorageError, open_storage, storage_exists
from autosys.core.system import Objective, System
from autosys.core.trial import Trial, TrialState
from autosys.tuners import make_tuner, tuner_class
from autosys.tuners.base import Tuner, warm_start_entry

FINISHED = (TrialState.COMPLETE, TrialState.FAILED, TrialState.TIMED_OUT, TrialState.PRUNED)
#: the storage event kind of a staged trial's value at one rung (autosys/run/multifidelity.py)
INTERMEDIATE = "intermediate"
START = "start"  # the source of a `start_from` config


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
        self._tuner_revision = storage.tuner_revision()
        #: stored trials no tuner proposed (default, confirm, intensify re-runs) that the tuner has seen: told as warm starts,
        #: or left out (outside a --set subspace)
        self._baselines: set[int] = set()
        self._in_flight: dict[int, Trial] = {}
        self.grace = self.GRACE
        settings = dict(self.spec.get("multifidelity") or {})
        settings.setdefault("guard", False)  # a schedule stored before the guard resumes without it
        settings.setdefault("anchor", False)  # likewise the default's run at the lowest rung
        settings.setdefault("leap", False)  # and skipping rungs that cannot judge a trial
        #: the fidelities tuner proposals are measured at in stages (empty: full fidelity only)
        self.rungs: list[float | int] = list(settings.pop("rungs", []))
        self.multifidelity = MultiFidelity.from_json(settings) if self.rungs else None

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
        unique: bool = False,
        intensify: bool = True,
        multifidelity: MultiFidelity | Mapping[str, Any] | bool | None = None,
        allow_risky: Sequence[str] | str = (),
        start_from: Sequence[Mapping[str, Any]] = (),
    ) -> "Study":
        """Start a new study in `directory` (new, or empty; see `claim_directory`).

        start_from: configs to measure first, right after the default (an
        expert's rules, last year's production config): each a mapping of
        knobs, the others at their defaults. They are the tuner's first asks
        (kept in its saved state, so a resumed study still runs them), told
        to it and raced against the incumbent like any proposal.

        unique: when `directory` exists already, make DIR-2, DIR-3, ... instead
        of refusing (the CLI's default name, so runs started in one second get a study each).

        confirm: the last `confirm` trials of the trial budget are a final
        instead of tuner proposals: a few leading configs run in turns, side by
        side, and they decide the answer (autosys/selection.py), so it is not a
        lucky run, a drift of the host, or a config that breaks a limit when run again.

        intensify: race challengers against the incumbent with paired re-runs
        as the study goes (autosys/run/intensify.py); the answer is the
        incumbent. Stored in the spec: a study made before (no key) resumes without.

        multifidelity: measure tuner proposals in stages up the system's
        fidelity rungs, pruning those outside the best 1/eta at a rung
        (`MultiFidelity` settings, a mapping of them, or True for the defaults;
        autosys/run/multifidelity.py). The default, re-runs and the final
        stay at full fidelity, and only full-fidelity runs can be the answer.

        allow_risky: knobs whose declared risk (durability, other clients locked
        out, unbounded disk use; `Param.risk`) the user accepts, or "all". Every
        other knob's risky values are left out of the search (`Space.safe`).

        storage: a postgresql://USER@HOST/DB URL to keep the study in
        PostgreSQL (study name: ?study=NAME, else the directory's name) instead
        of DIR/study.sqlite; `directory` still holds the work files.
        """
        directory = Path(directory)
        location = storage or directory
        if not unique and storage_exists(location, study=directory.name):
            existing = open_storage(location, create=False, study=directory.name)
            try:
                if existing.load_spec() is not None or existing.count():
                    raise StudyError(f"{directory} already holds a study; use resume, or choose another --dir")
            finally:
                existing.close()
        budget_ = Budget(budget, seconds)
        if confirm < 0 or (confirm and (budget_.trials is None or confirm >= budget_.trials)):
            raise ValueError(f"confirm must be 0 or more and less than the trial budget ({budget_.trials}), not {confirm}")
        system_obj = make_system(system, system_options) if isinstance(system, str) else system
        stored_system = system_obj.spec.to_json()  # secrets, URL passwords and commands left out
        allowed = _allowed_risks(allow_risky)
        space = system_obj.space().safe(allowed)
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
        for i, config in enumerate(start_from):
            try:
                start = tuner_space.complete({k: v for k, v in dict(config).items() if k not in fixed_clean})
                tuner_obj.enqueue(start, source=START)
            except InvalidConfig as exc:
                raise InvalidConfig(f"start_from[{i}] is not a config of {system_obj.name}'s tuned space: {exc}") from None
        schedule = None
        try:
            settings = MultiFidelity.from_json(multifidelity)
            if settings is not None:
                schedule = {**settings.to_json(), "rungs": settings.rungs(system_obj.fidelity())}
        except (MultiFidelityError, ValueError) as exc:
            raise StudyError(f"multi-fidelity for {system_obj.name}: {exc}") from None
        spec = {
            "system": stored_system["system"],
            "system_options": stored_system["system_options"],
            "tuner": tuner,
            "tuner_options": dict(tuner_options or {}),
            "seed": seed,
            "budget": {"trials": budget_.trials, "seconds": budget_.seconds},
            "fixed": fixed_clean,
            "objective": system_obj.objective.to_json(),
            "space": space.to_json(),
            "evaluate_default": evaluate_default,
            "confirm": int(confirm),
            "intensify": bool(intensify),
            "multifidelity": schedule,
            "allow_risky": allowed,
            "created_at": time.time(),
        }
        directory, made = claim_directory(directory, unique=unique, storage=storage)
        try:
            storage_ = open_storage(storage or directory, study=directory.name)
            with storage_.transaction():  # a study exists with its spec and tuner state, or not at all
                storage_.save_spec(spec)
                storage_.save_tuner_state(tuner_obj.state_dict())
        except BaseException:
            _unclaim(directory, made)
            raise
        return cls(system_obj, tuner_obj, storage_, budget=budget_, spec=spec, directory=directory)

    @classmethod
    def resume(
        cls,
        directory: str | Path,
        *,
        system: System | str | None = None,
        system_options: Mapping[str, Any] | None = None,
        budget: int | None = None,
        seconds: float | None = None,
        grace: float | None = None,
        storage: str | None = None,
        tuner: str | None = None,
    ) -> "Study":
        """Reopen a study; trials left running by a dead process become failed ("interrupted").

        system: a System to use as is; or the name the user gives again (a
        stored `module:Class` system is imported only when it equals this); or
        None: the stored system, rebuilt only from a registered name.
        system_options: what the user gives again that a study never stores:
        secret options (else read from AUTOSYS_<OPTION>) and commands to run (a
        stored one is ignored with a `StoredOptionIgnored` warning); see
        `autosys.core.registry.rebuild_system`.

        tuner: the tuner the user names again; a stored `module:Class` tuner is
        imported only when it equals this (autosys.core.plugins.check_stored_name).

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
        validate_spec(spec, directory)
        check_stored_name(spec["tuner"], tuner, kind="tuner", flag="--tuner")
        if system is None or isinstance(system, str):
            try:
                system = rebuild_system(spec, named=system, given=system_options)
            except BaseException:
                storage.close()
                raise
        elif system_options:
            storage.close()
            raise ValueError("system_options apply only when the study rebuilds its system (system given by name or not at all)")
        space = system.space().safe(spec.get("allow_risky", ALLOW_ALL))  # a study from before risks existed allowed all
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
        study._tuner_revision = -1  # rebuild the tuner from the stored trials and extra state
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
        monitor_interval: float | None = DEFAULT_MONITOR_INTERVAL,
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
        monitor_interval: seconds between readings of the system's monitors while each
            trial runs (default 1 Hz), summarized into `trial.info["monitors"]`
            (autosys/run/monitoring.py); None or 0 turns trial monitoring off.
        """
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        if monitor_interval is not None and not (isinstance(monitor_interval, (int, float)) and monitor_interval >= 0):
            raise ValueError(f"monitor_interval must be None or a number of seconds >= 0, not {monitor_interval!r}")
        owned = not isinstance(executor, Executor)
        if owned:
            kind = executor or ("subprocess" if timeout is not None else "inline")
            executor = make_executor(str(kind), workers=workers, timeout=timeout)
        assert isinstance(executor, Executor)
        heartbeat = heartbeat or self.HEARTBEAT
        grace = self.grace if grace is None else grace
        start = time.monotonic()
        in_process = executor.in_process
        own_workdir = None
        if in_process and self.system.workdir is None and self.directory is not None:
            own_workdir = self.system.workdir = self.work_root / f"proc-{_worker_tag()}"
            own_workdir.mkdir(parents=True, exist_ok=True)
        # workers make a folder of their own under the study's work folder (SystemRef.build)
        target: System | SystemRef = (
            self.system if in_process else SystemRef.of(self.system, self.system.workdir or self.work_root)
        )

        def submit(record: Trial, attempt: int) -> None:
            self._in_flight[record.number] = record
            stage = stages.get(record.number)
            fidelity = None if stage is None else self.rungs[stage]
            if stage is None and self._races_below(record):
                race_rungs[record.number] = self._race_rung()
                fidelity = self.rungs[race_rungs[record.number]]
            workspace = self._workspace(record, attempt, stage)
            if monitor_interval:  # the system's monitors sampled in the worker while the trial runs
                future = executor.submit(run_monitored_trial, target, record.config, workspace, fidelity,
                                         interval=float(monitor_interval))
            else:
                future = executor.submit(run_trial, target, record.config, workspace, fidelity)
            futures[future] = record

        def begin(record: Trial, attempt: int) -> None:
            if self._staged(record):  # a tuner proposal under multi-fidelity: its first stage
                assert self.multifidelity is not None
                record.info.pop("intermediate", None)
                stages[record.number] = self.multifidelity.start_rung(int(record.info["tuner_number"]), len(self.rungs))
            elif self._anchored(record):  # the default: at the lowest rung, then at full fidelity
                record.info.pop("intermediate", None)
                stages[record.number] = 0
            submit(record, attempt)

        slots = 1 if (self.system.exclusive and executor.local) else max(1, executor.workers)
        futures: dict[cf.Future, Trial] = {}
        attempts: dict[int, int] = {}
        #: trial number -> the rung (index into self.rungs) its running stage measures at; staged trials only
        stages: dict[int, int] = {}
        #: trial number -> the rung a race's re-run measures at (the schedule's `race_below`)
        race_rungs: dict[int, int] = {}
        beat = _Heartbeat(self.storage, self._in_flight, heartbeat)
        failed = False
        stopped = False
        if in_process:
            try:
                self.system.setup()
            except BaseException:
                if own_workdir is not None:
                    shutil.rmtree(own_workdir, ignore_errors=True)
                    self.system.workdir = None
                raise
        try:
            beat.start()
            last_check = -float("inf")
            while True:
                if time.monotonic() - last_check >= heartbeat:
                    adopted, failed_dead = self._reap(grace, retries)
                    for record in adopted:  # trials of dead processes, to run again here
                        attempts[record.number] = record.info["attempts"]
                        begin(record, record.info["attempts"])
                    if callback is not None:
                        for record in failed_dead:
                            callback(self, record)
                    last_check = time.monotonic()
                stopped = stopped or (stop_when is not None and stop_when(self))
                while len(futures) < slots and not self._out_of_time(start) and not stopped:
                    record = self._claim()
                    if record is None:
                        break
                    begin(record, 1)
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
                    stage = stages.get(record.number)
                    if outcome.state != TrialState.COMPLETE:  # a worker killed at its timeout leaves it
                        release_workspace(self._workspace(record, tries, stage), failed=True)
                    if lost and tries <= retries:
                        attempts[record.number] = tries + 1
                        self.storage.set_attempts(record.number, tries + 1)
                        record.info["attempts"] = tries + 1
                        submit(record, tries + 1)
                        continue
                    if stage is not None:
                        staged_outcome = self._after_stage(record, stage, outcome)
                        if isinstance(staged_outcome, int):  # promoted: to that rung, in the same trial
                            stages[record.number] = staged_outcome
                            submit(record, tries)
                            continue
                        stages.pop(record.number, None)
                        outcome = staged_outcome
                    elif self._races_below(record):
                        outcome = self._after_race_run(record, outcome, race_rungs.pop(record.number, len(self.rungs) - 2))
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
                release_workspace(self._workspace(record, attempts.get(record.number, 1), stages.get(record.number)),
                                  failed=True)
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
            # out of process too: this copy then restores what a worker killed at its timeout left
            self.system.teardown()
            if own_workdir is not None:
                shutil.rmtree(own_workdir, ignore_errors=True)
                self.system.workdir = None
        return self

    @property
    def work_root(self) -> Path | None:
        """DIR/work: every process's and every trial attempt's own folder is made under it."""
        return None if self.directory is None else self.directory / "work"

    def _workspace(self, trial: Trial, attempt: int, stage: int | None = None) -> Path | None:
        """The attempt's own folder, DIR/work/trial-N-attempt-K[-rung-R]-HOST-PID: never shared."""
        if self.work_root is None:
            return None
        rung = "" if stage is None else f"-rung-{stage}"
        return self.work_root / f"trial-{trial.number}-attempt-{attempt}{rung}-{_worker_tag()}"

    def _staged(self, record: Trial) -> bool:
        """Whether the trial runs in stages up the fidelity rungs: a tuner proposal under multi-fidelity."""
        return self.multifidelity is not None and record.info.get("tuner_number") is not None

    def _anchored(self, record: Trial) -> bool:
        """Whether the trial is the default measured at the lowest rung before full fidelity (the schedule's `anchor`).

        The guard can then judge the first proposals at the lowest rung: the
        default's two runs scale that rung to full fidelity and rank it. Before,
        nothing did until a proposal had climbed every rung, so the first ones
        climbed blindly (SQLite: 4.5 s for a config slower than the default)."""
        return self.multifidelity is not None and self.multifidelity.anchor and record.source == "default"

    def _after_stage(self, record: Trial, stage: int, outcome: Outcome) -> Outcome | int:
        """Record a stage's intermediate value; the rung to go on to, else the trial's final outcome.

        A stage that failed, timed out or broke a limit ends the trial as it
        is; one outside the best 1/eta of its rung, or (at a rung too empty to
        rank, with the schedule's `guard`) whose value scaled to full fidelity
        is worse than the study's answer, ends it pruned, with its partial
        measurement and the value its tuner is told
        (autosys/run/multifidelity.py `calibrate`). A trial goes on to the
        next rung; with the schedule's `leap`, one that its rung could not rank
        skips the rungs above that could not judge it either (`_can_judge`).
        """
        assert self.multifidelity is not None
        spent = float(record.info.get("stage_seconds", 0.0)) + outcome.seconds
        record.info["stage_seconds"] = spent
        outcome.seconds = spent
        if not outcome.feasible or outcome.value is None:
            return outcome
        top = len(self.rungs) - 1
        fidelity = self.rungs[stage]
        key = config_key(record.config)
        self.storage.add_event(INTERMEDIATE, {"trial": record.number, "rung": stage, "fidelity": fidelity,
                                              "value": outcome.value, "key": key})
        record.info.setdefault("intermediate", []).append({"rung": stage, "fidelity": fidelity, "value": outcome.value})
        outcome.info["intermediate"] = record.info["intermediate"]
        if stage == top:
            return outcome
        if not self._staged(record):  # the default (`_anchored`) always goes on to full fidelity
            return top
        events = [body for _, _, body in self.storage.events(INTERMEDIATE)]
        standing, peers = config_rung_values(events, stage, key)
        where = f"stopped at rung {stage + 1} of {top + 1} (fidelity {fidelity:g} of {self.rungs[-1]:g}): "
        if self.multifidelity.ranks(peers):
            if self.multifidelity.promote(standing, peers, self.objective.direction):
                return stage + 1
            why = f"not in the best 1/{self.multifidelity.eta:g} of the {len(peers)} configs measured there"
        else:
            answer = self.best if self.multifidelity.guard and calibrated(stage, events, top) else None
            estimate = calibrate(standing, stage, events, top)
            if answer is None or not self.multifidelity.worse_than_answer(estimate, answer.value, self.objective.direction):
                following = stage + 1
                while self.multifidelity.leap and following < top and not self._can_judge(following, events, top):
                    following += 1
                return following
            why = (f"too few configs measured there to rank it ({len(peers)}), and its value scaled to full fidelity "
                   f"({estimate:.4g}) is worse than the study's answer ({answer.value:.4g})")
        outcome.state = TrialState.PRUNED
        outcome.info["pruned"] = where + why
        outcome.info["told_value"] = calibrate(outcome.value, stage, events, top)
        return outcome

    def _can_judge(self, rung: int, events: Sequence[Mapping[str, Any]], top: int) -> bool:
        """Whether a stage at `rung` could stop a trial: the rung ranks (`min_peers` configs measured there),
        or, with the `guard`, some config was measured there and at full fidelity (its scale to compare with the answer).

        A stage at a rung that can do neither is promoted whatever it measures:
        it costs a run and decides nothing (SQLite's first WAL proposal climbed
        three such rungs, 1.7 s against 0.9 s at full fidelity alone)."""
        assert self.multifidelity is not None
        peers = {str(e.get("key", f"trial-{e.get('trial')}")) for e in events
                 if e.get("rung") == rung and e.get("value") is not None}
        return len(peers) >= self.multifidelity.peers_needed or (self.multifidelity.guard and calibrated(rung, events, top))

    def _races_below(self, record: Trial) -> bool:
        """Whether the trial is a race's re-run measured below full fidelity (the schedule's `race_below`)."""
        return self.multifidelity is not None and self.multifidelity.race_below and record.source == INTENSIFY

    def _race_rung(self) -> int:
        """The rung the running race's re-runs measure at: the one its first re-run used, else `race_rung`'s choice."""
        top = len(self.rungs) - 1
        trials = self.storage.trials()
        state = race_state(trials, self.objective, self.budget.trials)
        if state.challenger is None or state.incumbent is None:
            return top - 1
        for t in sorted(trials, key=lambda t: t.number):  # every run of a race at one rung: its pairs compare alike
            if t.source == INTENSIFY and t.number >= state.since and isinstance(t.info.get("race_run"), Mapping):
                return int(t.info["race_run"]["rung"])
        events = [body for _, _, body in self.storage.events(INTERMEDIATE)]
        return race_rung(events, state.challenger, state.incumbent, top, self.objective.direction)

    def _after_race_run(self, record: Trial, outcome: Outcome, rung: int) -> Outcome:
        """A re-run measured below full fidelity: recorded at its rung, its value scaled to full fidelity.

        The measured value and metrics stay as measured (`info["race_run"]`
        keeps both values); the race compares the scaled value
        (autosys/run/multifidelity.py `calibrate`).
        """
        if not outcome.feasible or outcome.value is None:
            return outcome
        top = len(self.rungs) - 1
        self.storage.add_event(INTERMEDIATE, {"trial": record.number, "rung": rung, "fidelity": self.rungs[rung],
                                              "value": outcome.value, "key": config_key(record.config)})
        events = [body for _, _, body in self.storage.events(INTERMEDIATE)]
        scaled = calibrate(outcome.value, rung, events, top)
        outcome.info["race_run"] = {"rung": rung, "fidelity": self.rungs[rung], "measured": outcome.value, "scaled": scaled}
        outcome.value = scaled
        return outcome

    def _costly_switch(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        """Whether going from config `a` to `b` changes a knob that needs a restart or a rebuild."""
        if getattr(self, "_apply_costs", None) is None:
            self._apply_costs = self.system.space().apply_costs()  # a server's space reads its catalogue: once
        costs = self._apply_costs
        return any(costs.get(name, "none") in ("restart", "rebuild") and a.get(name) != b.get(name)
                   for name in set(a) | set(b))

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
            if self.spec.get("intensify", False):
                config = next_rerun(self.storage.trials(), self.objective, self.budget.trials, self._costly_switch)
                if config is not None:  # a re-run of a race: told to the tuner like the default (_tell_baseline)
                    return self.storage.claim_trial(Trial(number=-1, config=config, source=INTENSIFY, seed=self.spec["seed"]))
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

        Rebuilds the tuner (`_reload_tuner`) when another process saved a newer
        extra state, then tells it every finished trial it has not been told (a
        trial finished by another process, or failed because its process died).
        """
        revision = self.storage.tuner_revision()
        if revision != self._tuner_revision:
            self._reload_tuner()
            self._tuner_revision = revision
        told = {t.number for t, _ in self.tuner.history if t.number >= 0}
        changed = False
        for stored in self.storage.finished_for_tuner(told):
            number = stored.info["tuner_number"]
            trial = self.tuner.pending.get(number) or Trial(number=number, config=stored.config, source=stored.source)
            self.tuner.tell(trial, stored.result)
            told.add(number)
            changed = True
        if self.storage.count(FINISHED) != len(told) + len(self._baselines):  # a default or confirm trial is new
            for stored in self.storage.trials(FINISHED):
                if "tuner_number" not in stored.info and stored.number not in self._baselines:
                    self._tell_baseline(stored)
                    changed = True
        if changed:
            self._tuner_revision = self.storage.save_tuner_state(self.tuner.state_dict())
        return changed

    def _reload_tuner(self) -> None:
        """Rebuild the tuner from storage: the finished trials it was told plus its stored extra state.

        The history is every finished trial the tuner proposed (`info["tuner_number"]`)
        except those still pending when the state was saved (`_sync_tuner` tells
        them next, as the saving process would have), and every finished default
        or confirm trial in the tuner's space as a warm start; in the order they
        finished, which is the order a process tells them. A study without a
        stored state (made before tuner states) has the tuner told everything afresh.
        """
        state = self.storage.load_tuner_state()
        self._baselines = set()
        if not state:
            return
        pending = {t["number"] for t in state.get("pending", [])}
        history = []
        for stored in sorted(self.storage.trials(FINISHED), key=_finish_order):
            number = stored.info.get("tuner_number")
            if number is None:
                self._baselines.add(stored.number)
                history += warm_start_entry(self.tuner, stored, stored.result)
            elif number not in pending:
                history.append((Trial(number=number, config=stored.config, source=stored.source), stored.result))
        self.tuner.load_state_dict(state, history)

    def _tell_baseline(self, stored: Trial) -> None:
        """Tell a finished trial no tuner proposed (the default, a confirm or intensify re-run) as a warm start, when in the tuner's space."""
        self._baselines.add(stored.number)
        try:
            self.tuner.space.validate(stored.config)
        except InvalidConfig:
            return  # outside the --set subspace: a baseline only, nothing for the tuner
        self.tuner.warm_start([(stored.config, stored.result)], keep=False)  # rebuilt from the trial on reload

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
                    self.tuner.tell(proposal, trial.result)
                else:
                    self._tell_baseline(trial)
                self._tuner_revision = self.storage.save_tuner_state(self.tuner.state_dict())
        log_trial(self, trial)
        if callback is not None:
            callback(self, trial)

    # ------------------------------------------------------------------ results
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[Trial]:
        return self.storage.trials(states)

    def feasible_trials(self) -> list[Trial]:
        return [t for t in self.storage.trials((TrialState.COMPLETE,)) if t.feasible]

    @property
    def best(self) -> Trial | None:
        """The best feasible config's representative trial (the default included), or None.

        With intensification, the incumbent (a challenger replaced it only
        after paired runs said so); else configs are ranked by the conservative
        median of their runs. With `confirm`, the final's runs decide. A config
        that broke a limit in any run is out (autosys/run/selection.py).
        """
        return best_trial(self.storage.trials(), self.objective, intensify=bool(self.spec.get("intensify", False)),
                          budget=self.budget.trials)

    def gain_over_default(self) -> dict | None:
        """The best config's gain over the default from their paired runs, with its 95% interval.

        `{ratio, low, high, pairs, significant, level, same}` (a ratio above
        1.0 is better whatever the direction; low/high are None with fewer
        than two pairs; `same`: the best is the default); None without a
        default run, a best, or positive values (autosys/run/intervals.py).
        """
        trials = self.storage.trials()
        intensify = bool(self.spec.get("intensify", False))
        best = best_trial(trials, self.objective, intensify=intensify, budget=self.budget.trials)
        return gain_over_default(trials, self.objective, best, self.budget.trials)

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
                "feasible": t.feasible,
            }
            row.update({f"config.{k}": v for k, v in t.config.items()})
            row.update({f"metrics.{k}": v for k, v in t.metrics.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        self.dataframe().to_csv(path, index=False)
        return path

    def _default_representative(self, trials: list[Trial]) -> Trial | None:
        """The default config's run at the conservative median of its runs (it is re-run in races),
        so default and best are summarised alike; the first default run when none completed."""
        first = self.default_trial
        runs = runs_of(trials, first.config) if first is not None else []
        return ConfigRuns(first.config, runs).representative(self.objective) if runs else first

    def summary(self) -> dict[str, Any]:
        """The JSON the CLI's --json writes: default vs best, the gain's interval (`vs_default`), trial counts, baselines."""

        def entry(trial: Trial | None) -> dict | None:
            if trial is None:
                return None
            return {"number": trial.number, "config": trial.config, "metrics": trial.metrics, "error": trial.error}

        trials = self.storage.trials()
        out: dict[str, Any] = {
            "system": self.spec["system"],
            "system_options": redact_options(self.spec["system_options"]),  # stored without secrets; old files too
            "tuner": self.spec["tuner"],
            "seed": self.spec["seed"],
            "objective": self.objective.to_json(),
            "default": entry(self._default_representative(trials)),
            "best": entry(self.best),
            "vs_default": self.gain_over_default(),
            "trials": {
                "complete": sum(t.state == TrialState.COMPLETE for t in trials),
                "failed": sum(t.state == TrialState.FAILED for t in trials),
                "timed_out": sum(t.state == TrialState.TIMED_OUT for t in trials),
                "infeasible": sum(t.infeasible for t in trials),
                "reruns": sum(t.source in (INTENSIFY, CONFIRM) for t in trials),
                "pruned": sum(t.state == TrialState.PRUNED for t in trials),
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


def claim_directory(directory: str | Path, *, unique: bool = False, storage: str | None = None) -> tuple[Path, bool]:
    """Take `directory` for a new study, atomically; returns (the folder, whether it was made here).

    The folder is made with one `mkdir`, so of two runs naming it only one gets
    it; with `unique` the other takes NAME-2, NAME-3, ... An existing folder is
    used only when it is empty, and then its study file is created exclusively;
    a folder holding a study, or anything else, is refused in one line.
    """
    base = Path(directory)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
            made = True
        except FileExistsError:
            if unique:
                continue
            if not candidate.is_dir():
                raise StudyError(f"{candidate} exists and is not a directory; choose another --dir") from None
            if (candidate / SQLiteStorage.FILENAME).exists():
                raise StudyError(f"{candidate} already holds a study; use resume, or choose another --dir") from None
            if any(candidate.iterdir()):
                raise StudyError(f"{candidate} already holds other files; choose a new or empty --dir") from None
            made = False
        if storage is None:
            try:  # two runs given one empty folder: the study file is created once
                os.close(os.open(candidate / SQLiteStorage.FILENAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:
                raise StudyError(f"{candidate} already holds a study; use resume, or choose another --dir") from None
        return candidate, made
    raise StudyError(f"no free study directory named like {base} (tried 999)")


def _unclaim(directory: Path, made: bool) -> None:
    """Remove what `claim_directory` and a failed creation left: the folder, or the files in a given empty one."""
    if made:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for path in directory.glob(f"{SQLiteStorage.FILENAME}*"):
        path.unlink(missing_ok=True)


def _finish_order(trial: Trial) -> tuple:
    """Sort key: the order trials finished (which is the order they were told), then number."""
    return (trial.finished_at is None, trial.finished_at or 0.0, trial.number)


def _worker_tag() -> str:
    """HOST-PID of this process, safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{socket.gethostname()}-{os.getpid()}")


class _Heartbeat:
    """A thread that stamps this process's running trials every `interval` s, on its own connection."""

    def __init__(self, storage: Storage, running: Mapping[int, Trial], interval: float):
        self.storage, self.running, self.interval = storage, running, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="autosys-heartbeat", daemon=True)

    def start(self) -> None:
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


def open_study(directory: str | Path, storage: str | None = None) -> tuple[SQLiteStorage, dict]:
    """Open a study's storage for inspection (show, report) without building or importing its system.

    storage: a postgresql:// URL when the study lives there (named after the directory).
    The spec's options come back redacted (a file written before secrets were
    left out may still hold one).
    """
    storage = open_storage(storage or directory, create=False, study=Path(directory).name)
    spec = storage.load_spec()
    if spec is None:
        storage.close()
        raise StorageError(f"{directory}: no study spec in the file")
    if isinstance(spec.get("system_options"), dict):
        spec["system_options"] = redact_options(spec["system_options"])
    return storage, spec


def _allowed_risks(allow: Sequence[str] | str) -> list[str] | str:
    """The stored form of `allow_risky`: "all", or the sorted knob names."""
    names = [allow] if isinstance(allow, str) else list(allow)
    if ALLOW_ALL in names:
        return ALLOW_ALL
    return sorted(set(names))


__all__ = ["Budget", "Study", "StudyError", "open_study"]
