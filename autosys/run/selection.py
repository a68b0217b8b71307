"""Choosing a study's answer among noisy trials: per-config medians and a side-by-side final.

The best of many noisy measurements is biased upward (the winner's curse): a
config measured once can win on a lucky run over a config that is really
faster, and a config just under a limit can cross it on the next run. Runs
made minutes apart also drift with the host (a 30-trial KV study measured
dict early and SortedDict late, and ranked them the wrong way round). So:

* a study ranks *configs*, not trials: a config's value is the conservative
  median of its runs (median_low when maximizing, median_high when
  minimizing: always an actual run's value), and a config that broke a limit
  in any run is out (`rank_configs`);
* with `confirm` (Study.create), the last trials of the budget are a final:
  a few leading configs, run in turns next to each other (`final_candidates`,
  `next_to_confirm`), and the answer is decided by those runs alone
  (`best_trial`). The leaders include the best config of each value of a
  root choice (a parameter others are conditioned on, like the KV engine), so
  the final compares the structures, not five variants of one.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from autosys.core.space import Config, Space, config_key
from autosys.core.system import Objective
from autosys.core.trial import Trial, TrialState
from autosys.run.intensify import incumbent_trial, race_state
from autosys.run.intervals import RatioInterval, paired_gain

CONFIRM = "confirm"  # the source of a final run


@dataclass
class ConfigRuns:
    """Every completed, feasible run of one config (`infeasible`: some run broke a limit)."""

    config: Config
    trials: list[Trial] = field(default_factory=list)
    infeasible: bool = False

    def representative(self, objective: Objective) -> Trial:
        """The run whose value is the config's conservative median."""
        losses = [objective.sign() * t.value for t in self.trials]
        worse_half = statistics.median_high(losses)  # of two middle runs, the worse one
        return next(t for t in self.trials if objective.sign() * t.value == worse_half)


def rank_configs(trials: Iterable[Trial], objective: Objective) -> list[ConfigRuns]:
    """Feasible configs, best first, by the conservative median of their completed runs.

    A config with any infeasible run is left out; failed runs are ignored
    here (the failure may have been the host's, not the config's).
    """
    groups: dict[str, ConfigRuns] = {}
    for trial in trials:
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        runs = groups.setdefault(config_key(trial.config), ConfigRuns(trial.config))
        if trial.infeasible:
            runs.infeasible = True
        else:
            runs.trials.append(trial)
    feasible = [g for g in groups.values() if not g.infeasible and g.trials]
    return sorted(feasible, key=lambda g: objective.sign() * g.representative(objective).value)


def root_choices(space: Space) -> list[str]:
    """Parameters that others are conditioned on and that are not conditional themselves."""
    parents = {p.condition.parent for p in space if p.condition is not None}
    return [p.name for p in space if p.name in parents and p.condition is None]


def final_candidates(trials: Sequence[Trial], objective: Objective, size: int, roots: Sequence[str] = ()) -> list[Config]:
    """The configs of the final: the best of each root choice's value in rank order, then the next best."""
    ranked = [g.config for g in rank_configs([t for t in trials if t.source != CONFIRM], objective)]
    chosen: list[Config] = []
    seen_roots: set[tuple] = set()
    for config in ranked:
        root = tuple(config.get(r) for r in roots)
        if roots and root not in seen_roots and len(chosen) < size:
            seen_roots.add(root)
            chosen.append(config)
    for config in ranked:
        if len(chosen) >= size:
            break
        if config not in chosen:
            chosen.append(config)
    order = {config_key(c): i for i, c in enumerate(ranked)}
    return sorted(chosen, key=lambda c: order[config_key(c)])


def next_to_confirm(trials: Sequence[Trial], objective: Objective, budget: int, roots: Sequence[str] = ()) -> Config | None:
    """The next final run: of the final's candidates, the one with the fewest final runs so far.

    `budget` final runs go to max(1, budget // 2) candidates, so each gets at
    least two runs when the budget allows: one run each would bring back the
    winner's curse among the candidates.
    """
    candidates = final_candidates(trials, objective, max(1, budget // 2), roots)
    if not candidates:
        return None
    runs = {config_key(c): 0 for c in candidates}
    for t in trials:
        key = config_key(t.config)
        if t.source == CONFIRM and key in runs:
            runs[key] += 1
    fewest = min(runs.values())
    return next(c for c in candidates if runs[config_key(c)] == fewest)


def best_trial(trials: Sequence[Trial], objective: Objective, *, intensify: bool = False, budget: int | None = None) -> Trial | None:
    """The study's answer: the representative run of its best config, or None when none is feasible.

    With final runs, configs are ranked by those runs alone (made side by
    side, so the host's drift does not favour either), and a config that
    broke a limit in any run is still out; else, with `intensify`, the
    incumbent of the races (`budget`: the study's trial budget, which bounds
    its re-runs); else, by all their runs.
    """
    ranked = rank_configs(trials, objective)
    finalists = {config_key(g.config) for g in ranked if any(t.source == CONFIRM for t in g.trials)}
    if finalists:
        final = rank_configs([t for t in trials if t.source == CONFIRM and config_key(t.config) in finalists], objective)
        return final[0].representative(objective)
    if intensify:
        return incumbent_trial(trials, objective, budget)
    return ranked[0].representative(objective) if ranked else None


def runs_of(trials: Iterable[Trial], config: Config) -> list[Trial]:
    """The completed, feasible runs of one config."""
    key = config_key(config)
    return [t for t in trials if t.feasible and t.value is not None and config_key(t.config) == key]


def gain_over_default(trials: Sequence[Trial], objective: Objective, best: Trial | None,
                      budget: int | None = None) -> dict | None:
    """The best config's gain over the default from their paired runs (`RatioInterval.to_json()` plus `same`).

    None without a default run, a best, or a ratio (a value that is not
    positive); `same: true` when the best config is the default itself.
    Runs that started an intensification race are left out: they were picked
    because they measured well, and would bias the ratio.
    """
    default = next((t for t in trials if t.source == "default"), None)
    if best is None or default is None:
        return None
    if config_key(best.config) == config_key(default.config):
        return {**RatioInterval(1.0, None, None, 0).to_json(), "same": True}
    # a run that started a race was chosen for measuring well: a biased sample, left out here
    chosen = race_state(trials, objective, budget).triggers
    unbiased = [t for t in trials if t.number not in chosen]
    gain = paired_gain(runs_of(unbiased, best.config), runs_of(unbiased, default.config), objective.direction == "maximize")
    return None if gain is None else {**gain.to_json(), "same": False}


__all__ = ["CONFIRM", "ConfigRuns", "best_trial", "final_candidates", "gain_over_default", "next_to_confirm", "rank_configs",
           "root_choices", "runs_of"]
