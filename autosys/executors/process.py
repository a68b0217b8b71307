"""Trials in worker processes: a fresh process per trial (subprocess) or long-lived ones (pool).

Process workers run in their own session (process group), write their result
to a private pipe (so a trial that prints cannot corrupt it), kill their own
group when their parent dies, and can run under an address-space limit
(`resource.setrlimit(RLIMIT_AS)`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from autosys.executors.base import WORKER_START_SECONDS, Executor, TrialTimeout, WorkerLost

# ----------------------------------------------------------------------------- process workers

_HEADER = struct.Struct("!Q")


def _write_message(fd: int, obj: Any) -> None:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """n bytes from fd, None on EOF; raises TimeoutError at the deadline."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_message(fd: int, deadline: float | None = None) -> tuple[bool, Any]:
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return False, None
    body = _read_exact(fd, _HEADER.unpack(header)[0], deadline)
    if body is None:
        return False, None
    return True, pickle.loads(body)  # written by our own worker process over a private pipe


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:
        return []


def kill_process_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a worker, its process group, and any descendant that left the group."""
    children = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own session: pgid == pid
    for child in children:
        with contextlib.suppress(Exception):
            child.kill()
    with contextlib.suppress(Exception):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


class _Worker:
    """One worker process: `python -m autosys.executors.process`, its own session, tasks over pipes."""

    def __init__(self, memory_mb: float | None):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # as multiprocessing's spawn does
        args = [sys.executable, "-m", "autosys.executors.process", "--worker"]
        if memory_mb:
            args += ["--memory-mb", str(float(memory_mb))]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True, env=env, close_fds=True
        )
        self.tasks = 0
        self.ready = False

    def call(self, fn, args, kwargs, timeout: float | None) -> tuple[bool, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.ready:  # start-up (imports) does not count against the trial's timeout
            try:
                ok, _ = _read_message(self.proc.stdout.fileno(), time.monotonic() + WORKER_START_SECONDS)
            except TimeoutError:
                return False, None
            if not ok:
                return False, None
            self.ready = True
        deadline = None if timeout is None else time.monotonic() + timeout
        self.tasks += 1
        try:
            _write_message(self.proc.stdin.fileno(), (fn, args, kwargs))
        except (BrokenPipeError, OSError):
            return False, None
        return _read_message(self.proc.stdout.fileno(), deadline)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, wait: float = 2.0) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()  # EOF: the worker exits after its current task
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=wait)
        kill_process_tree(self.proc)
        with contextlib.suppress(Exception):
            self.proc.stdout.close()

    def describe_death(self) -> str:
        code = self.proc.wait(timeout=10) if self.proc.poll() is None else self.proc.returncode
        if code is not None and code < 0:
            try:
                return f"worker process {self.proc.pid} was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"worker process {self.proc.pid} was killed by signal {-code}"
        return f"worker process {self.proc.pid} exited with code {code} before answering"


class ProcessExecutor(Executor):
    """N worker processes, each in its own session, with optional per-call timeout and memory limit.

    reuse=True keeps each worker for the next call (a pool: no start-up cost
    per trial); reuse=False starts a fresh process for every call (full
    isolation: nothing a trial leaves in memory can leak into the next).
    """

    local = True

    def __init__(
        self,
        workers: int = 1,
        *,
        timeout: float | None = None,
        memory_mb: float | None = None,
        reuse: bool = True,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"the trial timeout must be positive, not {timeout}")
        if memory_mb is not None and memory_mb <= 0:
            raise ValueError(f"the memory limit must be positive, not {memory_mb} MB")
        self._n = workers
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.reuse = reuse
        self.name = "pool" if reuse else "subprocess"
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._workers: list[_Worker | None] = [None] * workers
        self._threads = [
            threading.Thread(target=self._slot, args=(i,), name=f"autosys-{self.name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        return self._n

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        if self._closed:
            raise RuntimeError("cannot submit to an executor that was shut down")
        future: cf.Future = cf.Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _slot(self, index: int) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self._run(index, future, fn, args, kwargs)
            except BaseException as exc:  # never let a slot thread die with a future unresolved
                if not future.done():
                    future.set_exception(exc)
        worker = self._workers[index]
        if worker is not None:
            worker.stop()
            self._workers[index] = None

    def _run(self, index: int, future: cf.Future, fn, args, kwargs) -> None:
        worker = self._workers[index]
        if worker is None or not worker.alive():
            worker = self._workers[index] = _Worker(self.memory_mb)
        try:
            ok, message = worker.call(fn, args, kwargs, self.timeout)
        except TimeoutError:
            kill_process_tree(worker.proc)
            self._workers[index] = None
            future.set_exception(TrialTimeout(f"timed out after {self.timeout:g} s; its process group was killed"))
            return
        except pickle.UnpicklingError as exc:
            kill_process_tree(worker.proc)
            self._workers[index] = None
            future.set_exception(WorkerLost(f"unreadable answer from the worker: {exc}"))
            return
        if not ok:
            reason = worker.describe_death()
            kill_process_tree(worker.proc)
            self._workers[index] = None
            future.set_exception(WorkerLost(reason))
            return
        if not self.reuse:
            worker.stop()
            self._workers[index] = None
        status, value = message
        if status == "ok":
            future.set_result(value)
        else:
            future.set_exception(value)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if cancel_futures:
            pending = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    pending.append(item[0])
            for future in pending:
                future.cancel()
        for _ in self._threads:
            self._queue.put(None)
        if not wait:
            for i, worker in enumerate(self._workers):
                if worker is not None:
                    kill_process_tree(worker.proc)
        for thread in self._threads:
            thread.join(timeout=None if wait else 5)


def SubprocessExecutor(workers: int = 1, *, timeout: float | None = None, memory_mb: float | None = None) -> ProcessExecutor:
    """Each call in a fresh process of its own session: full isolation, timeouts, memory limit."""
    return ProcessExecutor(workers, timeout=timeout, memory_mb=memory_mb, reuse=False)


def PoolExecutor(workers: int = 2, *, timeout: float | None = None, memory_mb: float | None = None) -> ProcessExecutor:
    """N long-lived worker processes (a process is replaced only when it dies or times out)."""
    return ProcessExecutor(workers, timeout=timeout, memory_mb=memory_mb, reuse=True)


# ----------------------------------------------------------------------------- the worker process


def _watch_parent(parent: int) -> None:
    """Kill this worker's whole process group as soon as the process that started it is gone."""
    while True:
        if os.getppid() != parent:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        time.sleep(0.1)


def _kill_leftovers() -> None:
    """After a call, kill processes the trial left in this worker's group (not the worker itself)."""
    try:
        import psutil
    except ImportError:
        return
    me, group = os.getpid(), os.getpgid(0)
    for proc in psutil.process_iter(["pid"]):
        pid = proc.info["pid"]
        if pid == me:
            continue
        try:
            if os.getpgid(pid) == group:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


def worker_main(argv: list[str]) -> int:
    """Serve calls from stdin until EOF; answers go to a private copy of stdout."""
    memory_mb = None
    if "--memory-mb" in argv:
        memory_mb = float(argv[argv.index("--memory-mb") + 1])
    answers = os.dup(1)
    os.dup2(2, 1)  # whatever a trial prints goes to stderr, never into the answer pipe
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    if memory_mb:
        import resource

        limit = int(memory_mb * 1024 * 1024)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    _write_message(answers, ("ready", os.getpid()))
    while True:
        ok, task = _read_message(0)
        if not ok:
            return 0
        fn, args, kwargs = task
        try:
            answer = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # the parent records it; this worker serves the next call
            answer = ("error", exc)
        try:
            _write_message(answers, answer)
        except Exception as exc:  # an unpicklable result or exception
            _write_message(answers, ("error", RuntimeError(f"{type(exc).__name__}: {exc} (result not picklable)")))
        _kill_leftovers()


if __name__ == "__main__":
    if "--worker" in sys.argv[1:]:
        sys.exit(worker_main(sys.argv[1:]))
    print("autosys.executors.process: run by autosys as a trial worker (python -m autosys.executors.process --worker)", file=sys.stderr)
    sys.exit(2)

