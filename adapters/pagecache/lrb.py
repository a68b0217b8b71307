"""A fast LRB-style policy: sampled eviction by a gradient-boosted next-access model, retrained periodically.

The design follows LRB (Song et al., NSDI 2020), simplified for one-page objects:

- eviction: on a miss with a full cache, sample `sample` (default 64, as LRB)
  cached pages and evict the one with the largest predicted log time to its
  next request; before the first model, the oldest sample (sampled LRU);
- features: log1p of the page's age (time since its last request), of its last
  `deltas` inter-access gaps (LRB's deltas; missing gaps get a large constant)
  and of its access count. LRB's exponentially decayed counters (EDCs) and
  size/type features are left out: every object is one page, and EDCs change
  continuously with age, which would defeat the prediction cache that makes
  this fast (see _lrb_kernels);
- training data: every few evictions one sampled candidate's features and the
  time; labelled at retraining time with log1p(distance to its next request)
  if that request has happened, or log1p(2 x memory window) if it has not
  after `retrain` requests (LRB labels unseen objects beyond its memory window
  the same way). The memory window is the last 2 x `retrain` requests;
- the model: gradient-boosted regression trees (`trees` trees of depth
  `depth`, features binned in `bins` quantiles), refitted every `retrain`
  requests between compiled chunks on the labelled samples of the memory
  window, by the compiled trainer of gbdt_train (default; about 25 ms a fit
  of 8k rows on the loaded 2-core machine) or by sklearn's
  HistGradientBoostingRegressor (`trainer="sklearn"`, several times slower a
  fit; exported by gbdt_export), and walked inside numba as complete trees.
  LRB itself uses LightGBM with 32 trees; 16 trees of depth 5 were as good here
  and halve the cost of an evaluation.

`run_lrb_detailed` also returns the seconds spent training versus simulating.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from autosys_adapters.pagecache._lrb_kernels import MISSING_GAP, lrb_chunk, node_age_limits
from autosys_adapters.pagecache.gbdt_export import CompleteForest, complete, empty_forest, flatten_hgb


@dataclass
class LRBRun:
    """One run: the miss flag per request and where its time went."""

    miss: np.ndarray
    simulate_seconds: float  # CPU seconds in compiled chunks: hits, evictions, sampling
    train_seconds: float  # CPU seconds labelling, fitting and exporting the model
    retrains: int
    evictions: int
    model_evaluations: int  # candidate predictions actually computed (the rest came from the cache)
    training_samples: int


def seed_state(seed: int) -> np.ndarray:
    """A non-zero xorshift64* state for `seed`."""
    return np.array([((int(seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % 2**64) | 1], np.uint64)


def _check(name: str, value, low) -> int:
    value = int(value)
    if value < low:
        raise ValueError(f"lrb: {name} must be at least {low}, got {value}")
    return value


def auto_retrain(n_requests: int) -> int:
    """Default retraining interval: about 50 models per trace, every 10k-50k requests (phase changes need
    fresh models: at 100k requests between fits, a scan/loop/hot mixture at 10% cache lost 25% to LRU)."""
    return int(np.clip(n_requests // 50, 10_000, 50_000))


def fit_forest(X: np.ndarray, y: np.ndarray, trees: int, depth: int, seed: int, bins: int = 255,
               trainer: str = "numba") -> CompleteForest:
    """Fit the next-access model as complete trees (branch-free walks inside numba): with the compiled trainer
    (gbdt_train) or sklearn's HistGradientBoostingRegressor on one thread (several times slower a fit)."""
    if trainer == "numba":
        from autosys_adapters.pagecache.gbdt_train import fit_complete_forest

        return fit_complete_forest(X, y, trees, depth, bins)
    if trainer != "sklearn":
        raise ValueError(f"lrb: trainer must be 'numba' or 'sklearn', got {trainer!r}")
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    est = HistGradientBoostingRegressor(max_iter=trees, max_depth=depth, learning_rate=0.1, early_stopping=False,
                                        max_bins=bins, random_state=seed)
    with threadpool_limits(1):
        est.fit(X, y)
    return complete(flatten_hgb(est))


def run_lrb_detailed(tr, cap, sample: int = 64, retrain: int = 0, trees: int = 16, depth: int = 5, deltas: int = 4,
                     samples_per_window: int = 4_000, bins: int = 16, trainer: str = "numba", seed: int = 0,
                     cache_predictions: bool = True, **_) -> LRBRun:
    """Run the LRB-style policy over a PreparedTrace with `cap` pages; see the module docstring for the knobs."""
    n = len(tr)
    cap = _check("capacity", cap, 1)
    sample = _check("sample", sample, 1)
    trees = _check("trees", trees, 1)
    depth = _check("depth", depth, 1)
    deltas = _check("deltas", deltas, 1)
    spw = _check("samples_per_window", samples_per_window, 100)
    retrain = auto_retrain(n) if not retrain else _check("retrain", retrain, 1_000)
    window = 2 * retrain

    n_obj = tr.n_obj
    cache = np.empty(cap, np.int32)
    where = np.full(n_obj, -1, np.int32)
    size = np.zeros(1, np.int64)
    last = np.full(n_obj, -1, np.int64)
    fx = np.full((n_obj, deltas + 2), MISSING_GAP, np.float32)
    fx[:, 0] = 0.0
    fx[:, -1] = 0.0
    freq = np.zeros(n_obj, np.int64)
    slot_meta = np.zeros((cap, 4))  # last access, prediction valid until, prediction, padding
    miss = np.zeros(n, np.uint8)
    rng = seed_state(seed)
    ring = 2 * spw
    sx = np.zeros((ring, deltas + 2))
    snext = np.zeros(ring, np.int64)
    st = np.zeros(ring, np.int64)
    stats = np.zeros(4, np.int64)

    forest = complete(empty_forest(), 0)
    node_lim, trained = node_age_limits(forest.feature, forest.threshold), False
    sample_every = max(1, retrain // (2 * spw))  # first window: assume about one eviction per two requests
    sim_s = train_s = 0.0
    retrains = 0
    t = 0
    while t < n:
        t_end = min(n, t + retrain)
        ev0 = stats[0]
        c0 = time.thread_time()
        t = lrb_chunk(tr.ids, tr.nxt, t, t_end, cap, sample, cache, where, slot_meta, size, last, fx, freq, miss, rng,
                      trained, *forest.arrays, node_lim, bool(cache_predictions), sample_every, sx, snext, st, stats)
        sim_s += time.thread_time() - c0
        sample_every = max(1, int(stats[0] - ev0) // spw)
        if t >= n:
            break
        c0 = time.thread_time()
        k = int(min(stats[2], ring))
        X, nx, ts = sx[:k], snext[:k], st[:k]
        keep = (ts >= t - window) & ((nx < t) | (t - ts >= retrain))
        if keep.sum() >= 200:
            y = np.where(nx[keep] < t, np.log1p(nx[keep] - ts[keep]), np.log1p(2 * window))
            forest = fit_forest(X[keep], y, trees, depth, seed + retrains, bins, trainer)
            node_lim = node_age_limits(forest.feature, forest.threshold)
            trained = True
            slot_meta[:, 1] = -1.0  # every cached prediction came from the old model
            retrains += 1
        train_s += time.thread_time() - c0
    return LRBRun(miss, sim_s, train_s, retrains, int(stats[0]), int(stats[1]), int(stats[2]))


def run_lrb(tr, cap, **knobs) -> np.ndarray:
    """The LRB-style policy's miss flag per request (the simulator's runner signature)."""
    return run_lrb_detailed(tr, cap, **knobs).miss
