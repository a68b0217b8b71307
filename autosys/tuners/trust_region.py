"""Trust-region Bayesian optimization (TuRBO-1 style) for a handful-of-knobs to tens-of-knobs spaces.

Global BO spreads its few trials over the whole box and, in 10-D with ~100
trials, its model is too coarse where the good configs are. TuRBO (Eriksson et
al., 2019) keeps a box around the incumbent, scaled per knob by the GP's
lengthscales, searches only inside it (perturbing a few coordinates of the
incumbent at a time), doubles it after a few successes, halves it after a run
of failures, and starts a fresh region when it has shrunk to nothing. The GP is
BayesOpt's (same fit, fantasies, feasibility and state); only the candidates
and the success bookkeeping differ.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from autosys.core.space import Config, Space
from autosys.core.trial import Result, Trial
from autosys.tuners.bayes import BayesOpt


class TrustRegionBO(BayesOpt):
    """BO whose candidates lie in a trust region around the incumbent that grows on success and shrinks on failure.

    Parameters (beyond BayesOpt's)
    ------------------------------
    length_init, length_min, length_max: side of the region in the unit cube
        (before the per-knob lengthscale weights); below length_min it restarts.
    success_tol: consecutive own improvements that double the region.
    failure_tol: consecutive own non-improvements that halve it (default max(3, dims // 2),
        shorter than TuRBO's max(4, dims) because studies here have ~100 trials, not thousands).
    """

    name = "turbo"

    def __init__(
        self,
        space: Space,
        *,
        acquisition: str = "ei",
        length_init: float = 0.8,
        length_min: float = 0.5**6,
        length_max: float = 1.6,
        success_tol: int = 3,
        failure_tol: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(space, acquisition=acquisition, **kwargs)
        if not 0 < length_min < length_init <= length_max:
            raise ValueError("trust region lengths must satisfy 0 < length_min < length_init <= length_max")
        self.length_init, self.length_min, self.length_max = length_init, length_min, length_max
        self.success_tol = int(success_tol)
        self.failure_tol = int(failure_tol) if failure_tol is not None else max(3, len(space) // 2)
        if self.success_tol < 1 or self.failure_tol < 1:
            raise ValueError("success_tol and failure_tol must be at least 1")
        self._reset_region()
        self._restart_at = 0  # index into history where the current region began

    def _reset_region(self) -> None:
        self.length = self.length_init
        self._successes = 0
        self._failures = 0
        self._region_best: float | None = None

    # --- where the region is
    def _center(self, U: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The best point told since the region (re)started; the best overall before any."""
        since = len([1 for t, r in self.history[: self._restart_at] if self.loss(r) is not None])
        if since < len(y):
            return U[since + int(np.argmin(y[since:]))]
        return U[int(np.argmin(y))]

    def _weights(self, n_dims: int) -> np.ndarray:
        """Per-knob side lengths ~ GP lengthscales (geometric mean 1); uniform when features are not 1:1."""
        ls = getattr(self.model, "lengthscales", None) if getattr(self.model, "theta", None) is not None else None
        if ls is None or len(ls) != n_dims:
            return np.ones(n_dims)
        w = ls / ls.mean()
        return w / np.prod(w ** (1.0 / n_dims))

    def _candidates(self, U: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = U.shape[1]
        rng = self.rng
        n = self.n_candidates
        center = self._center(U, y)
        half = self._weights(d) * self.length / 2.0
        lo, hi = np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)
        pert = lo + (hi - lo) * rng.random((n, d))
        # perturb a few coordinates of the center at a time (TuRBO: probability min(1, 20/d))
        mask = rng.random((n, d)) < min(1.0, 20.0 / d)
        mask[np.arange(n), rng.integers(d, size=n)] = True
        return np.where(mask, pert, center)

    # --- success bookkeeping
    def _tell(self, trial: Trial, result: Result) -> None:
        super()._tell(trial, result)
        loss = self.loss(result)
        # "improved" means by a sliver of the typical gap (median - best), not of |best|: an objective's
        # offset (BBOB's optimum is far from 0) must not turn every small late gain into a failure
        losses = [l for _, l in self.observations]
        gap = float(np.median(losses)) - min(losses) if losses else 0.0
        improved = loss is not None and (self._region_best is None or loss < self._region_best - 1e-3 * gap)
        if loss is not None and (self._region_best is None or loss < self._region_best):
            self._region_best = loss
        if trial.number < 0 or len(self.observations) <= self.n_initial:
            return  # only its own model-based proposals move the region's size
        if improved:
            self._successes, self._failures = self._successes + 1, 0
        else:
            self._successes, self._failures = 0, self._failures + 1
        if self._successes >= self.success_tol:
            self.length, self._successes = min(self.length_max, 2.0 * self.length), 0
        elif self._failures >= self.failure_tol:
            self.length, self._failures = self.length / 2.0, 0
        if self.length < self.length_min:
            best = self._region_best
            self._reset_region()
            self._region_best = best
            self._restart_at = len(self.history)

    def _ask(self) -> Config:
        since = sum(1 for _, r in self.history[self._restart_at :] if self.loss(r) is not None)
        if self._restart_at and since < 2:
            # a fresh region starts from fresh random points, as TuRBO's restarts do
            return self.space.sample(self.rng)
        return super()._ask()

    # --- state: replaying history rebuilds the region (no randomness in _tell)
    def _restore(self, history, extra: Mapping[str, Any]) -> None:
        self._reset_region()
        self._restart_at = 0
        super()._restore(history, extra)

    def region(self) -> dict[str, float]:
        """The region's current side length and counters (for reports and tests)."""
        return {"length": self.length, "successes": self._successes, "failures": self._failures,
                "restarts_at": self._restart_at}


