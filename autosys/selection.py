"""Choosing a study's answer among noisy trials: per-config medians and confirmation runs.

The best of many noisy measurements is biased upward (the winner's curse): a
config measured once can win on a lucky run, beating a config that is really
faster, and a config just under a limit can cross it on the next run. So a
study ranks *configs*, not trials: a config's value is the conservative median
of its runs (median_low when maximizing, median_high when minimizing: always
an actual run's value), and a config that broke a limit in any run is out.
With `confirm`, a study spends the last trials of its budget re-measuring its
leading configs (`next_to_confirm`), which is where that ranking changes.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Iterable

from autosys.space import Config
from autosys.system import Objective
from autosys.trial import Trial, TrialState


def config_key(config: Config) -> str:
    """One string per distinct config (key order does not matter)."""
    return json.dumps(config, sort_keys=True, default=str)


@dataclass
class ConfigRuns:
    """Every completed run of one config."""

    config: Config
    trials: list[Trial] = field(default_factory=list)
    infeasible: bool = False

    def representative(self, objective: Objective) -> Trial:
        """The run whose value is the config's conservative median."""
        values = [t.value for t in self.trials]
        median = statistics.median_low(values) if objective.direction == "maximize" else statistics.median_high(values)
        return next(t for t in self.trials if t.value == median)


def rank_configs(trials: Iterable[Trial], objective: Objective) -> list[ConfigRuns]:
    """Feasible configs, best first, by the conservative median of their completed runs.

    A config with any infeasible run (a limit broken) is left out; failed
    runs are ignored here (the failure may have been the host's, not the config's).
    """
    groups: dict[str, ConfigRuns] = {}
    for trial in trials:
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        runs = groups.setdefault(config_key(trial.config), ConfigRuns(trial.config))
        if "infeasible" in trial.info:
            runs.infeasible = True
        else:
            runs.trials.append(trial)
    feasible = [g for g in groups.values() if not g.infeasible and g.trials]
    return sorted(feasible, key=lambda g: objective.sign() * g.representative(objective).value)


def next_to_confirm(trials: Iterable[Trial], objective: Objective, top: int) -> Config | None:
    """Among the `top` leading configs, the one with the fewest runs (the better ranked on a tie)."""
    ranked = rank_configs(trials, objective)[: max(top, 1)]
    if not ranked:
        return None
    fewest = min(len(g.trials) for g in ranked)
    return next(g.config for g in ranked if len(g.trials) == fewest)


def best_trial(trials: Iterable[Trial], objective: Objective) -> Trial | None:
    """The representative run of the best config, or None when no config is feasible."""
    ranked = rank_configs(trials, objective)
    return ranked[0].representative(objective) if ranked else None


__all__ = ["ConfigRuns", "best_trial", "config_key", "next_to_confirm", "rank_configs"]
