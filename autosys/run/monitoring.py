"""Monitors sampled during every trial, summarized and stored with it.

While a trial runs, a `TrialSampler` reads its system's monitors
(`System.monitors()`) on a background thread every `interval` seconds
(default 1 Hz), in whatever process runs the trial (the study's own, a
subprocess, a pool worker). When the trial ends it takes a last reading,
stops within a deadline, and summarizes each metric as
`{"mean", "min", "max", "last", "n"}` over its finite readings. The study
stores that as `trial.info["monitors"]` (`{"<monitor>.<metric>": {...}}`), so it
persists in the study's storage, comes back on resume, and serves as the
trial's workload signature.

The monitors are built, primed, read and closed on the sampler thread only,
so a monitor holding a thread-bound handle (an sqlite3 connection) works. The
first reading only primes the rate counters and is dropped: the readings then
cover the trial from its start, and a trial shorter than the interval still
gets one reading (the last) that covers all of it. A monitor that raises is
left out for the rest of the trial with a `MonitorWarning`, and the reason is
kept in `trial.info["monitor_errors"]`; monitoring never fails a trial.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from autosys.core.evaluation import Outcome
from autosys.core.monitor import Monitor, MonitorWarning
from autosys.core.space import Config
from autosys.core.system import System
from autosys.executors import SystemRef, run_trial
from autosys.run.isolation import no_fork

#: default sampling interval of a study's trials (seconds)
DEFAULT_INTERVAL = 1.0
#: how long `stop` waits for the last reading before giving up on the sampler thread (seconds)
STOP_DEADLINE = 5.0
#: significant digits kept per summary value (keeps the stored trial small)
DIGITS = 6


@dataclass
class MetricSummary:
    """Running summary of one metric's finite readings."""

    n: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    last: float = math.nan

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        self.last = value

    def to_json(self) -> dict[str, float]:
        def r(x: float) -> float:
            return float(f"{x:.{DIGITS}g}")

        return {"mean": r(self.total / self.n), "min": r(self.low), "max": r(self.high), "last": r(self.last), "n": self.n}


@dataclass
class TrialReadings:
    """What a trial's monitors said: per-metric summaries and the monitors left out (name -> why)."""

    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    samples: int = 0

    def summary(self) -> dict[str, dict[str, float]]:
        """`{"<monitor>.<metric>": {"mean", "min", "max", "last", "n"}}`, metrics with a finite reading only."""
        return {name: s.to_json() for name, s in sorted(self.metrics.items()) if s.n}

    def attach(self, info: dict[str, Any]) -> None:
        """Store the readings in a trial's info (`monitors`, and `monitor_errors` when a monitor failed)."""
        summary = self.summary()
        if summary:
            info["monitors"] = summary
        if self.errors:
            info["monitor_errors"] = dict(self.errors)


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class TrialSampler:
    """Samples the monitors `build()` returns on a daemon thread, from `start` until `stop`.

    build: called on the sampler thread (e.g. `system.monitors`).
    interval: seconds between readings (> 0).
    stop_deadline: the most `stop` waits for the sampler's last reading.
    """

    def __init__(self, build: Callable[[], Sequence[Monitor]], *, interval: float = DEFAULT_INTERVAL,
                 stop_deadline: float = STOP_DEADLINE):
        if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
            raise ValueError(f"the monitor sampling interval must be a positive number of seconds, not {interval!r}")
        self._build = build
        self.interval = float(interval)
        self.stop_deadline = float(stop_deadline)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._readings = TrialReadings()
        self._thread: threading.Thread | None = None
        #: the sampler thread's native id (for measuring its own CPU time), once started
        self.native_id: int | None = None

    # ------------------------------------------------------------------ the thread
    def _disable(self, monitors: list[Monitor], monitor: Monitor, exc: BaseException) -> None:
        name = getattr(monitor, "name", type(monitor).__name__)
        reason = f"{type(exc).__name__}: {exc}".strip()
        with self._lock:
            self._readings.errors[str(name)] = reason[:300]
        warnings.warn(f"monitor {name!r} left out of this trial's readings: {reason}", MonitorWarning, stacklevel=2)
        monitors.remove(monitor)
        try:
            monitor.close()
        except Exception:
            pass

    def _read(self, monitors: list[Monitor], keep: bool) -> None:
        for monitor in list(monitors):
            try:
                with no_fork():  # a fork (autosys/run/isolation.py) must not copy a lock this thread holds
                    reading = monitor.sample()
                if not isinstance(reading, dict):
                    raise TypeError(f"sample() returned {type(reading).__name__}, not a dict")
            except Exception as exc:  # a broken monitor is left out, never fails the trial
                self._disable(monitors, monitor, exc)
                continue
            if not keep:
                continue
            prefix = getattr(monitor, "name", type(monitor).__name__)
            with self._lock:
                for key, value in reading.items():
                    x = _number(value)
                    summary = self._readings.metrics.setdefault(f"{prefix}.{key}", MetricSummary())
                    if x is not None:
                        summary.add(x)
        if keep:
            with self._lock:
                self._readings.samples += 1

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        try:
            monitors = list(self._build() or [])
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()
            with self._lock:
                self._readings.errors["monitors()"] = reason[:300]
            warnings.warn(f"monitors() raised, so this trial has no monitor readings: {reason}", MonitorWarning, stacklevel=2)
            return
        try:
            self._read(monitors, keep=False)  # primes the rate counters
            while monitors and not self._stop.wait(self.interval):
                self._read(monitors, keep=True)
            if monitors:
                self._read(monitors, keep=True)  # the tail since the last reading
        finally:
            for monitor in monitors:
                try:
                    monitor.close()
                except Exception:
                    pass

    # ------------------------------------------------------------------ the caller
    def start(self) -> "TrialSampler":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="autosys-trial-monitors", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> TrialReadings:
        """End sampling (one last reading) and return the readings; waits at most `stop_deadline` s."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.stop_deadline)
            if self._thread.is_alive():
                with self._lock:
                    self._readings.errors["sampler"] = f"no last reading within {self.stop_deadline:g} s (a monitor hung)"
        with self._lock:
            readings = self._readings
            return TrialReadings(
                {k: MetricSummary(s.n, s.total, s.low, s.high, s.last) for k, s in readings.metrics.items()},
                dict(readings.errors), readings.samples,
            )

    def __enter__(self) -> "TrialSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def has_monitors(system: System) -> bool:
    """Whether the system overrides `monitors()` (the base class observes nothing)."""
    return type(system).monitors is not System.monitors


def run_monitored_trial(system: System | SystemRef, config: Config, workspace: str | Path | None = None,
                        fidelity: float | None = None, *, interval: float = DEFAULT_INTERVAL) -> Outcome:
    """`autosys.executors.run_trial`, with the system's monitors sampled while it runs.

    The readings go to `outcome.info["monitors"]` (see the module docstring);
    this is the function a study submits to its executor, so it runs in the
    worker that runs the trial.
    """
    system_ = system.build() if isinstance(system, SystemRef) else system
    if not has_monitors(system_):
        return run_trial(system_, config, workspace, fidelity)
    sampler = TrialSampler(system_.monitors, interval=interval).start()
    try:
        outcome = run_trial(system_, config, workspace, fidelity)
    finally:
        readings = sampler.stop()
    readings.attach(outcome.info)
    return outcome


def probe_monitors(system: System, *, gap: float = 0.2, deadline: float = 30.0) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Read each of the system's monitors twice, `gap` seconds apart: ({name: second reading}, {name: problem}).

    A problem is a monitor that raises, returns no metric, returns a value
    that is not a number, returns an infinite value, or returns no finite
    value at all (NaN alone is allowed for a metric undefined in an interval,
    e.g. a hit ratio without reads). Used by `check_system`.
    """
    readings: dict[str, dict[str, float]] = {}
    problems: dict[str, str] = {}

    def probe() -> None:
        try:
            monitors = list(system.monitors() or [])
        except Exception as exc:
            problems["monitors()"] = f"raised {type(exc).__name__}: {exc}"
            return
        for monitor in monitors:
            name = str(getattr(monitor, "name", type(monitor).__name__))
            try:
                monitor.sample()
                time.sleep(gap)
                reading = monitor.sample()
            except Exception as exc:
                problems[name] = f"sample() raised {type(exc).__name__}: {exc}"
                continue
            finally:
                try:
                    monitor.close()
                except Exception:
                    pass
            if not isinstance(reading, dict) or not reading:
                problems[name] = f"sample() returned {reading!r}: a reading needs at least one metric"
                continue
            bad = {k: v for k, v in reading.items() if _number(v) is None and not _is_nan(v)}
            if bad:
                problems[name] = f"metrics that are not finite numbers: {bad}"
            elif not any(_number(v) is not None for v in reading.values()):
                problems[name] = f"no finite value in its reading {reading}"
            else:
                readings[name] = {k: float(v) for k, v in reading.items()}

    worker = threading.Thread(target=probe, name="autosys-probe-monitors", daemon=True)  # one thread, as in a trial
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        problems["monitors"] = f"reading the monitors took over {deadline:g} s"
    return readings, problems


def _is_nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


__all__ = ["DEFAULT_INTERVAL", "TrialReadings", "TrialSampler", "has_monitors", "probe_monitors", "run_monitored_trial"]
