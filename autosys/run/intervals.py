"""Paired comparisons of two configs: runs paired in time, their ratio and its confidence interval.

Two configs measured minutes apart differ by the host's drift as well as by
the configs; runs made next to each other share the drift. So two configs are
compared through *pairs* of runs, each run of one matched one-to-one with the
nearest run of the other (`pair_runs`), and the gain is the geometric mean of
the paired ratios with a Student-t interval on the log ratios (`paired_gain`):
multiplicative noise (a run 10% slow) is symmetric in logs, and the ratio is
what a user reads ("1.3x the default").

A ratio here is always a *gain*: above 1.0 means the first config is better,
whichever the objective's direction.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from autosys.core.trial import Trial

LEVEL = 0.95  # the confidence of every interval autosys prints


@dataclass(frozen=True)
class RatioInterval:
    """A paired gain: `ratio` (geometric mean), its interval [low, high] (None with < 2 pairs), `pairs`."""

    ratio: float
    low: float | None
    high: float | None
    pairs: int

    @property
    def significant(self) -> bool:
        """The interval lies above 1.0: a gain that the pairs' spread does not explain."""
        return self.low is not None and self.low > 1.0

    @property
    def worse(self) -> bool:
        """The interval lies below 1.0: significantly worse."""
        return self.high is not None and self.high < 1.0

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "pairs": self.pairs,
                "significant": self.significant, "level": LEVEL}


def pair_runs(first: Sequence[Trial], second: Sequence[Trial]) -> list[tuple[Trial, Trial]]:
    """Match runs of two configs one-to-one, nearest in time first (trial numbers are claim order).

    Greedy on the distance, ties to the earlier pair: an interleaved race
    A1 B1 A2 B2 pairs (A1, B1), (A2, B2). A run is in at most one pair, so
    one default run shared by five best runs counts as one pair, not five.
    """
    if len(first) > len(second):
        return [(a, b) for b, a in pair_runs(second, first)]
    # a run of `first` is paired with one of its len(first) nearest runs on either side (the
    # others nearer to it are taken by the other runs of `first`): no need to weigh all of `second`
    order = sorted(range(len(second)), key=lambda j: second[j].number)
    numbers = [second[j].number for j in order]
    k = len(first)
    candidates = []
    for i, a in enumerate(first):
        at = bisect.bisect_left(numbers, a.number)
        for pos in range(max(0, at - k), min(len(order), at + k)):
            b = second[order[pos]]
            candidates.append((abs(a.number - b.number), min(a.number, b.number), i, order[pos]))
    candidates.sort()
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for _, _, i, j in candidates:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((first[i], second[j]))
    return sorted(pairs, key=lambda p: min(p[0].number, p[1].number))


def log_gains(pairs: Sequence[tuple[float, float]], maximize: bool) -> np.ndarray | None:
    """log(gain) of each (first, second) value pair; None when a value is not positive (no ratio)."""
    values = np.asarray(pairs, dtype=float).reshape(-1, 2)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        return None
    logs = np.log(values[:, 0]) - np.log(values[:, 1])
    return logs if maximize else -logs


def interval_of(logs: np.ndarray, level: float = LEVEL) -> RatioInterval:
    """Geometric-mean ratio and the t-interval of the mean log gain, back on the ratio scale."""
    n = len(logs)
    if n == 0:
        raise ValueError("no pairs to compare")
    mean = float(np.mean(logs))
    if n < 2:
        return RatioInterval(math.exp(mean), None, None, n)
    spread = float(np.std(logs, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * spread / math.sqrt(n) if spread > 0 else 0.0
    return RatioInterval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n)


def paired_gain(first: Sequence[Trial], second: Sequence[Trial], maximize: bool, level: float = LEVEL) -> RatioInterval | None:
    """The gain of config `first` over `second` from their paired runs; None without a pair or a ratio.

    Both lists hold completed runs with values (one config each).
    """
    pairs = pair_runs(first, second)
    if not pairs:
        return None
    logs = log_gains([(a.value, b.value) for a, b in pairs], maximize)
    return None if logs is None else interval_of(logs, level)


def describe(gain: dict | None, metric: str) -> str:
    """One line for a vs-default gain (a `RatioInterval.to_json()`), as the CLI and the report print it."""
    if not gain:
        return f"no ratio to the default on {metric} (no paired runs, or values that are not positive)"
    if gain.get("same"):
        return f"no significant gain: no config beat the default on {metric}"
    ratio, pairs = gain["ratio"], gain["pairs"]
    if gain.get("low") is None:
        return (f"gain unconfirmed: best measured {ratio:.2f}x the default on {metric}, "
                f"not in paired runs ({pairs} pair{'s' if pairs != 1 else ''})")
    span = f"95% interval [{gain['low']:.2f}, {gain['high']:.2f}], {pairs} paired runs"
    if gain["significant"]:
        return f"best is {ratio:.2f}x the default on {metric} ({span})"
    return f"no significant gain over the default on {metric} (ratio {ratio:.2f}, {span})"


__all__ = ["LEVEL", "RatioInterval", "describe", "interval_of", "log_gains", "pair_runs", "paired_gain"]
