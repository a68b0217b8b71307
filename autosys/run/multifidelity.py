"""Multi-fidelity scheduling: successive halving over a system's fidelity rungs, for any tuner.

A study given a `MultiFidelity` runs each tuner proposal in stages, from a
low rung of the system's declared fidelity (autosys/core/fidelity.py: fewer
operations, a sampled trace, fewer queries or repeats) up to full fidelity.
After each stage the trial's value (an *intermediate value*) is compared with
every value measured at that rung so far, by any trial of the study (per
config: the median of each config's runs there, so a config proposed again is
ranked by all its runs, not by its latest): it goes
on to the next rung only when it is in the best `1/eta` of them
(asynchronous successive halving, ASHA: Li et al., 2020; the rule Optuna's
SuccessiveHalvingPruner and SMAC3's Hyperband apply). A trial that stops early
is *pruned*: recorded with its partial measurement and the rung it reached,
told to the tuner (so a model learns that region is poor), and never the
study's answer, which only full-fidelity runs decide.

With `brackets` > 1, trials start at rungs 0, 1, ... in turn (Hyperband's
brackets, asynchronously), hedging against a low rung that ranks configs
badly. Until `min_peers` values exist at a rung, the rung cannot rank: there
a trial goes on only when its value, scaled to full fidelity as below, is
not worse than the study's answer (`guard`; the incumbent of the races), once
the scale is measured (some config measured at that rung and at full
fidelity; unscaled, a rung that reads low, such as a learned index timed on
fewer queries, stopped every trial there and nothing reached full fidelity
for half a minute). A
trial that cannot beat the incumbent is stopped early (the issue's rule, and
OpenTuner's stop at a multiple of the best): before, the first proposals of
a study climbed every rung blindly, costing about 1.5 full runs each (SQLite:
4.5 s for a config slower than the default), which made multi-fidelity
slower than full fidelity to its first good answer.

With `anchor` (the default), the default config is measured at the lowest
rung before its full-fidelity run (never pruned; its full run stays the
baseline): from the first proposal on, the lowest rung is scaled (calibrated)
and holds the answer's own value, so the guard stops a first proposal worse
than the default there instead of letting it climb every rung blindly (SQLite:
4.5 s for a config slower than the default, against 0.13 s at the lowest rung).
It costs 1/eta^k of a full run.

With `leap` (the default), a trial its rung could not rank (too few configs
there) and the guard let through skips the rungs above that could not judge it
either: no `min_peers` configs to rank it, no config measured there and at full
fidelity to scale its value for the guard. A stage there is promoted whatever
it measures, so it only costs (SQLite's first WAL proposal climbed three such
rungs: 1.7 s against 0.9 s at full fidelity). Trials promoted by ranking still
climb rung by rung, so the middle rungs fill and rank as before.

With `race_below`, the paired re-runs of intensification's races
(autosys/run/intensify.py) run below full fidelity, both configs of a pair at
the same rung, every pair of a race at one rung, and each re-run's value is
scaled to full fidelity as below (every race's challenger reached full
fidelity through the rungs it was measured at, so the scale is measured). The
rung is the lowest at which both configs were measured and the challenger
ranks ahead, as at full fidelity (`race_rung`); else the rung below full. A
pair's gain is the ratio of two runs at one rung, which the scale does not
change, so a rung need only order the pair as full fidelity does: a race
against a slow incumbent (SQLite's default runs into its time cap: 3 s a run
at full fidelity, 1 s at the rung below, 0.13 s at the lowest) costs a small
share. Every config that can be the answer still has a full-fidelity run (the
default, or the proposal that started its race).

What a pruned trial tells its tuner is its value scaled to full fidelity by
the median ratio (full / rung) of configs measured at both, so a rung that
reads systematically high or low (a short run that never fills the cache)
does not mislead a model; with no such config yet, the raw value.

This module is pure bookkeeping (no I/O): the study (autosys/run/study.py)
submits the stages, records the intermediate values and asks `promote`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Any, Iterable, Mapping, Sequence

from autosys.core.fidelity import Fidelity


class MultiFidelityError(ValueError):
    """A multi-fidelity setting that cannot work for this system (shown as one line)."""


@dataclass(frozen=True)
class MultiFidelity:
    """Successive halving settings: `eta` (keep the best 1/eta at each rung), `brackets`, and the rungs.

    min_fidelity: the lowest rung (default: the system's declared minimum).
    min_peers: values needed at a rung before it ranks (default: ceil(eta)).
    guard: below `min_peers`, stop a trial whose calibrated value is worse than the study's answer.
    race_below: run intensification's paired re-runs below full fidelity (scaled to it): at the lowest
        rung that orders the pair as full fidelity does, else the rung below full (`race_rung`).
    anchor: measure the default at the lowest rung too (before its full-fidelity run), so the guard
        can judge the first proposals there.
    leap: a trial its rung could not rank (too few configs there) and the guard let through skips
        the rungs above that could neither rank it nor compare it with the answer: a stage there
        would promote it whatever it measured.
    """

    eta: float = 3.0
    brackets: int = 1
    min_fidelity: float | None = None
    min_peers: int | None = None
    guard: bool = True
    race_below: bool = False
    anchor: bool = True
    leap: bool = True

    def __post_init__(self):
        if not (isinstance(self.eta, (int, float)) and math.isfinite(self.eta) and self.eta > 1):
            raise MultiFidelityError(f"eta must be a number above 1, not {self.eta!r}")
        if not isinstance(self.brackets, int) or self.brackets < 1:
            raise MultiFidelityError(f"brackets must be a whole number of at least 1, not {self.brackets!r}")
        if self.min_peers is not None and (not isinstance(self.min_peers, int) or self.min_peers < 1):
            raise MultiFidelityError(f"min_peers must be a whole number of at least 1, not {self.min_peers!r}")
        for name in ("guard", "race_below", "anchor", "leap"):
            if not isinstance(getattr(self, name), bool):
                raise MultiFidelityError(f"{name} must be true or false, not {getattr(self, name)!r}")

    @property
    def peers_needed(self) -> int:
        return self.min_peers if self.min_peers is not None else math.ceil(self.eta)

    def rungs(self, fidelity: Fidelity | None) -> list[float | int]:
        """The fidelities a staged trial may be measured at, lowest first; the last is full fidelity."""
        if fidelity is None:
            raise MultiFidelityError("this system declares no fidelity, so it cannot be tuned with multi-fidelity "
                                     "scheduling (see autosys/core/fidelity.py)")
        lowest = fidelity.min if self.min_fidelity is None else fidelity.check(self.min_fidelity)
        rungs = [r for r in fidelity.rungs(self.eta) if r >= lowest]
        if len(rungs) < 2:
            raise MultiFidelityError(
                f"fidelity {fidelity.name} offers one rung only from {lowest:g} to {fidelity.max:g} with eta={self.eta:g}; "
                "lower the minimum or eta")
        return rungs

    def start_rung(self, index: int, n_rungs: int) -> int:
        """The rung the `index`-th staged trial starts at: 0, or Hyperband's brackets in turn."""
        brackets = min(self.brackets, n_rungs)
        return index % brackets

    def promote(self, value: float, peers: Sequence[float], direction: str) -> bool:
        """Whether a trial whose value at a rung is `value` goes on, given every value at that rung (`peers`, its own included)."""
        finite = [p for p in peers if p is not None and math.isfinite(p)]
        if len(finite) < self.peers_needed:
            return True
        losses = sorted(-p if direction == "maximize" else p for p in finite)
        keep = max(1, math.floor(len(losses) / self.eta))
        loss = -value if direction == "maximize" else value
        return loss <= losses[keep - 1]

    def ranks(self, peers: Sequence[float]) -> bool:
        """Whether a rung holding `peers` has enough values to rank a trial (else `guard` may stop it)."""
        return sum(p is not None and math.isfinite(p) for p in peers) >= self.peers_needed

    @staticmethod
    def worse_than_answer(estimate: float, answer: float | None, direction: str) -> bool:
        """Whether a trial's full-fidelity estimate is worse than the study's answer's value (None: no answer yet)."""
        if answer is None or not math.isfinite(answer) or not math.isfinite(estimate):
            return False
        return estimate < answer if direction == "maximize" else estimate > answer

    def to_json(self) -> dict[str, Any]:
        return {"eta": self.eta, "brackets": self.brackets, "min_fidelity": self.min_fidelity,
                "min_peers": self.min_peers, "guard": self.guard,
                "race_below": self.race_below, "anchor": self.anchor, "leap": self.leap}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | "MultiFidelity" | bool | None) -> "MultiFidelity | None":
        """Settings from a spec or a caller: a mapping, an instance, True (defaults), or None/False (off)."""
        if data is None or data is False:
            return None
        if data is True:
            return cls()
        if isinstance(data, MultiFidelity):
            return data
        if not isinstance(data, Mapping):
            raise MultiFidelityError(f"multifidelity must be a mapping of settings, not {type(data).__name__}")
        known = ("eta", "brackets", "min_fidelity", "min_peers", "guard", "race_below", "anchor", "leap")
        unknown = set(data) - set(known)
        if unknown:
            raise MultiFidelityError(f"unknown multifidelity setting(s): {', '.join(sorted(unknown))} "
                                     f"(known: {', '.join(known)})")
        return cls(**dict(data))


def rung_values(events: Iterable[Mapping[str, Any]], rung: int) -> list[float]:
    """The values measured at `rung` in the study's intermediate-value records."""
    return [float(e["value"]) for e in events if e.get("rung") == rung and e.get("value") is not None]


def config_rung_values(events: Iterable[Mapping[str, Any]], rung: int, key: str) -> tuple[float, list[float]]:
    """(the median of config `key`'s values at `rung`, the median of every config's values there): its standing.

    Ranked by config, not by run: a tuner that proposes one config again and
    again (a small categorical space) would otherwise fill a rung with copies
    of it, and one noisy short run of a good config (a 1 ms window preempted
    on a loaded host) would prune it although its earlier runs there ranked
    first. Records without a config key (studies from before) count as their
    own config each.
    """
    by_config: dict[str, list[float]] = {}
    for e in events:
        if e.get("rung") == rung and e.get("value") is not None:
            by_config.setdefault(str(e.get("key", f"trial-{e.get('trial')}")), []).append(float(e["value"]))
    mine = median(by_config[key])
    return mine, [median(values) for values in by_config.values()]


def race_rung(events: Iterable[Mapping[str, Any]], challenger: str, incumbent: str, top: int, direction: str) -> int:
    """The rung a race between two configs (config keys) re-runs at: the lowest below `top` (full fidelity)
    where both were measured and the challenger ranks ahead, as its full-fidelity run that started the race
    did (per config, the median of its values there); else the rung below full.

    A pair's gain is a ratio of two runs at one rung, so the rung's scale does not
    matter, only whether it orders the two as full fidelity does; these two were
    measured there on their way up (or the default, at the lowest rung:
    `MultiFidelity.anchor`), so the cheapest rung that agrees is known before
    the race. SQLite's default runs into its time cap: a re-run of it cost 1 s at
    the rung below full, 0.13 s at the lowest.
    """
    at: dict[tuple[int, str], list[float]] = {}
    for e in events:
        key = str(e.get("key"))
        if e.get("value") is not None and key in (challenger, incumbent) and e.get("rung") is not None:
            at.setdefault((int(e["rung"]), key), []).append(float(e["value"]))
    for rung in range(top):
        mine, theirs = at.get((rung, challenger)), at.get((rung, incumbent))
        if mine and theirs and all(math.isfinite(v) for v in mine + theirs):
            a, b = median(mine), median(theirs)
            if (a > b) if direction == "maximize" else (a < b):
                return rung
    return max(top - 1, 0)


def calibrated(rung: int, events: Iterable[Mapping[str, Any]], top: int) -> bool:
    """Whether some trial was measured at both `rung` and `top`, so `calibrate` can scale values at `rung`."""
    at: dict[int, set[int]] = {}
    for e in events:
        if e.get("value") is not None and e.get("rung") in (rung, top):
            at.setdefault(int(e["trial"]), set()).add(int(e["rung"]))
    return rung != top and any(len(rungs) == 2 for rungs in at.values())


def calibrate(value: float, rung: int, events: Sequence[Mapping[str, Any]], top: int) -> float:
    """`value` measured at `rung`, scaled to full fidelity by configs measured at both (median ratio; else unchanged).

    Ratios need values of one sign; otherwise the median difference is added.
    """
    at_rung: dict[int, float] = {}
    at_top: dict[int, float] = {}
    for e in events:
        if e.get("value") is None:
            continue
        if e.get("rung") == rung:
            at_rung[int(e["trial"])] = float(e["value"])
        elif e.get("rung") == top:
            at_top[int(e["trial"])] = float(e["value"])
    both = [(at_rung[n], at_top[n]) for n in at_rung.keys() & at_top.keys()]
    if not both or rung == top:
        return value
    if all(low > 0 and full > 0 for low, full in both) and value > 0:
        return value * median(full / low for low, full in both)
    return value + median(full - low for low, full in both)


__all__ = ["MultiFidelity", "MultiFidelityError", "calibrate", "calibrated", "config_rung_values", "race_rung", "rung_values"]
