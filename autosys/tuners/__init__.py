"""Search strategies behind one ask/tell contract, looked up by name.

`make_tuner("random", space, seed=0)` builds one; `TUNERS` lists the names the
CLI's `--tuner` accepts. Entries are import paths so that importing this
package stays cheap and free of side effects.
"""

from __future__ import annotations

import importlib
from typing import Any

from autosys.core.space import Space
from autosys.tuners.base import Tuner

#: name -> "module:Class"; strategies added by later work register here
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
}


def tuner_class(name: str) -> type[Tuner]:
    if name not in TUNERS:
        raise ValueError(f"unknown tuner {name!r}; choose one of: {', '.join(TUNERS)}")
    module, attr = TUNERS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def make_tuner(name: str, space: Space, *, direction: str = "minimize", seed: int | None = 0, **options: Any) -> Tuner:
    """Build the tuner registered as `name`."""
    return tuner_class(name)(space, direction=direction, seed=seed, **options)


__all__ = ["TUNERS", "Tuner", "make_tuner", "tuner_class"]
