"""One small model interface for every learner in autosys.

`fit(X, y)`, `predict(X) -> (mean, std)` (std is zero where a model has no
notion of uncertainty) and `rank(X)` (best first, for a loss to minimize).
Bayesian optimization surrogates, kernel cost models, workload mapping and
the agent's policy all sit behind it, so a better model helps all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Model(ABC):
    """A regression model of a loss (lower is better) over feature rows."""

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> "Model": ...

    @abstractmethod
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the loss for each row of X."""

    def rank(self, X: np.ndarray) -> np.ndarray:
        """Row indices of X, predicted best (lowest loss) first."""
        mean, _ = self.predict(X)
        return np.argsort(mean, kind="stable")


def _check(X: Any, y: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D array, got shape {X.shape}")
    if y is None:
        return X, None
    y = np.asarray(y, dtype=float)
    if y.shape != (len(X),):
        raise ValueError(f"targets must have shape ({len(X)},), got {y.shape}")
    finite = np.isfinite(y) & np.all(np.isfinite(X), axis=1)
    if not finite.any():
        raise ValueError("no finite (features, target) rows to fit")
    return X[finite], y[finite]  # failed or non-finite outcomes never reach a model


class ForestModel(Model):
    """Random forest or extra trees (the BO surrogate); uncertainty is the spread of the trees."""

    def __init__(self, kind: str = "rf", n_estimators: int = 100, min_samples_leaf: int = 2, seed: int = 0):
        from autosys.learn.surrogates import ForestSurrogate

        self.seed = seed
        self._forest = ForestSurrogate(kind, n_estimators, min_samples_leaf)

    def fit(self, X, y):
        X, y = _check(X, y)
        self._forest.fit(X, y, np.random.default_rng(self.seed))
        return self

    def predict(self, X):
        X, _ = _check(X)
        return self._forest.predict(X)


class BoostingModel(Model):
    """Gradient boosting (scikit-learn's histogram GBM); std from quantile models if asked."""

    def __init__(self, with_uncertainty: bool = False, max_iter: int = 200, seed: int = 0):
        self.with_uncertainty, self.max_iter, self.seed = with_uncertainty, max_iter, seed
        self._models: dict[str, Any] = {}

    def fit(self, X, y):
        from sklearn.ensemble import HistGradientBoostingRegressor

        X, y = _check(X, y)
        make = lambda **kw: HistGradientBoostingRegressor(max_iter=self.max_iter, random_state=self.seed, **kw)  # noqa: E731
        self._models = {"mean": make().fit(X, y)}
        if self.with_uncertainty:
            self._models["lo"] = make(loss="quantile", quantile=0.16).fit(X, y)
            self._models["hi"] = make(loss="quantile", quantile=0.84).fit(X, y)
        return self

    def predict(self, X):
        X, _ = _check(X)
        mean = self._models["mean"].predict(X)
        if "lo" in self._models:
            std = np.abs(self._models["hi"].predict(X) - self._models["lo"].predict(X)) / 2
        else:
            std = np.zeros(len(X))
        return mean, std


class GPModel(Model):
    """The fast numpy Gaussian process BO uses (Matérn 5/2, ARD, fitted noise), on standardized targets."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._gp = None
        self._mu, self._sd = 0.0, 1.0

    def fit(self, X, y):
        from autosys.learn.surrogates import GaussianProcess

        X, y = _check(X, y)
        self._mu, self._sd = float(y.mean()), float(y.std()) or 1.0
        self._gp = GaussianProcess().fit(X, (y - self._mu) / self._sd, np.random.default_rng(self.seed))
        return self

    def predict(self, X):
        X, _ = _check(X)
        mean, std = self._gp.predict(X)
        return mean * self._sd + self._mu, std * self._sd


class NearestModel(Model):
    """k-nearest neighbours: the simplest context -> outcome map (workload mapping)."""

    def __init__(self, k: int = 3):
        self.k = k
        self._X = self._y = None

    def fit(self, X, y):
        self._X, self._y = _check(X, y)
        self._scale = self._X.std(axis=0)
        self._scale[self._scale == 0] = 1.0
        return self

    def neighbours(self, X) -> np.ndarray:
        X, _ = _check(X)
        d = np.linalg.norm((X[:, None, :] - self._X[None, :, :]) / self._scale, axis=2)
        return np.argsort(d, axis=1)[:, : min(self.k, len(self._X))]

    def predict(self, X):
        idx = self.neighbours(X)
        values = self._y[idx]
        return values.mean(axis=1), values.std(axis=1)


MODELS = {"rf": lambda **kw: ForestModel("rf", **kw), "et": lambda **kw: ForestModel("et", **kw),
          "gbm": BoostingModel, "gp": GPModel, "knn": NearestModel}


def make_model(name: str, **options: Any) -> Model:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](**options)
