"""What every executor shares: the interface, the trial a worker runs, and the errors around it.

The study submits `run_trial(system_or_ref, config)`, which returns an
`autosys.core.evaluation.Outcome`; an executor turns what goes wrong around
the trial (not inside it) into `TrialTimeout` or `WorkerLost`.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import fcntl
import os
import pickle
import re
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from autosys.core.evaluation import Outcome, evaluate_config
from autosys.core.hostlocks import lock_dir
from autosys.core.space import Config
from autosys.core.spec import SystemSpec
from autosys.core.system import System
from autosys.core.trial import TrialState

EXECUTORS = ("inline", "subprocess", "pool", "dask")
#: how long an exclusive system's trial waits for the host lock before failing
EXCLUSIVE_WAIT_SECONDS = 6 * 3600.0
#: how long a new worker process may take to import autosys and say it is ready
WORKER_START_SECONDS = 120.0


class TrialTimeout(Exception):
    """A trial ran past its wall-clock limit and was killed with all its children."""


class WorkerLost(Exception):
    """The process running a trial died before it answered."""


# ----------------------------------------------------------------------------- what runs in a worker


@dataclass(frozen=True)
class SystemRef:
    """How a worker rebuilds the study's system: its `SystemSpec`, or a pickled object.

    The spec (secrets included: it travels to the worker, never to a file) is
    used whenever the system has an importable name; only a system without
    one (a class of `__main__` or a local class), built in this very process,
    travels pickled. Workers build each system once per process (and call its
    `setup`), in a work directory of their own under `workdir`, so concurrent
    workers never share scratch files.
    """

    spec: SystemSpec | None = None
    workdir: str | None = None
    pickled: bytes | None = None

    @classmethod
    def of(cls, system: System, workdir: str | Path | None = None) -> "SystemRef":
        spec = system.spec
        workdir_ = None if workdir is None else str(workdir)
        if spec.importable:
            return cls(spec=spec, workdir=workdir_)
        return cls(pickled=_dumps_object(system), workdir=workdir_)

    @property
    def name(self) -> str | None:
        return None if self.spec is None else self.spec.name

    @property
    def options(self) -> Mapping[str, Any]:
        return {} if self.spec is None else self.spec.options

    def key(self) -> tuple:
        return (None if self.spec is None else self.spec.key(), self.workdir, self.pickled)

    def build(self) -> System:
        key = self.key()
        system = _BUILT.get(key)
        if system is None:
            if self.pickled is not None:
                system = pickle.loads(self.pickled)  # bytes made by this study's own process, never a file
            else:
                from autosys.core.registry import make_system

                system = make_system(self.spec.name, dict(self.spec.options))
            if self.workdir is not None:
                import socket

                system.workdir = Path(self.workdir) / f"worker-{socket.gethostname()}-{os.getpid()}"
                system.workdir.mkdir(parents=True, exist_ok=True)
            system.setup()
            atexit.register(system.teardown)
            _BUILT[key] = system
        return system


_BUILT: dict[tuple, System] = {}


def _dumps_object(obj: Any) -> bytes:
    try:
        import cloudpickle  # comes with dask; pickles classes defined in __main__ too

        return cloudpickle.dumps(obj)
    except ImportError:
        return pickle.dumps(obj)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@contextlib.contextmanager
def exclusive_lock(name: str, wait: float = EXCLUSIVE_WAIT_SECONDS) -> Iterator[None]:
    """A host-wide lock named after a system, held while one of its trials runs."""
    safe = _SAFE_NAME.sub("_", name).strip("._") or "system"
    path = lock_dir() / f"autosys-exclusive-{safe}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"another trial of {name!r} held the host lock {path} for over {wait:.0f} s")
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def run_trial(system: System | SystemRef, config: Config, workspace: str | Path | None = None,
              fidelity: float | None = None) -> Outcome:
    """Evaluate one config (the function every executor runs); exclusive systems take the host lock.

    fidelity: measure at this fidelity of the system's (None = full; see autosys/core/fidelity.py).

    workspace: the attempt's own folder, made here and given to the system as
    `attempt_dir` while it evaluates; removed when the attempt fails (or left nothing in it).
    """
    system_ = system.build() if isinstance(system, SystemRef) else system
    folder = None if workspace is None else Path(workspace)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        system_.attempt_dir = folder
    try:
        if getattr(system_, "exclusive", False):
            with exclusive_lock(system_.spec.name if isinstance(system_, System) else type(system_).__name__):
                outcome = evaluate_config(system_, config, fidelity)
        else:
            outcome = evaluate_config(system_, config, fidelity)
    finally:
        if folder is not None:
            system_.attempt_dir = None
    if folder is not None:
        release_workspace(folder, failed=outcome.state != TrialState.COMPLETE)
    return outcome


def release_workspace(folder: str | Path | None, *, failed: bool) -> None:
    """Remove a failed attempt's folder; keep a finished one's only when it holds files."""
    if folder is None:
        return
    folder = Path(folder)
    if failed:
        shutil.rmtree(folder, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        folder.rmdir()  # fails (and keeps it) when the trial left files there


# ----------------------------------------------------------------------------- the interface


class Executor(ABC):
    """Runs submitted calls somewhere; `workers` of them at a time."""

    name: str = "executor"
    #: True when every worker runs on this host (so exclusive systems get one slot)
    local: bool = True
    #: True when the submitted function runs in this process (the system object is used as is)
    in_process: bool = False

    @property
    @abstractmethod
    def workers(self) -> int: ...

    @abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=True, cancel_futures=True)


class InlineExecutor(Executor):
    """Runs each call at once in this process and returns a finished future (no timeouts)."""

    name = "inline"
    in_process = True

    @property
    def workers(self) -> int:
        return 1

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


