"""Nearest-study mapping: which past study in the knowledge base is most like a new one.

A candidate must be of the same system and have a compatible space (most
knobs in common, and at least one of its good configs valid in the new
space). Among those, the distance is a workload part and a host part:

- workload: the mean of up to three parts: the system's options (equal or
  not; numbers by how far their ratio is from 1, capped), and, when both
  sides measured them, the default config's metrics and its monitor means
  (relative difference, capped; host-wide `system.*` readings left out);
- host: `autosys.learn.host.host_distance` (CPU model, vector extensions,
  cores, RAM, fsync latency), weighted less than the workload.

Every part is bounded, so one candidate's distance does not depend on the
others, and ties go to the newer study: the same knowledge base gives the
same answer every time (as OtterTune maps workloads, with the host added).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from autosys.core.space import InvalidConfig, Space
from autosys.learn.host import host_distance
from autosys.learn.knowledge import StoredStudy

#: options that change the random stream but not the kind of workload
IGNORED_OPTIONS = frozenset({"seed"})
#: how much the host counts next to the workload
HOST_WEIGHT = 0.3
#: monitor readings of the whole host (other processes' work too): kept in the signature, left out of the distance
HOST_WIDE = ("system.",)
#: the least share of knobs (by name and kind) two spaces must have in common
MIN_SPACE_OVERLAP = 0.5


@dataclass
class Match:
    """A past study and how far it is from the new one (distance = workload + HOST_WEIGHT * host)."""

    study: StoredStudy
    distance: float
    workload: float
    host: float
    seeds: list[dict[str, Any]]


def space_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Jaccard overlap of two stored spaces' knobs, by (name, kind)."""
    ka = {(p.get("name"), p.get("kind")) for p in a.get("params", [])}
    kb = {(p.get("name"), p.get("kind")) for p in b.get("params", [])}
    return len(ka & kb) / len(ka | kb) if ka | kb else 1.0


def _value_distance(x: Any, y: Any) -> float:
    if x == y:
        return 0.0
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    if numeric and x > 0 and y > 0:
        return min(abs(math.log2(float(x) / float(y))), 1.0)
    return 1.0


def _relative(x: float, y: float) -> float:
    scale = max(abs(x), abs(y))
    return 0.0 if scale == 0 else min(abs(x - y) / scale, 1.0)


def workload_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """0 (the same workload) to 1, from two `workload_signature`s."""
    oa, ob = dict(a.get("options") or {}), dict(b.get("options") or {})
    keys = sorted((set(oa) | set(ob)) - IGNORED_OPTIONS)
    parts = []
    if keys:
        parts.append(sum(_value_distance(oa.get(k), ob.get(k)) for k in keys) / len(keys))
    for kind in ("metrics", "monitors"):  # each its own part, so twenty monitors do not drown four metrics
        ma, mb = dict(a.get(kind) or {}), dict(b.get(kind) or {})
        measured = [_relative(float(ma[k]), float(mb[k])) for k in sorted(set(ma) & set(mb))
                    if not k.startswith(HOST_WIDE) and isinstance(ma[k], (int, float)) and isinstance(mb[k], (int, float))]
        if measured:
            parts.append(sum(measured) / len(measured))
    return sum(parts) / len(parts) if parts else 0.0


def seed_configs(study: StoredStudy, space: Space, top: int | None = None) -> list[dict[str, Any]]:
    """The study's good configs as configs of `space` (unknown knobs dropped, missing ones at their
    defaults), best first, without repeats; those the new space refuses are left out."""
    out: list[dict[str, Any]] = []
    default = space.default()
    for trial in study.ranked():
        try:
            config = space.validate({**default, **{k: v for k, v in trial.config.items() if k in space.params}})
        except (InvalidConfig, ValueError, TypeError):
            continue
        if config not in out:
            out.append(config)
        if top is not None and len(out) >= top:
            break
    return out


def nearest(
    candidates: Iterable[StoredStudy],
    *,
    system: str,
    space: Space,
    signature: Mapping[str, Any],
    host: Mapping[str, Any] | None = None,
    k: int = 1,
    exclude: Sequence[str] = (),
    top: int = 3,
    fill: Callable[[StoredStudy], StoredStudy] | None = None,
) -> list[Match]:
    """The k past studies of `system` nearest to a new one, with up to `top` configs each to seed it.

    fill: loads a listed study's trials (`KnowledgeBase.get`), called only for the
    nearest few, so a large knowledge base is ranked from its summaries.
    """
    new_space = space.to_json()
    scored = []
    for study in candidates:
        if study.system != system or study.uid in exclude:
            continue
        if space_overlap(study.space, new_space) < MIN_SPACE_OVERLAP:
            continue
        w = workload_distance(signature, study.signature)
        h = host_distance(host, study.host)
        scored.append((w + HOST_WEIGHT * h, w, h, study))
    scored.sort(key=lambda s: (round(s[0], 12), -s[3].added_at, -(s[3].id or 0)))
    matches: list[Match] = []
    for distance, w, h, study in scored:
        if fill is not None and not study.trials and study.n_trials:
            study = fill(study)
        seeds = seed_configs(study, space, top)
        if seeds:  # none of its good configs fits the new space: it cannot seed anything
            matches.append(Match(study, distance, w, h, seeds))
            if len(matches) >= k:
                break
    return matches
