"""Early stopping on stagnation: a small helper a study (or any ask/tell loop) can call."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Stagnation:
    """Stop when the best loss has not improved enough for `patience` results.

    An improvement counts when it beats the best so far by more than
    `min_delta` (absolute) and by more than `rel_delta` times |best|. Failed
    results (None or non-finite) count towards patience: a run that only
    fails is stagnating too. `min_trials` results always run first.
    """

    patience: int = 20
    min_delta: float = 0.0
    rel_delta: float = 0.0
    min_trials: int = 0
    best: float | None = None
    since_best: int = 0
    seen: int = field(default=0)

    def __post_init__(self):
        if self.patience < 1:
            raise ValueError("patience must be at least 1")
        if self.min_delta < 0 or self.rel_delta < 0:
            raise ValueError("min_delta and rel_delta must be non-negative")

    def update(self, loss: float | None) -> bool:
        """Record one result (a loss: lower is better); return True when it is time to stop."""
        self.seen += 1
        if loss is not None and math.isfinite(loss):
            if self.best is None:
                self.best, self.since_best = loss, 0
                return self.should_stop
            threshold = max(self.min_delta, self.rel_delta * abs(self.best))
            if loss < self.best - threshold:
                self.since_best = 0
            else:
                self.since_best += 1
            self.best = min(self.best, loss)
        else:
            self.since_best += 1
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        return self.seen >= self.min_trials and self.since_best >= self.patience

    def reset(self) -> None:
        self.best, self.since_best, self.seen = None, 0, 0


def stagnated(losses, patience: int = 20, min_delta: float = 0.0, rel_delta: float = 0.0) -> bool:
    """True when a finished sequence of losses (None for failures) ends in a stagnant stretch."""
    rule = Stagnation(patience=patience, min_delta=min_delta, rel_delta=rel_delta)
    stop = False
    for loss in losses:
        stop = rule.update(loss)
    return stop


def stop_on_stagnation(patience: int = 20, min_delta: float = 0.0, rel_delta: float = 0.0):
    """A `Study.run(stop_when=...)` rule: stop once `patience` finished trials brought no improvement."""

    def rule(study) -> bool:
        sign = -1.0 if study.objective.direction == "maximize" else 1.0
        feasible = {t.number for t in study.feasible_trials()}
        losses = [sign * t.value if t.number in feasible and t.value is not None else None
                  for t in study.trials() if t.state.finished]
        return stagnated(losses, patience=patience, min_delta=min_delta, rel_delta=rel_delta)

    return rule
