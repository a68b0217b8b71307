"""Run one measurement in a forked child, so nothing it leaves behind touches the next one.

In-process benchmarks of several engines in a row measure more than the
config: the one before may have left a fragmented heap, freed a large C++
cache, or started background threads. In the KV experiment SortedDict read
10-16% slower than dict when measured among RocksDB, LMDB and SQLite runs,
and 2-5% slower when measured alone. A forked child starts from the parent's
state every time (copy-on-write: the prepared workload is not copied) and
exits afterwards, so every config is measured from the same starting point.

POSIX only; `fork_available()` says whether it can be used here.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import warnings
from typing import Any, Callable


class ChildFailed(RuntimeError):
    """The forked child raised, died, or ran past its deadline."""


def fork_available() -> bool:
    return hasattr(os, "fork")


def run_forked(fn: Callable[[], Any], timeout: float) -> Any:
    """fn() in a forked child; its (picklable) result, or its exception raised here.

    A child that dies without answering (a crash in C code, a signal) or runs
    past `timeout` seconds (it is killed) raises ChildFailed.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # the child runs only fn: threads of the parent are not needed there
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
    try:
        with os.fdopen(read_end, "rb") as pipe:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    raise ChildFailed(f"the measurement did not finish within {timeout:.0f} s (killed)")
                ready, _, _ = select.select([pipe], [], [], left)
                if ready:
                    chunk = os.read(pipe.fileno(), 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
    finally:
        _, status = os.waitpid(pid, 0)
    if not chunks:
        raise ChildFailed(f"the measurement's process died without a result ({_describe(status)})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise value
    return value


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


__all__ = ["ChildFailed", "fork_available", "run_forked"]
