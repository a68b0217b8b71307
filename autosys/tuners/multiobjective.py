"""Several objectives at once: non-dominated sorting, Pareto fronts, and ParEGO for BO.

Systems report several metrics (throughput and p95 latency, lookup time and
index size). `pareto_front` picks the non-dominated trials from any tuner's
results; `ParEGO` (Knowles 2006) runs BO on a random augmented-Chebyshev
scalarization of the normalized objectives, a new weight vector every ask, so
successive suggestions spread along the front.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from autosys.core.space import Config, Space
from autosys.core.trial import Result, Trial
from autosys.tuners.bayes import BayesOpt

Objectives = Sequence[tuple[str, str]]  # (metric, "minimize" | "maximize")


def _check_objectives(objectives: Objectives) -> list[tuple[str, str]]:
    out = []
    for metric, direction in objectives:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"objective {metric!r}: direction must be 'minimize' or 'maximize', not {direction!r}")
        out.append((metric, direction))
    if not out:
        raise ValueError("at least one objective is needed")
    return out


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """True when loss vector `a` is no worse than `b` everywhere and better somewhere."""
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_sort(F: np.ndarray) -> list[np.ndarray]:
    """Fronts of row indices of the loss matrix F (n x m, lower is better), best front first."""
    F = np.asarray(F, float)
    n = len(F)
    if n == 0:
        return []
    # dom[i, j]: i dominates j
    le = np.all(F[:, None, :] <= F[None, :, :], axis=2)
    lt = np.any(F[:, None, :] < F[None, :, :], axis=2)
    dom = le & lt
    count = dom.sum(0)  # how many dominate each point
    fronts = []
    remaining = np.ones(n, bool)
    while remaining.any():
        front = np.flatnonzero(remaining & (count == 0))
        fronts.append(front)
        remaining[front] = False
        count = count - dom[front].sum(0)
        count[~remaining] = -1
    return fronts


def loss_matrix(metrics: Sequence[Mapping[str, float]], objectives: Objectives) -> np.ndarray:
    """Rows of losses (maximized metrics negated); NaN where a metric is missing."""
    objectives = _check_objectives(objectives)
    F = np.full((len(metrics), len(objectives)), np.nan)
    for i, m in enumerate(metrics):
        for j, (name, direction) in enumerate(objectives):
            value = m.get(name)
            if value is not None and np.isfinite(value):
                F[i, j] = -value if direction == "maximize" else value
    return F


def pareto_front(results: Sequence[Result | Trial | Mapping[str, float]], objectives: Objectives) -> list[int]:
    """Indices of the non-dominated entries among completed results (failed ones never count)."""
    metrics, keep = [], []
    for i, r in enumerate(results):
        if isinstance(r, Mapping):
            metrics.append(r)
            keep.append(i)
        elif isinstance(r, Result) and not r.ok:
            continue
        elif isinstance(r, Trial) and r.state.value != "complete":
            continue
        else:
            metrics.append(r.metrics)
            keep.append(i)
    F = loss_matrix(metrics, objectives)
    complete = ~np.isnan(F).any(1)
    idx = np.flatnonzero(complete)
    if len(idx) == 0:
        return []
    front = non_dominated_sort(F[idx])[0]
    return sorted(keep[i] for i in idx[front])


def hypervolume_2d(F: np.ndarray, ref: Sequence[float]) -> float:
    """Area dominated by 2-objective loss points up to the reference point (bigger is better)."""
    F = np.asarray(F, float)
    F = F[np.all(F < np.asarray(ref), axis=1)]
    if len(F) == 0:
        return 0.0
    F = F[np.argsort(F[:, 0])]
    area, best_y = 0.0, ref[1]
    for x, y in F:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)


class ParEGO(BayesOpt):
    """BO on random augmented-Chebyshev scalarizations of several metrics.

    Parameters
    ----------
    objectives: (metric, direction) pairs read from each result's metrics; a
        result missing one of them is left out of the model.
    rho: weight of the linear term that breaks ties on the Chebyshev norm.
    """

    name = "parego"

    def __init__(self, space: Space, *, objectives: Objectives, rho: float = 0.05, **kwargs: Any):
        self.objectives = _check_objectives(objectives)
        if len(self.objectives) < 2:
            raise ValueError("ParEGO needs at least two objectives; use 'bo' for one")
        self.rho = rho
        kwargs.setdefault("acquisition", "ei")
        super().__init__(space, **kwargs)

    def _training_data(self) -> tuple[list[Config], np.ndarray]:
        told = [(t.config, r.metrics) for t, r in self.history if r.ok]
        if not told:
            return [], np.zeros(0)
        F = loss_matrix([m for _, m in told], self.objectives)
        keep = ~np.isnan(F).any(1)
        configs = [c for (c, _), k in zip(told, keep) if k]
        F = F[keep]
        if len(F) == 0:
            return [], np.zeros(0)
        lo, hi = F.min(0), F.max(0)
        Z = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
        weights = self.rng.dirichlet(np.ones(F.shape[1]))
        scalar = (Z * weights).max(1) + self.rho * (Z * weights).sum(1)
        return configs, scalar

    def pareto_trials(self) -> list[tuple[Trial, Result]]:
        """The non-dominated (trial, result) pairs told so far."""
        pairs = [(t, r) for t, r in self.history if r.ok]
        front = pareto_front([r for _, r in pairs], self.objectives)
        return [pairs[i] for i in front]
