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
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from autosys.core.evaluation import Outcome, evaluate_config
from autosys.core.space import Config
from autosys.core.system import System

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
    """How a worker rebuilds the study's system: a registry name + options, or a pickled object.

    Workers build each system once per process (and call its `setup`), in a
    work directory of their own under `workdir`, so concurrent workers never
    share scratch files.
    """

    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    pickled: bytes | None = None

    @classmethod
    def of(cls, system: System, workdir: str | Path | None = None) -> "SystemRef":
        name = getattr(system, "_registry_name", None)
        workdir_ = None if workdir is None else str(workdir)
        if name is not None:
            return cls(name=name, options=dict(getattr(system, "_options", {}) or {}), workdir=workdir_)
        return cls(pickled=_dumps_object(system), workdir=workdir_)

    def key(self) -> tuple:
        import json

        return (self.name, json.dumps(dict(self.options), sort_keys=True, default=str), self.workdir, self.pickled)

    def build(self) -> System:
        key = self.key()
        system = _BUILT.get(key)
        if system is None:
            if self.pickled is not None:
                system = pickle.loads(self.pickled)  # bytes made by this study's own process, never a file
            else:
                from autosys.core.registry import make_system

                system = make_system(self.name, dict(self.options))
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
    path = Path(tempfile.gettempdir()) / f"autosys-exclusive-{safe}.lock"
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


def run_trial(system: System | SystemRef, config: Config) -> Outcome:
    """Evaluate one config (the function every executor runs); exclusive systems take the host lock."""
    system_ = system.build() if isinstance(system, SystemRef) else system
    if getattr(system_, "exclusive", False):
        with exclusive_lock(getattr(system_, "_registry_name", None) or type(system_).__name__):
            return evaluate_config(system_, config)
    return evaluate_config(system_, config)


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


