"""Warm start from the knowledge base: seed a new study from the nearest past study of its system.

What `autosys tune` does by default once a new study's default config is
measured, as a Python call for experiments and notebooks:

    study = Study.create(...)
    study.run(callback=warm_start_after_default(location))   # or call warm_start_from_knowledge_base yourself
    add_study(study, location)                               # the study joins the knowledge base

The nearest study is chosen by `autosys.learn.mapping.nearest` (same system,
compatible space, workload signature and host); its best configs other than
the default are enqueued (re-measured here first) and its results told to
the tuner, rescaled by the ratio of the two default measurements
(`analysis.workload_mapping.warm_start`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from autosys.analysis.workload_mapping import StudyRecord, warm_start
from autosys.core.trial import Trial
from autosys.learn.host import host_fingerprint
from autosys.learn.knowledge import (
    StoredStudy, default_location, is_off, open_knowledge_base, study_uid, workload_signature,
)
from autosys.learn.mapping import nearest

#: how many of the past study's best configs are re-measured first
ENQUEUE = 3


@dataclass
class WarmStart:
    """What a warm start did: from where, how many configs it seeded and results it told; or why none."""

    origin: str | None = None
    seeded: int = 0
    told: int = 0
    reason: str = ""
    study_id: int | None = None
    distance: float | None = None

    @property
    def done(self) -> bool:
        return self.origin is not None

    def line(self) -> str:
        """The one line `autosys tune` prints."""
        if not self.done:
            return f"warm start: none ({self.reason})"
        return f"warm start: from {self.origin}: {self.seeded} configs seeded, {self.told} results told"

    def to_json(self) -> dict[str, Any]:
        return {"from": self.origin, "seeded": self.seeded, "told": self.told, "study_id": self.study_id,
                "distance": self.distance}


def record_of(study: StoredStudy) -> StudyRecord:
    """A knowledge-base study as the record `workload_mapping.warm_start` takes."""
    return StudyRecord(
        directory=Path(study.origin or study.name),
        system=study.system,
        workload=str((study.signature.get("options") or {}).get("workload", "")),
        direction=study.direction,
        signature=dict(study.signature.get("metrics") or {}),
        default_value=study.default_value,
        trials=[(dict(t.config), float(t.value)) for t in study.ranked()],  # type: ignore[arg-type]
    )


def seed_from_record(study: Any, record: StudyRecord, default: Trial, origin: str, *, enqueue: int = ENQUEUE) -> WarmStart:
    """Seed `study`'s tuner from `record`: its best configs but the (already measured) default, and its results."""
    if record.system != study.spec["system"]:
        return WarmStart(reason=f"{record.directory} is a study of {record.system}, not {study.spec['system']}")
    space = study.tuner.space
    trials = [(c, v) for c, v in record.trials if any(c.get(k) != default.config.get(k) for k in space.params)]
    before = len(study.tuner.history)
    queued = warm_start(study, dataclasses.replace(record, trials=trials), enqueue=enqueue,
                        default_value=default.value if default.feasible else None)
    return WarmStart(origin=origin, seeded=len(queued), told=len(study.tuner.history) - before)


def warm_start_from_knowledge_base(study: Any, default: Trial, location: str | None = None, *,
                                   enqueue: int = ENQUEUE) -> WarmStart:
    """Seed `study` (a `Study` whose `default` trial was just measured) from the nearest past study.

    Raises `KnowledgeBaseError` for a base that cannot be read; a missing one seeds nothing.
    """
    where = location or default_location()
    if is_off(where):
        return WarmStart(reason="the knowledge base is turned off")
    if "://" not in where and not Path(where).expanduser().exists():
        return WarmStart(reason=f"the knowledge base {where} holds no study yet")
    system = study.spec["system"]
    with open_knowledge_base(where) as base:
        candidates = [s for s in base.studies(system)
                      if s.metric == study.objective.metric and s.direction == study.objective.direction]
        matches = nearest(candidates, system=system, space=study.tuner.space,
                          signature=workload_signature(study.spec, [default]),
                          host=host_fingerprint(study.directory).to_json(), exclude=[study_uid(study.spec)],
                          top=enqueue, fill=lambda s: base.get(s.id or 0) or s)
        where = base.where
    if not matches:
        return WarmStart(reason=f"no past study of {system} with a compatible space in {where}")
    match = matches[0]
    host = "same host" if match.host == 0 else f"host distance {match.host:.2f}"
    origin = f"kb study {match.study.id} {match.study.name} (distance {match.distance:.3f}, {host})"
    result = seed_from_record(study, record_of(match.study), default, origin, enqueue=enqueue)
    result.study_id, result.distance = match.study.id, round(match.distance, 4)
    return result


def warm_start_after_default(location: str | None = None, *, enqueue: int = ENQUEUE,
                             done: Callable[[WarmStart], None] | None = None) -> Callable[[Any, Trial], None]:
    """A `Study.run` callback that warm-starts from the knowledge base once the default is measured."""
    pending = [True]

    def callback(study: Any, trial: Trial) -> None:
        if pending[0] and trial.source == "default":
            pending[0] = False
            result = warm_start_from_knowledge_base(study, trial, location, enqueue=enqueue)
            if done is not None:
                done(result)

    return callback
