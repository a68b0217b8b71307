"""How fast this host runs right now, relative to when the process first looked.

On shared virtual machines the same code runs at very different speeds from
one second to the next: measured on the 2-vCPU hosts here, a fixed Python
loop took 10.7 ms for a few seconds, then 17-18 ms for the next few, on both
CPUs (a neighbour on the physical core, frequency changes); the guest sees no
steal time and no run-queue wait. A benchmark that runs during a slow phase
looks 40% worse for reasons that have nothing to do with the config.

`HostSpeed` times a small fixed CPU-bound calibration loop (best of a few
0.3-ms runs) just before and just after a measurement; `slowdown()` is that
time over the reference time taken on first use in this process. Scaling
the CPU part of a measured time by 1/slowdown puts measurements taken in
fast and slow phases on one scale: on ycsb-b against a Python dict this cut
the spread of repeated runs from 27% to 7% (coefficient of variation). The
reference is per process, so normalised figures compare within one process
(one study, one experiment run), not across hosts.
"""

from __future__ import annotations

import statistics
import time

_TABLE = {i: i for i in range(1024)}


def calibration_ms(runs: int = 3) -> float:
    """Best-of-`runs` milliseconds of a fixed interpreter-bound loop (dict lookups and adds)."""
    best = float("inf")
    table = _TABLE
    for _ in range(runs):
        start = time.perf_counter_ns()
        total = 0
        for _ in range(4):
            for i in range(1024):
                total += table[i]
        best = min(best, (time.perf_counter_ns() - start) / 1e6)
    return best


class HostSpeed:
    """Calibration times relative to a per-process reference (> 1: the host is slower than then)."""

    _reference: float | None = None

    @classmethod
    def reference_ms(cls) -> float:
        if cls._reference is None:
            calibration_ms(2)  # warm the loop's code and data
            cls._reference = statistics.median(calibration_ms() for _ in range(5))
        return cls._reference

    @classmethod
    def slowdown(cls, runs: int = 3) -> float:
        """How much slower the calibration loop runs now than at the reference."""
        return calibration_ms(runs) / cls.reference_ms()


def normalised_seconds(busy_s: float, cpu_s: float, slowdown: float) -> float:
    """Busy time with its on-CPU part rescaled to reference speed (waits on I/O are left as they are)."""
    cpu_s = min(max(cpu_s, 0.0), busy_s)
    return (busy_s - cpu_s) + cpu_s / slowdown if slowdown > 0 else busy_s


__all__ = ["HostSpeed", "calibration_ms", "normalised_seconds"]
