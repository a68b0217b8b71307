"""Search spaces: typed parameters, conditions, constraints and their encodings.

A `Space` is the one description of "what may be tuned" that every tuner,
system and front end shares. It samples (seeded), validates (raising one clear
`InvalidConfig`), encodes to and from the unit cube, enumerates grids, and
converts to scikit-optimize dimensions and gymnasium spaces.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

Config = dict[str, Any]


class InvalidConfig(ValueError):
    """A configuration (or a single value) that the space does not allow."""


#: `Space.safe(ALLOW_ALL)` allows every risky knob
ALLOW_ALL = "all"


#: what changing a knob costs, cheapest first: nothing (a session SET or a live PRAGMA), a reload
#: (re-read the settings, e.g. SIGHUP), a restart (of the server or store), a rebuild (of the
#: data: a VACUUM, a fresh store, a recompiled kernel, a rebuilt index)
APPLY_COSTS = ("none", "reload", "restart", "rebuild")


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """A parameter is active only when `parent` is active and takes one of `values`."""

    parent: str
    values: tuple

    def holds(self, config: Mapping[str, Any]) -> bool:
        return self.parent in config and config[self.parent] in self.values

    def to_json(self) -> dict:
        return {"parent": self.parent, "values": list(self.values)}


def _condition(when: Mapping[str, Any] | Condition | None) -> Condition | None:
    if when is None or isinstance(when, Condition):
        return when
    if len(when) != 1:
        raise ValueError("a condition names exactly one parent, e.g. when={'engine': 'rocksdb'}")
    ((parent, values),) = when.items()
    if not isinstance(values, (list, tuple, set, frozenset)):
        values = (values,)
    return Condition(parent, tuple(values))


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """Base of every parameter kind; `when` makes it conditional on a parent's value.

    `apply_cost` (keyword only, one of `APPLY_COSTS`, default "none") says what
    changing the knob costs the system, so a search can batch expensive changes.

    `risk` (keyword only) says what the knob risks beyond speed (durability,
    availability to other clients, unbounded disk use); `risky_values` are the
    values that carry it (empty: every value but the default). A study leaves
    risky values out unless the user allows the knob (`Space.safe`).
    """

    name: str
    apply_cost: str = field(default="none", kw_only=True)
    risk: str | None = field(default=None, kw_only=True)
    risky_values: tuple = field(default=(), kw_only=True)

    kind = "param"

    # --- behaviour every kind implements
    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        """Return the canonical form of `value` or raise `InvalidConfig`."""
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:
        raise NotImplementedError

    def from_unit(self, u: float) -> Any:
        raise NotImplementedError

    def grid(self, resolution: int) -> list:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def to_skopt(self):
        raise NotImplementedError

    def renamed(self, name: str, condition: "Condition | None") -> "Param":
        """This parameter under another name and condition (an engine's or an algorithm's knobs, prefixed)."""
        return replace(self, name=name, condition=condition)

    def to_json(self) -> dict:
        data = {"kind": self.kind, "name": self.name}
        for key, value in self.__dict__.items():
            if key in ("name", "condition") or (key, value) in (("apply_cost", "none"), ("risk", None), ("risky_values", ())):
                continue  # defaults are left out, so spaces stored before these fields existed read the same
            data[key] = list(value) if isinstance(value, tuple) else value
        if self.condition is not None:
            data["when"] = self.condition.to_json()
        return data

    def default_value(self) -> Any:
        """The declared default, else the first choice or the middle of the range."""
        default = getattr(self, "default", None)
        if default is not None:
            return self.check(default)
        choices = getattr(self, "choices", None)
        return choices[0] if choices else self.from_unit(0.5)

    def is_risky(self, value: Any) -> bool:
        """Whether `value` carries this knob's declared `risk`."""
        if not self.risk:
            return False
        if not self.risky_values:
            return value != self.default_value()
        return value in self.risky_values

    def _bad(self, value: Any) -> InvalidConfig:
        return InvalidConfig(f"{self.name}={value!r} is not allowed: expected {self.describe()}")


def _finite_number(param: Param, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise param._bad(value) from None
        else:
            raise param._bad(value)
    value = float(value)
    if not math.isfinite(value):
        raise param._bad(value)
    return value


@dataclass(frozen=True)
class Int(Param):
    """An integer in [low, high], optionally sampled on a log scale."""

    low: int = 0
    high: int = 1
    log: bool = False
    default: int | None = None
    condition: Condition | None = None

    kind = "int"

    def __post_init__(self):
        if self.low > self.high:
            raise ValueError(f"{self.name}: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log-scale range must be positive")

    def check(self, value):
        number = _finite_number(self, value)
        if number != int(number) or not self.low <= number <= self.high:
            raise self._bad(value)
        return int(number)

    def to_unit(self, value):
        if self.high == self.low:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        # centre each integer in its own bin so decode(encode(v)) == v
        return (value - self.low + 0.5) / (self.high - self.low + 1)

    def from_unit(self, u):
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            value = round(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        else:
            value = self.low + math.floor(u * (self.high - self.low + 1))
        return int(min(max(value, self.low), self.high))

    def sample(self, rng):
        if self.log:
            return self.from_unit(rng.random())
        return int(rng.integers(self.low, self.high + 1))

    def grid(self, resolution):
        if self.high - self.low + 1 <= resolution:
            return list(range(self.low, self.high + 1))
        points = np.linspace(0.0, 1.0, resolution)
        if self.log:
            values = [self.from_unit(u) for u in points]
        else:
            values = [int(round(self.low + u * (self.high - self.low))) for u in points]
        return sorted(set(values))

    def describe(self):
        return f"an integer in [{self.low}, {self.high}]"

    def to_skopt(self):
        from skopt.space import Integer

        return Integer(self.low, self.high, prior="log-uniform" if self.log else "uniform", name=self.name)


@dataclass(frozen=True)
class Float(Param):
    """A real number in [low, high], optionally on a log scale."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    default: float | None = None
    condition: Condition | None = None

    kind = "float"

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"{self.name}: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log-scale range must be positive")

    def check(self, value):
        number = _finite_number(self, value)
        if not self.low <= number <= self.high:
            raise self._bad(value)
        return number

    def to_unit(self, value):
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u):
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return float(min(max(value, self.low), self.high))

    def sample(self, rng):
        return self.from_unit(rng.random())

    def grid(self, resolution):
        return [self.from_unit(u) for u in np.linspace(0.0, 1.0, max(resolution, 2))]

    def describe(self):
        scale = ", log scale" if self.log else ""
        return f"a number in [{self.low}, {self.high}]{scale}"

    def to_skopt(self):
        from skopt.space import Real

        return Real(self.low, self.high, prior="log-uniform" if self.log else "uniform", name=self.name)


@dataclass(frozen=True)
class Categorical(Param):
    """One of an unordered set of choices."""

    choices: tuple = ()
    default: Any = None
    condition: Condition | None = None

    kind = "categorical"

    def __post_init__(self):
        if len(self.choices) == 0:
            raise ValueError(f"{self.name}: needs at least one choice")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"{self.name}: duplicate choices {self.choices}")

    def check(self, value):
        for choice in self.choices:
            # 1 == True in Python; a bool must not stand in for a number or the reverse
            if choice == value and isinstance(choice, bool) == isinstance(value, (bool, np.bool_)):
                return choice
        if isinstance(value, str):
            for choice in self.choices:  # "--set name=4" arrives as a string
                if str(choice).lower() == value.lower():
                    return choice
        raise self._bad(value)

    def index(self, value) -> int:
        return self.choices.index(self.check(value))

    def to_unit(self, value):
        return (self.index(value) + 0.5) / len(self.choices)

    def from_unit(self, u):
        u = min(max(float(u), 0.0), 1.0)
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def sample(self, rng):
        return self.choices[int(rng.integers(len(self.choices)))]

    def grid(self, resolution):
        return list(self.choices)

    def describe(self):
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def to_skopt(self):
        from skopt.space import Categorical as SkCategorical

        return SkCategorical(list(self.choices), name=self.name)


@dataclass(frozen=True)
class Ordinal(Categorical):
    """One of an ordered list of values (e.g. page sizes); neighbours are similar."""

    kind = "ordinal"

    def to_skopt(self):
        from skopt.space import Integer

        # the index keeps the order a model can exploit; decode maps it back
        return Integer(0, len(self.choices) - 1, name=self.name)


@dataclass(frozen=True)
class Bool(Categorical):
    """True or False."""

    choices: tuple = (False, True)
    kind = "bool"

    def check(self, value):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, (int, np.integer)) and value in (0, 1):
            return bool(value)
        raise self._bad(value)

    def to_json(self) -> dict:
        data = super().to_json()
        data.pop("choices", None)
        return data


def _param_from_json(data: Mapping[str, Any]) -> Param:
    data = dict(data)
    kind = data.pop("kind")
    when = data.pop("when", None)
    condition = Condition(when["parent"], tuple(when["values"])) if when else None
    cls = {"int": Int, "float": Float, "categorical": Categorical, "ordinal": Ordinal, "bool": Bool}[kind]
    for key in ("choices", "risky_values"):
        if key in data:
            data[key] = tuple(data[key])
    return cls(condition=condition, **data)


# --------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class Constraint:
    """A named predicate a config must satisfy; `reason` is shown when it does not."""

    name: str
    predicate: Callable[[Config], bool]
    reason: str = ""

    def holds(self, config: Config) -> bool:
        return bool(self.predicate(config))

    def to_json(self) -> dict:
        return {"kind": "predicate", "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class Forbid(Constraint):
    """Forbids the combination where every named parameter takes one of its listed values.

    Declarative, so it survives a JSON round trip (a plain `Constraint` keeps only its name).
    """

    clauses: tuple = ()
    predicate: Callable[[Config], bool] | None = None

    def __init__(self, name: str, reason: str = "", **clauses: Any):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "reason", reason)
        normalized = tuple(
            (key, tuple(v) if isinstance(v, (list, tuple, set)) else (v,)) for key, v in clauses.items()
        )
        object.__setattr__(self, "clauses", normalized)
        object.__setattr__(self, "predicate", None)

    def holds(self, config: Config) -> bool:
        return not all(config.get(key, _MISSING) in values for key, values in self.clauses)

    def to_json(self) -> dict:
        return {
            "kind": "forbid",
            "name": self.name,
            "reason": self.reason,
            "clauses": {k: list(v) for k, v in self.clauses},
        }


_MISSING = object()


# --------------------------------------------------------------------------- the space


#: knob names reach SQL statements, compiler flags and file names: no quotes, spaces or separators
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")


def config_key(config: Mapping[str, Any]) -> str:
    """A canonical string for a config: one per distinct config, whatever the key order."""
    return json.dumps(dict(config), sort_keys=True, default=str)


class Space:
    """An ordered set of parameters plus constraints over whole configs."""

    def __init__(self, params: Sequence[Param] = (), constraints: Sequence[Constraint] = ()):
        self.params: dict[str, Param] = {}
        for param in params:
            if not isinstance(param.name, str) or not _NAME.fullmatch(param.name):
                raise ValueError(
                    f"parameter name {param.name!r} is not allowed: use letters, digits, '_', '.', '-'"
                    " (starting with a letter or '_'), at most 128 characters"
                )
            if param.name in self.params:
                raise ValueError(f"parameter {param.name!r} is defined twice")
            self.params[param.name] = param
        for param in self.params.values():
            cond = param.condition
            if cond is not None:
                if cond.parent not in self.params or list(self.params).index(cond.parent) > list(
                    self.params
                ).index(param.name):
                    raise ValueError(f"{param.name}: its parent {cond.parent!r} must be defined before it")
        self.constraints: list[Constraint] = list(constraints)
        for param in self.params.values():
            if param.apply_cost not in APPLY_COSTS:
                raise ValueError(f"{param.name}: apply_cost {param.apply_cost!r} is not one of {', '.join(APPLY_COSTS)}")
            default = param.default_value()  # a default outside its own range fails here, not mid-study
            if param.is_risky(default):
                raise ValueError(f"{param.name}: its default {default!r} is one of its risky values; a default must be safe")

    # --- construction helpers
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "Space":
        """Build from a plain dict: (low, high) floats or ints, or a list of choices."""
        params: list[Param] = []
        for name, value in spec.items():
            if isinstance(value, Param):
                params.append(value)
            elif isinstance(value, tuple) and len(value) == 2:
                low, high = value
                if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
                    params.append(Int(name, int(low), int(high)))
                else:
                    params.append(Float(name, float(low), float(high)))
            elif isinstance(value, (list, tuple)):
                params.append(Categorical(name, tuple(value)))
            else:
                raise ValueError(
                    f"{name}: use (low, high) for a range or [choice, ...] for categories, not {value!r}"
                )
        return cls(params)

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params.values())

    def __contains__(self, name: str) -> bool:
        return name in self.params

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def __repr__(self) -> str:
        return f"Space({list(self.params)})"

    @property
    def names(self) -> list[str]:
        return list(self.params)

    @property
    def is_conditional(self) -> bool:
        return any(p.condition is not None for p in self)

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        cond = self.params[name].condition
        return cond is None or (self.is_active(cond.parent, config) and cond.holds(config))

    def active_names(self, config: Mapping[str, Any]) -> list[str]:
        return [name for name in self.params if self.is_active(name, config)]

    # --- apply costs
    def apply_costs(self) -> dict[str, str]:
        """Each parameter's declared apply cost (see `APPLY_COSTS`)."""
        return {name: param.apply_cost for name, param in self.params.items()}

    def with_apply_costs(self, costs: Mapping[str, str]) -> "Space":
        """The same space with the named parameters' apply costs replaced (others kept)."""
        unknown = sorted(set(costs) - set(self.params))
        if unknown:
            raise ValueError(self._unknown_message(unknown[0]))
        params = [replace(p, apply_cost=costs[p.name]) if p.name in costs else p for p in self]
        return Space(params, self.constraints)

    def change_cost(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
        """The costliest apply cost among the parameters whose value differs between two configs."""
        worst = 0
        for name, param in self.params.items():
            if (name in before or name in after) and before.get(name, _MISSING) != after.get(name, _MISSING):
                worst = max(worst, APPLY_COSTS.index(param.apply_cost))
        return APPLY_COSTS[worst]

    # --- risky knobs
    def risky(self) -> dict[str, Param]:
        """The parameters that declare a risk beyond speed (see `Param.risk`)."""
        return {name: param for name, param in self.params.items() if param.risk}

    def safe(self, allow: Iterable[str] | str = ()) -> "Space":
        """This space with every risky value left out, except for the knobs named in `allow`.

        `allow` names knobs (or is "all"). A risky choice, or a risky value of a
        range, is forbidden by a constraint that says what it risks and how to
        allow it; a range that is risky as a whole is pinned to its default.
        """
        allowed = set(self.params) if allow == ALLOW_ALL else set([allow] if isinstance(allow, str) else allow)
        if ALLOW_ALL in allowed:
            allowed = set(self.params)
        risky = self.risky()
        for name in sorted(allowed - set(self.params)):
            raise InvalidConfig(f"cannot allow {name!r}: {self._unknown_message(name)}")
        for name in sorted(allowed - set(risky)):
            if allow != ALLOW_ALL and ALLOW_ALL not in allowed:
                names = ", ".join(risky) or "none"
                raise InvalidConfig(f"cannot allow {name!r}: it declares no risk (risky knobs here: {names})")
        params, constraints = [], list(self.constraints)
        for param in self:
            if param.name not in risky or param.name in allowed:
                params.append(param)
                continue
            how = f"{param.name} risks {param.risk} (allow it with --allow-risky {param.name})"
            if isinstance(param, Categorical) or param.risky_values:
                values = [v for v in getattr(param, "choices", param.risky_values) if param.is_risky(v)]
                params.append(param)
                constraints.append(Forbid("risky", reason=how, **{param.name: tuple(values)}))
            else:  # a range risky as a whole: only its default is safe
                default = param.default_value()
                params.append(Categorical(param.name, (default,), default=default, condition=param.condition,
                                          apply_cost=param.apply_cost, risk=param.risk))
        return Space(params, constraints)

    def subspace(self, fixed: Mapping[str, Any]) -> "Space":
        """The same space with some parameters pinned to one value (validated)."""
        params = []
        for param in self:
            if param.name in fixed:
                value = param.check(fixed[param.name])
                params.append(Categorical(param.name, (value,), default=value, condition=param.condition,
                                          apply_cost=param.apply_cost))
            else:
                params.append(param)
        unknown = set(fixed) - set(self.params)
        if unknown:
            raise InvalidConfig(self._unknown_message(sorted(unknown)[0]))
        return Space(params, self.constraints)

    def _unknown_message(self, name: str) -> str:
        return f"unknown parameter {name!r}; this space has: {', '.join(self.params)}"

    # --- validation
    def validate(self, config: Mapping[str, Any]) -> Config:
        """Return the canonical config (active parameters only) or raise `InvalidConfig`."""
        if not isinstance(config, Mapping):
            raise InvalidConfig(f"a config is a mapping of parameter names to values, not {type(config).__name__}")
        for name in config:
            if name not in self.params:
                raise InvalidConfig(self._unknown_message(name))
        clean: Config = {}
        for name, param in self.params.items():
            cond = param.condition
            if cond is not None and not (cond.parent in clean and clean[cond.parent] in cond.values):
                continue  # inactive: dropped
            if name not in config:
                raise InvalidConfig(f"missing parameter {name!r}: expected {param.describe()}")
            clean[name] = param.check(config[name])
        for constraint in self.constraints:
            if not constraint.holds(clean):
                why = f": {constraint.reason}" if constraint.reason else ""
                raise InvalidConfig(f"config violates constraint {constraint.name!r}{why}")
        return clean

    def complete(self, config: Mapping[str, Any]) -> Config:
        """Fill in the defaults of active parameters that `config` leaves out, then validate."""
        filled: Config = {}
        for name, param in self.params.items():
            cond = param.condition
            if cond is not None and not (cond.parent in filled and filled[cond.parent] in cond.values):
                continue
            filled[name] = config[name] if name in config else param.default_value()
        unknown = [k for k in config if k not in self.params]
        if unknown:
            raise InvalidConfig(self._unknown_message(unknown[0]))
        return self.validate(filled)

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        try:
            self.validate(config)
        except InvalidConfig:
            return False
        return True

    def satisfies_constraints(self, config: Config) -> bool:
        return all(c.holds(config) for c in self.constraints)

    # --- defaults and sampling
    def default(self) -> Config:
        """Each parameter's default (or the middle of its range), active ones only."""
        config: Config = {}
        for name, param in self.params.items():
            if param.condition is not None and not param.condition.holds(config):
                continue
            config[name] = param.default_value()
        return config

    def sample(
        self,
        rng: np.random.Generator,
        max_tries: int = 10_000,
        draw: Callable[[Param, np.random.Generator], Any] | None = None,
    ) -> Config:
        """A random valid config (rejection sampling for constraints).

        draw: how one active parameter's value is drawn (default `param.sample`);
        `autosys.core.stratified.ChoiceDecks` deals choices from decks instead.
        """
        draw = draw or (lambda param, generator: param.sample(generator))
        for _ in range(max_tries):
            config: Config = {}
            for name, param in self.params.items():
                if param.condition is not None and not param.condition.holds(config):
                    continue
                config[name] = draw(param, rng)
            if self.satisfies_constraints(config):
                return config
        raise InvalidConfig(f"no config satisfying the constraints found in {max_tries} samples")

    # --- unit-cube encoding (one column per parameter; inactive ones sit at their default)
    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        default = self._fill_values()
        return np.array(
            [p.to_unit(config[p.name]) if p.name in config else p.to_unit(default[p.name]) for p in self],
            dtype=float,
        )

    def decode(self, vector: Sequence[float]) -> Config:
        vector = np.asarray(vector, dtype=float)
        if vector.shape != (len(self),):
            raise InvalidConfig(f"expected a vector of {len(self)} values, got shape {vector.shape}")
        config: Config = {}
        for u, (name, param) in zip(vector, self.params.items()):
            if param.condition is not None and not param.condition.holds(config):
                continue
            config[name] = param.from_unit(u)
        return config

    def _fill_values(self) -> Config:
        return {param.name: param.default_value() for param in self}

    # --- grids
    def grid(self, resolution: int = 5) -> Iterator[Config]:
        """Every valid combination, with `resolution` points on each continuous range."""

        def expand(index: int, partial: Config) -> Iterator[Config]:
            if index == len(self.params):
                if self.satisfies_constraints(partial):
                    yield dict(partial)
                return
            param = list(self.params.values())[index]
            if param.condition is not None and not param.condition.holds(partial):
                yield from expand(index + 1, partial)
                return
            for value in param.grid(resolution):
                partial[param.name] = value
                yield from expand(index + 1, partial)
                del partial[param.name]

        yield from expand(0, {})

    def grid_size(self, resolution: int = 5) -> int:
        return sum(1 for _ in self.grid(resolution))

    # --- conversions
    def to_skopt(self) -> list:
        """scikit-optimize dimensions (conditional parameters become always-present)."""
        return [p.to_skopt() for p in self]

    def to_gym(self):
        """A gymnasium Dict space: Box for numbers, Discrete for choices."""
        from gymnasium import spaces

        out = {}
        for p in self:
            if isinstance(p, Categorical):
                out[p.name] = spaces.Discrete(len(p.choices))
            elif isinstance(p, Int):
                out[p.name] = spaces.Discrete(p.high - p.low + 1, start=p.low)
            else:
                out[p.name] = spaces.Box(low=p.low, high=p.high, shape=(), dtype=np.float64)
        return spaces.Dict(out)

    def config_key(self, config: Mapping[str, Any]) -> str:
        """A canonical string for a config, to find duplicates (knobs outside this space ignored)."""
        return config_key({k: config[k] for k in self.params if k in config})

    # --- JSON
    def to_json(self) -> dict:
        return {
            "params": [p.to_json() for p in self],
            "constraints": [c.to_json() for c in self.constraints],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], predicates: Mapping[str, Callable[[Config], bool]] | None = None):
        """Rebuild a space; predicate constraints need their function passed in `predicates`."""
        predicates = predicates or {}
        constraints: list[Constraint] = []
        for c in data.get("constraints", []):
            if c["kind"] == "forbid":
                constraints.append(Forbid(c["name"], c.get("reason", ""), **c["clauses"]))
            elif c["name"] in predicates:
                constraints.append(Constraint(c["name"], predicates[c["name"]], c.get("reason", "")))
            else:
                raise ValueError(f"constraint {c['name']!r} is a predicate: pass it in predicates=")
        return cls([_param_from_json(p) for p in data["params"]], constraints)
