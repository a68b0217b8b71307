"""Learned replacement policies: a LeCaR-style mixture of experts and an LRB-style
gradient-boosting policy, both compiled with numba where they loop per request.

- `lecar`: online regret minimization over >= 2 experts (LRU, LFU, FIFO, MRU).
  Each expert keeps its own eviction order over the same cache contents; on a
  miss the policy samples an expert by weight, evicts that expert's victim and
  remembers it in the expert's ghost history. A later miss on a ghost means
  the expert erred: its weight shrinks by exp(-lr * d^age) (Vietri et al. 2018).
- `lrb`: the fast LRB-style policy lives in autosys_adapters.pagecache.lrb (about
  a million requests per second); `run_lrb_reference` below is the first version,
  kept as a reference: sampled-candidate eviction scored by a model of each page's time to
  next request (Song et al. 2020). Training samples are features of random
  cached pages; their labels are the observed distance to the page's next
  request (what Belady would use), censored at twice the retraining interval
  when not yet seen. A HistGradientBoosting model is retrained every `retrain`
  requests on the window of recent samples and evaluated inside numba.
- `rl`: the same sampled-candidate kernel scored by a linear policy learned by
  REINFORCE in the gymnasium environment (autosys_adapters.pagecache.gym_env, `run_rl` there).
- `cacheus` (autosys_adapters.pagecache.cacheus) and `glcache` (a GL-Cache-style
  group learner, autosys_adapters.pagecache.glcache) are reached through RUNNERS too.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from autosys_adapters.pagecache._lists import h_push, h_remove, h_update, l_back, l_init, l_push_front, l_remove

EXPERTS = {"lru": 0, "lfu": 1, "fifo": 2, "mru": 3}


# =========================================================================== LeCaR


@njit(cache=True)
def _expert_key(e, x, t, freq, ins, k1, k2):
    if e == 0:  # LRU: oldest access first
        k1[x] = t
        k2[x] = 0
    elif e == 1:  # LFU: fewest accesses, then oldest
        k1[x] = freq[x]
        k2[x] = t
    elif e == 2:  # FIFO: oldest insertion
        k1[x] = ins[x]
        k2[x] = 0
    else:  # MRU: newest access first
        k1[x] = -t
        k2[x] = 0


@njit(cache=True)
def lecar_kernel(ids, n_obj, cap, experts, lr, hist_len, seed):
    n = len(ids)
    E = len(experts)
    miss = np.zeros(n, np.uint8)
    np.random.seed(seed)
    heaps = np.empty((E, cap + 1), np.int32)
    pos = np.full((E, n_obj), -1, np.int32)
    k1 = np.zeros((E, n_obj), np.int64)
    k2 = np.zeros((E, n_obj), np.int64)
    freq = np.zeros(n_obj, np.int64)
    ins = np.zeros(n_obj, np.int64)
    inc = np.zeros(n_obj, np.bool_)
    # ghost histories: one FIFO list per expert in shared link arrays
    prev = np.empty(n_obj + E, np.int32)
    nxt = np.empty(n_obj + E, np.int32)
    for e in range(E):
        l_init(prev, nxt, n_obj + e)
    owner = np.full(n_obj, -1, np.int32)
    gtime = np.zeros(n_obj, np.int64)
    glen = np.zeros(E, np.int64)
    w = np.full(E, 1.0 / E)
    discount = 0.005 ** (1.0 / cap)
    size = 0
    for t in range(n):
        x = ids[t]
        if inc[x]:
            freq[x] += 1
            for e in range(E):
                _expert_key(experts[e], x, t, freq, ins, k1[e], k2[e])
                h_update(heaps[e], pos[e], k1[e], k2[e], size, x)
            continue
        miss[t] = 1
        g = owner[x]
        if g >= 0:  # the expert that evicted x regrets it
            l_remove(prev, nxt, x)
            glen[g] -= 1
            owner[x] = -1
            w[g] *= np.exp(-lr * discount ** (t - gtime[x]))
            total = w.sum()
            for e in range(E):
                w[e] = max(w[e] / total, 1e-6)
            total = w.sum()
            for e in range(E):
                w[e] /= total
        if size >= cap:
            r = np.random.random()
            chosen = E - 1
            acc = 0.0
            for e in range(E):
                acc += w[e]
                if r < acc:
                    chosen = e
                    break
            v = heaps[chosen, 0]
            for e in range(E):
                h_remove(heaps[e], pos[e], k1[e], k2[e], size, v)
            size -= 1
            inc[v] = False
            l_push_front(prev, nxt, n_obj + chosen, v)
            owner[v] = chosen
            gtime[v] = t
            glen[chosen] += 1
            if glen[chosen] > hist_len:
                o = l_back(prev, n_obj + chosen)
                l_remove(prev, nxt, o)
                owner[o] = -1
                glen[chosen] -= 1
        freq[x] = freq[x] + 1 if g >= 0 else 1  # a page back from a ghost history keeps its count
        ins[x] = t
        inc[x] = True
        for e in range(E):
            _expert_key(experts[e], x, t, freq, ins, k1[e], k2[e])
            h_push(heaps[e], pos[e], k1[e], k2[e], size, x)
        size += 1
    return miss


def run_lecar(tr, cap, learning_rate: float = 0.45, experts=("lru", "lfu"), history: float = 1.0, seed: int = 0, **_):
    if isinstance(experts, str):
        experts = tuple(experts.split(","))
    unknown = [e for e in experts if e not in EXPERTS]
    if unknown or len(experts) < 2:
        raise ValueError(f"lecar needs at least two experts from {', '.join(EXPERTS)}; got {experts}")
    codes = np.array([EXPERTS[e] for e in experts], np.int64)
    hist = max(1, int(round(history * cap)))
    return lecar_kernel(tr.ids, tr.n_obj, int(cap), codes, float(learning_rate), hist, int(seed))


# =========================================================================== sampled-candidate eviction

N_EDC = 3
N_FEATURES = 6 + N_EDC
_BIG = 1e7
_HK = 4  # access times remembered per page


class SampledState:
    """Cache contents (array + position index for O(1) random sampling) and per-page history.

    `freq[x, 0]` counts accesses; `freq[x, 1:]` are exponentially decayed access
    counters (LRB's EDCs) with time constants `taus` (multiples of the capacity).
    """

    def __init__(self, n_obj: int, cap: int, n_requests: int):
        self.cache = np.empty(cap, np.int32)
        self.where = np.full(n_obj, -1, np.int64)
        self.hist = np.full((n_obj, _HK), -1, np.int64)  # last access times, newest first
        self.last_idx = np.zeros(n_obj, np.int64)
        self.freq = np.zeros((n_obj, 1 + N_EDC), np.float64)  # count, EDCs
        self.taus = float(max(cap, 1)) * np.array([0.5, 4.0, 32.0])
        self.ins = np.zeros(n_obj, np.int64)
        self.size = np.zeros(1, np.int64)
        self.miss = np.zeros(n_requests, np.uint8)


@njit(cache=True)
def features_of(x, t, hist, freq, taus, ins, out):
    """Features of page x at time t (log-scaled): age since last access, the last
    three inter-access gaps, access count, time since insertion, and the decayed
    access counters at three time scales."""
    h = hist[x]
    out[0] = np.log1p(t - h[0])
    for k in range(3):
        if h[k + 1] >= 0:
            out[1 + k] = np.log1p(h[k] - h[k + 1])
        else:
            out[1 + k] = np.log1p(_BIG)
    out[4] = np.log1p(freq[x, 0])
    out[5] = np.log1p(t - ins[x])
    for k in range(len(taus)):
        out[6 + k] = np.log1p(freq[x, 1 + k] * np.exp(-(t - h[0]) / taus[k]))


@njit(cache=True)
def _touch(x, t, hist, last_idx, freq, taus):
    gap = t - hist[x, 0] if hist[x, 0] >= 0 else 0
    for k in range(len(taus)):
        freq[x, 1 + k] = freq[x, 1 + k] * np.exp(-gap / taus[k]) + 1.0
    for k in range(_HK - 1, 0, -1):
        hist[x, k] = hist[x, k - 1]
    hist[x, 0] = t
    last_idx[x] = t
    freq[x, 0] += 1


@njit(cache=True)
def advance(ids, t, t_end, cap, cache, where, hist, last_idx, freq, taus, ins, size, miss):
    """Process requests from t until one misses with a full cache (returned, not
    processed) or t_end. Returns (t, hits)."""
    hits = 0
    while t < t_end:
        x = ids[t]
        if where[x] >= 0:
            _touch(x, t, hist, last_idx, freq, taus)
            hits += 1
            t += 1
            continue
        if size[0] >= cap:
            return t, hits
        miss[t] = 1
        where[x] = size[0]
        cache[size[0]] = x
        size[0] += 1
        ins[x] = t
        _touch(x, t, hist, last_idx, freq, taus)
        t += 1
    return t, hits


@njit(cache=True)
def evict_insert(ids, t, victim, cache, where, hist, last_idx, freq, taus, ins, size, miss):
    """Evict page `victim` (must be cached), then insert the page requested at t."""
    x = ids[t]
    slot = where[victim]
    where[victim] = -1
    miss[t] = 1
    cache[slot] = x
    where[x] = slot
    ins[x] = t
    _touch(x, t, hist, last_idx, freq, taus)


@njit(cache=True)
def _tree_predict(f, feat, thr, left, right, leaf, value, roots, base):
    s = base
    for r in range(len(roots)):
        i = roots[r]
        while not leaf[i]:
            if f[feat[i]] <= thr[i]:
                i = left[i]
            else:
                i = right[i]
        s += value[i]
    return s


@njit(cache=True)
def sampled_run(ids, nxt, t, t_end, cap, cache, where, hist, last_idx, freq, taus, ins, size, miss,
                kind, m, feat, thr, left, right, leaf, value, roots, base, lin,
                sample_every, per_sample, sx, snext, st, scount, seed):
    """Run requests [t, t_end) evicting the best of `m` sampled candidates:
    kind 0 = oldest last access (sampled LRU), 1 = largest tree-predicted log
    distance to next request, 2 = largest linear score `lin`.
    At evictions every `sample_every` requests, `per_sample` random cached pages' features are
    appended to the training ring (sx, snext = absolute time of its next request,
    st = sample time); returns (t, scount)."""
    np.random.seed(seed)
    f = np.empty(N_FEATURES, np.float64)
    cap_s = sx.shape[0]
    while t < t_end:
        t, _ = advance(ids, t, t_end, cap, cache, where, hist, last_idx, freq, taus, ins, size, miss)
        if t >= t_end:
            break
        best = -1
        best_score = -np.inf
        for _ in range(m):
            y = cache[np.random.randint(0, size[0])]
            if kind == 0:
                score = float(t - hist[y, 0])
            else:
                features_of(y, t, hist, freq, taus, ins, f)
                if kind == 1:
                    score = _tree_predict(f, feat, thr, left, right, leaf, value, roots, base)
                else:
                    score = 0.0
                    for j in range(N_FEATURES):
                        score += lin[j] * f[j]
            if score > best_score:
                best_score = score
                best = y
        if sample_every > 0 and (t % sample_every) == 0:
            for _ in range(per_sample):
                y = cache[np.random.randint(0, size[0])]
                k = scount % cap_s
                features_of(y, t, hist, freq, taus, ins, sx[k])
                snext[k] = nxt[last_idx[y]]
                st[k] = t
                scount += 1
        evict_insert(ids, t, best, cache, where, hist, last_idx, freq, taus, ins, size, miss)
        t += 1
    return t, scount


def _flatten_hgb(model):
    """HistGradientBoostingRegressor trees -> flat node arrays for `_tree_predict`."""
    feat, thr, left, right, leaf, value, roots = [], [], [], [], [], [], []
    offset = 0
    for (tree,) in model._predictors:
        nd = tree.nodes
        roots.append(offset)
        feat.append(nd["feature_idx"].astype(np.int64))
        thr.append(nd["num_threshold"].astype(np.float64))
        left.append(nd["left"].astype(np.int64) + offset)
        right.append(nd["right"].astype(np.int64) + offset)
        leaf.append(nd["is_leaf"].astype(np.bool_))
        value.append(nd["value"].astype(np.float64))
        offset += len(nd)
    base = float(np.ravel(model._baseline_prediction)[0])
    cat = np.concatenate
    return cat(feat), cat(thr), cat(left), cat(right), cat(leaf), cat(value), np.array(roots, np.int64), base


def _empty_model():
    z = np.zeros(1)
    return np.zeros(1, np.int64), z, np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.bool_), z, np.zeros(0, np.int64), 0.0


def run_lrb_reference(tr, cap, sample: int = 32, retrain: int = 0, trees: int = 30, samples_per_window: int = 8_000,
                      per_sample: int = 1, depth: int = 6, seed: int = 0, **_):
    """The first LRB-style policy (every candidate's 9 features and the full model at every eviction; about
    40k requests/s). Kept as a reference for tests; `lrb` is now `autosys_adapters.pagecache.lrb.run_lrb`."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    n = len(tr)
    cap = int(cap)
    # 0 = automatic: about 20 retrainings per trace, each window 5k-50k requests
    retrain = int(np.clip(n // 20, 5_000, 50_000)) if not retrain else max(1_000, int(retrain))
    window = 2 * retrain
    sample_every = max(1, window * int(per_sample) // int(samples_per_window))
    s = SampledState(tr.n_obj, cap, n)
    ring = int(samples_per_window) * 2
    sx = np.zeros((ring, N_FEATURES))
    snext = np.zeros(ring, np.int64)
    st = np.zeros(ring, np.int64)
    scount = 0
    t = 0
    model = _empty_model()
    kind = 0
    chunk = 0
    while t < n:
        t_end = min(n, t + retrain)
        t, scount = sampled_run(tr.ids, tr.nxt, t, t_end, cap, s.cache, s.where, s.hist, s.last_idx, s.freq, s.taus, s.ins,
                                s.size, s.miss, kind, int(sample), *model, np.zeros(N_FEATURES), sample_every,
                                int(per_sample), sx, snext, st, scount, seed + chunk)
        chunk += 1
        if t >= n:
            break
        k = min(scount, ring)
        X, nx, ts = sx[:k], snext[:k], st[:k]
        keep = (ts >= t - window) & ((nx < t) | (t - ts >= retrain))
        if keep.sum() < 200:
            continue
        y = np.where(nx[keep] < t, np.log1p(nx[keep] - ts[keep]), np.log1p(2 * window))
        est = HistGradientBoostingRegressor(max_iter=int(trees), max_depth=int(depth), learning_rate=0.1, random_state=seed)
        with threadpool_limits(1):  # small fits: OpenMP threads only contend (2 shared cores)
            est.fit(X[keep], y)
        model = _flatten_hgb(est)
        kind = 1
    return s.miss


def run_linear(tr, cap, weights, sample: int = 8, seed: int = 0):
    """Sampled eviction by a linear score of the features (the RL policy's greedy form)."""
    n = len(tr)
    s = SampledState(tr.n_obj, int(cap), n)
    sx = np.zeros((1, N_FEATURES))
    sampled_run(tr.ids, tr.nxt, 0, n, int(cap), s.cache, s.where, s.hist, s.last_idx, s.freq, s.taus, s.ins, s.size, s.miss,
                2, int(sample), *_empty_model(), np.asarray(weights, np.float64), 0, 1, sx, np.zeros(1, np.int64),
                np.zeros(1, np.int64), 0, seed)
    return s.miss


def _run_fast(module: str, name: str):
    """A runner that imports its module on first use (no sklearn or numba compile at import)."""

    def run(tr, cap, **knobs):
        import importlib

        return getattr(importlib.import_module(f"autosys_adapters.pagecache.{module}"), name)(tr, cap, **knobs)

    run.__name__ = name
    return run


run_lrb = _run_fast("lrb", "run_lrb")

RUNNERS = {"lecar": run_lecar, "lrb": run_lrb, "lrb_ref": run_lrb_reference,
           "cacheus": _run_fast("cacheus", "run_cacheus"), "glcache": _run_fast("glcache", "run_glcache")}
