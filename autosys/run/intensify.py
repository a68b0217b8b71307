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
of what is left of that share when it starts (at least three re-runs: two
pairs); the last `RESERVE` re-runs go only to a race started by a *clear*
run (one beyond the incumbent's mean by more than the study's pooled noise
explains: a prediction bound, corrected for the run being the best of all
runs of proposals so far), so early close races cannot spend what a
later, clear winner needs; past either limit the race ends as above.

Without a trial budget (a time budget only) the share is `SHARE` of the
trials claimed so far: it grows as the study goes, so there it only
*throttles* re-runs (the tuner's proposals run meanwhile), one race may use
all of it, and it never ends a race; such a race ends by its verdict or
after `MAX_PAIRS` pairs. (Ending it at the throttle dropped a KV challenger
5x faster than the default after one pair.)

Pooled noise. Two or three pairs give a t-interval with 1 or 2 degrees of
freedom (t = 12.7, 4.3), so even a 10x gain measured with a 30% spread
waited for many re-runs of a slow incumbent. The study has measured its
noise already: every config run more than once gives within-config spreads
of the log values. Pooled over configs (`pooled_spread`, the one-way ANOVA
within-group estimate), they give a spread with many degrees of freedom.
The race's *re-run* pairs (the run that started it left out: chosen for
measuring well) are then tested with that spread (a pair's log gain has
twice the run variance; never below the pairs' own spread, so a challenger
noisier than the rest gets no credit): promote when the interval lies above
1.0 (dropping stays with the race's own pairs). A clear winner is promoted
after one re-run pair.

Limits with a margin. A config measured near a limit (e.g. 3.9 MB under a
4 MB cap) breaks it on some later run. A challenger is promoted only when a
one-sided 95% upper prediction bound for its next run respects every limit
(`limit_risk`: the mean of its log metric plus t x the spread pooled as above
x sqrt(1 + 1/n)); else it is dropped and never raced again (`RaceState.risky`).
An incumbent whose own runs show that risk (a default just under a memory
cap) is replaced like one that broke a limit: by the best-ranked config
without the risk, when there is one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from autosys.core.space import Config, config_key
from autosys.core.system import Objective
from autosys.core.trial import Trial, TrialState
from autosys.run.intervals import LEVEL, interval_of, log_gains, pair_runs

INTENSIFY = "intensify"  # the source of a re-run
MIN_PAIRS = 3  # a challenger not better on average after this many pairs is dropped
MAX_PAIRS = 10  # a race undecided after this many pairs keeps the incumbent
SHARE = 0.5  # at most this share of the trial budget goes to re-runs
RESERVE = 3  # re-runs of the share kept for a clear winner: its race needs three for one re-run pair
RISK_DF = 2  # degrees of freedom of the pooled spread before `limit_risk` judges (t(1) = 6.3, t(2) = 2.9)


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
    risky: set[str] = field(default_factory=set)  # configs too near a limit to trust (`limit_risk`): never raced again
    cap: float = 0.0  # re-runs the running race may take (half of what was left of the share when it started)


def decide(challenger: Sequence[Trial], incumbent: Sequence[Trial], maximize: bool, *,
           exhausted: bool = False, chosen: frozenset[int] | set[int] = frozenset(),
           noise: tuple[float, int] | None = None) -> str:
    """'promote', 'drop' or 'more', from the paired runs of the two configs given (one race's).

    On log ratios (multiplicative noise), or on differences when a value is
    not positive; either way the gain's t-interval is compared with no gain.
    exhausted: the race can get no more runs, so 'more' becomes a decision by
    the mean of the re-run pairs (`chosen`: numbers of runs picked for
    measuring well, left out of those; see the module docstring).
    noise: the study's pooled spread of log values and its degrees of freedom
    (`pooled_spread`); with it the re-run pairs are also tested with that spread.
    """
    pairs = pair_runs(challenger, incumbent)
    gains = _gains(pairs, maximize)
    n = len(gains)
    pooled = _pooled_verdict(pairs, maximize, chosen, noise)
    if pooled is not None:
        return pooled
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


def _pooled_verdict(pairs: Sequence[tuple[Trial, Trial]], maximize: bool, chosen: frozenset[int] | set[int],
                    noise: tuple[float, int] | None) -> str | None:
    """'promote' when the re-run pairs' mean log gain, with the pooled spread, is clear above 0; else None.

    Promotion only: a challenger is dropped by the race's own pairs, as before
    (a spread pooled over steadier configs would drop a true winner on one pair
    taken in a burst of load, and the incumbent is kept meanwhile anyway)."""
    if noise is None:
        return None
    spread, df = noise
    fair = log_gains([(a.value, b.value) for a, b in pairs if a.number not in chosen and b.number not in chosen], maximize)
    if fair is None or len(fair) == 0 or df < 1:
        return None
    per_pair = math.sqrt(2.0) * spread  # a pair's log gain: the difference of two runs' log values
    if len(fair) >= 2:
        per_pair = max(per_pair, float(np.std(fair, ddof=1)))  # a challenger noisier than the study gets no credit
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * per_pair / math.sqrt(len(fair))
    mean = float(np.mean(fair))
    return "promote" if mean - half > 0.0 else None


def pooled_spread(runs: Mapping[str, Sequence[Trial]], metric: str | None = None,
                  chosen: frozenset[int] | set[int] = frozenset()) -> tuple[float, int] | None:
    """(pooled within-config standard deviation of log values, its degrees of freedom), or None.

    Over every config with two or more runs (`metric`: a metric of the runs
    instead of their value), leaving out the runs in `chosen` (picked for
    measuring well: their spread is the luck that picked them); None when no
    config has two runs or a value is not positive (no logs).
    """
    squares, df = 0.0, 0
    for trials in runs.values():
        values = [t.value if metric is None else t.metrics.get(metric) for t in trials if t.number not in chosen]
        values = [v for v in values if v is not None]
        if len(values) < 2:
            continue
        if not all(math.isfinite(v) and v > 0 for v in values):
            return None
        logs = np.log(np.asarray(values, dtype=float))
        squares += float(np.sum((logs - logs.mean()) ** 2))
        df += len(logs) - 1
    return (math.sqrt(squares / df), df) if df else None


def limit_risk(runs: Sequence[Trial], every: Mapping[str, Sequence[Trial]], objective: Objective,
               level: float = LEVEL) -> str | None:
    """Why a config's next run may break a limit (a one-sided `level` upper prediction bound beyond it), or None.

    The bound for a metric is exp(mean + t(df) * s * sqrt(1 + 1/n)) of its n
    runs' log values, s the larger of their own spread and the spread pooled
    over `every` config's runs (df its degrees of freedom). No judgement (None)
    while the pooled spread has fewer than `RISK_DF` degrees of freedom, or
    for values that are not positive: from one difference t(1) = 6.3 puts every
    config within ~30% of a cap at risk (a KV study's RocksDB default, runs
    of 3.27 and 3.09 MB under a 4 MB cap that it never came near when judged,
    was replaced by the one config the bound let through, 7x slower).
    """
    for limit in objective.limits:
        values = [t.metrics.get(limit.metric) for t in runs]
        values = [v for v in values if v is not None and math.isfinite(v) and v > 0]
        noise = pooled_spread(every, limit.metric)
        if not values or noise is None or noise[1] < RISK_DF:
            continue
        logs = np.log(np.asarray(values, dtype=float))
        spread = max(noise[0], float(np.std(logs, ddof=1)) if len(logs) > 1 else 0.0)
        reach = float(stats.t.ppf(level, noise[1])) * spread * math.sqrt(1.0 + 1.0 / len(logs))
        mean = float(logs.mean())
        if limit.max is not None and math.exp(mean + reach) > limit.max:
            return f"{limit.metric} may exceed {limit.max:g} on a next run (upper bound {math.exp(mean + reach):g})"
        if limit.min is not None and math.exp(mean - reach) < limit.min:
            return f"{limit.metric} may fall below {limit.min:g} on a next run (lower bound {math.exp(mean - reach):g})"
    return None


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


def rerun_limits(budget: int | None, claimed: int, spent: int = 0) -> tuple[float, float]:
    """(re-runs allowed in the study, in a race starting when `spent` re-runs are done) for a trial budget.

    Without one (None: a time budget) the share is of the `claimed` trials so
    far and grows with them; it throttles re-runs, and a race has no share of
    its own (halving a share that grows only slowed races down: a SQLite race
    waited for nine proposals between two re-runs).
    """
    if budget is None:
        limit = SHARE * (claimed + 1)
        return limit, limit
    limit = SHARE * budget
    return limit, max(3, (limit - spent) // 2)


def _start(state: RaceState, trigger: Trial, since: int, spent: int, budget: int | None, maximize: bool,
           tried: int = 1) -> None:
    """Start a race of the `trigger` run's config against the incumbent; its runs are numbered from `since`.

    Its cap: half of what is left of the share, of which the last `RESERVE`
    re-runs go only to a race whose trigger is a clear gain (`_clear`; the
    trigger is the best of `tried` runs of proposals so far).
    """
    key = config_key(trigger.config)
    assert state.incumbent is not None
    incumbent = state.runs[state.incumbent]
    state.challenger, state.since = key, since
    state.triggers.add(trigger.number)
    state.waiting.pop(key, None)
    limit, cap = rerun_limits(budget, since, spent)
    noise = pooled_spread(state.runs, chosen=state.triggers)
    room = limit - spent
    if budget is not None and not _clear(trigger.value, incumbent, maximize, noise, tried):
        room = limit - spent - RESERVE
        cap = min(cap, room)
    if budget is not None:
        cap = whole_pairs(cap, trigger_in_race=trigger.number >= since, room=room)
    state.cap = cap


def whole_pairs(cap: float, trigger_in_race: bool, room: float) -> float:
    """A race's cap on re-runs rounded so that its runs end as whole pairs: one more when `room` allows, else one fewer.

    A race started by a proposal's run has that run in it, so its re-runs
    pair up at an odd count (I, I C, C I, ...); a race started from the
    waiting list has its challenger's re-run first, so at an even count. An
    even cap on the first kind left the last re-run unpaired: a KV race
    capped at six re-runs had two re-run pairs, one short of the `MIN_PAIRS`
    that SMAC's by-the-mean rule needs, and kept an LMDB incumbent 12% slower
    than a challenger ahead in all three pairs.
    """
    whole = int(math.floor(cap))
    if (whole % 2 == 1) == trigger_in_race:
        return float(whole)
    if whole + 1 <= room:
        return float(whole + 1)
    return float(max(whole - 1, 0))


def _clear(value: float, incumbent: Sequence[Trial], maximize: bool, noise: tuple[float, int] | None,
           tried: int = 1) -> bool:
    """Whether one run is beyond what the incumbent's runs and the study's pooled noise explain.

    A prediction bound for one more run of the incumbent: its mean log value
    +- t(df) * s * sqrt(1 + 1/n), at `LEVEL` corrected for the run being the
    best of `tried` (Bonferroni: the chance that one of `tried` runs of
    configs no better than the incumbent passes stays 1 - LEVEL).
    """
    values = [t.value for t in incumbent]
    if noise is None or value <= 0 or not all(v > 0 for v in values):
        return False
    gain = math.log(value) - float(np.mean(np.log(values)))
    alpha = (1.0 - LEVEL) / max(1, tried)
    reach = float(stats.t.ppf(1.0 - alpha / 2, noise[1])) * noise[0] * math.sqrt(1.0 + 1.0 / len(values))
    return (gain if maximize else -gain) > reach


def race_state(trials: Sequence[Trial], objective: Objective, budget: int | None = None) -> RaceState:
    """Replay the study's completed runs in claim order (see the module docstring); `budget`: the trial budget."""
    maximize = objective.direction == "maximize"
    state = RaceState()
    reruns = tried = 0
    ordered = sorted(trials, key=lambda t: t.number)
    for trial in ordered:
        reruns += trial.source == INTENSIFY
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        tried += trial.source != INTENSIFY
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
                _next_from_waiting(state, trial.number, maximize, reruns, budget, tried)
            continue
        state.runs.setdefault(key, []).append(trial)
        if key in state.broken or key in state.risky:
            continue
        if state.incumbent is None:
            state.incumbent = key
            continue
        if key == state.incumbent and objective.limits and limit_risk(state.runs[key], state.runs, objective):
            # the incumbent itself (the default, say) runs so near a limit that its next run may break it
            state.risky.add(key)
            safer = _fallback(state, objective)
            if safer is None:
                state.risky.discard(key)  # nothing safer to fall back on: it stays
            else:
                state.incumbent, state.challenger = safer, None
                _next_from_waiting(state, trial.number, maximize, reruns, budget, tried)
                continue
        if key != state.incumbent and key != state.challenger and trial.source != INTENSIFY:
            if _beats(trial.value, state.runs[state.incumbent], maximize,
                      lambda: pooled_spread(state.runs, chosen=state.triggers)):
                if state.challenger is None:
                    _start(state, trial, trial.number, reruns, budget, maximize, tried)
                elif key not in state.waiting or _better(trial.value, state.waiting[key].value, maximize):
                    state.waiting[key] = trial  # raced when the running race ends
        if state.challenger is not None:
            since = state.since  # the race's own runs: each pair side by side, none with a stale run
            limit, _ = rerun_limits(budget, trial.number + 1)
            in_race = sum(t.source == INTENSIFY for t in ordered if since <= t.number <= trial.number)
            # without a trial budget the share grows with the study: it throttles re-runs, it never ends a race
            exhausted = budget is not None and (reruns + 1 > limit or in_race + 1 > state.cap or trial.number + 1 >= budget)
            challenger_runs = [t for t in state.runs[state.challenger] if t.number >= since]
            verdict = decide(challenger_runs, [t for t in state.runs[state.incumbent] if t.number >= since], maximize,
                             exhausted=exhausted, chosen=state.triggers, noise=pooled_spread(state.runs, chosen=state.triggers))
            if verdict == "promote" and limit_risk(state.runs[state.challenger], state.runs, objective) is not None:
                state.risky.add(state.challenger)  # too near a limit to trust on its next run
                verdict = "drop"
            if verdict == "promote":
                state.promotions.append((state.incumbent, state.challenger))
                state.incumbent = state.challenger
            if verdict != "more":
                state.challenger = None
                _next_from_waiting(state, trial.number, maximize, reruns, budget, tried)
    return state


def _next_from_waiting(state: RaceState, number: int, maximize: bool, spent: int = 0, budget: int | None = None,
                       tried: int = 1) -> None:
    """Start a race with the best waiting run still ahead of every run of the incumbent (its re-run goes first)."""
    if state.incumbent is None:
        state.waiting.clear()
        return
    state.waiting.pop(state.incumbent, None)
    ahead = [t for t in state.waiting.values()
             if _beats(t.value, state.runs[state.incumbent], maximize, lambda: pooled_spread(state.runs, chosen=state.triggers))
             and config_key(t.config) not in state.risky]
    state.waiting = {config_key(t.config): t for t in ahead}
    if not ahead:
        return
    best = max(ahead, key=lambda t: t.value) if maximize else min(ahead, key=lambda t: t.value)
    _start(state, best, number + 1, spent, budget, maximize, tried)  # the race's runs start after this one


def _better(value: float, other: float, maximize: bool) -> bool:
    return value > other if maximize else value < other


def _beats(value: float, incumbent_runs: Sequence[Trial], maximize: bool,
           noise: Callable[[], tuple[float, int] | None] | None = None) -> bool:
    """Better than every run of the incumbent: a gain the incumbent's own spread does not explain.

    (Better than its median alone raced near-default configs on noisy systems, spending the
    re-runs a clear winner found later needed.) The bar stops rising with the incumbent's runs
    (`noise`: the study's `pooled_spread`, asked only when needed): the best of n runs grows
    with n and with one lucky run, so a KV incumbent's four runs, one 2.6x the others on a
    loaded host, set a bar that a config really 2x better never passed, and a long-raced
    incumbent's eight runs, one 25% high, blocked configs 15-20% better. From three runs on,
    the bar is at most one pooled spread above the median of the incumbent's log values.
    """
    values = [t.value for t in incumbent_runs]
    if value > max(values) if maximize else value < min(values):
        return True
    if noise is None or len(values) < 3 or value <= 0 or not all(v > 0 for v in values):
        return False
    pooled = noise()
    if pooled is None:
        return False
    centre = float(np.median(np.log(values)))  # the median: the lucky run moves it least
    return math.log(value) > centre + pooled[0] if maximize else math.log(value) < centre - pooled[0]


def _fallback(state: RaceState, objective: Objective) -> str | None:
    """The best feasible config by the conservative median of its runs, when the incumbent broke a limit.

    Only a config whose next run is predicted to respect the limits (`limit_risk`), as for a
    promotion: before, a config run once at 3.9 MB under a 4 MB cap replaced a default marked
    risky at 3.3 MB, and broke the cap when re-measured.
    """
    sign = objective.sign()
    ranked = sorted((statistics.median_high([sign * t.value for t in runs]), key)
                    for key, runs in state.runs.items() if runs and key not in state.broken and key not in state.risky)
    for _, key in ranked:
        if not objective.limits or limit_risk(state.runs[key], state.runs, objective) is None:
            return key
    return None


def next_rerun(trials: Sequence[Trial], objective: Objective, budget: int | None,
               costly_switch: Callable[[Config, Config], bool] | None = None) -> Config | None:
    """The config of the next re-run, or None: no race running, or the re-run share of the budget spent.

    Incumbent and challenger take turns, the incumbent first after the
    challenger's own run (a waiting challenger's re-run first: its own run is
    not in the race). When switching between the two is costly
    (`costly_switch(incumbent, challenger)`: they differ in a knob that needs
    a restart or a rebuild), the turns go in ABBA order instead: once the two
    are even, the config that ran last runs again (C I I C C I I ...). Every
    pair is still two adjacent runs and a linear drift still cancels, but the
    config changes every second run: half the restarts (ABAB made a
    cost-aware PostgreSQL study restart on every re-run). ABBA is not the
    default because a race may be decided after any pair, and a run that
    opens a block then goes unpaired. Runs still in progress count as taken.
    """
    state = race_state(trials, objective, budget)
    if state.challenger is None or state.incumbent is None:
        return None
    reruns = sum(t.source == INTENSIFY for t in trials)
    limit, _ = rerun_limits(budget, len(trials))
    in_this_race = sum(t.source == INTENSIFY for t in trials if t.number >= state.since)
    if reruns + 1 > limit or (budget is not None and in_this_race + 1 > state.cap):
        return None
    race = {state.challenger, state.incumbent}
    if any(t.state == TrialState.RUNNING and config_key(t.config) in race for t in trials):
        return None  # decide on the run in progress before scheduling more (the tuner fills a free worker)
    in_race = [config_key(t.config) for t in sorted(trials, key=lambda t: t.number) if t.number >= state.since]
    ran = {key: in_race.count(key) for key in race}
    if ran[state.incumbent] != ran[state.challenger]:
        behind = state.incumbent if ran[state.incumbent] < ran[state.challenger] else state.challenger
        return state.configs[behind]
    if costly_switch is not None and costly_switch(state.configs[state.incumbent], state.configs[state.challenger]):
        last = next((key for key in reversed(in_race) if key in race), state.challenger)
        return state.configs[last]
    return state.configs[state.challenger]


def incumbent_trial(trials: Sequence[Trial], objective: Objective, budget: int | None = None) -> Trial | None:
    """The incumbent's representative run (conservative median of its runs), or None when nothing is feasible.

    Of its full-fidelity runs when it has any: re-runs measured at a lower rung
    (multi-fidelity's `race_below`) count in races, not as the answer's run."""
    state = race_state(trials, objective, budget)
    if state.incumbent is None:
        return None
    runs = state.runs[state.incumbent]
    full = [t for t in runs if (t.info.get("fidelity") or {}).get("full", True)]
    runs = full or runs
    sign = objective.sign()
    worse_half = statistics.median_high([sign * t.value for t in runs])
    return next(t for t in runs if sign * t.value == worse_half)


__all__ = ["INTENSIFY", "MAX_PAIRS", "MIN_PAIRS", "RESERVE", "RISK_DF", "RaceState", "SHARE", "decide", "incumbent_trial", "limit_risk", "next_rerun",
           "pooled_spread", "race_state", "rerun_limits", "whole_pairs"]
