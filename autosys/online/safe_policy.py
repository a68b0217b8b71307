"""A policy that predicts before it tries: safe-set exploration from a prior of past studies.

The agent's `TunerPolicy` explores blind and pays for every bad candidate in
production. `SafePolicy` starts from a *prior*: past (config, value) data of
the same system, grouped by source study, each with a workload signature
(context). Values are normalized per source (log-ratio to that source's
reference, usually its default config's value), so studies from other hosts
or scales combine. A model with uncertainty (`autosys.learn.models`) is fit on
the prior plus the live windows the agent measured, and each proposal is
chosen among many candidates (random samples plus neighbours of the best
prior and live configs) in the style of SafeOpt / OnlineTune:

- safe: the pessimistic bound (mean + `beta` std of the loss) stays within
  `margin` of the incumbent's predicted loss;
- worth trying: the mean predicts a gain of at least `min_gain`;
- among those, the best optimistic bound is proposed.

No safe candidate, no proposal: exploration in production is rare. The first
proposal after a workload change (the jump) is the best config of the past
workload the live context is recognized as (sources grouped by signature, a
ratio test on the distances), by its mean over every measurement of it
(shrunk toward the reference, so a config confirmed in several runs beats one
lucky trial). The policy is `ready` to try it after a single window of the
incumbent, since every window spent waiting runs a config tuned for another
workload. A window between two workloads (the first after a change often
straddles it, or is a cold cache's) is recognized as neither: the jump is
then the best across both, or, when that is the incumbent, the policy waits
a window or two; and a regime later recognized as another workload than its
jump was for gets that workload's best in turn. If the agent rolls a jump
back and the model, with that window included, still predicts a clear gain,
it is re-checked once (one window on a loaded host can mislead). The agent
still verifies every proposal live and rolls back a loser; the gain expected
of a proposal (for a jump, as measured in the past workloads; for a model
candidate, the pessimistic bound) is `expected_gain`, which lets the agent
keep a confident proposal whose window agrees with it, within the noise.

Live values are put on the prior's scale by an offset per regime (the median
residual of the live windows against the prior model), which is how a model
trained elsewhere is corrected by a few measurements here.

May import: numpy, `autosys.core`, `autosys.learn`, `autosys.online.agent`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from autosys.core.space import Config, InvalidConfig, Space, config_key
from autosys.learn.models import Model, make_model
from autosys.online.agent import Policy

__all__ = ["PriorSource", "SafePolicy", "normalized_values", "prior_from_knowledge_base"]


@dataclass
class PriorSource:
    """Past measurements of one workload (one finished study): configs, values and what describes it.

    context: the workload signature (numeric, e.g. monitor means); live
    context keys match a key equal to them or ending in ".<key>".
    reference: the value everything is normalized to (the default config's;
    None = the median of `rows`).
    """

    name: str
    rows: list[tuple[Config, float]]
    context: dict[str, float] = field(default_factory=dict)
    reference: float | None = None
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"prior source {self.name!r}: direction must be maximize or minimize, not {self.direction!r}")


def _log_mode(values: np.ndarray, reference: float) -> bool:
    return bool(reference > 0 and np.all(values > 0))


def normalized_values(
    values: Sequence[float], reference: float | None, direction: str, *, log: bool | None = None
) -> np.ndarray:
    """Values as losses on a scale-free axis (lower is better; 0 = the reference).

    Positive values: -log(value / reference) when maximizing, +log when
    minimizing, so a 10% change reads about 0.1 whatever the source's scale.
    Otherwise the difference to the reference in units of |reference| (or of
    the values' spread when the reference is 0). `log` forces one way (None: log-ratios when possible).
    """
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.full(v.shape, np.nan)
    ref = float(np.median(finite)) if reference is None or not math.isfinite(reference) else float(reference)
    sign = 1.0 if direction == "maximize" else -1.0
    if log is not False and _log_mode(finite, ref):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -sign * np.log(v / ref)
    scale = abs(ref) or float(np.std(finite)) or 1.0
    return -sign * (v - ref) / scale


def _match_key(key: str, context: Mapping[str, float]) -> str | None:
    """The key of `context` that stands for live key `key`: equal, or ending in '.<key>'."""
    if key in context:
        return key
    hits = sorted(k for k in context if k.endswith("." + key))
    return hits[0] if hits else None


class SafePolicy(Policy):
    """Proposes only candidates predicted, with their uncertainty, to stay within `margin` of the incumbent.

    The first proposal after each `reset` (workload change) is the best config
    of the past workload the live context is recognized as (between two: the
    best across both), tried without the model's veto (it is known good for a
    near workload) unless it is the incumbent, was measured in this regime
    under a near context, or was rolled back under one; `ready` says it is due.

    Args:
        space, direction: the system's (safe) space and objective direction.
        prior: past studies of this system (`PriorSource`s; empty = learn from live windows only).
        margin: the largest predicted loss against the incumbent a candidate may risk (0.05 = 5%).
        beta: how many standard deviations the pessimistic bound adds.
        min_gain: the least predicted gain worth a live try (match the agent's `min_relative_gain`).
        tries_per_regime: at most this many proposals per workload regime.
        candidates: random samples scored per proposal (neighbours of good configs are added).
        model: an `autosys.learn.models` name ("rf", "et", "gp", ...) or a `Model`.
        live_weight: how many prior rows one live config's windows count as.
    """

    #: live windows remembered (the oldest are dropped)
    MAX_LIVE = 5000
    #: windows a regime waits for its workload to be recognized before the model proposes without it
    max_wait = 2
    #: a context is recognized as its nearest past workload when at most this fraction as far from it as from the next
    recognize_ratio = 2 / 3

    def __init__(
        self,
        space: Space,
        direction: str = "maximize",
        prior: Sequence[PriorSource] = (),
        *,
        margin: float = 0.05,
        beta: float = 2.0,
        min_gain: float = 0.03,
        tries_per_regime: int = 4,
        candidates: int = 256,
        model: str | Model = "rf",
        live_weight: int = 3,
        seed: int = 0,
    ):
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be maximize or minimize, not {direction!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin is a fraction in [0, 1), not {margin!r}")
        if beta < 0 or min_gain < 0 or tries_per_regime < 1 or candidates < 1 or live_weight < 1:
            raise ValueError("beta and min_gain must be >= 0; tries_per_regime, candidates and live_weight >= 1")
        self.space, self.direction = space, direction
        self.margin, self.beta, self.min_gain = margin, beta, min_gain
        self.tries_per_regime, self.n_candidates, self.live_weight = tries_per_regime, candidates, live_weight
        self._model_spec = model
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.sources: list[PriorSource] = []
        self._prior_rows: list[tuple[int, Config, float]] = []  # (source index, config, normalized loss)
        self._log = True
        for source in prior:
            self._add_source(source)
        self._normalize_prior()
        self.live: list[tuple[int, dict[str, float], Config, float]] = []  # (regime, context, config, raw value)
        self.regime = 0
        self._tries = 0
        self._tried: set[str] = set()
        self._jump_pending = True
        self._waited = 0
        self._workload: tuple[str, ...] | None = None  # the past workload this regime's last jump was for
        self._jump: tuple[Config, bool] | None = None  # this regime's jump and whether it was re-checked
        self._failed: set[str] = set()
        self._rejected: list[tuple[dict[str, float], str]] = []  # (context, config key) of candidates rolled back
        self._last_seen: tuple[str, dict[str, float]] | None = None
        self._prior_model: Model | None = None
        self._prior_keys: tuple[str, ...] | None = None
        self._expected: dict[str, float] = {}  # config key -> the relative gain predicted when it was proposed
        #: what the last `propose` saw: candidates scored, how many were safe, and why it chose what it did
        self.last: dict[str, Any] = {}

    # ------------------------------------------------------------------ the prior
    def _add_source(self, source: PriorSource) -> None:
        rows = []
        default = self.space.default()
        for config, value in source.rows:
            try:
                clean = self.space.validate({**default, **{k: v for k, v in config.items() if k in self.space.params}})
            except (InvalidConfig, ValueError, TypeError):
                continue  # a knob value this space refuses (another host's or a risky one): not a usable row
            if value is None or not math.isfinite(float(value)):
                continue
            rows.append((clean, float(value)))
        if not rows:
            return
        if source.direction != self.direction:
            raise ValueError(f"prior source {source.name!r} is {source.direction}d but the live objective is {self.direction}d")
        values = np.array([v for _, v in rows])
        reference = source.reference if source.reference is not None and math.isfinite(source.reference) else None
        ref = float(np.median(values)) if reference is None else reference
        self.sources.append(PriorSource(source.name, rows, dict(source.context), ref, source.direction))

    def _normalize_prior(self) -> None:
        """Every source on one axis: log-ratios when all values are positive, else differences in units of |reference|."""
        self._log = all(_log_mode(np.array([v for _, v in s.rows]), float(s.reference)) for s in self.sources)
        self._prior_rows = []
        for index, source in enumerate(self.sources):
            losses = normalized_values([v for _, v in source.rows], source.reference, self.direction, log=self._log)
            self._prior_rows += [(index, c, float(y)) for (c, _), y in zip(source.rows, losses)]

    def normalized_prior(self) -> list[tuple[str, Config, float]]:
        """(source name, config, normalized loss) of every usable prior row."""
        return [(self.sources[i].name, c, y) for i, c, y in self._prior_rows]

    # ------------------------------------------------------------------ features
    def _live_keys(self) -> list[str]:
        keys: set[str] = set()
        for _, context, _, _ in self.live:
            keys.update(context)
        return sorted(keys)

    def _context_keys(self, extra: Mapping[str, float] | None = None) -> list[str]:
        """Live context keys the model uses: all of them, or those the prior's signatures also have."""
        keys = set(self._live_keys()) | set(extra or {})
        if not self.sources:
            return sorted(keys)
        return sorted(k for k in keys if any(_match_key(k, s.context) is not None for s in self.sources))

    def _source_context(self, source: PriorSource, keys: Sequence[str]) -> np.ndarray:
        out = []
        for key in keys:
            name = _match_key(key, source.context)
            out.append(float(source.context[name]) if name is not None else 0.0)
        return np.array(out)

    def _features(self, config: Config, context: np.ndarray) -> np.ndarray:
        """The config (numbers on the unit interval, choices one-hot: trees split them in one step) and the context."""
        parts: list[float] = []
        for param in self.space:
            value = config.get(param.name, param.default_value())
            choices = getattr(param, "choices", None)
            if choices is not None and len(choices) > 2:
                parts += [1.0 if value == c else 0.0 for c in choices]
            else:
                parts.append(param.to_unit(value))
        return np.concatenate([np.array(parts), context])

    def _new_model(self) -> Model:
        if isinstance(self._model_spec, Model):
            return copy.deepcopy(self._model_spec)  # the prior's model and the full one are fit apart
        options: dict[str, Any] = {"seed": self.seed}
        if self._model_spec in ("rf", "et"):  # past studies are small: leaves of one row keep their detail
            options.update(n_estimators=40, min_samples_leaf=1)
        return make_model(str(self._model_spec), **options)

    def _raw_loss(self, value: float, scale: float = 1.0) -> float:
        sign = 1.0 if self.direction == "maximize" else -1.0
        if self._log:
            return -sign * math.log(value) if value > 0 else math.inf
        return -sign * value / scale

    def _live_scales(self) -> dict[int, float]:
        """Linear mode: each live regime's values in units of their median magnitude (as prior sources in |reference|)."""
        out: dict[int, float] = {}
        for regime in {r for r, _, _, _ in self.live}:
            magnitudes = [abs(v) for r, _, _, v in self.live if r == regime and v != 0]
            out[regime] = float(np.median(magnitudes)) if magnitudes else 1.0
        return out

    def _fit(self, context: Mapping[str, float]) -> tuple[Model | None, list[str], dict[int, float]]:
        """Fit the model on the prior plus the live windows (on the prior's scale); returns it, the
        context keys it uses and each live regime's offset."""
        keys = self._context_keys(context)
        use_prior_context = bool(keys) or not self.sources
        X: list[np.ndarray] = []
        y: list[float] = []
        prior_model = None
        if self._prior_rows:
            for i, config, loss in self._prior_rows:
                ctx = self._source_context(self.sources[i], keys) if use_prior_context else np.zeros(0)
                X.append(self._features(config, ctx))
                y.append(loss)
            if self._prior_keys != tuple(keys) or self._prior_model is None:
                self._prior_model = self._new_model().fit(np.array(X), np.array(y))
                self._prior_keys = tuple(keys)
            prior_model = self._prior_model
        # live windows: one row per (regime, config), the mean of its windows, on the prior's scale
        groups: dict[tuple[int, str], list[tuple[dict[str, float], Config, float]]] = {}
        scales = self._live_scales()
        for regime, ctx, config, value in self.live:
            loss = self._raw_loss(value, scales[regime])
            if math.isfinite(loss):
                groups.setdefault((regime, config_key(config)), []).append((ctx, config, loss))
        offsets: dict[int, float] = {}
        live_rows = []
        for (regime, _), items in groups.items():
            ctx = {k: float(np.mean([c.get(k, 0.0) for c, _, _ in items])) for k in keys}
            vec = np.array([ctx[k] for k in keys]) if use_prior_context else np.zeros(0)
            live_rows.append((regime, self._features(items[0][1], vec), float(np.mean([l for _, _, l in items])), len(items)))
        for regime in sorted({r for r, _, _, _ in live_rows}):
            rows = [row for row in live_rows if row[0] == regime]
            if prior_model is not None:
                predicted, _ = prior_model.predict(np.array([x for _, x, _, _ in rows]))
                residuals = predicted - np.array([l for _, _, l, _ in rows])  # weighted by windows: the incumbent's
                offsets[regime] = float(np.median(np.repeat(residuals, [n for _, _, _, n in rows])))  # many count most
            else:  # no prior: relative to the regime's first config (usually the incumbent)
                offsets[regime] = -rows[0][2]
        if not use_prior_context:  # the prior cannot tell regimes apart: only this regime's windows are comparable
            live_rows = [row for row in live_rows if row[0] == self.regime]
        for regime, x, loss, count in live_rows:
            for _ in range(min(count, self.live_weight)):
                X.append(x)
                y.append(loss + offsets[regime])
        if not X:
            return None, keys, offsets
        model = self._new_model().fit(np.array(X), np.array(y))
        return model, (keys if use_prior_context else []), offsets

    # ------------------------------------------------------------------ candidates
    def _neighbours(self, config: Config, n: int) -> list[Config]:
        out = []
        base = self.space.encode(config)
        params = list(self.space)
        for _ in range(n):
            u = base.copy()
            for d in self.rng.choice(len(params), size=min(len(params), int(self.rng.integers(1, 3))), replace=False):
                if hasattr(params[d], "choices"):
                    u[d] = self.rng.random()
                else:
                    u[d] = float(np.clip(u[d] + self.rng.normal(0, 0.15), 0.0, 1.0))
            try:
                out.append(self.space.validate(self.space.decode(u)))
            except InvalidConfig:
                continue
        return out

    def _candidates(self, incumbent: Config) -> list[Config]:
        pool: list[Config] = []
        for _ in range(self.n_candidates):
            try:
                pool.append(self.space.sample(self.rng))
            except InvalidConfig:
                break
        good = sorted(self._prior_rows, key=lambda r: r[2])[:8]
        pool += [self.space.default()] + [c for _, c, _ in good]  # the default: every source's reference
        anchors = [c for _, c, _ in good[:4]] + [incumbent]
        live_best: dict[str, tuple[float, Config]] = {}
        scales = self._live_scales()
        for regime, _, config, value in self.live:
            if regime == self.regime:
                loss = self._raw_loss(value, scales[regime])
                key = config_key(config)
                if key not in live_best or loss < live_best[key][0]:
                    live_best[key] = (loss, config)
        anchors += [c for _, c in sorted(live_best.values(), key=lambda t: t[0])[:3]]
        for anchor in anchors:
            pool += self._neighbours(anchor, 12)
        seen, unique = set(), []
        for config in pool:
            key = config_key(config)
            if key not in seen:
                seen.add(key)
                unique.append(config)
        return unique

    # ------------------------------------------------------------------ the policy
    def _distances(self, context: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray] | None:
        """Each source's distance to `context` and the sources' distances to each other (0: one workload), over
        the keys they share, in units of each key's spread across the sources (None without shared keys).

        A share of operations (`*_fraction`) that a source has and the live window lacks counts as 0 there, when the
        window has shares at all: a window with no scans reports no scan_fraction, and leaving the key out would
        make a scan-heavy source look as near as a scan-free one."""
        context = dict(context)
        if any(k.endswith("_fraction") for k in context):
            for source in self.sources:
                for name in source.context:
                    short = name.rsplit(".", 1)[-1]
                    if short.endswith("_fraction") and _match_key(short, context) is None:
                        context[short] = 0.0
        keys = [k for k in context if any(_match_key(k, s.context) is not None for s in self.sources)]
        if not keys or not self.sources:
            return None
        live = np.array([float(context[k]) for k in keys])
        table = np.array([self._source_context(s, keys) for s in self.sources])
        scale = table.std(axis=0)
        scale[scale == 0] = 1.0
        table = table / scale
        between = np.linalg.norm(table[:, None, :] - table[None, :, :], axis=2)
        return np.linalg.norm(table - live / scale, axis=1), between

    def nearest_sources(self, context: Mapping[str, float]) -> list[PriorSource]:
        """The prior sources whose signature is nearest to `context` (all of them on a tie: studies of one
        workload); empty without shared keys."""
        found = self._distances(context)
        if found is None:
            return []
        distance = found[0]
        closest = float(distance.min())
        return [s for s, d in zip(self.sources, distance) if d <= closest + 1e-9 * max(1.0, closest)]

    def nearest_source(self, context: Mapping[str, float]) -> PriorSource | None:
        """The first of `nearest_sources` (None without shared keys)."""
        sources = self.nearest_sources(context)
        return sources[0] if sources else None

    def workloads_near(self, context: Mapping[str, float]) -> tuple[list[list[PriorSource]], bool]:
        """The past workloads `context` may be (sources grouped by signature) and whether it is recognized as one.

        Recognized: at most `recognize_ratio` as far from the nearest workload as from the next nearest (a ratio
        test: 2/3 recognizes the 40% of the way nearest each workload); then that workload alone. Otherwise (a
        window between two workloads, or away from all, as the first after a change often is) the two nearest.
        Empty without shared keys.
        """
        found = self._distances(context)
        if found is None:
            return [], False
        distance, between = found
        tie = 1e-9
        groups: list[list[int]] = []  # sources with one signature are one workload
        for i in np.argsort(distance, kind="stable"):
            for group in groups:
                if between[group[0], i] <= tie:
                    group.append(int(i))
                    break
            else:
                groups.append([int(i)])
        recognized = len(groups) == 1 or distance[groups[0][0]] <= self.recognize_ratio * distance[groups[1][0]]
        chosen = groups[:1] if recognized else groups[:2]
        return [[self.sources[i] for i in g] for g in chosen], recognized

    def _scores(self, workloads: Sequence[Sequence[PriorSource]]) -> tuple[dict[str, float], dict[str, Config]]:
        """Each config's score across `workloads` (groups of sources of one workload each; lower is better): per
        workload, the sum of its normalized values over (count + 1), the mean shrunk toward the reference by one
        pseudo-measurement so one lucky trial does not beat a config confirmed in several runs; then the mean over
        the workloads, for the configs measured in all of them (the default, every source's reference, always is)."""
        default = self.space.default()
        scores: dict[str, list[float]] = {}
        configs: dict[str, Config] = {config_key(default): default}
        for group in workloads:
            by_key: dict[str, list[float]] = {config_key(default): []}
            for source in group:
                losses = normalized_values([v for _, v in source.rows], source.reference, source.direction, log=self._log)
                for (config, _), loss in zip(source.rows, losses):
                    key = config_key(config)
                    by_key.setdefault(key, []).append(float(loss))
                    configs[key] = config
            for key, losses in by_key.items():
                scores.setdefault(key, []).append(float(np.sum(losses)) / (len(losses) + 1))
        everywhere = {k: float(np.mean(v)) for k, v in scores.items() if len(v) == len(workloads)}
        return everywhere, configs

    def _best_of(self, workloads: Sequence[Sequence[PriorSource]]) -> Config:
        """The best config across `workloads` by `_scores` (between two workloads: the best on average)."""
        scores, configs = self._scores(workloads)
        return configs[min(scores, key=scores.get)]

    def _pending_jump(
        self, context: Mapping[str, float], incumbent: Config
    ) -> tuple[Config, list[list[PriorSource]], bool] | None:
        """This regime's jump when it is still to be tried (not the incumbent, not measured in this regime, not
        rolled back under a near context, and, where the past workloads measured the incumbent too, better than it
        there by at least `min_gain`: a jump skips the model's veto only on evidence of a gain): the best config of
        the past workload the context is recognized as, or, between two, the best across both; and whether it was
        recognized."""
        if not self._jump_pending or self._tries >= self.tries_per_regime:
            return None
        workloads, recognized = self.workloads_near(context)
        if not workloads:
            return None
        scores, configs = self._scores(workloads)
        jump = configs[min(scores, key=scores.get)]
        if config_key(incumbent) in scores and self._relative(scores[config_key(incumbent)] - scores[config_key(jump)]) < self.min_gain:
            return None
        done = {config_key(incumbent)} | self._tried | self._failed
        done |= {config_key(c) for r, ctx, c, _ in self.live if r == self.regime and _near(ctx, context)}
        done |= {key for ctx, key in self._rejected if _near(ctx, context)}
        return None if config_key(jump) in done else (jump, workloads, recognized)

    def ready(self, context: Mapping[str, float], incumbent: Config) -> bool:
        """A jump to the nearest past workload's best is due: worth trying after one window of the incumbent.

        Also when the regime turns out to be another workload than its first windows looked like (the first window
        after a change, or a cold cache's, can look like a different workload): once the context is recognized as a
        workload other than the one the regime's last jump was for, that workload's best is due in turn."""
        self._rearm(context)
        return self._pending_jump(context, incumbent) is not None

    def _rearm(self, context: Mapping[str, float]) -> None:
        """Make a jump due again when `context` is recognized as another workload than the last jump was for."""
        if not self._jump_pending and self._workload is not None and self._tries < self.tries_per_regime:
            workloads, recognized = self.workloads_near(context)
            if recognized and _names(workloads[0]) != self._workload:
                self._jump_pending, self._waited = True, 0

    def wait(self, context: Mapping[str, float], incumbent: Config) -> bool:
        """The window lies between two past workloads whose best across both is the incumbent: the next window
        (at most `max_wait` of them per regime) says which workload runs, and so which config to jump to."""
        if not self._jump_pending or self._tries >= self.tries_per_regime or self._waited >= self.max_wait:
            return False
        workloads, recognized = self.workloads_near(context)
        if not workloads or recognized or self._pending_jump(context, incumbent) is not None:
            return False
        self._waited += 1
        self.last = {"why": "the window lies between two past workloads and the best across both is the incumbent: "
                            "waiting for the next window to tell which runs"}
        return True

    def workloads(self) -> list[list[PriorSource]]:
        """Every past workload: the prior's sources grouped by signature (studies of one workload share one)."""
        groups: dict[tuple, list[PriorSource]] = {}
        for source in self.sources:
            groups.setdefault(tuple(sorted((k, round(float(v), 9)) for k, v in source.context.items())), []).append(source)
        return list(groups.values())

    def fallback(self, context: Mapping[str, float], incumbent: Config) -> Config | None:
        """The safe harbor while a new workload is unknown, when the incumbent is known to fall more than `margin`
        below the default in some past workload (by `_scores`, per workload): the config with the best worst case
        over the past workloads (the default on a tie; the default's worst case is 0, every source's reference, so
        the harbor never falls below it in a known workload). None (keep the incumbent) when the incumbent is not
        known to be unsafe: not measured in any past workload where it lost, or no prior."""
        workloads = self.workloads()
        if not workloads:
            return None
        per = [self._scores([group]) for group in workloads]
        default_key, incumbent_key = config_key(self.space.default()), config_key(incumbent)
        margin = -math.log(1.0 - self.margin) if self._log else self.margin
        unsafe = [i for i, (scores, _) in enumerate(per)
                  if incumbent_key in scores and scores[incumbent_key] > scores[default_key] + margin]
        if not unsafe:
            return None
        configs: dict[str, Config] = {}
        for _, found in per:
            configs.update(found)
        everywhere = [k for k in configs if all(k in scores for scores, _ in per)]
        worst = {k: max(scores[k] for scores, _ in per) for k in everywhere}
        harbor = min(everywhere, key=lambda k: (worst[k], k != default_key))
        if harbor == incumbent_key:
            return None
        lost = ", ".join(s.name for s in workloads[unsafe[0]])
        self.last = {"why": f"the incumbent scores {self._relative(per[unsafe[0]][0][incumbent_key]):+.0%} of loss against the "
                            f"default in a past workload ({lost}); the fallback's worst case over the past workloads "
                            f"is {self._relative(worst[harbor]):+.0%}"}
        return dict(configs[harbor])

    def expected_gain(self, config: Config) -> float | None:
        """The relative gain expected of `config` when it was proposed in this regime (None if it was not)."""
        return self._expected.get(config_key(config))

    def explain(self) -> str:
        """Why the last proposal (or none) was made."""
        return str(self.last.get("why", ""))

    def _relative(self, loss_gain: float) -> float:
        """A gain on the loss axis as a relative gain (log-ratios: exp - 1; linear: units of the reference)."""
        return math.expm1(loss_gain) if self._log else loss_gain

    def propose(self, context: Mapping[str, float], incumbent: Config) -> Config | None:
        if self._tries >= self.tries_per_regime:
            self.last = {"why": "tries for this regime used up"}
            return None
        model, keys, offsets = self._fit(context)
        if model is None:
            self.last = {"why": "no data yet"}
            return None
        vec = np.array([float(context.get(k, 0.0)) for k in keys])
        incumbent_key = config_key(incumbent)
        x_inc = self._features(incumbent, vec)[None, :]
        mu_inc = float(model.predict(x_inc)[0][0])
        scales = self._live_scales()
        seen = [self._raw_loss(v, scales[r]) + offsets.get(r, 0.0) for r, _, c, v in self.live
                if r == self.regime and config_key(c) == incumbent_key]
        seen = [x for x in seen if math.isfinite(x)]
        if seen:  # the better of model and live windows: a stricter bar for both safety and gain
            mu_inc = min(mu_inc, float(np.mean(seen)))
        margin = -math.log(1.0 - self.margin) if self._log else self.margin
        gain = math.log(1.0 + self.min_gain) if self._log else self.min_gain

        self._rearm(context)
        if self._jump_pending:
            pending = self._pending_jump(context, incumbent)
            # a jump for a context between two workloads leaves a jump pending for when one is recognized
            self._jump_pending = pending is not None and not pending[2]
            if pending is not None:  # known good for a near workload: tried without the model's veto
                jump, workloads, recognized = pending
                self._workload = _names(workloads[0]) if recognized else None
                self._tries += 1
                self._tried.add(config_key(jump))
                self._jump = (dict(jump), False)
                # the gain expected: as measured in those workloads when the incumbent was measured there too, else the model's
                scores, _ = self._scores(workloads)
                if incumbent_key in scores:
                    expected = self._relative(scores[incumbent_key] - scores[config_key(jump)])
                else:
                    expected = self._relative(mu_inc - float(model.predict(self._features(jump, vec)[None, :])[0][0]))
                self._expected[config_key(jump)] = expected
                names = " / ".join(", ".join(s.name for s in group) for group in workloads)
                what = "the nearest past workload" if recognized else "the two past workloads this window lies between"
                self.last = {"why": f"the best config of {what} ({names}), expected {expected:+.0%}", "safe": None}
                return dict(jump)
        elif self._jump is not None and not self._jump[1] and config_key(self._jump[0]) not in ({incumbent_key} | self._failed):
            # the jump was rolled back: one window under a noisy host can mislead, so a strong prediction gets one re-check
            again = self._jump[0]
            self._jump = (again, True)
            mu_again = float(model.predict(self._features(again, vec)[None, :])[0][0])
            if mu_again <= mu_inc - 3 * gain:
                self._tries += 1
                self._expected[config_key(again)] = self._relative(mu_inc - mu_again)
                self.last = {"why": "re-checking the nearest past workload's best: still predicted "
                                    f"{self._relative(mu_inc - mu_again):+.0%}", "safe": None}
                return dict(again)

        pool = [c for c in self._candidates(incumbent) if config_key(c) != incumbent_key and config_key(c) not in self._tried]
        if not pool:
            self.last = {"why": "no candidate left"}
            return None
        X = np.array([self._features(c, vec) for c in pool])
        mu, sd = model.predict(X)
        safe = mu + self.beta * sd <= mu_inc + margin
        worth = mu <= mu_inc - gain
        eligible = np.flatnonzero(safe & worth)
        self.last = {"candidates": len(pool), "safe": int(safe.sum()), "eligible": int(len(eligible)),
                     "incumbent_loss": mu_inc}
        if len(eligible) == 0:
            self.last["why"] = "no candidate is both safe and predicted to gain"
            return None
        optimistic = mu[eligible] - self.beta * sd[eligible]
        index = int(eligible[int(np.argmin(optimistic))])
        choice = pool[index]
        self._tries += 1
        self._tried.add(config_key(choice))
        pessimistic = self._relative(mu_inc - (mu[index] + self.beta * sd[index]))  # confident only if even the
        self._expected[config_key(choice)] = pessimistic  # pessimistic bound gains
        self.last["why"] = f"safe and predicted to gain ({self._relative(mu_inc - mu[index]):+.0%}, at worst {pessimistic:+.0%})"
        return dict(choice)

    def observe(self, context: Mapping[str, float], config: Config, value: float) -> None:
        if value is None or not math.isfinite(value):
            self._tried.add(config_key(config))  # a failed apply: never proposed again in this regime
            self._failed.add(config_key(config))
            return
        if value <= 0 and not self.sources:
            self._log = False  # values that are not all positive: compared by difference, not ratio
        key = config_key(config)
        if self._last_seen is not None and self._last_seen[0] in self._tried and self._last_seen[0] != key:
            self._rejected.append((self._last_seen[1], self._last_seen[0]))  # the agent rolled it back
            del self._rejected[: -self.MAX_LIVE]
        self._last_seen = (key, dict(context))
        self.live.append((self.regime, dict(context), dict(config), float(value)))
        del self.live[: -self.MAX_LIVE]  # a long-running agent keeps its recent windows

    def reset(self, context: Mapping[str, float]) -> None:
        """A new regime: its own offset, a fresh try budget, and first the nearest past workload's best."""
        self.regime += 1
        self._tries = 0
        self._tried = set()
        self._failed = set()
        self._jump_pending = True
        self._waited = 0
        self._workload = None
        self._jump = None
        self._expected = {}


def _names(sources: Sequence[PriorSource]) -> tuple[str, ...]:
    return tuple(sorted(s.name for s in sources))


def _near(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Two contexts describe the same workload: every key within 0.01 or 10% of each other."""
    for key in set(a) | set(b):
        x, y = float(a.get(key, 0.0)), float(b.get(key, 0.0))
        if abs(x - y) > max(0.01, 0.1 * max(abs(x), abs(y))):
            return False
    return True


def prior_from_knowledge_base(
    system: str,
    *,
    location: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
    limit: int = 50,
) -> list[PriorSource]:
    """Prior sources from the knowledge base's finished studies of `system` (newest `limit`).

    Each study is one source: its feasible trials, its default config's value
    as the reference, and its workload signature's numeric monitor means and
    metrics as the context. No knowledge base, a turned-off one or an
    unreadable one gives no prior (the policy then learns from live windows).
    """
    from autosys.learn.knowledge import KnowledgeBaseError, default_location, is_off, open_knowledge_base

    where = location or default_location()
    if is_off(where):
        return []
    if "://" not in where:
        from pathlib import Path

        if not Path(where).expanduser().exists():
            return []
    try:
        with open_knowledge_base(where, create=False) as base:
            studies = base.studies(system, with_trials=True)
    except (KnowledgeBaseError, OSError):
        return []
    out = []
    for study in studies[-limit:]:
        if metric is not None and study.metric != metric:
            continue
        if direction is not None and study.direction != direction:
            continue
        rows = [(dict(t.config), float(t.value)) for t in study.ranked()]
        if not rows:
            continue
        signature = study.signature or {}
        context: dict[str, float] = {}
        for kind in ("metrics", "monitors"):
            for key, value in (signature.get(kind) or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    context[str(key)] = float(value)
        out.append(PriorSource(f"kb study {study.id} {study.name}", rows, context, study.default_value, study.direction))
    return out
