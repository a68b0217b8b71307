"""A learned cost model of kernel schedules: features -> predicted time, across shapes.

Trained with scikit-learn gradient boosting on measured trials of any shape
(from stored studies or in-memory records). The target is log seconds per
GFLOP (time normalised by the work), so trials of a 256-cube and a 1024-cube
teach the same model; predictions for a given shape turn back into seconds.
A model fitted on other shapes warm-starts a new one: `update` refits on old
and new records with the new shape's own trials weighted up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from autosys_adapters.kernels.features import feature_vector
from autosys_adapters.kernels.shapes import parse_shape
from autosys_adapters.kernels.worker import flops
from autosys.learn.loop import Learner


@dataclass(frozen=True)
class KernelRecord:
    """One measured schedule: which op and shape, the config, and its speed."""

    op: str
    shape: tuple[int, ...]
    config: Mapping[str, Any]
    gflops: float
    threads: int = 1

    @property
    def seconds(self) -> float:
        return flops(self.op, list(self.shape)) / (self.gflops * 1e9)


def records_from_study(directory: str | Path) -> list[KernelRecord]:
    """Completed trials of a stored `kernel` study as records (shape and op from its options)."""
    from autosys.run.study import open_study
    from autosys.core.trial import TrialState

    storage, spec = open_study(directory)
    try:
        return _records(spec.get("system_options", {}),
                        [(t.config, t.metrics, t.value) for t in storage.trials((TrialState.COMPLETE,))])
    finally:
        storage.close()


def records_from_knowledge(study: Any) -> list[KernelRecord]:
    """The same records from one knowledge-base study (`autosys.learn.knowledge.StoredStudy`, trials filled)."""
    return _records(study.signature.get("options", {}),
                    [(t.config, t.metrics, t.value) for t in study.trials if t.state == "complete"])


def _records(options: Mapping[str, Any], trials: Iterable[tuple[Mapping, Mapping, float | None]]) -> list[KernelRecord]:
    op = options.get("op", "matmul")
    shape = parse_shape(op, options.get("shape", "256,256,256"))
    threads = int(options.get("threads", 1))
    out = []
    for config, metrics, value in trials:
        gflops = metrics.get("gflops", value)
        if gflops and math.isfinite(gflops) and gflops > 0:
            out.append(KernelRecord(op, tuple(shape), dict(config), float(gflops), threads))
    return out


class KernelCostLearner(Learner):
    """The kernel cost model as a model of the learning loop (autosys/learn/loop.py): trained on every
    `kernel` study in the knowledge base (any op, shape and thread count), retrained when one lands."""

    name = "kernel-cost-model"
    systems = ("kernel", "autosys_adapters.kernels.system:KernelSchedule")

    def __init__(self, **options: Any):
        self.options = options

    def rows(self, study: Any) -> list[KernelRecord]:
        return records_from_knowledge(study)

    def fit(self, rows: list[KernelRecord]) -> "KernelCostModel":
        return KernelCostModel(**self.options).fit(rows)


class KernelCostModel:
    """Gradient-boosted regression of log(seconds per GFLOP) on schedule features."""

    def __init__(self, n_estimators: int = 300, max_depth: int = 4, learning_rate: float = 0.05, seed: int = 0):
        self.params = dict(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate)
        self.seed = seed
        self.model = None
        self.records: list[KernelRecord] = []
        self.weights: list[float] = []

    @staticmethod
    def _x(records: Sequence[KernelRecord]) -> np.ndarray:
        return np.array([feature_vector(r.op, r.shape, r.config, r.threads) for r in records])

    @staticmethod
    def _y(records: Sequence[KernelRecord]) -> np.ndarray:
        return np.array([-math.log(r.gflops) for r in records])  # log(s / GFLOP)

    def fit(self, records: Iterable[KernelRecord], weight: float = 1.0) -> "KernelCostModel":
        self.records = list(records)
        self.weights = [weight] * len(self.records)
        return self._refit()

    def update(self, records: Iterable[KernelRecord], weight: float = 2.0) -> "KernelCostModel":
        """Warm start: add records (e.g. of a new shape) weighted above the old ones, and refit."""
        new = list(records)
        self.records += new
        self.weights += [weight] * len(new)
        return self._refit()

    def _refit(self) -> "KernelCostModel":
        if len(self.records) < 3:
            raise ValueError(f"a cost model needs at least 3 records, got {len(self.records)}")
        from sklearn.ensemble import GradientBoostingRegressor

        self.model = GradientBoostingRegressor(**self.params, subsample=0.9, random_state=self.seed)
        self.model.fit(self._x(self.records), self._y(self.records), sample_weight=np.array(self.weights))
        return self

    def predict_seconds(self, op: str, shape: Sequence[int], configs: Sequence[Mapping[str, Any]], threads: int = 1):
        """Predicted kernel time in seconds for each schedule on `shape`."""
        if self.model is None:
            raise RuntimeError("fit the cost model first")
        records = [KernelRecord(op, tuple(shape), c, 1.0, threads) for c in configs]
        per_gflop = np.exp(self.model.predict(self._x(records)))
        return per_gflop * flops(op, list(shape)) / 1e9

    def predict_gflops(self, op: str, shape: Sequence[int], configs: Sequence[Mapping[str, Any]], threads: int = 1):
        return flops(op, list(shape)) / 1e9 / self.predict_seconds(op, shape, configs, threads)

    def ranking_quality(self, records: Sequence[KernelRecord]) -> dict[str, float]:
        """Pairwise ordering accuracy and Kendall's tau of predicted vs measured speed."""
        from scipy.stats import kendalltau

        if len(records) < 2:
            raise ValueError("ranking quality needs at least 2 records")
        pred = -self.model.predict(self._x(records))  # higher = faster
        true = np.array([r.gflops for r in records])
        i, j = np.triu_indices(len(records), 1)
        differ = true[i] != true[j]
        agree = np.sign(pred[i] - pred[j]) == np.sign(true[i] - true[j])
        tau = kendalltau(pred, true).statistic
        return {"pairwise_accuracy": float(agree[differ].mean()), "kendall_tau": float(tau), "n": len(records)}
