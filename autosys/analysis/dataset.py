"""Datasets for the shared loop: (context, config) -> outcome rows from a study's storage.

A row is one finished trial: its config encoded in the unit cube, the mean
of every monitor reading stored while it ran (the context: what the
workload and machine looked like), and its objective value as a loss (lower
is better) — failed and non-finite trials never become rows. `Retrainer`
refits a model on a schedule as rows arrive, which is how the agent and
long-running studies keep a model current.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from autosys.learn.models import Model
from autosys.core.space import InvalidConfig, Space
from autosys.core.trial import TrialState


@dataclass
class Dataset:
    """Feature rows (context columns, then one column per knob) and losses."""

    X: np.ndarray
    y: np.ndarray
    columns: list[str]
    trial_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


def context_of(storage: Any, start: float, end: float, sources: Sequence[str] | None = None) -> dict[str, float]:
    """Mean of each stored monitor metric between `start` and `end` (wall-clock seconds)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for t, source, metrics in storage.observations():
        if not start <= t <= end or (sources is not None and source not in sources):
            continue
        for name, value in metrics.items():
            if value is None or not math.isfinite(value):
                continue
            key = f"{source}.{name}"
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
    return {k: sums[k] / counts[k] for k in sums}


def study_dataset(storage: Any, space: Space, *, direction: str = "maximize",
                  sources: Sequence[str] | None = None) -> Dataset:
    """Rows for every completed, feasible trial of a study (context from its observations)."""
    sign = -1.0 if direction == "maximize" else 1.0
    rows: list[tuple[dict[str, float], np.ndarray, float, int]] = []
    for trial in storage.trials((TrialState.COMPLETE,)):
        if not trial.feasible or trial.value is None or not math.isfinite(trial.value):
            continue
        try:
            encoded = space.encode(space.validate(trial.config))
        except InvalidConfig:
            continue  # a config from an older space says nothing about this one
        context: dict[str, float] = {}
        if trial.started_at is not None and trial.finished_at is not None:
            context = context_of(storage, trial.started_at, trial.finished_at, sources)
        rows.append((context, encoded, sign * trial.value, trial.number))
    context_names = sorted({k for c, _, _, _ in rows for k in c})
    columns = context_names + space.names
    if not rows:
        return Dataset(np.zeros((0, len(columns))), np.zeros(0), columns)
    X = np.array([[c.get(n, 0.0) for n in context_names] + list(enc) for c, enc, _, _ in rows], dtype=float)
    y = np.array([loss for _, _, loss, _ in rows], dtype=float)
    return Dataset(X, y, columns, [n for _, _, _, n in rows])


class Retrainer:
    """Refits `model` once `every` new rows have arrived since the last fit (and never on fewer than `min_rows`)."""

    def __init__(self, model: Model, every: int = 10, min_rows: int = 5):
        if every < 1 or min_rows < 1:
            raise ValueError("every and min_rows must be at least 1")
        self.model, self.every, self.min_rows = model, every, min_rows
        self.X: list[np.ndarray] = []
        self.y: list[float] = []
        self._fitted_on = 0
        self.fits = 0

    def add(self, x: Sequence[float], loss: float) -> bool:
        """Add one row; returns True if the model was refitted. Non-finite losses are dropped."""
        if not math.isfinite(loss):
            return False
        self.X.append(np.asarray(x, dtype=float))
        self.y.append(float(loss))
        if len(self.y) >= self.min_rows and len(self.y) - self._fitted_on >= self.every:
            self.refit()
            return True
        return False

    def refit(self) -> None:
        self.model.fit(np.vstack(self.X), np.asarray(self.y))
        self._fitted_on = len(self.y)
        self.fits += 1

    @property
    def ready(self) -> bool:
        return self.fits > 0

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.ready:
            raise RuntimeError("the model has not been fitted yet (too few rows)")
        return self.model.predict(np.asarray(X, dtype=float))
