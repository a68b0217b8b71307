"""A fast LRB-style policy: sampled eviction by a gradient-boosted next-access model, retrained periodically.

The design follows LRB (Song et al., NSDI 2020), simplified for one-page objects:

- eviction: on a miss with a full cache, sample `sample` (default 64, as LRB)
  cached pages and evict the one with the largest predicted log time to its
  next request; before the first model, the oldest sample (sampled LRU);
- features: the page's age (time since its last request), its last `deltas`
  inter-access gaps (LRB's deltas; a gap never seen gets its own code) and
  its access count, each as a one-byte log code (8 steps per doubling, see
  _lrb_kernels.log_code: integer instructions, no logarithm). LRB's
  exponentially decayed counters (EDCs) and size/type features are left out:
  every object is one page, and EDCs change continuously with age, which
  would defeat the prediction cache that makes this fast (see _lrb_kernels);
- training data: every few evictions one sampled candidate's codes and the
  time; labelled at each check (every `retrain` requests) with
  log1p(distance to its next request) if that request has happened, or
  log1p(2 x memory window) if it has not within `horizon` requests (LRB
  labels objects not requested within its memory window the same way). The
  horizon is by default the larger of `retrain` and half the cache's size in
  pages (knob `horizon`): a page lives in the cache for about capacity / miss
  ratio requests, so with a horizon much shorter than that (checks every 6k
  requests, a 163k-page cache) nearly every page looks "never again" and the
  model did worse than LRU; on a 10M-request trace with phases, half the
  cache did better than the whole or twice it (slower to follow a phase).
  The memory window is twice the horizon, and samples are taken at the rate
  that spreads `2 x samples_per_window` of them over it;
- the model: gradient-boosted regression trees (`trees` trees of depth
  `depth` <= 6, features binned in `bins` quantiles) fitted on the labelled
  samples of the memory window (at most `train_rows` of them, a seeded random
  subset; 0 = all) by the compiled trainer of gbdt_train (default) or by
  sklearn's HistGradientBoostingRegressor (`trainer="sklearn"`, several times
  slower a fit; exported by gbdt_export), and evaluated inside numba in the
  QuickScorer bitvector layout (no data-dependent branches). LRB itself uses
  LightGBM with 32 trees; 16 trees of depth 5 were as good here;
- when to refit (after 3L-Cache's and HALP's observation that most
  retraining is wasted on a stable workload): every `retrain` requests the
  driver labels the samples and measures the current model's squared error
  on the latest samples whose labels are final (taken in the last quarter of
  the memory window's older half); it refits only if that error exceeds the
  model's reference error by more than `stale` (default 40%), or after
  `max_skip` checks without a refit. The reference is the model's error on
  the same kind of samples right after its fit; they were in its training
  set, so on new samples of a stable workload its error is about 30% higher
  (hence 40%). A phase change shows at the next check: the pages sampled
  before it stop being requested as predicted. `stale=0` refits at every
  check, as the first version did. Across zipf, SQLite and mixed traces at 1%
  and 10% cache this cut the fits 2-6x with the same share of the
  LRU-to-Belady gap closed within seed noise (SQLite TPC-C at 10%: 1-2
  points less).

`run_lrb_detailed` also returns the seconds spent training versus simulating.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from autosys_adapters.pagecache._lrb_kernels import (
    MISSING_CODE,
    code_rows,
    leaf_age_limits,
    lrb_chunk,
    predict_code_rows,
)
from autosys_adapters.pagecache.gbdt_export import CompleteForest, bitvector, complete, empty_forest, flatten_hgb


@dataclass
class LRBRun:
    """One run: the miss flag per request and where its time went."""

    miss: np.ndarray
    simulate_seconds: float  # CPU seconds in compiled chunks: hits, evictions, sampling
    train_seconds: float  # CPU seconds labelling, checking, fitting and exporting the model
    retrains: int  # fits
    checks: int  # times the driver labelled the samples and decided whether to refit
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


def kernel_model(forest: CompleteForest, n_features: int) -> tuple:
    """The model arguments of lrb_chunk for `forest` over code features: (rows, masks, value, base, leaf_lim)."""
    bits = bitvector(forest, n_features)
    return code_rows(bits), bits.masks, bits.value, bits.base, leaf_age_limits(forest)


def run_lrb_detailed(tr, cap, sample: int = 64, retrain: int = 0, trees: int = 16, depth: int = 5, deltas: int = 4,
                     samples_per_window: int = 4_000, bins: int = 16, trainer: str = "numba", seed: int = 0,
                     cache_predictions: bool = True, stale: float = 0.4, max_skip: int = 16, train_rows: int = 0,
                     horizon: int = 0, **_) -> LRBRun:
    """Run the LRB-style policy over a PreparedTrace with `cap` pages; see the module docstring for the knobs."""
    n = len(tr)
    if n >= 2 ** 31 - 1:
        raise ValueError(f"lrb: times are int32 in the kernel; split traces of {n:,} requests")
    cap = _check("capacity", cap, 1)
    sample = _check("sample", sample, 1)
    trees = _check("trees", trees, 1)
    depth = _check("depth", depth, 1)
    if depth > 6:
        raise ValueError(f"lrb: depth must be at most 6 (64 leaves a tree, one bit each), got {depth}")
    deltas = _check("deltas", deltas, 1)
    max_skip = _check("max_skip", max_skip, 0)
    train_rows = _check("train_rows", train_rows, 0)
    if 0 < train_rows < 200:
        raise ValueError(f"lrb: train_rows must be 0 (all) or at least 200, got {train_rows}")
    if not stale >= 0:
        raise ValueError(f"lrb: stale must be >= 0 (0 = refit at every check), got {stale}")
    spw = _check("samples_per_window", samples_per_window, 100)
    retrain = auto_retrain(n) if not retrain else _check("retrain", retrain, 1_000)
    horizon = max(retrain, cap // 2) if not horizon else max(retrain, _check("horizon", horizon, 1))
    memory = 2 * horizon  # samples older than this are dropped
    censored = float(np.log1p(2 * memory))  # the label of a page not requested again within the horizon
    span = max(retrain, horizon // 4)  # the latest final samples: taken in [t - horizon - span, t - horizon)

    n_obj = tr.n_obj
    cache = np.empty(cap, np.int32)
    where = np.full(n_obj, -1, np.int32)
    size = np.zeros(1, np.int64)
    last = np.full(n_obj, -1, np.int64)
    fx = np.full((n_obj, deltas + 2), MISSING_CODE, np.uint8)
    fx[:, 0] = 0
    fx[:, -1] = 0
    freq = np.zeros(n_obj, np.int64)
    slot_key = np.full((cap, 2), -1, np.int32)  # score valid until, score
    slot_meta = np.zeros((cap, 2), np.int64)  # last access, access count
    slot_fx = np.zeros((cap, deltas + 2), np.uint8)
    miss = np.zeros(n, np.uint8)
    rng = seed_state(seed)
    ring = 2 * spw
    sx = np.zeros((ring, deltas + 2), np.uint8)
    snext = np.zeros(ring, np.int64)
    st = np.zeros(ring, np.int64)
    stats = np.zeros(4, np.int64)

    model, trained = kernel_model(complete(empty_forest(), 0), deltas + 2), False
    # the ring of samples covers the memory window; first interval: assume about one eviction per two requests
    sample_every = max(1, memory // (2 * ring))
    sim_s = train_s = 0.0
    retrains = skipped = checks = 0
    ref_error = float("nan")
    t = 0
    while t < n:
        t_end = min(n, t + retrain)
        ev0 = stats[0]
        c0 = time.thread_time()
        t = lrb_chunk(tr.ids, tr.nxt, t, t_end, cap, sample, cache, where, slot_key, slot_meta, slot_fx, size, last, fx,
                      freq, miss, rng, trained, *model, bool(cache_predictions), sample_every, sx, snext, st, stats)
        sim_s += time.thread_time() - c0
        sample_every = max(1, int(stats[0] - ev0) * memory // (retrain * ring))
        if t >= n:
            break
        c0 = time.thread_time()
        checks += 1
        k = int(min(stats[2], ring))
        X, nx, ts = sx[:k], snext[:k], st[:k]
        # labelled: requested again, or not within the horizon
        keep = (ts >= t - memory) & ((nx < t) | (t - ts >= horizon))
        labels = np.where(nx < t, np.log1p(np.maximum(nx - ts, 0)), censored)
        latest = keep & (ts >= t - horizon - span) & (ts < t - horizon)  # the latest samples with final labels
        refit = keep.sum() >= 200
        if refit and trained and stale > 0 and skipped < max_skip:
            refit = False
            if latest.sum() >= 200:
                err = float(np.mean((predict_code_rows(X[latest], *model[:4]) - labels[latest]) ** 2))
                refit = err > (1.0 + stale) * ref_error
            skipped = 0 if refit else skipped + 1
        if refit:
            rows = np.flatnonzero(keep)
            if train_rows and len(rows) > train_rows:
                rows = np.sort(np.random.default_rng(seed + retrains).choice(rows, train_rows, replace=False))
            forest = fit_forest(X[rows].astype(np.float64), labels[rows], trees, depth, seed + retrains, bins, trainer)
            model = kernel_model(forest, deltas + 2)
            trained = True
            slot_key[:, 0] = -1  # every cached score came from the old model (or from no model)
            retrains += 1
            ref = latest if latest.sum() >= 200 else keep
            ref_error = float(np.mean((predict_code_rows(X[ref], *model[:4]) - labels[ref]) ** 2))
            skipped = 0
        train_s += time.thread_time() - c0
    return LRBRun(miss, sim_s, train_s, retrains, checks, int(stats[0]), int(stats[1]), int(stats[2]))


def run_lrb(tr, cap, **knobs) -> np.ndarray:
    """The LRB-style policy's miss flag per request (the simulator's runner signature)."""
    return run_lrb_detailed(tr, cap, **knobs).miss
