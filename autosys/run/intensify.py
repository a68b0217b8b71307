"""Intensification: a challenger replaces the incumbent only after enough paired runs say it is better.

SMAC-style racing, decided from the stored trials alone (so a resumed or
shared study reaches the same state): `race_state` replays the finished
trials in claim order. The first feasible config (the default, normally) is
the first incumbent. When a run of another config measures better than the
incumbent's best run, a race starts: the study re-runs incumbent
and challenger in turns (source "intensify"), each pair side by side, and
after each pair decides from the race's paired runs (the challenger's run
that started it and the re-runs since; a challenger proposed again later
starts a new race) (`autosys.run.intervals`):

* promote when the 95% interval of the paired gain lies above 1.0 (at
  least two pairs; with two, t(1) = 12.7 lets only a gain far above the
  spread through, such as SQLite's WAL over its default journal). It is the
  interval autosys prints for best vs default, so an incumbent is a config
  whose gain the user would be shown as significant; a t-interval widens by
  itself with the noise, so steady systems decide in few pairs and noisy
  ones take more;
* drop the challenger when its interval lies below 1.0, or when after
  `MIN_PAIRS` pairs it is not better on average;
* when the race can get no more runs (`MAX_PAIRS` pairs, its share of the
  re-runs spent, or the trial budget's last trial) and is still undecided,
  the mean decides, SMAC's rule (a challenger takes over when it is better on
  average over the runs the two share): the challenger takes over when it has
  at least `MIN_PAIRS` pairs of *re-runs* (the run that started the race left
  out: it was chosen for measuring well, a lucky run) and those pairs, and the
  race's pairs as a whole, favour it on average. Keeping the incumbent there
  favoured whichever config came first: a KV study kept an LMDB setting that
  re-measured 16% below the best, against a challenger ahead in all four
  pairs of a seven-re-run race. A race cut off with fewer re-run pairs keeps
  the incumbent;
* a config that broke a limit in any run is never incumbent (an incumbent
  that breaks one on a re-run is replaced by the best-ranked feasible config).

A run that beats every run of the incumbent while another race is running
waits (`RaceState.waiting`), and the best of those still ahead of the
incumbent is raced when that race ends, its own re-run first (its one run is
left out of the race: chosen for measuring well); before, a clear winner
found during a race was never raced.

Re-runs take at most `SHARE` of the trial budget, and one race at most half
of that (at least three re-runs: two pairs), so one close race cannot spend
what a later, clear winner needs; past either limit the race ends as above.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from autosys.core.space import Config, config_key
from autosys.core.system import Objective
from autosys.core.trial import Trial, TrialState
from autosys.run.intervals import interval_of, log_gains, pair_runs

INTENSIFY = "intensify"  # the source of a re-run
MIN_PAIRS = 3  # a challenger not better on average after this many pairs is dropped
MAX_PAIRS = 10  # a race undecided after this many pairs keeps the incumbent
SHARE = 0.5  # at most this share of the trial budget goes to re-runs


@dataclass
class RaceState:
    """Where intensification stands: the incumbent, the running race, the configs out for breaking a limit."""

    incumbent: str | None = None
    challenger: str | None = None
    since: int = -1  # the race's runs are those numbered from here (the run that started it, or the end of the last race)
    configs: dict[str, Config] = field(default_factory=dict)
    runs: dict[str, list[Trial]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    promotions: list[tuple[str, str]] = field(default_factory=list)  # (old, new) incumbent keys
    triggers: set[int] = field(default_factory=set)  # numbers of the runs that started a race (chosen for being good)
    waiting: dict[str, Trial] = field(default_factory=dict)  # runs that beat the incumbent during a race: raced next


def decide(challenger: Sequence[Trial], incumbent: Sequence[Trial], maximize: bool, *,
           exhausted: bool = False, chosen: frozenset[int] | set[int] = frozenset()) -> str:
    """'promote', 'drop' or 'more', from the paired runs of the two configs given (one race's).

    On log ratios (multiplicative noise), or on differences when a value is
    not positive; either way the gain's t-interval is compared with no gain.
    exhausted: the race can get no more runs, so 'more' becomes a decision by
    the mean of the re-run pairs (`chosen`: numbers of runs picked for
    measuring well, left out of those; see the module docstring).
    """
    pairs = pair_runs(challenger, incumbent)
    gains = _gains(pairs, maximize)
    n = len(gains)
    if n < 2:
        return _by_mean(pairs, gains, chosen) if exhausted else "more"
    interval = interval_of(gains)  # exp() of the mean gain's interval: above 1.0 means the gain is above zero
    mean = float(np.mean(gains))
    steady = float(np.std(gains, ddof=1)) == 0.0
    if interval.significant:  # with two pairs t(1) = 12.7: only a gain far above the spread
        return "promote"
    if interval.worse or ((n >= MIN_PAIRS or steady) and mean <= 0.0):
        return "drop"
    if exhausted or n >= MAX_PAIRS:
        return _by_mean(pairs, gains, chosen)
    return "more"


def _gains(pairs: Sequence[tuple[Trial, Trial]], maximize: bool) -> np.ndarray:
    """Log gains of (challenger, incumbent) pairs, or differences when a value is not positive."""
    gains = log_gains([(a.value, b.value) for a, b in pairs], maximize)
    if gains is None:
        gains = np.array([(a.value - b.value) if maximize else (b.value - a.value) for a, b in pairs], dtype=float)
    return gains


def _by_mean(pairs: Sequence[tuple[Trial, Trial]], gains: np.ndarray, chosen: frozenset[int] | set[int]) -> str:
    """A race out of runs: promote when at least MIN_PAIRS re-run pairs, and all pairs, favour the challenger on average."""
    fair = np.array([g for (a, b), g in zip(pairs, gains) if a.number not in chosen and b.number not in chosen])
    if len(fair) >= MIN_PAIRS and float(np.mean(fair)) > 0.0 and float(np.mean(gains)) > 0.0:
        return "promote"
    return "drop"


def rerun_limits(budget: int | None, claimed: int) -> tuple[float, float]:
    """(re-runs allowed in the study, in one race) for a trial budget (None: time only, `claimed` so far)."""
    limit = SHARE * (budget if budget is not None else claimed + 1)
    return limit, max(3, limit // 2)


def race_state(trials: Sequence[Trial], objective: Objective, budget: int | None = None) -> RaceState:
    """Replay the study's completed runs in claim order (see the module docstring); `budget`: the trial budget."""
    maximize = objective.direction == "maximize"
    state = RaceState()
    reruns = 0
    ordered = sorted(trials, key=lambda t: t.number)
    for trial in ordered:
        reruns += trial.source == INTENSIFY
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        key = config_key(trial.config)
        state.configs.setdefault(key, trial.config)
        if trial.infeasible:
            state.broken.add(key)
            state.waiting.pop(key, None)
            if key == state.challenger:
                state.challenger = None
            if key == state.incumbent:
                state.incumbent = _fallback(state, objective)
                state.challenger = None
            if state.challenger is None:
                _next_from_waiting(state, trial.number, maximize)
            continue
        state.runs.setdefault(key, []).append(trial)
        if key in state.broken:
            continue
        if state.incumbent is None:
            state.incumbent = key
            continue
        if key != state.incumbent and key != state.challenger and trial.source != INTENSIFY:
            if _beats(trial.value, state.runs[state.incumbent], maximize):
                if state.challenger is None:
                    state.challenger, state.since = key, trial.number
                    state.triggers.add(trial.number)
                    state.waiting.pop(key, None)
                elif key not in state.waiting or _better(trial.value, state.waiting[key].value, maximize):
                    state.waiting[key] = trial  # raced when the running race ends
        if state.challenger is not None:
            since = state.since  # the race's own runs: each pair side by side, none with a stale run
            limit, race_limit = rerun_limits(budget, trial.number + 1)
            in_race = sum(t.source == INTENSIFY for t in ordered if since <= t.number <= trial.number)
            exhausted = (reruns + 1 > limit or in_race + 1 > race_limit
                         or (budget is not None and trial.number + 1 >= budget))
            verdict = decide([t for t in state.runs[state.challenger] if t.number >= since],
                             [t for t in state.runs[state.incumbent] if t.number >= since], maximize,
                             exhausted=exhausted, chosen=state.triggers)
            if verdict == "promote":
                state.promotions.append((state.incumbent, state.challenger))
                state.incumbent = state.challenger
            if verdict != "more":
                state.challenger = None
                _next_from_waiting(state, trial.number, maximize)
    return state


def _next_from_waiting(state: RaceState, number: int, maximize: bool) -> None:
    """Start a race with the best waiting run still ahead of every run of the incumbent (its re-run goes first)."""
    if state.incumbent is None:
        state.waiting.clear()
        return
    state.waiting.pop(state.incumbent, None)
    ahead = [t for t in state.waiting.values() if _beats(t.value, state.runs[state.incumbent], maximize)]
    state.waiting = {config_key(t.config): t for t in ahead}
    if not ahead:
        return
    best = max(ahead, key=lambda t: t.value) if maximize else min(ahead, key=lambda t: t.value)
    key = config_key(best.config)
    del state.waiting[key]
    state.challenger, state.since = key, number + 1  # the race's runs start after this one
    state.triggers.add(best.number)


def _better(value: float, other: float, maximize: bool) -> bool:
    return value > other if maximize else value < other


def _beats(value: float, incumbent_runs: Sequence[Trial], maximize: bool) -> bool:
    """Better than every run of the incumbent: a gain the incumbent's own spread does not explain.

    (Better than its median alone raced near-default configs on noisy systems, spending the
    re-runs a clear winner found later needed.)"""
    values = [t.value for t in incumbent_runs]
    return value > max(values) if maximize else value < min(values)


def _fallback(state: RaceState, objective: Objective) -> str | None:
    """The best feasible config by the conservative median of its runs, when the incumbent broke a limit."""
    sign = objective.sign()
    ranked = [(statistics.median_high([sign * t.value for t in runs]), key)
              for key, runs in state.runs.items() if runs and key not in state.broken]
    return min(ranked)[1] if ranked else None


def next_rerun(trials: Sequence[Trial], objective: Objective, budget: int | None) -> Config | None:
    """The config of the next re-run, or None: no race running, or the re-run share of the budget spent.

    Incumbent and challenger take turns, incumbent first after the
    challenger's own run (a waiting challenger's re-run first: its own run is
    not in the race); runs still in progress count as taken.
    """
    state = race_state(trials, objective, budget)
    if state.challenger is None or state.incumbent is None:
        return None
    reruns = sum(t.source == INTENSIFY for t in trials)
    limit, race_limit = rerun_limits(budget, len(trials))
    in_this_race = sum(t.source == INTENSIFY for t in trials if t.number >= state.since)
    if reruns + 1 > limit or in_this_race + 1 > race_limit:
        return None
    race = {state.challenger, state.incumbent}
    if any(t.state == TrialState.RUNNING and config_key(t.config) in race for t in trials):
        return None  # decide on the run in progress before scheduling more (the tuner fills a free worker)
    in_race = [config_key(t.config) for t in trials if t.number >= state.since]
    if in_race.count(state.incumbent) < in_race.count(state.challenger):
        return state.configs[state.incumbent]
    return state.configs[state.challenger]


def incumbent_trial(trials: Sequence[Trial], objective: Objective, budget: int | None = None) -> Trial | None:
    """The incumbent's representative run (conservative median of its runs), or None when nothing is feasible."""
    state = race_state(trials, objective, budget)
    if state.incumbent is None:
        return None
    runs = state.runs[state.incumbent]
    sign = objective.sign()
    worse_half = statistics.median_high([sign * t.value for t in runs])
    return next(t for t in runs if sign * t.value == worse_half)


__all__ = ["INTENSIFY", "MAX_PAIRS", "MIN_PAIRS", "RaceState", "SHARE", "decide", "incumbent_trial", "next_rerun", "race_state", "rerun_limits"]
