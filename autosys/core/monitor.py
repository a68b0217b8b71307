"""The monitor contract: something a study or an agent can read while a system runs.

A `Monitor` returns one reading (`{metric: value}`) each time it is sampled;
counters are turned into rates by the monitor itself (`Rates`), so a reading
always describes the interval since the previous one. `System.monitors()`
returns monitors; the study samples them during every trial
(autosys/run/monitoring.py) and the agent samples them live
(autosys/online/monitor.py).

This lives in `core` (not `online`) because it is part of the system
contract: the study loop (`run`), the conformance checks and the adapters all
use it, and `run` may not import its sibling `online`. Host and process
monitors (psutil) are here too, since every adapter returns them.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from typing import Any, Callable

import psutil


class MonitorWarning(RuntimeWarning):
    """A monitor failed and was left out (of a trial's readings, or of a check)."""


class Monitor(ABC):
    """Something that can be read: a machine, a process, a database, a cache."""

    name: str = "monitor"

    @abstractmethod
    def sample(self) -> dict[str, float]:
        """One reading; rates cover the time since the previous call."""

    def close(self) -> None:
        """Release connections (idempotent)."""


class Rates:
    """Turns monotonically increasing counters into per-second rates."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def __call__(self, name: str, counter: float, now: float) -> float:
        previous = self._last.get(name)
        self._last[name] = (now, counter)
        if previous is None or now <= previous[0]:
            return 0.0
        return max(counter - previous[1], 0.0) / (now - previous[0])


def _busy(times: Any) -> tuple[float, float]:
    """(busy seconds, total seconds) of psutil.cpu_times(); iowait and idle are not busy."""
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class SystemMonitor(Monitor):
    """CPU, memory, disk and network I/O of the machine, and of one process if `pid` is given.

    The machine's CPU share is computed from this instance's own previous
    reading (not psutil's process-wide `cpu_percent` state), so several
    monitors in one process do not disturb each other.
    """

    name = "system"

    def __init__(self, pid: int | None = None):
        self._rates = Rates()
        self._process = psutil.Process(pid) if pid is not None else None
        self._cpu = _busy(psutil.cpu_times())
        if self._process is not None:
            self._process.cpu_percent(None)  # the first call only primes the counter

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        rate = self._rates
        busy, total = _busy(psutil.cpu_times())
        d_busy, d_total = busy - self._cpu[0], total - self._cpu[1]
        self._cpu = (busy, total)
        out = {
            # the busy and total times are sums of float counters: an idle interval can round to -1e-8
            "cpu_percent": min(100.0, max(0.0, 100.0 * d_busy / d_total)) if d_total > 0 else 0.0,
            "memory_percent": psutil.virtual_memory().percent,
        }
        disk = psutil.disk_io_counters()
        if disk is not None:
            out["disk_read_bytes_per_s"] = rate("dr", disk.read_bytes, now)
            out["disk_write_bytes_per_s"] = rate("dw", disk.write_bytes, now)
        net = psutil.net_io_counters()
        if net is not None:
            out["net_sent_bytes_per_s"] = rate("ns", net.bytes_sent, now)
            out["net_recv_bytes_per_s"] = rate("nr", net.bytes_recv, now)
        if self._process is not None:
            with self._process.oneshot():
                out["process_cpu_percent"] = self._process.cpu_percent(None)
                out["process_rss_bytes"] = float(self._process.memory_info().rss)
                out["process_threads"] = float(self._process.num_threads())
                try:
                    io = self._process.io_counters()
                    out["process_read_bytes_per_s"] = rate("pr", io.read_bytes, now)
                    out["process_write_bytes_per_s"] = rate("pw", io.write_bytes, now)
                except (psutil.AccessDenied, AttributeError):
                    pass
        return out


class ProcessMonitor(Monitor):
    """This process as the kernel accounts it: CPU (its finished children included), memory, threads,
    context switches, page faults and I/O, as rates where they are counters.

    Built in the process that runs a trial (a thread, a subprocess or a pool
    worker), it describes that worker. CPU time of children counts once they
    have exited and been waited for (a forked measurement, a compiler run).
    """

    name = "process"

    def __init__(self, pid: int | None = None):
        self._process = psutil.Process(pid if pid is not None else os.getpid())
        self._rates = Rates()
        self._cpu: tuple[float, float] | None = None

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        rate = self._rates
        p = self._process
        with p.oneshot():
            cpu = p.cpu_times()
            used = cpu.user + cpu.system + getattr(cpu, "children_user", 0.0) + getattr(cpu, "children_system", 0.0)
            memory = p.memory_info()
            ctx = p.num_ctx_switches()
            out = {
                "cpu_percent": 100.0 * rate("cpu", used, now),
                "rss_bytes": float(memory.rss),
                "threads": float(p.num_threads()),
                "voluntary_ctx_switches_per_s": rate("vcs", ctx.voluntary, now),
                "involuntary_ctx_switches_per_s": rate("ics", ctx.involuntary, now),
            }
            faults = _page_faults(p.pid)
            if faults is not None:
                out["minor_faults_per_s"] = rate("minflt", faults[0], now)
                out["major_faults_per_s"] = rate("majflt", faults[1], now)
            try:
                io = p.io_counters()
                out["read_bytes_per_s"] = rate("rb", io.read_bytes, now)
                out["write_bytes_per_s"] = rate("wb", io.write_bytes, now)
            except (psutil.AccessDenied, AttributeError, NotImplementedError):
                pass
        return out


def _page_faults(pid: int) -> tuple[float, float] | None:
    """(minor, major) page faults of a process and its waited-for children (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the command: state(0) ppid pgrp session tty tpgid flags minflt(7) cminflt majflt(9) cmajflt
    try:
        return float(int(fields[7]) + int(fields[8])), float(int(fields[9]) + int(fields[10]))
    except (IndexError, ValueError):
        return None


class DeferredMonitor(Monitor):
    """A monitor built at its first sample (e.g. one that connects to a server).

    A system can list it without connecting in `monitors()`; when building it
    fails, only this monitor fails (and is left out), not the list.
    """

    def __init__(self, name: str, build: Callable[[], Monitor]):
        self.name = name
        self._build = build
        self._monitor: Monitor | None = None

    def sample(self) -> dict[str, float]:
        if self._monitor is None:
            self._monitor = self._build()
        return self._monitor.sample()

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None


def host_monitors() -> list[Monitor]:
    """The monitors every system has: the machine (`system`) and the process running it (`process`)."""
    return [SystemMonitor(), ProcessMonitor()]


__all__ = ["DeferredMonitor", "Monitor", "MonitorWarning", "ProcessMonitor", "Rates", "SystemMonitor", "host_monitors"]
