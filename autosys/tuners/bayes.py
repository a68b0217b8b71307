"""Bayesian optimization over mixed, conditional and constrained spaces.

One loop, pluggable parts: a surrogate (`gp`: a fast numpy Matérn GP, or `rf`
/ `et`: tree ensembles), an acquisition (`ei`, `pi`, `lcb` or `hedge`, the
GP-hedge portfolio over the three), and a candidate search that scores random
points plus perturbations of the best points and refines the top few locally,
instead of many L-BFGS starts. Known constraints are filtered through
`Space.validate`; unknown ones (trials that failed) train a classifier whose
probability of success multiplies the acquisition. Pending trials (parallel
workers) enter the model as fantasies: kriging believer or a constant liar.
Failed and non-finite results never reach the regression model.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import norm, qmc

from autosys.core.space import Bool, Categorical, Config, InvalidConfig, Ordinal, Space
from autosys.tuners.base import Tuner
from autosys.tuners.random_search import FRESH_TRIES
from autosys.learn.surrogates import GaussianProcess, make_surrogate, standardize

ACQUISITIONS = ("ei", "pi", "lcb", "hedge")
BATCH_STRATEGIES = ("kriging_believer", "cl_min", "cl_mean", "cl_max")


class SpaceEncoder:
    """Maps unit-cube vectors (Space.encode order) to canonical vectors and model features.

    `snap` rounds each coordinate to a value the space can represent (integer
    bins, category bins; inactive conditional parameters to their default), so
    the model sees exactly what will be evaluated. `features` expands
    unordered categoricals to one-hot columns (or keeps their index).
    """

    def __init__(self, space: Space, categorical: str = "onehot"):
        if categorical not in ("onehot", "index"):
            raise ValueError(f"categorical encoding must be 'onehot' or 'index', not {categorical!r}")
        self.space = space
        self.params = list(space)
        self.onehot = [
            categorical == "onehot"
            and isinstance(p, Categorical)
            and not isinstance(p, (Ordinal, Bool))
            and len(p.choices) > 2
            for p in self.params
        ]
        self.conditional = space.is_conditional
        self.index = {p.name: j for j, p in enumerate(self.params)}
        self.default_units = np.array([p.to_unit(p.default_value()) for p in self.params])
        self.n_features = sum(len(p.choices) if oh else 1 for p, oh in zip(self.params, self.onehot))

    def snap(self, U: np.ndarray) -> np.ndarray:
        U = np.clip(np.asarray(U, float), 0.0, 1.0)
        out = U.copy()
        for j, p in enumerate(self.params):
            col = U[:, j]
            if isinstance(p, Categorical):
                k = len(p.choices)
                out[:, j] = (np.minimum(np.floor(col * k), k - 1) + 0.5) / k
            elif p.kind == "int":
                if p.high == p.low:
                    out[:, j] = 0.5
                elif p.log:
                    lo, hi = math.log(p.low), math.log(p.high)
                    v = np.clip(np.round(np.exp(lo + col * (hi - lo))), p.low, p.high)
                    out[:, j] = (np.log(v) - lo) / (hi - lo)
                else:
                    k = p.high - p.low + 1
                    out[:, j] = (np.minimum(np.floor(col * k), k - 1) + 0.5) / k
        if self.conditional:
            # inactive parameters sit at their default, as Space.encode puts them
            active = np.ones(out.shape, bool)
            for j, p in enumerate(self.params):
                cond = p.condition
                if cond is None:
                    continue
                i = self.index[cond.parent]
                parent = self.params[i]
                values = self._parent_allows(parent, cond.values, out[:, i])
                active[:, j] = active[:, i] & values
                out[~active[:, j], j] = self.default_units[j]
        return out

    @staticmethod
    def _parent_allows(parent, values: tuple, column: np.ndarray) -> np.ndarray:
        """Which rows' parent value (decoded from the unit column) is one of `values`."""
        if isinstance(parent, Categorical):
            # one membership test per choice, not per row: BO snaps thousands of candidates per ask
            allowed = np.array([choice in values for choice in parent.choices], bool)
            k = len(parent.choices)
            return allowed[np.minimum(np.floor(np.clip(column, 0.0, 1.0) * k).astype(int), k - 1)]
        return np.array([parent.from_unit(u) in values for u in column], bool)

    def features(self, U: np.ndarray) -> np.ndarray:
        U = np.atleast_2d(U)
        if not any(self.onehot):
            return U
        cols = []
        for j, (p, oh) in enumerate(zip(self.params, self.onehot)):
            if oh:
                k = len(p.choices)
                idx = np.minimum((U[:, j] * k).astype(int), k - 1)
                cols.append(np.eye(k)[idx])
            else:
                cols.append(U[:, j : j + 1])
        return np.hstack(cols)


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float, xi: float = 0.01) -> np.ndarray:
    z = (best - mu - xi) / sd
    return (best - mu - xi) * norm.cdf(z) + sd * norm.pdf(z)


def probability_of_improvement(mu: np.ndarray, sd: np.ndarray, best: float, xi: float = 0.01) -> np.ndarray:
    return norm.cdf((best - mu - xi) / sd)


def lower_confidence_bound(mu: np.ndarray, sd: np.ndarray, kappa: float = 2.0) -> np.ndarray:
    """As a score to maximize: -(mu - kappa * sd)."""
    return -(mu - kappa * sd)


class BayesOpt(Tuner):
    """Sequential model-based optimization with a GP or tree surrogate.

    Parameters
    ----------
    surrogate: "gp" (default), "rf" or "et".
    acquisition: "ei", "pi", "lcb" or "hedge" (GP-hedge over the three; default).
    n_initial: space-filling (Latin hypercube) points before the model is used;
        default min(10, dims + 1), at least 5.
    categorical: "onehot" or "index" encoding of unordered categoricals.
    batch: how pending trials enter the model: "kriging_believer", "cl_min",
        "cl_mean", "cl_max" (constant liar).
    n_candidates: random candidates scored per ask (plus as many around the best).
    refit_every: re-optimize GP hyperparameters every k asks once past 50
        observations (the Cholesky is refreshed every ask regardless); None picks
        1 below 50 observations, 3 below 100, 5 above.
    warp: Yeo-Johnson warp of the targets before standardizing.
    exact_fantasies: pending trials' fantasies carry no observation noise (default), so the
        model's uncertainty collapses there and the next pick spreads out; False conditions
        them with the fitted noise, as told results are (measured: a batch of 2 then often
        proposes near-duplicates; see experiments/tuners_bbob.py --pending-seeds).
    surrogate_options: keyword options of the surrogate (e.g. n_estimators for trees).
    random_fraction: share of the model's asks answered by a random untried config
        instead (SMAC's interleaved random configurations; 0 here, 0.2 for `bo-rf`).
    """

    name = "bo"

    def __init__(
        self,
        space: Space,
        *,
        surrogate: str = "gp",
        acquisition: str = "hedge",
        n_initial: int | None = None,
        categorical: str = "onehot",
        batch: str = "kriging_believer",
        n_candidates: int | None = None,
        refit_every: int | None = None,
        xi: float = 0.01,
        kappa: float = 2.0,
        warp: bool = True,
        exact_fantasies: bool = True,
        surrogate_options: Mapping[str, Any] | None = None,
        random_fraction: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        if not 0.0 <= random_fraction <= 1.0:
            raise ValueError(f"random_fraction must be in [0, 1], not {random_fraction!r}")
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"unknown acquisition {acquisition!r}; choose one of {', '.join(ACQUISITIONS)}")
        if batch not in BATCH_STRATEGIES:
            raise ValueError(f"unknown batch strategy {batch!r}; choose one of {', '.join(BATCH_STRATEGIES)}")
        if len(space) == 0:
            raise ValueError("Bayesian optimization needs a space with at least one parameter")
        self.surrogate_kind = surrogate
        self.model = make_surrogate(surrogate, **dict(surrogate_options or {}))  # validates the name
        self.acquisition = acquisition
        self.encoder = SpaceEncoder(space, categorical)
        dims = len(space)
        self.n_initial = int(n_initial) if n_initial is not None else max(5, min(10, dims + 1))
        self.batch = batch
        self.n_candidates = n_candidates or int(min(2000, max(500, 100 * dims)))
        self.refit_every = refit_every
        self.xi = xi
        self.kappa = kappa
        self.warp = warp
        self.exact_fantasies = bool(exact_fantasies)
        self.random_fraction = float(random_fraction)
        self._design_used = 0
        self._fits = 0
        self._hedge_gains = np.zeros(3)
        self._hedge_last: list[list[float]] | None = None  # the three proposals of the last ask

    # --- data the model sees (ParEGO overrides this)
    def _training_data(self) -> tuple[list[Config], np.ndarray]:
        obs = self.observations
        return [c for c, _ in obs], np.array([loss for _, loss in obs], float)

    # --- the loop
    def _ask(self) -> Config:
        configs, losses = self._training_data()
        # distinct configs: intensification's re-runs of one config (told as warm starts) add no coverage,
        # and counting them cut a KV study's design to two points, so its forest never saw three of five engines
        if len(self._seen_keys()) < self.n_initial or len(configs) < 2:
            return self._initial_point()
        if self.random_fraction and self.rng.random() < self.random_fraction:
            return self._fresh_sample()
        return self._model_point(configs, losses)

    def _initial_point(self) -> Config:
        d = len(self.space)
        design_rng = np.random.default_rng([0 if self.seed is None else int(self.seed), 7919])
        design = qmc.LatinHypercube(d, rng=design_rng).random(max(self.n_initial, 1))
        seen = self._seen_keys()
        while self._design_used < len(design):
            u = design[self._design_used]
            self._design_used += 1
            config = self.space.decode(u)
            if self.space.is_conditional:
                # the hypercube stratifies each column over the whole design, not within a branch:
                # a branch's own choice knobs are dealt from decks (two LMDB rows could both have sync on),
                # and so are the knobs that choose a branch, so the first rows visit every branch (the
                # hypercube put a KV study's one `dict` row 6th of 10, behind races that had spent the
                # re-runs its win over `sorteddict` needed)
                roots = self._branch_roots()
                try:
                    config = self.decks.sample(self.space, self.rng,
                                               keep={k: v for k, v in config.items() if k not in roots})
                except InvalidConfig:
                    continue
            if self.space.satisfies_constraints(config) and self.space.config_key(config) not in seen:
                return self.space.validate(config)
        return self._fresh_sample()

    def _branch_roots(self) -> set[str]:
        """The knobs outside any branch that decide a branch (a KV space's `engine`)."""
        return {p.condition.parent for p in self.space.params.values() if p.condition is not None
                and self.space.params[p.condition.parent].condition is None}

    def _fresh_sample(self) -> Config:
        """A random config not yet tried or pending: what is asked when neither design nor model gives a new one.

        (A plain sample repeated tried configs, failed ones included.)"""
        return self.sample_unseen(self._seen_keys(), FRESH_TRIES)

    def _seen_keys(self) -> set[str]:
        keys = {self.space.config_key(t.config) for t, _ in self.history}
        keys.update(self.space.config_key(t.config) for t in self.pending.values())
        return keys

    def _refit_due(self, n: int) -> bool:
        every = self.refit_every
        if every is None:
            every = 1 if n < 50 else 3 if n < 100 else 5
        return n < 50 or self._fits % every == 0

    def _model_point(self, configs: list[Config], losses: np.ndarray) -> Config:
        space, enc = self.space, self.encoder
        U = enc.snap(np.array([space.encode(c) for c in configs]))
        X = enc.features(U)
        y, _, _ = standardize(losses, warp=self.warp)
        optimize = self._refit_due(len(y))
        self._fits += 1
        model = self.model.fit(X, y, self.rng, optimize=optimize)
        if self.acquisition == "hedge" and self._hedge_last is not None:
            mu_last, _ = model.predict(enc.features(np.array(self._hedge_last)))
            self._hedge_gains -= mu_last  # lower predicted loss = better proposal
        if self.pending:
            model = self._with_fantasies(model, y)
        best = float(y.min())
        p_ok = self._feasibility()
        cands = self._candidates(U, y)
        scores = self._scores(model, cands, best, p_ok)
        chosen = self._pick(scores, cands)
        if chosen is not None:
            return chosen
        return self._fresh_sample()

    def _with_fantasies(self, model, y: np.ndarray):
        Up = self.encoder.snap(np.array([self.space.encode(t.config) for t in self.pending.values()]))
        Xp = self.encoder.features(Up)
        if self.batch == "kriging_believer":
            lies, _ = model.predict(Xp)
        else:
            value = {"cl_min": y.min(), "cl_mean": y.mean(), "cl_max": y.max()}[self.batch]
            lies = np.full(len(Xp), value)
        # a fantasy is as certain as the told value will be: exact, so the next pick moves away from it
        return model.condition_on(Xp, lies, exact=self.exact_fantasies)

    def _feasibility(self):
        """P(success) at candidates, learned from failed vs completed trials; None when nothing failed.

        A kernel (Nadaraya-Watson) estimate in feature space, shrunk towards the
        overall success rate: cheap enough to score every candidate each ask.
        """
        told = [(t.config, r.ok) for t, r in self.history]
        n_fail = sum(1 for _, ok in told if not ok)
        if n_fail == 0 or n_fail == len(told):
            return None
        F = self.encoder.features(self.encoder.snap(np.array([self.space.encode(c) for c, _ in told])))
        ok = np.array([o for _, o in told], float)
        base = ok.mean()
        # bandwidth from the spacing of the told points: it narrows as evidence accumulates
        d2 = (F * F).sum(1)[:, None] + (F * F).sum(1)[None, :] - 2.0 * F @ F.T
        np.fill_diagonal(d2, np.inf)
        nearest = np.sqrt(np.maximum(d2.min(1), 0.0))
        width = float(np.clip(np.median(nearest), 0.02, 0.1 * math.sqrt(F.shape[1])))
        prior = 0.5

        def p_ok(U_cand: np.ndarray) -> np.ndarray:
            C = self.encoder.features(U_cand)
            d2 = (C * C).sum(1)[:, None] + (F * F).sum(1)[None, :] - 2.0 * C @ F.T
            k = np.exp(-np.maximum(d2, 0.0) / (2.0 * width * width))
            return (k @ ok + prior * base) / (k.sum(1) + prior)

        return p_ok

    def _candidates(self, U: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = U.shape[1]
        rng = self.rng
        n = self.n_candidates
        random_part = rng.random((n, d))
        top = U[np.argsort(y)[: min(5, len(y))]]
        centers = top[rng.integers(len(top), size=n)]
        sigma = rng.choice([0.01, 0.03, 0.1, 0.2], size=(n, 1))
        step = rng.normal(0.0, 1.0, (n, d)) * sigma
        # half the local moves change only a few coordinates (coordinate-like steps)
        few = rng.random(n) < 0.5
        mask = rng.random((n, d)) < min(1.0, 2.0 / d)
        mask[np.arange(n), rng.integers(d, size=n)] = True
        step[few] *= mask[few]
        local_part = np.clip(centers + step, 0.0, 1.0)
        return np.vstack([random_part, local_part])

    def _acq(self, mu: np.ndarray, sd: np.ndarray, best: float) -> dict[str, np.ndarray]:
        return {
            "ei": expected_improvement(mu, sd, best, self.xi),
            "pi": probability_of_improvement(mu, sd, best, self.xi),
            "lcb": lower_confidence_bound(mu, sd, self.kappa),
        }

    def _scores(self, model, cands: np.ndarray, best: float, p_ok) -> np.ndarray:
        """Score candidates, refine the top ones locally, return rows (candidate, score)."""
        names = ["ei", "pi", "lcb"] if self.acquisition == "hedge" else [self.acquisition]
        enc = self.encoder

        def evaluate(C: np.ndarray) -> dict[str, np.ndarray]:
            mu, sd = model.predict(enc.features(C))
            acq = self._acq(mu, sd, best)
            if p_ok is not None:
                # expected constrained improvement: acquisition x P(success); candidates much
                # likelier to fail than the safest ones are dropped outright, since a GP that
                # extrapolates a trend into the failing region can outbid any multiplier
                p = p_ok(C)
                unlikely = p < 0.5 * p_max[0]
                for k in acq:
                    a = acq[k] - acq[k].min() + 1e-12 if k == "lcb" else acq[k]
                    acq[k] = np.where(unlikely, -np.inf, a * p)
            return acq

        cands = enc.snap(cands)
        p_max = [1.0]
        if p_ok is not None:
            p_max[0] = float(p_ok(cands).max())
        acq = evaluate(cands)
        pool = [cands]
        pool_scores = {k: [acq[k]] for k in names}
        # local refinement of the best few per acquisition: shrinking Gaussian steps
        d = cands.shape[1]
        for name in names:
            current = cands[np.argsort(-acq[name])[:5]]
            cur_scores = np.sort(acq[name])[::-1][:5]
            for sigma in (0.05, 0.02, 0.005):
                trial = np.clip(np.repeat(current, 20, axis=0) + self.rng.normal(0, sigma, (len(current) * 20, d)), 0, 1)
                trial = enc.snap(trial)
                a = evaluate(trial)
                pool.append(trial)
                for k in names:
                    pool_scores[k].append(a[k])
                s = a[name].reshape(len(current), 20)
                j = s.argmax(1)
                better = s[np.arange(len(current)), j] > cur_scores
                current[better] = trial.reshape(len(current), 20, d)[np.arange(len(current)), j][better]
                cur_scores = np.where(better, s[np.arange(len(current)), j], cur_scores)
        allc = np.vstack(pool)
        self._pool = allc
        self._pool_scores = {k: np.concatenate(v) for k, v in pool_scores.items()}
        return self._pool_scores

    def _pick(self, scores: dict[str, np.ndarray], cands: np.ndarray) -> Config | None:
        allc = self._pool
        names = list(scores)
        if self.acquisition == "hedge":
            proposals = [allc[int(np.argmax(scores[k]))] for k in names]
            g = self._hedge_gains - self._hedge_gains.max()
            probs = np.exp(g) / np.exp(g).sum()
            which = int(self.rng.choice(3, p=probs))
            self._hedge_last = [p.tolist() for p in proposals]
            score = scores[names[which]]
        else:
            score = scores[names[0]]
        # best score first; among equal scores the candidate farthest from every tried config (`_novelty`,
        # computed for tied rows only: a GP's scores rarely tie, and the distances cost ~5 ms an ask)
        _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
        tied = counts[inverse.ravel()] > 1
        novelty = np.zeros(len(score))
        if tied.any():
            novelty[tied] = self._novelty(allc[tied])
        order = np.lexsort((-novelty, -score))
        order = order[np.isfinite(score[order])]  # -inf: dropped as much likelier to fail than the safest (`_scores`)
        return self._first_new(order, allc)

    def _novelty(self, encoded: np.ndarray) -> np.ndarray:
        """Each candidate's distance (in model features) to the nearest tried or pending config: `_pick`'s tie-break.

        A forest predicts the same for every config in one leaf of each tree,
        so knobs it never split on (never varied, or varied without effect)
        tie; the first tied candidate won, in effect a random one, and a KV
        study's forest spent its proposals on LMDB variants that never turned
        on `writemap`, the knob that mattered under a memory cap. Among
        configs the model cannot tell apart, the one least like anything
        measured teaches the most. A GP's scores rarely tie, so it is unchanged.
        """
        told = [t.config for t, _ in self.history] + [t.config for t in self.pending.values()]
        if not told:
            return np.zeros(len(encoded))
        F = self.encoder.features(encoded)
        T = self.encoder.features(self.encoder.snap(np.array([self.space.encode(c) for c in told])))
        d2 = (F * F).sum(1)[:, None] + (T * T).sum(1)[None, :] - 2.0 * F @ T.T
        return np.sqrt(np.maximum(d2.min(1), 0.0))

    def _first_new(self, order: np.ndarray, encoded: np.ndarray, look: int = 200) -> Config | None:
        """The best-ranked candidate (rows of `encoded`, in `order`) not yet tried and valid, among `look` distinct rows.

        Duplicate rows count once: candidates refined around the incumbent
        snap onto few configs (in a space of categorical knobs, onto the
        incumbent itself), so the first 200 rows were 200 copies of one tried
        config, no new config was found on any ask, and every proposal fell
        back to a random sample: a forest BO study of a memory-capped KV
        workload re-proposed the over-the-cap `dict` engine four times and
        never proposed a neighbour of its LMDB incumbent.
        """
        seen = self._seen_keys()
        rows: set[bytes] = set()
        for i in order:
            row = encoded[i].tobytes()
            if row in rows:
                continue
            rows.add(row)
            if len(rows) > look:
                break
            config = self.space.decode(encoded[i])
            if self.space.config_key(config) in seen:
                continue
            try:
                return self.space.validate(config)
            except InvalidConfig:
                continue
        return None

    # --- state
    def _extra_state(self) -> dict:
        theta = getattr(self.model, "theta", None)
        return {
            "design_used": self._design_used,
            "fits": self._fits,
            "theta": None if theta is None else [float(t) for t in theta],
            "hedge_gains": self._hedge_gains.tolist(),
            "hedge_last": self._hedge_last,
        }

    def _restore(self, history, extra: Mapping[str, Any]) -> None:
        super()._restore(history, extra)
        if extra:
            self._design_used = extra["design_used"]
            self._fits = extra["fits"]
            if extra.get("theta") is not None and isinstance(self.model, GaussianProcess):
                self.model.theta = np.array(extra["theta"], float)
            self._hedge_gains = np.array(extra["hedge_gains"], float)
            self._hedge_last = extra["hedge_last"]


class ForestBayesOpt(BayesOpt):
    """BO with a random-forest surrogate (SMAC-style); good for many categoricals.

    As SMAC's facade for hyperparameter optimization does, a fifth of the
    proposals after the initial design are random untried configs: a
    forest's spread does not grow away from the data (an engine it has
    never measured gets the mean, with the trees agreeing), so expected
    improvement alone never leaves the engines it has seen. KV studies
    exploited one RocksDB or LMDB corner for twenty trials while a faster
    engine went untried (answers 0.36-0.63 of the best).
    """

    name = "bo-rf"

    def __init__(self, space: Space, *, surrogate: str = "rf", acquisition: str = "ei", random_fraction: float = 0.2,
                 **kwargs: Any):
        super().__init__(space, surrogate=surrogate, acquisition=acquisition, random_fraction=random_fraction, **kwargs)

    def _feasibility(self):
        """P(success) at candidates from a forest classifier of failed vs completed trials; None when nothing failed.

        The kernel estimate of `BayesOpt` is smooth in every knob: a config one
        untried flag away from the measured ones is "far" from all of them, so
        its P(success) fell to the overall success rate, and expected
        improvement times it favoured near-copies of what had run. A KV study
        under a memory cap (engines over the cap fail) re-ran LMDB variants and
        never turned on `writemap`. A forest, like the surrogate, splits on the
        knobs that decide failure (the engine) and is flat in the rest, where
        `_novelty` then breaks the tie.
        """
        told = [(t.config, r.ok) for t, r in self.history]
        ok = np.array([o for _, o in told], bool)
        if ok.all() or not ok.any():
            return None
        from sklearn.ensemble import RandomForestClassifier

        F = self.encoder.features(self.encoder.snap(np.array([self.space.encode(c) for c, _ in told])))
        seed = np.random.default_rng([0 if self.seed is None else int(self.seed), len(told), 104729])
        forest = RandomForestClassifier(n_estimators=50, max_features=0.8, random_state=int(seed.integers(2**31 - 1)),
                                        n_jobs=1).fit(F, ok)
        column = list(forest.classes_).index(True)

        def p_ok(U_cand: np.ndarray) -> np.ndarray:
            X32 = np.ascontiguousarray(self.encoder.features(U_cand), dtype=np.float32)
            shares = []
            for tree in forest.estimators_:  # tree_.predict: sklearn's per-call checks dominate for 50 small trees
                counts = tree.tree_.predict(X32).reshape(len(X32), -1)  # one output: (rows, classes)
                shares.append(counts[:, column] / np.maximum(counts.sum(1), 1e-12))
            return np.mean(shares, axis=0)

        return p_ok
