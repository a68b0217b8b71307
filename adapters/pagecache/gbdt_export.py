"""Gradient-boosted trees as flat arrays, evaluated inside numba.

A trained scikit-learn `HistGradientBoostingRegressor` is exported once per
retraining to five node arrays (feature, threshold, left, right, value; a leaf
has feature -1) plus the root of each tree and the baseline, so compiled
eviction code can walk the trees without calling back into Python. Numeric
splits only: a split sends x left when x[feature] <= threshold, as sklearn's
predictor does for non-missing values (the simulator never feeds NaN).
`forest_predict` equals `model.predict` up to the order of a float sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class FlatForest:
    """An additive tree ensemble in flat node arrays (trees concatenated; `roots[k]` = first node of tree k)."""

    feature: np.ndarray  # int32, -1 at leaves
    threshold: np.ndarray  # float64
    left: np.ndarray  # int32, global node index
    right: np.ndarray  # int32
    value: np.ndarray  # float64, leaf values (shrinkage already applied)
    roots: np.ndarray  # int32
    base: float

    @property
    def arrays(self) -> tuple:
        """The positional arguments of `forest_predict` after the feature vector."""
        return self.feature, self.threshold, self.left, self.right, self.value, self.roots, self.base

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def thresholds_of(self, feature: int) -> np.ndarray:
        """Sorted distinct split thresholds on one feature (the points where predictions can change)."""
        return np.unique(self.threshold[self.feature == feature])


def empty_forest(base: float = 0.0) -> FlatForest:
    """A forest of no trees that predicts `base` everywhere."""
    z32 = np.zeros(1, np.int32)
    return FlatForest(np.full(1, -1, np.int32), np.zeros(1), z32, z32, np.zeros(1), np.zeros(0, np.int32), float(base))


def flatten_hgb(model) -> FlatForest:
    """Export a fitted single-output HistGradientBoostingRegressor (numeric features only)."""
    predictors = getattr(model, "_predictors", None)
    if predictors is None:
        raise ValueError("flatten_hgb needs a fitted HistGradientBoostingRegressor")
    feat, thr, left, right, value, roots = [], [], [], [], [], []
    offset = 0
    for per_iteration in predictors:
        if len(per_iteration) != 1:
            raise ValueError("flatten_hgb handles single-output regression only")
        nodes = per_iteration[0].nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("flatten_hgb handles numeric splits only (the model has categorical splits)")
        is_leaf = nodes["is_leaf"].astype(bool)
        roots.append(offset)
        feat.append(np.where(is_leaf, -1, nodes["feature_idx"]).astype(np.int32))
        thr.append(nodes["num_threshold"].astype(np.float64))
        left.append((nodes["left"].astype(np.int64) + offset).astype(np.int32))
        right.append((nodes["right"].astype(np.int64) + offset).astype(np.int32))
        value.append(nodes["value"].astype(np.float64))
        offset += len(nodes)
    if not roots:
        return empty_forest(float(np.ravel(model._baseline_prediction)[0]))
    cat = np.concatenate
    return FlatForest(cat(feat), cat(thr), cat(left), cat(right), cat(value), np.array(roots, np.int32),
                      float(np.ravel(model._baseline_prediction)[0]))


@njit(cache=True)
def forest_predict(f, feature, threshold, left, right, value, roots, base):
    """Sum of the trees' leaf values for one feature vector `f`, plus the baseline."""
    s = base
    for r in range(len(roots)):
        i = roots[r]
        while feature[i] >= 0:
            if f[feature[i]] <= threshold[i]:
                i = left[i]
            else:
                i = right[i]
        s += value[i]
    return s


@njit(cache=True)
def forest_predict_many(X, feature, threshold, left, right, value, roots, base):
    """`forest_predict` for every row of X."""
    out = np.empty(X.shape[0])
    for k in range(X.shape[0]):
        out[k] = forest_predict(X[k], feature, threshold, left, right, value, roots, base)
    return out


@dataclass(frozen=True)
class CompleteForest:
    """The same ensemble with every tree padded to a complete binary tree of depth `depth`.

    Tree k's internal nodes are feature[k, i] / threshold[k, i] in heap order
    (children of i: 2i+1, 2i+2) and its leaves value[k, j]; a leaf of the
    original tree above the full depth becomes a chain of always-left splits
    (threshold +inf) ending at its value. Evaluation is then branch-free and
    level-synchronous over all trees (see `complete_predict`): the trees'
    walks are independent, so the CPU overlaps them.
    """

    feature: np.ndarray  # int32 (n_trees, 2**depth - 1)
    threshold: np.ndarray  # float64 (n_trees, 2**depth - 1)
    value: np.ndarray  # float64 (n_trees, 2**depth)
    base: float
    depth: int

    @property
    def arrays(self) -> tuple:
        """The positional arguments of `complete_predict` after the feature vector (and the scratch array)."""
        return self.feature, self.threshold, self.value, self.base

    def thresholds_of(self, feature: int) -> np.ndarray:
        """Sorted distinct real split thresholds on one feature (padding splits excluded)."""
        return np.unique(self.threshold[(self.feature == feature) & np.isfinite(self.threshold)])


def tree_depth(forest: FlatForest) -> int:
    """Edges from a root to the deepest leaf, over all trees (0 for stumps-only leaves or no trees)."""
    deepest = 0
    for r in forest.roots:
        stack = [(int(r), 0)]
        while stack:
            i, d = stack.pop()
            if forest.feature[i] < 0:
                deepest = max(deepest, d)
            else:
                stack.append((int(forest.left[i]), d + 1))
                stack.append((int(forest.right[i]), d + 1))
    return deepest


def complete(forest: FlatForest, depth: int | None = None) -> CompleteForest:
    """Pad every tree of `forest` to a complete tree of `depth` levels (default: the deepest tree's depth)."""
    depth = tree_depth(forest) if depth is None else int(depth)
    if depth > 16:
        raise ValueError(f"complete(): depth {depth} would need {2 ** depth} leaves per tree; keep depth <= 16")
    n_trees = max(1, forest.n_trees)
    feat = np.zeros((n_trees, 2 ** depth - 1), np.int32)
    thr = np.full((n_trees, 2 ** depth - 1), np.inf)
    val = np.zeros((n_trees, 2 ** depth))
    for k, r in enumerate(forest.roots):
        stack = [(int(r), 0, 0)]  # original node, heap position, level
        while stack:
            i, pos, level = stack.pop()
            if forest.feature[i] < 0:
                while level < depth:  # always-left chain down to the leaf row
                    pos, level = 2 * pos + 1, level + 1
                val[k, pos - (2 ** depth - 1)] = forest.value[i]
                continue
            if level >= depth:
                raise ValueError(f"complete(): a tree is deeper than {depth}")
            feat[k, pos] = forest.feature[i]
            thr[k, pos] = forest.threshold[i]
            stack.append((int(forest.left[i]), 2 * pos + 1, level + 1))
            stack.append((int(forest.right[i]), 2 * pos + 2, level + 1))
    if forest.n_trees == 0:
        val[:] = 0.0
    return CompleteForest(feat, thr, val, forest.base, depth)


@njit(cache=True)
def complete_predict(f, idx, feature, threshold, value, base):
    """Prediction of a CompleteForest for feature vector `f`; `idx` is int64 scratch of length n_trees."""
    n_trees, n_internal = feature.shape
    for k in range(n_trees):
        idx[k] = 0
    while idx[0] < n_internal:  # every tree is at the same level
        for k in range(n_trees):
            i = idx[k]
            idx[k] = 2 * i + 1 + np.int64(f[feature[k, i]] > threshold[k, i])
    s = base
    for k in range(n_trees):
        s += value[k, idx[k] - n_internal]
    return s


@njit(cache=True)
def complete_predict_many(X, feature, threshold, value, base):
    """`complete_predict` for every row of X."""
    out = np.empty(X.shape[0])
    idx = np.empty(feature.shape[0], np.int64)
    for r in range(X.shape[0]):
        out[r] = complete_predict(X[r], idx, feature, threshold, value, base)
    return out
