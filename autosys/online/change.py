"""A fast sequential change test for a system's own monitors: does the rate of an event jump?

The agent's `ChangeDetector` compares whole windows, so a workload change is
seen one window late, and the window that shows it ran the old config under
the new workload. A system that sees every request can test each one as it
comes: `RateJumpTest` is a one-sided Bernoulli CUSUM (Page 1954) on a 0/1
event (a cache miss, a failed request), against the event's recent rate. It
alarms when the rate jumps most of the way to 1 (a new working set, a config
that stopped fitting), typically a few dozen events after the jump, and
rarely otherwise: its statistic drifts down under the recent rate. A monitor
reports the alarm to the agent (`Agent.ALARM`), and the system may end its
window at once so the agent acts on it (see `autosys_adapters.pagecache.app`).

May import: the standard library only.
"""

from __future__ import annotations

import math

__all__ = ["RateJumpTest"]


class RateJumpTest:
    """One-sided CUSUM on a 0/1 stream: alarms when the event rate jumps from its recent level p0 to about
    p1 = p0 + `shift` * (1 - p0).

    Args:
        shift: how much of the way from the recent rate to 1 a jump must go (0 < shift < 1).
        threshold: the log-likelihood ratio that alarms (higher: fewer false alarms, later alarms; each unit
            is about e times fewer false alarms).
        horizon: events the recent rate averages over (an exponential moving average).
        warmup: events after a `reset` (or an alarm) that only estimate the recent rate.
        min_jump: the smallest jump (p1 - p0) worth an alarm: near a rate of 1 there is no room to jump, and the
            test rests (it would otherwise alarm on a rate of 1 itself).
    """

    #: the recent rate is re-read into the test's two log-ratios every this many events (logs are not free)
    REFRESH = 32

    def __init__(self, shift: float = 0.8, threshold: float = 16.0, horizon: int = 500, warmup: int = 100,
                 min_jump: float = 0.2):
        if not 0 < shift < 1:
            raise ValueError(f"shift is a fraction in (0, 1), not {shift!r}")
        if not 0 < min_jump < shift:
            raise ValueError(f"min_jump is a fraction in (0, shift), not {min_jump!r}")
        self.min_jump = min_jump
        if threshold <= 0 or horizon < 1 or warmup < 1:
            raise ValueError("threshold must be positive, horizon and warmup at least 1")
        self.shift, self.threshold, self.horizon, self.warmup = shift, threshold, horizon, warmup
        self.alarms = 0
        self.reset()

    def reset(self) -> None:
        """Forget the recent rate (the system changed on purpose, e.g. a new config): re-estimate it first."""
        self.n = 0
        self.rate = 0.0
        self.statistic = 0.0
        self._up = self._down = 0.0

    def _refresh(self) -> None:
        p0 = min(max(self.rate, 0.01), 0.99)
        p1 = p0 + self.shift * (1.0 - p0)
        if p1 - p0 < self.min_jump:  # no room to jump: rest (the statistic decays to 0)
            self._up = self._down = -1.0
            return
        self._up, self._down = math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))

    def update(self, event: bool) -> bool:
        """Add one observation (True: the event happened); True when the rate has jumped (the test then restarts)."""
        self.n += 1
        x = 1.0 if event else 0.0
        if self.n <= self.warmup:
            self.rate += (x - self.rate) / self.n  # the plain mean while warming up
            if self.n == self.warmup:
                self._refresh()
            return False
        self.statistic = max(0.0, self.statistic + (self._up if event else self._down))
        self.rate += (x - self.rate) / self.horizon
        if self.statistic > self.threshold:
            self.alarms += 1
            self.reset()
            return True
        if self.n % self.REFRESH == 0:
            self._refresh()
        return False
