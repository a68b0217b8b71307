"""Tune a space of hundreds of knobs in a few dozen trials: search a random low-dimensional projection of it.

LlamaTune (Kanellis et al., "LlamaTune: Sample-Efficient DBMS Configuration
Tuning", VLDB 2022) found that a database's few hundred knobs have a low
effective dimension, and tuned them in a fraction of the trials with three
changes to the search space, all generic and all here:

1. **A random linear projection** (HeSBO, Nayebi et al., ICML 2019: a
   count-sketch). Every knob j of the full space is hashed to one of `dim`
   low dimensions h(j) with a random sign s(j); the inner tuner searches
   z in [-1, 1]^dim and knob j takes the unit-cube coordinate
   (s(j) * z[h(j)] + 1) / 2. Every z maps inside the full unit cube, so
   every projected config is a valid config of the full space. A space with
   at most `dim` knobs is searched directly (h is the identity).
2. **Special values biased**: a number whose low end is 0 or -1 (what
   servers use for "off" or "automatic") takes that value on the first
   `special_prob` of its unit range, the rest of the range stretched over
   what remains, so the tuner reaches "off" often rather than once in a
   thousand samples. `special` names the values by hand instead.
3. **Bucketized ranges**: a number takes at most `buckets` distinct values
   (the unit coordinate is rounded to a bucket's centre), so a large range
   does not look like a continuum of distinct configs.

Constraints the projection cannot see are repaired: knobs named by a
violated `Forbid` go back to their defaults; any other violated constraint
walks the config towards the default in the unit cube until it holds.

The inner tuner (`inner`, any registered name, with `inner_options`) only
ever sees the low-dimensional space; configs this tuner did not propose
(enqueued ones, warm starts) reach it at their least-squares preimage. The
projection itself is drawn from the seed and saved with the state.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from autosys.core.space import Config, Float, Forbid, Int, InvalidConfig, Space
from autosys.core.trial import Result, Trial
from autosys.tuners import tuner_class
from autosys.tuners.base import Tuner, warm_start_entry

#: salt of the projection's own random stream, so it never shares draws with the inner tuner
_PROJECTION_SALT = 0x11A3A7


class ProjectedTuner(Tuner):
    """Any tuner over a random `dim`-dimensional projection of the space (LlamaTune; see the module docstring).

    Parameters
    ----------
    inner: the tuner searching the low-dimensional space (a registered name).
    inner_options: keyword options of the inner tuner.
    dim: dimensions of the projection (LlamaTune's default: 16).
    special_prob: share of a special-valued knob's unit range that maps to the special value.
    buckets: distinct values a number may take at most (0: no bucketing).
    special: knob name -> its special value (default: the low end of numbers whose low end is 0 or -1).
    """

    name = "projected"

    def __init__(
        self,
        space: Space,
        *,
        inner: str = "bo",
        inner_options: Mapping[str, Any] | None = None,
        dim: int = 16,
        special_prob: float = 0.2,
        buckets: int = 10_000,
        special: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        if inner == self.name:
            raise ValueError("a projected tuner's inner tuner cannot itself be 'projected'")
        if isinstance(dim, bool) or int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, not {dim!r}")
        if not (isinstance(special_prob, (int, float)) and 0 <= special_prob < 1):
            raise ValueError(f"special_prob must be at least 0 and below 1, not {special_prob!r}")
        if isinstance(buckets, bool) or int(buckets) != buckets or buckets < 0 or buckets == 1:
            raise ValueError(f"buckets must be 0 (off) or at least 2, not {buckets!r}")
        if len(space) == 0:
            raise ValueError("a projected tuner needs a space with at least one parameter")
        self.special_prob = float(special_prob)
        self.buckets = int(buckets)
        self.special = self._special_values(special)
        full = len(space)
        self.dim = min(int(dim), full)
        projection_rng = np.random.default_rng(None if self.seed is None else [int(self.seed), _PROJECTION_SALT])
        if full <= int(dim):
            self.hash, self.sign = np.arange(full), np.ones(full)
        else:
            self.hash = projection_rng.integers(0, self.dim, full)
            self.sign = projection_rng.choice([-1.0, 1.0], full)
        self.low_space = Space([Float(f"z{i}", -1.0, 1.0, default=0.0) for i in range(self.dim)])
        inner_seed = None if self.seed is None else int(self.seed)
        self.inner: Tuner = tuner_class(inner)(self.low_space, direction=self.direction, seed=inner_seed,
                                               **dict(inner_options or {}))
        #: our trial number -> (the inner tuner's trial number, the low-dimensional point)
        self._owner: dict[int, tuple[int, list[float]]] = {}

    def _special_values(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        if given is not None:
            out = {}
            for name, value in dict(given).items():
                if name not in self.space.params:
                    raise ValueError(f"special value for unknown parameter {name!r}")
                try:
                    out[name] = self.space[name].check(value)
                except InvalidConfig as exc:
                    raise ValueError(f"special value {name}={value!r}: {exc}") from None
            return out
        return {p.name: p.low for p in self.space
                if isinstance(p, (Int, Float)) and p.low in (-1, 0) and p.high - p.low > 2}

    # --- the mapping
    def unit_point(self, z: np.ndarray | list[float]) -> np.ndarray:
        """The full unit-cube point of a low-dimensional point z in [-1, 1]^dim."""
        z = np.clip(np.asarray(z, float), -1.0, 1.0)
        return (self.sign * z[self.hash] + 1.0) / 2.0

    def config_of(self, z: np.ndarray | list[float]) -> Config:
        """The full-space config a low-dimensional point maps to (special values, buckets, constraints repaired)."""
        u = self.unit_point(z)
        config: Config = {}
        for value_u, param in zip(u, self.space):
            if param.condition is not None and not param.condition.holds(config):
                continue
            config[param.name] = self._value(param, float(value_u))
        return self._repair(config)

    def _value(self, param, u: float) -> Any:
        if param.name in self.special:
            if u < self.special_prob:
                return self.special[param.name]
            u = (u - self.special_prob) / (1.0 - self.special_prob)
        if self.buckets and isinstance(param, (Int, Float)) and (isinstance(param, Float) or param.high - param.low + 1 > self.buckets):
            u = (min(math.floor(u * self.buckets), self.buckets - 1) + 0.5) / self.buckets
        return param.from_unit(u)

    def _repair(self, config: Config) -> Config:
        space = self.space
        if space.satisfies_constraints(config):
            return space.validate(config)
        default = space.default()
        fixed = dict(config)
        for constraint in space.constraints:
            if isinstance(constraint, Forbid) and not constraint.holds(fixed):
                for key, _ in constraint.clauses:
                    if key in fixed and key in default:
                        fixed[key] = default[key]
        if space.is_valid(fixed):
            return space.validate(fixed)
        start, target = space.encode(config), space.encode(default)
        for t in np.linspace(0.1, 1.0, 10):
            candidate = space.decode((1 - t) * start + t * target)
            if space.is_valid(candidate):
                return space.validate(candidate)
        return space.sample(self.rng)

    def preimage(self, config: Mapping[str, Any]) -> list[float]:
        """The least-squares low-dimensional point of a full config (for configs this tuner did not propose)."""
        s = 2.0 * self.space.encode(config) - 1.0
        z = np.zeros(self.dim)
        counts = np.bincount(self.hash, minlength=self.dim)
        np.add.at(z, self.hash, self.sign * s)
        z = np.where(counts > 0, z / np.maximum(counts, 1), 0.0)
        return [float(v) for v in np.clip(z, -1.0, 1.0)]

    def _low_config(self, z: list[float]) -> Config:
        return {f"z{i}": float(v) for i, v in enumerate(z)}

    # --- ask / tell
    def _ask(self) -> Config:
        proposal = self.inner.ask()
        z = [float(proposal.config[f"z{i}"]) for i in range(self.dim)]
        self._owner[self._next_number] = (proposal.number, z)
        return self.config_of(z)

    def _tell(self, trial: Trial, result: Result) -> None:
        owner = self._owner.get(trial.number) if trial.number >= 0 else None
        if owner is not None:
            number, z = owner
            inner_trial = self.inner.pending.get(number) or Trial(number=number, config=self._low_config(z), source=self.inner.name)
            self.inner.tell(inner_trial, result)
            return
        self.inner.warm_start([(self._low_config(self.preimage(trial.config)), result)], keep=False)

    # --- state
    def _extra_state(self) -> dict:
        return {
            "inner": self.inner.state_dict(),
            "owners": [[n, m, z] for n, (m, z) in self._owner.items()],
            "hash": [int(h) for h in self.hash],
            "sign": [float(s) for s in self.sign],
        }

    def _restore(self, history: list[tuple[Trial, Result]], extra: Mapping[str, Any]) -> None:
        if "hash" in extra:
            self.hash = np.asarray(extra["hash"], int)
            self.sign = np.asarray(extra["sign"], float)
        self._owner = {int(n): (int(m), [float(v) for v in z]) for n, m, z in extra.get("owners", [])}
        self.history = list(history)
        pairs: list[tuple[Trial, Result]] = []
        for trial, result in history:
            owner = self._owner.get(trial.number) if trial.number >= 0 else None
            if owner is not None:
                pairs.append((Trial(number=owner[0], config=self._low_config(owner[1]), source=self.inner.name), result))
            else:
                low = Trial(number=-1, config=self._low_config(self.preimage(trial.config)), source="warm_start")
                pairs += warm_start_entry(self.inner, low, result)
        if "inner" in extra:
            self.inner.load_state_dict(extra["inner"], pairs)
        else:
            for trial, result in pairs:
                self.inner.tell(trial, result) if trial.number >= 0 else self.inner.warm_start([(trial.config, result)], keep=False)


__all__ = ["ProjectedTuner"]
