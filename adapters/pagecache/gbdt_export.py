"""Gradient-boosted trees as flat arrays, evaluated inside numba.

A trained scikit-learn `HistGradientBoostingRegressor` is exported once per
retraining to five node arrays (feature, threshold, left, right, value; a leaf
has feature -1) plus the root of each tree and the baseline, so compiled
eviction code can walk the trees without calling back into Python. Numeric
splits only: a split sends x left when x[feature] <= threshold, as sklearn's
predictor does for non-missing values (the simulator never feeds NaN).
`forest_predict` equals `model.predict` up to the order of a float sum.
Two layouts for evaluation: `CompleteForest` (every tree padded to full depth,
walked level by level) and `BitForest` (QuickScorer: leaf bitmasks ANDed per
feature, no data-dependent branch; several times faster inside the LRB-style
policy, whose inputs are unpredictable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


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


# --------------------------------------------------------------------------- bitvector (QuickScorer) layout


@intrinsic
def trailing_zeros(typingctx, x):
    """Index of the lowest set bit of a uint64 (64 for 0): one instruction (LLVM cttz)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@dataclass(frozen=True)
class BitForest:
    """A CompleteForest of depth <= 6 in the QuickScorer layout (Lucchese et al., SIGIR 2015).

    Each tree's leaves are the bits of a uint64 (bit b = b-th leaf from the
    left). A split that sends x right ("false" node) rules out its left
    subtree's leaves; the exit leaf is the lowest bit left standing after
    clearing those of every false node. Per feature j the distinct split
    thresholds are sorted, and row `offsets[j] + j + c` of `masks` is, per
    tree, the AND of the masks of the nodes on j whose threshold is among the
    c smallest: with c = #thresholds below x[j] (a branch-free binary search),
    one row ANDed per feature gives every tree's exit leaf. No data-dependent
    branches, so no mispredictions: several times faster than walking the
    trees when inputs are unpredictable (evictions).
    """

    thresholds: np.ndarray  # float64: feature j's sorted distinct thresholds are thresholds[offsets[j]:offsets[j+1]]
    offsets: np.ndarray  # int64 (n_features + 1,)
    masks: np.ndarray  # uint64 (len(thresholds) + n_features, n_trees)
    value: np.ndarray  # float64 (n_trees, n_leaves)
    base: float

    @property
    def arrays(self) -> tuple:
        """The positional arguments of `bit_predict` after the feature vector (and the scratch array)."""
        return self.thresholds, self.offsets, self.masks, self.value, self.base


def left_leaf_ranges(depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per internal node of a complete tree (heap order): its level and the first leaf and leaf count of its
    left subtree."""
    n_int = 2 ** depth - 1
    node = np.arange(n_int)
    level = np.floor(np.log2(node + 1)).astype(np.int64)
    width = 2 ** (depth - level)  # leaves under the node
    first = (node - (2 ** level - 1)) * width
    return level, first, width // 2


def bitvector(forest: CompleteForest, n_features: int) -> BitForest:
    """The QuickScorer layout of `forest` (features 0..n_features-1); padding splits (+inf) never go right."""
    if forest.depth > 6:
        raise ValueError(f"bitvector(): depth {forest.depth} has more than 64 leaves a tree; keep depth <= 6")
    n_trees = forest.feature.shape[0]
    _, first, count = left_leaf_ranges(forest.depth)
    ones = np.uint64(2 ** 64 - 1)
    left = ((np.uint64(1) << count.astype(np.uint64)) - np.uint64(1)) << first.astype(np.uint64)
    clear = ~left  # AND this when the node sends x right
    real = np.isfinite(forest.threshold)
    thresholds, offsets, rows = [], [0], []
    for j in range(n_features):
        on_j = real & (forest.feature == j)
        u = np.unique(forest.threshold[on_j])
        acc = np.full(n_trees, ones, np.uint64)
        rows.append(acc.copy())
        trees, nodes = np.nonzero(on_j)
        rank = np.searchsorted(u, forest.threshold[trees, nodes])
        for c in range(len(u)):
            sel = rank == c
            np.bitwise_and.at(acc, trees[sel], clear[nodes[sel]])
            rows.append(acc.copy())
        thresholds.append(u)
        offsets.append(offsets[-1] + len(u))
    masks = np.ascontiguousarray(np.array(rows, np.uint64).reshape(-1, n_trees))
    return BitForest(np.concatenate(thresholds).astype(np.float64), np.array(offsets, np.int64), masks,
                     np.ascontiguousarray(forest.value, np.float64), float(forest.base))


@njit(cache=True, inline="always")
def count_below(a, lo, hi, x):
    """#{t in a[lo:hi] : t < x} for sorted a, without data-dependent branches."""
    n = hi - lo
    if n == 0:
        return 0
    base = lo
    while n > 1:
        half = n >> 1
        base += half * np.int64(a[base + half - 1] < x)
        n -= half
    return base - lo + np.int64(a[base] < x)


@njit(cache=True, inline="always")
def bit_exit_masks(f, thresholds, offsets, masks, acc):
    """Fill `acc` (uint64, n_trees) with each tree's surviving-leaf mask for feature vector f (exit = lowest bit)."""
    n_trees = masks.shape[1]
    for k in range(n_trees):
        acc[k] = np.uint64(0xFFFFFFFFFFFFFFFF)
    for j in range(len(offsets) - 1):
        row = offsets[j] + j + count_below(thresholds, offsets[j], offsets[j + 1], f[j])
        for k in range(n_trees):
            acc[k] &= masks[row, k]


@njit(cache=True)
def bit_predict(f, acc, thresholds, offsets, masks, value, base):
    """Prediction of a BitForest for feature vector f; `acc` is uint64 scratch of length n_trees."""
    bit_exit_masks(f, thresholds, offsets, masks, acc)
    s = base
    for k in range(masks.shape[1]):
        s += value[k, np.int64(trailing_zeros(acc[k]))]
    return s


@njit(cache=True)
def bit_predict_many(X, thresholds, offsets, masks, value, base):
    """`bit_predict` for every row of X."""
    out = np.empty(X.shape[0])
    acc = np.empty(masks.shape[1], np.uint64)
    for r in range(X.shape[0]):
        out[r] = bit_predict(X[r], acc, thresholds, offsets, masks, value, base)
    return out
