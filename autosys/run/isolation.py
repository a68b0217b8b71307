"""Run one measurement in a forked child, so nothing it leaves behind touches the next one.

In-process benchmarks of several engines in a row measure more than the
config: the one before may have left a fragmented heap, freed a large C++
cache, or started background threads. In the KV experiment SortedDict read
10-16% slower than dict when measured among RocksDB, LMDB and SQLite runs,
and 2-5% slower when measured alone. A forked child starts from the parent's
state every time (copy-on-write: the prepared workload is not copied) and
exits afterwards, so every config is measured from the same starting point.

Forking a process with other threads is safe only if no other thread holds
a lock the child will need: a heartbeat thread inside SQLite holds SQLite's
global mutex, and a child that opens SQLite then waits forever. Threads that
call such libraries wrap the calls in `no_fork()`, which `run_forked` waits
for before it forks (the study heartbeat does).

POSIX only; `fork_available()` says whether it can be used here.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import threading
import time
import warnings
from typing import Any, Callable, Iterator

_FORK_GUARD = threading.Lock()


class ChildFailed(RuntimeError):
    """The forked child raised, died, or ran past its deadline."""


def fork_available() -> bool:
    return hasattr(os, "fork")


@contextlib.contextmanager
def no_fork() -> Iterator[None]:
    """No `run_forked` forks while this block runs (wrap other threads' calls into SQLite and the like)."""
    with _FORK_GUARD:
        yield


def run_forked(fn: Callable[[], Any], timeout: float) -> Any:
    """fn() in a forked child; its (picklable) result, or its exception raised here.

    A child that dies without answering (a crash in C code, a signal) or runs
    past `timeout` seconds (it is killed) raises ChildFailed.
    """
    read_end, write_end = os.pipe()
    with _FORK_GUARD, warnings.catch_warnings():  # no other thread is inside a no_fork() block now
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            try:
                payload = pickle.dumps(("ok", fn()))
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                try:
                    payload = pickle.dumps(("error", exc))
                except Exception:
                    payload = pickle.dumps(("error", ChildFailed(f"{type(exc).__name__}: {exc}")))
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + timeout
    answered = False
    try:
        with os.fdopen(read_end, "rb") as pipe:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChildFailed(f"the measurement did not finish within {timeout:.0f} s (killed)")
                ready, _, _ = select.select([pipe], [], [], left)
                if ready:
                    chunk = os.read(pipe.fileno(), 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
        answered = True
    finally:
        status = _reap(pid, grace=5.0 if answered else 0.0)
    if not chunks:
        raise ChildFailed(f"the measurement's process died without a result ({_describe(status)})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise value
    return value


def _reap(pid: int, grace: float) -> int:
    """The child's exit status, killing it if it has not exited within `grace` seconds."""
    deadline = time.monotonic() + grace
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.01)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


__all__ = ["ChildFailed", "fork_available", "no_fork", "run_forked"]
