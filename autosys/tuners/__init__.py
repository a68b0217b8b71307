"""Search strategies behind one ask/tell contract, looked up by name.

`make_tuner("random", space, seed=0)` builds one. Names resolve, in order, to
the built-in table `TUNERS` (always there, installed package or not), to the
`autosys.tuners` entry-point group (a third-party package's tuners), or, for
`module:Class`, to that class imported on demand (only when the user names it).
An entry point never replaces a built-in: it is ignored with a warning, and
`autosys list` shows it as shadowed. Entries are import paths, so importing
this package stays cheap and free of side effects.

May import: `autosys.learn`, `autosys.core`.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any

from autosys.core.plugins import PluginError, import_object, is_path
from autosys.core.space import Space
from autosys.tuners.base import Tuner

ENTRY_POINT_GROUP = "autosys.tuners"

#: the built-in strategies: name -> "module:Class"
TUNERS: dict[str, str] = {
    "random": "autosys.tuners.random_search:RandomSearch",
    "grid": "autosys.tuners.grid_search:GridSearch",
    "bandit": "autosys.tuners.bandit:BanditTuner",
    "bo": "autosys.tuners.bayes:BayesOpt",
    "bo-rf": "autosys.tuners.bayes:ForestBayesOpt",
    "parego": "autosys.tuners.multiobjective:ParEGO",
    "local": "autosys.tuners.local_search:LocalSearch",
    "model": "autosys.tuners.model_guided:ModelGuidedTuner",
    "rl": "autosys.tuners.rl:RLTuner",
    "meta": "autosys.tuners.bandit:MetaTuner",
    "cash": "autosys.tuners.conditional:ConditionalBandit",
    "bo-cost": "autosys.tuners.cost_aware:CostAwareBO",
    "turbo": "autosys.tuners.trust_region:TrustRegionBO",
    "tpe": "autosys.tuners.tpe:ParzenTuner",
    "projected": "autosys.tuners.projection:ProjectedTuner",  # LlamaTune: option inner=... over a dim-D projection
    "optuna": "autosys.tuners.optuna_sampler:OptunaSampler",  # option sampler=...; or the name optuna:<Sampler>
}


class UnknownTuner(PluginError, ValueError):
    """No tuner of that name, it cannot be imported, or it is not a Tuner."""


def _entry_points() -> list:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def shadowed_tuners() -> dict[str, str]:
    """Entry points whose name is a built-in's but whose target differs: name -> their target (ignored)."""
    return {ep.name: ep.value for ep in _entry_points() if ep.name in TUNERS and ep.value != TUNERS[ep.name]}


def available_tuners() -> dict[str, str]:
    """name -> "module:Class" for every tuner a plain name selects: the built-ins, then entry points."""
    found = dict(TUNERS)
    for ep in _entry_points():
        found.setdefault(ep.name, ep.value)
    return found


def tuner_class(name: str) -> type[Tuner]:
    """The Tuner class `name` selects (a built-in, an entry point, or a `module:Class` path)."""
    if name.startswith("optuna:"):  # an Optuna sampler from a fixed allow-list, never an import path
        from autosys.tuners.optuna_sampler import sampler_tuner

        try:
            return sampler_tuner(name.partition(":")[2])
        except ValueError as exc:
            raise UnknownTuner(str(exc)) from None
    if name in TUNERS:
        if name in shadowed_tuners():
            warnings.warn(f"tuner {name!r} is built in; the entry point {shadowed_tuners()[name]!r} of the same name "
                          "is ignored (rename it)", stacklevel=2)
        path = TUNERS[name]
    elif is_path(name):
        path = name
    else:
        path = next((ep.value for ep in _entry_points() if ep.name == name), "")
        if not path:
            known = ", ".join(available_tuners())
            raise UnknownTuner(f"unknown tuner {name!r}; known tuners: {known} (or give module:Class)")
    cls = import_object(path, kind="tuner", error=UnknownTuner)
    if not (isinstance(cls, type) and issubclass(cls, Tuner)):
        raise UnknownTuner(f"tuner {name!r} ({path}) is not a subclass of autosys.tuners.base.Tuner")
    return cls


def make_tuner(name: str, space: Space, *, direction: str = "minimize", seed: int | None = 0, **options: Any) -> Tuner:
    """Build the tuner `name` selects (see `tuner_class`)."""
    return tuner_class(name)(space, direction=direction, seed=seed, **options)


__all__ = ["ENTRY_POINT_GROUP", "TUNERS", "Tuner", "UnknownTuner", "available_tuners", "make_tuner",
           "shadowed_tuners", "tuner_class"]
