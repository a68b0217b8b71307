"""Trials on a Dask distributed cluster (the `distributed` extra), each in a fresh subprocess there."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import re


from autosys.executors.base import Executor
from autosys.executors.process import ProcessExecutor

# ----------------------------------------------------------------------------- Dask


def _isolated_call(fn, args, kwargs, timeout, memory_mb):
    """Run inside a Dask worker: the call goes to a fresh subprocess, so timeouts kill its whole group."""
    with ProcessExecutor(1, timeout=timeout, memory_mb=memory_mb, reuse=False) as executor:
        return executor.submit(fn, *args, **kwargs).result()


class DaskExecutor(Executor):
    """Trials on a Dask distributed cluster: a scheduler address, or a local cluster of N worker processes.

    A worker that dies mid-trial makes Dask run the task again elsewhere (up
    to its `distributed.scheduler.allowed-failures`), then `KilledWorker`.
    With a timeout or memory limit, each trial runs in a subprocess of the
    Dask worker, so a hung trial is killed with its children on that host.
    """

    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        *,
        scheduler: str | None = None,
        timeout: float | None = None,
        memory_mb: float | None = None,
        connect_timeout: float = 30.0,
    ):
        # bad arguments get their own error first, whether or not dask is installed
        if scheduler is not None and workers is not None:
            raise ValueError("give either a scheduler address or a number of local workers, not both")
        if scheduler is not None and not re.fullmatch(r"(tcp|tls|ws|wss|inproc)://[A-Za-z0-9_.:\[\]/-]+", scheduler):
            raise ValueError(f"the scheduler address must look like tcp://HOST:PORT, not {scheduler!r}")
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise RuntimeError(
                "the dask executor needs dask[distributed]: pip install 'autosys-toolkit[distributed]'"
            ) from exc
        import logging
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._cluster = None
        if scheduler is None:
            n = workers or 2
            if n < 1:
                raise ValueError(f"workers must be at least 1, not {n}")
            self._cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self._cluster, timeout=connect_timeout)
            self.local = True
        else:
            self.client = Client(scheduler, timeout=connect_timeout)
            self.local = False
        self._executor = self.client.get_executor(pure=False)

    @property
    def workers(self) -> int:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def worker_pids(self) -> list[int]:
        """The pids of the Dask worker processes (for tests and diagnostics)."""
        return list(self.client.run(os.getpid).values())

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        if self.timeout is not None or self.memory_mb is not None:
            return self._executor.submit(_isolated_call, fn, args, kwargs, self.timeout, self.memory_mb)
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self.client is None:
            return
        with contextlib.suppress(Exception):
            self._executor.shutdown(wait=wait and not cancel_futures)
        with contextlib.suppress(Exception):
            self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
        self.client = None  # type: ignore[assignment]


