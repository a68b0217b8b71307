"""Model-guided search (AutoTVM-style): a learned cost model picks what to measure next.

After a few random trials, a gradient-boosting model is fitted on the
measured (config, loss) pairs; simulated annealing over the model's
predictions, started from the best configs seen and from random ones,
proposes the unmeasured config the model likes best. With probability
`epsilon` a random config is measured instead, so a wrong model cannot trap
the search.

Generic over any `Space`: a config's row is its unit-cube encoding, plus the
output of an optional `features(config)` function a system may provide (for
kernels: cache footprints, register use, and the problem shape). Because the
features can carry context such as a shape, rows measured elsewhere —
another study, another shape — can warm-start the model (`add_prior`).
Losses are rank-normalised within each source, so sources on different scales
mix: the model learns which configs are better, not by how much.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from autosys.core.space import Config, Float, Int, Ordinal, Space
from autosys.tuners.base import Tuner
from autosys.core.trial import Result, Trial

FeatureFn = Callable[[Config], Sequence[float]]


def _ranks(values: np.ndarray) -> np.ndarray:
    """Losses -> [0, 1] by rank within one source (ties share their mean rank)."""
    if len(values) == 1:
        return np.array([0.5])
    from scipy.stats import rankdata

    return (rankdata(values) - 1.0) / (len(values) - 1.0)


class ModelGuidedTuner(Tuner):
    """Gradient-boosted cost model + simulated annealing over it, with epsilon exploration.

    Parameters
    ----------
    n_initial: random trials before the model is trusted.
    epsilon: probability of a random trial after that.
    features: optional config -> feature vector (appended to the space encoding).
    chains, steps: simulated-annealing chains and steps per proposal.
    prior_weight: sample weight of warm-start rows relative to this study's own trials.
    n_estimators, max_depth, learning_rate: the gradient-boosting model.
    """

    name = "model"

    def __init__(
        self,
        space: Space,
        *,
        direction: str = "minimize",
        seed: int | None = 0,
        n_initial: int = 8,
        epsilon: float = 0.1,
        features: FeatureFn | None = None,
        chains: int = 16,
        steps: int = 40,
        prior_weight: float = 0.5,
        n_estimators: int = 150,
        max_depth: int = 3,
        learning_rate: float = 0.1,
    ):
        super().__init__(space, direction=direction, seed=seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        if n_initial < 1:
            raise ValueError(f"n_initial must be at least 1, got {n_initial}")
        self.n_initial, self.epsilon = int(n_initial), float(epsilon)
        self.features = features
        self.chains, self.steps = int(chains), int(steps)
        self.prior_weight = float(prior_weight)
        self.model_params = dict(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate)
        self.model = None
        self._fitted_on = -1
        #: warm-start data: (row, loss, group, config or None)
        self._prior: list[tuple[np.ndarray, float, str, Config | None]] = []
        self._row_cache: dict[str, np.ndarray] = {}

    # --- rows and warm start
    def row(self, config: Mapping[str, Any]) -> np.ndarray:
        """The model's input for a config: space encoding (+ system features)."""
        key = self.space.config_key(config)
        cached = self._row_cache.get(key)
        if cached is None:
            parts = [self.space.encode(config)]
            if self.features is not None:
                parts.append(np.asarray(self.features(dict(config)), dtype=float).ravel())
            cached = np.concatenate(parts)
            if len(self._row_cache) < 200_000:
                self._row_cache[key] = cached
        return cached

    def add_prior(
        self,
        rows: Sequence[Sequence[float]],
        losses: Sequence[float],
        group: str = "prior",
        configs: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Warm-start the model with rows measured elsewhere (losses: lower is better).

        `rows` must be built the way `row()` builds them (same space, same
        feature function applied to *their* context), e.g. another tuner's
        `export_rows()`. Non-finite losses are skipped.
        """
        if len(rows) != len(losses):
            raise ValueError(f"add_prior: {len(rows)} rows but {len(losses)} losses")
        width = None
        for i, (row, loss) in enumerate(zip(rows, losses)):
            if loss is None or not math.isfinite(loss):
                continue
            arr = np.asarray(row, dtype=float).ravel()
            width = width or arr.size
            if arr.size != width:
                raise ValueError("add_prior: rows have different lengths")
            config = dict(configs[i]) if configs is not None else None
            self._prior.append((arr, float(loss), group, config))
        self._fitted_on = -1

    def export_rows(self) -> tuple[list[np.ndarray], list[float], list[Config]]:
        """This study's completed trials as (rows, losses, configs), for another tuner's `add_prior`."""
        obs = self.observations
        return [self.row(c) for c, _ in obs], [loss for _, loss in obs], [dict(c) for c, _ in obs]

    # --- the model
    def _training_set(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        groups: dict[str, tuple[list[np.ndarray], list[float]]] = {}
        for row, loss, group, _ in self._prior:
            groups.setdefault("prior:" + group, ([], []))
            groups["prior:" + group][0].append(row)
            groups["prior:" + group][1].append(loss)
        own = self.observations
        if own:
            groups["own"] = ([self.row(c) for c, _ in own], [loss for _, loss in own])
        xs, ys, ws = [], [], []
        for name, (rows, losses) in groups.items():
            xs.extend(rows)
            ys.extend(_ranks(np.asarray(losses)))
            ws.extend([1.0 if name == "own" else self.prior_weight] * len(rows))
        return np.array(xs), np.array(ys), np.array(ws)

    def _fit(self) -> bool:
        n_data = len(self.history) + len(self._prior)
        if self.model is not None and self._fitted_on == n_data:
            return True
        x, y, w = self._training_set()
        if len(y) < 3:
            return False
        from sklearn.ensemble import GradientBoostingRegressor

        model = GradientBoostingRegressor(
            **self.model_params, subsample=0.9, random_state=int(self.rng.integers(2**31 - 1))
        )
        model.fit(x, y, sample_weight=w)
        self.model, self._fitted_on = model, n_data
        return True

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted normalised loss (0 = best seen, 1 = worst) of each config."""
        if not self._fit():
            raise RuntimeError("the cost model needs at least 3 completed trials or prior rows")
        return self.model.predict(np.array([self.row(c) for c in configs]))

    # --- search
    def _seen(self) -> set[str]:
        keys = {self.space.config_key(t.config) for t, _ in self.history if t.number >= 0}
        keys |= {self.space.config_key(t.config) for t in self.pending.values()}
        return keys

    def _random_new(self, seen: set[str], tries: int = 50) -> Config:
        return self.sample_unseen(seen, tries)

    def _neighbour(self, config: Config) -> Config:
        """Change one or two active parameters; new children of a changed parent are sampled."""
        new = dict(config)
        names = self.space.active_names(config)
        for name in self.rng.choice(names, size=min(len(names), 1 + int(self.rng.random() < 0.3)), replace=False):
            param = self.space[name]
            if isinstance(param, Ordinal):  # ordered: step to a nearby value
                values = list(param.choices)
                i = values.index(new[name])
                step = int(self.rng.choice([-2, -1, 1, 2]))
                new[name] = values[min(max(i + step, 0), len(values) - 1)]
            elif isinstance(param, Int):
                span = param.high - param.low
                step = int(self.rng.choice([-2, -1, 1, 2])) * max(1, span // 16)
                new[name] = int(min(max(new[name] + step, param.low), param.high))
            elif isinstance(param, Float):
                u = param.to_unit(new[name]) + self.rng.normal(0, 0.1)
                new[name] = param.from_unit(u)
            else:
                new[name] = param.sample(self.rng)
        # rebuild so that conditional children appear / disappear with their parents
        out: Config = {}
        for name, param in self.space.params.items():
            if param.condition is not None and not param.condition.holds(out):
                continue
            out[name] = new[name] if name in new else param.sample(self.rng)
        return out

    def _anneal(self, seen: set[str]) -> Config | None:
        starts: list[Config] = []
        own = sorted(self.observations, key=lambda p: p[1])
        starts += [dict(c) for c, _ in own[: self.chains // 2]]
        prior = sorted((p for p in self._prior if p[3] is not None), key=lambda p: p[1])
        for _, _, _, config in prior[: self.chains // 4]:
            if self.space.is_valid(config):
                starts.append(dict(config))
        while len(starts) < self.chains:
            starts.append(self.space.sample(self.rng))
        chains = starts[: self.chains]
        scores = self.predict(chains)
        best: dict[str, tuple[float, Config]] = {}

        def remember(config: Config, score: float) -> None:
            key = self.space.config_key(config)
            if key not in seen and (key not in best or score < best[key][0]):
                best[key] = (float(score), config)

        for c, s in zip(chains, scores):
            remember(c, s)
        for step in range(self.steps):
            temperature = 0.1 * (1.0 - step / self.steps) + 1e-3
            proposals = []
            for c in chains:
                for _ in range(10):
                    cand = self._neighbour(c)
                    if self.space.satisfies_constraints(cand):
                        break
                else:
                    cand = c
                proposals.append(cand)
            new_scores = self.predict(proposals)
            for i, (cand, s) in enumerate(zip(proposals, new_scores)):
                remember(cand, s)
                if s <= scores[i] or self.rng.random() < math.exp(-(s - scores[i]) / temperature):
                    chains[i], scores[i] = cand, s
        if not best:
            return None
        return min(best.values(), key=lambda p: p[0])[1]

    def _ask(self) -> Config:
        seen = self._seen()
        own_asked = sum(1 for t, _ in self.history if t.number >= 0) + len(self.pending)
        n_data = len(self.observations) + len(self._prior)
        if (own_asked < self.n_initial and not self._prior) or n_data < 3 or self.rng.random() < self.epsilon:
            return self._random_new(seen)
        config = self._anneal(seen)
        return config if config is not None else self._random_new(seen)

    def _tell(self, trial: Trial, result: Result) -> None:
        pass  # the model is refitted lazily at the next ask

    # --- state
    def _extra_state(self) -> dict:
        return {"prior": [[row.tolist(), loss, group, config] for row, loss, group, config in self._prior]}

    def _restore(self, history: list[tuple[Trial, Result]], extra: Mapping[str, Any]) -> None:
        self._prior = [(np.asarray(r, dtype=float), float(l), g, c) for r, l, g, c in extra.get("prior", [])]
        self.model, self._fitted_on = None, -1
        super()._restore(history, extra)


__all__ = ["ModelGuidedTuner"]
