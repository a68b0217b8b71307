"""Where trials run: inline, in isolated subprocesses, in a local pool, or on Dask.

Every executor has the `concurrent.futures` shape: `submit(fn, *args,
**kwargs)` returns a `concurrent.futures.Future`, and `shutdown()` releases
the workers. `base` holds the interface and `run_trial`, `process` the
subprocess and pool executors, `dask` the Dask one. Systems with
`exclusive = True` take a host-wide file lock around each evaluation, so no
two of their trials overlap on one host whatever the executor or the number
of tuning processes.

May import: `autosys.core` and the standard library (dask only inside `dask`, on use).
"""

from __future__ import annotations

from autosys.executors.base import (
    EXECUTORS, Executor, InlineExecutor, SystemRef, TrialTimeout, WorkerLost, exclusive_lock, run_trial,
)
from autosys.executors.dask import DaskExecutor
from autosys.executors.process import PoolExecutor, ProcessExecutor, SubprocessExecutor, kill_process_tree



def make_executor(
    kind: str = "inline",
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    timeout: float | None = None,
    memory_mb: float | None = None,
) -> Executor:
    """Build an executor by name: inline, subprocess, pool or dask."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    if scheduler is not None and kind != "dask":
        raise ValueError("a scheduler address needs the dask executor (--executor dask)")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if kind == "inline":
        if timeout is not None or memory_mb is not None:
            raise ValueError("the inline executor cannot enforce a trial timeout or memory limit; use subprocess or pool")
        if workers not in (None, 1):
            raise ValueError("the inline executor runs one trial at a time; use pool or dask for --workers")
        return InlineExecutor()
    if kind == "subprocess":
        return SubprocessExecutor(workers or 1, timeout=timeout, memory_mb=memory_mb)
    if kind == "pool":
        return PoolExecutor(workers or 2, timeout=timeout, memory_mb=memory_mb)
    return DaskExecutor(workers, scheduler=scheduler, timeout=timeout, memory_mb=memory_mb)



__all__ = [
    "EXECUTORS", "DaskExecutor", "Executor", "InlineExecutor", "PoolExecutor", "ProcessExecutor",
    "SubprocessExecutor", "SystemRef", "TrialTimeout", "WorkerLost", "exclusive_lock",
    "kill_process_tree", "make_executor", "run_trial",
]
