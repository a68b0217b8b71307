"""Which process runs a trial, and whether it is still alive (for reaping trials of dead workers)."""

from __future__ import annotations

import os
import socket

def _process_start(pid: int) -> str:
    try:
        import psutil

        return f"{psutil.Process(pid).create_time():.2f}"
    except Exception:  # psutil missing or the process is gone
        return "?"


def worker_id() -> str:
    """host:pid:start-time of this process; the start time tells a reused pid apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def worker_alive(worker: str | None) -> bool | None:
    """True/False for a worker on this host; None when it runs elsewhere (only heartbeats can tell)."""
    if not worker:
        return False  # written by schema-1 code, which only knew "interrupted at resume"
    host, _, rest = worker.partition(":")
    if host != socket.gethostname():
        return None
    pid_text, _, started = rest.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return started == _process_start(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started in ("?", _process_start(pid))
