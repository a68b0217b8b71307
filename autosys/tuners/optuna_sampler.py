"""An Optuna sampler as an autosys tuner: `--tuner optuna:TPESampler`, or `make_tuner("optuna", space, sampler=...)`.

The sampler works on an in-memory Optuna study through Optuna's own ask/tell:
`_ask` asks Optuna for a trial and suggests the space's parameters in order,
only those active for the values chosen so far (define-by-run), so a
conditional space maps exactly; `_tell` tells the loss back (a minimized
study, so maximizing needs nothing special), a failure as FAIL and a pruned
trial as PRUNED with its partial value. A proposal that breaks one of the
space's constraints is told FAIL and asked again (after `MAX_REJECTS`, a
random valid config is used instead). Results of configs Optuna did not
propose (enqueued, warm starts) are added to its study as finished trials.

Samplers are chosen by name from the fixed allow-list `SAMPLERS`; a name read
back from a study is never imported. Their options are plain JSON scalars
checked against the sampler's signature.

State: Optuna samplers keep theirs in random generators and in trial
attributes (CMA-ES pickles its optimizer into them), none of it fit to store.
So the saved extra state is only the order of asks and tells (one integer
each), and a restored tuner replays it with a fresh sampler of the same seed:
Optuna's samplers are deterministic for a seed, so the replay lands exactly
where the original stood (a told config that differs from the replayed
proposal is told as an outside result, so a replay can never go wrong, only
less exact). The replay re-runs every ask: cheap for TPE (~0.01 s each),
slower for GPSampler.

May import: `autosys.core` (optuna lazily: the `bench` extra).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import warnings
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from autosys.core.plugins import PluginError
from autosys.core.space import Categorical, Config, Float, Int, Ordinal, Param, Space
from autosys.core.trial import Result, Trial
from autosys.tuners.base import Tuner

#: the Optuna samplers a name may select -> the keyword defaults autosys gives them
SAMPLERS: dict[str, dict[str, Any]] = {
    "TPESampler": {},
    "RandomSampler": {},
    "CmaEsSampler": {"warn_independent_sampling": False},
    "GPSampler": {},
    "QMCSampler": {"scramble": True, "warn_independent_sampling": False},  # unscrambled, the seed would be ignored
    "NSGAIISampler": {},
}
#: samplers that need more than optuna: sampler -> (module, what to install)
NEEDS: dict[str, tuple[str, str]] = {"GPSampler": ("torch", "torch"), "CmaEsSampler": ("cmaes", "cmaes")}

BENCH_HINT = "install the bench extra: pip install 'autosys-toolkit[bench]'"


class OptunaUnavailable(PluginError, ImportError):
    """Optuna (or what a sampler needs) is not installed (a PluginError: the CLI shows it as one line)."""


def require_optuna():
    """The optuna module, or `OptunaUnavailable` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise OptunaUnavailable(f"the Optuna interop needs optuna; {BENCH_HINT}") from None
    return optuna


def check_sampler(name: str) -> str:
    """`name` when it is an allowed sampler, else a one-line ValueError listing them."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown Optuna sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return name


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial INFO lines off while autosys drives it (a study prints its own progress)."""
    optuna = require_optuna()
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _check_options(sampler: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    optuna = require_optuna()
    accepted = set(inspect.signature(getattr(optuna.samplers, sampler)).parameters) - {"seed"}
    for key, value in options.items():
        if key not in accepted:
            raise ValueError(f"{sampler} has no option {key!r}; it takes: {', '.join(sorted(accepted))}")
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise ValueError(f"{sampler} option {key}={value!r}: only plain numbers, strings, booleans or null")
    return options


class OptunaSampler(Tuner):
    """Proposes configs with an Optuna sampler (`sampler`: one of `SAMPLERS`, default TPESampler).

    sampler_options: keyword options of the sampler (plain JSON scalars,
    e.g. {"n_startup_trials": 5}); the tuner's seed is the sampler's seed.
    """

    name: ClassVar[str] = "optuna"
    #: set on the classes `optuna:<Sampler>` names (`sampler_tuner`); None: chosen by the `sampler` option
    fixed_sampler: ClassVar[str | None] = None
    #: proposals breaking a constraint asked again before a random valid config is used
    MAX_REJECTS: ClassVar[int] = 100

    def __init__(self, space: Space, *, direction: str = "minimize", seed: int | None = 0,
                 sampler: str | None = None, sampler_options: Mapping[str, Any] | None = None):
        super().__init__(space, direction=direction, seed=seed)
        if self.fixed_sampler is not None and sampler not in (None, self.fixed_sampler):
            raise ValueError(f"tuner {self.name!r} runs {self.fixed_sampler}, not {sampler!r}")
        self.sampler = check_sampler(sampler or self.fixed_sampler or "TPESampler")
        need = NEEDS.get(self.sampler)
        if need is not None and importlib.util.find_spec(need[0]) is None:
            raise OptunaUnavailable(f"Optuna's {self.sampler} needs {need[0]}: pip install {need[1]}")
        self.sampler_options = _check_options(self.sampler, sampler_options)
        self._optuna = require_optuna()
        self._reset()

    # --- the in-memory Optuna study
    def _reset(self) -> None:
        optuna = self._optuna
        options = {**SAMPLERS[self.sampler], **self.sampler_options}
        with warnings.catch_warnings():  # QMCSampler is marked experimental; autosys pins what it uses
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = getattr(optuna.samplers, self.sampler)(seed=self.seed, **options)
        with quiet_optuna():
            self._study = optuna.create_study(direction="minimize", sampler=sampler)
        #: autosys trial number -> the Optuna trial that proposed it, until told
        self._running: dict[int, Any] = {}
        #: the order of asks (the autosys number asked) and tells (-1): what a restore replays
        self._ops: list[int] = []

    def _ask(self) -> Config:
        return self._propose(self._next_number)

    def _propose(self, number: int) -> Config:
        self._ops.append(number)
        with quiet_optuna():
            for _ in range(self.MAX_REJECTS):
                trial = self._study.ask()
                config: Config = {}
                for param in self.space:
                    if self.space.is_active(param.name, config):
                        config[param.name] = _suggest(trial, param)
                if self.space.satisfies_constraints(config):
                    self._running[number] = trial
                    return config
                self._study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        # the sampler keeps proposing what the constraints forbid: a random valid config, seeded per ask
        return self.space.sample(np.random.default_rng([self.seed or 0, len(self._ops)]))

    def _tell(self, trial: Trial, result: Result) -> None:
        self._ops.append(-1)
        states = self._optuna.trial.TrialState
        proposed = self._running.pop(trial.number, None) if trial.number >= 0 else None
        loss = self.loss(result)
        pruned = result.state.value == "pruned" and loss is not None
        with quiet_optuna():
            if proposed is not None and self._config_of(proposed.params) != trial.config:
                self._study.tell(proposed, state=states.FAIL)  # a replay that drifted: the stored config wins
                proposed = None
            if proposed is not None:
                if pruned:
                    proposed.report(loss, step=0)
                    self._study.tell(proposed, state=states.PRUNED)
                elif loss is not None:
                    self._study.tell(proposed, loss)
                else:
                    self._study.tell(proposed, state=states.FAIL)
                return
            params, distributions = self._params_of(trial.config)
            state = states.PRUNED if pruned else states.COMPLETE if loss is not None else states.FAIL
            self._study.add_trial(self._optuna.trial.create_trial(
                state=state, value=loss if state == states.COMPLETE else None, params=params,
                distributions=distributions, intermediate_values={0: loss} if pruned else None,
            ))

    # --- encoding: categoricals go to Optuna as choice indices, ordinals as integer indices
    def _params_of(self, config: Mapping[str, Any]) -> tuple[dict, dict]:
        dists = self._optuna.distributions
        params, distributions = {}, {}
        for name, value in config.items():
            param = self.space[name]
            if isinstance(param, Ordinal):
                params[name], distributions[name] = param.index(value), dists.IntDistribution(0, len(param.choices) - 1)
            elif isinstance(param, Categorical):
                params[name] = param.index(value)
                distributions[name] = dists.CategoricalDistribution(tuple(range(len(param.choices))))
            elif isinstance(param, Int):
                params[name], distributions[name] = int(value), dists.IntDistribution(param.low, param.high, log=param.log)
            else:
                params[name], distributions[name] = float(value), dists.FloatDistribution(param.low, param.high, log=param.log)
        return params, distributions

    def _config_of(self, params: Mapping[str, Any]) -> Config:
        config: Config = {}
        for name, value in params.items():
            param = self.space[name]
            config[name] = param.choices[int(value)] if isinstance(param, Categorical) else value
        return config

    # --- state: the order of asks and tells, replayed on restore
    def _extra_state(self) -> dict:
        return {"sampler": self.sampler, "sampler_options": dict(self.sampler_options), "ops": list(self._ops)}

    def _restore(self, history: list[tuple[Trial, Result]], extra: Mapping[str, Any]) -> None:
        stored = extra.get("sampler", self.sampler)
        if stored != self.sampler:
            raise ValueError(f"state was saved by Optuna's {stored}, not {self.sampler}")
        rng_state = self.rng.bit_generator.state
        self._reset()
        pairs = iter(history)
        for op in extra.get("ops", []):
            if not isinstance(op, int) or isinstance(op, bool):
                raise ValueError(f"the saved Optuna tuner state holds a bad entry {op!r}")
            if op >= 0:
                self._propose(op)
            else:
                pair = next(pairs, None)
                if pair is not None:
                    self.history.append(pair)
                    self._tell(*pair)
        for pair in pairs:  # told but not recorded in the order (an older state): told now
            self.history.append(pair)
            self._tell(*pair)
        self.rng.bit_generator.state = rng_state


def _suggest(trial: Any, param: Param) -> Any:
    if isinstance(param, Ordinal):
        return param.choices[trial.suggest_int(param.name, 0, len(param.choices) - 1)]
    if isinstance(param, Categorical):
        return param.choices[trial.suggest_categorical(param.name, tuple(range(len(param.choices))))]
    if isinstance(param, Int):
        return trial.suggest_int(param.name, param.low, param.high, log=param.log)
    if isinstance(param, Float):
        return trial.suggest_float(param.name, param.low, param.high, log=param.log)
    raise ValueError(f"parameter {param.name!r} of kind {param.kind!r} has no Optuna distribution")


@functools.cache
def sampler_tuner(sampler: str) -> type[OptunaSampler]:
    """The tuner class `optuna:<sampler>` names (one per allowed sampler; ValueError for any other)."""
    check_sampler(sampler)
    return type(f"Optuna{sampler}", (OptunaSampler,), {
        "name": f"optuna:{sampler}", "fixed_sampler": sampler, "__module__": __name__,
        "__doc__": f"Optuna's {sampler} as an autosys tuner (see OptunaSampler).",
    })


__all__ = ["NEEDS", "OptunaSampler", "OptunaUnavailable", "SAMPLERS", "check_sampler", "quiet_optuna",
           "require_optuna", "sampler_tuner"]
