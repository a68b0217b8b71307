"""Warm start from the knowledge base: seed a new study from the nearest past study of its system.

What `autosys tune` does by default once a new study's default config is
measured, as a Python call for experiments and notebooks:

    study = Study.create(...)
    study.run(callback=warm_start_after_default(location))   # or call warm_start_from_knowledge_base yourself
    add_study(study, location)                               # the study joins the knowledge base

The nearest study is chosen by `autosys.learn.mapping.nearest` (same system,
compatible space, workload signature and host). Its configs are first moved
to this host (`autosys.learn.transfer.scale_config`: knobs sized in memory
scale with the two hosts' RAM, thread counts with their cores); its best
configs other than the default are enqueued (re-measured here first) and its
results told to the tuner on this host's scale: a `Correction` fitted from
the configs measured on both sides, the default's pair at first
(`warm_start_from_knowledge_base`, as before: the ratio of the two default
measurements); the callback of `warm_start_after_default` waits until the
seeded configs are measured here too and fits it from all of those pairs,
so a past study from another host or a bigger workload is corrected by a
few measurements before the tuner relies on it. With `studies=k` the seeds
come from the k nearest past studies in turns (nearest first), each told
with its own correction: a hedge when two studies are about as near, or
the nearest one's own search found little.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from autosys.analysis.workload_mapping import StudyRecord
from autosys.core.space import InvalidConfig, Space, config_key
from autosys.core.trial import Result, Trial, TrialState
from autosys.learn.host import host_fingerprint
from autosys.learn.knowledge import (
    StoredStudy, default_location, is_off, open_knowledge_base, study_uid, workload_signature,
)
from autosys.learn.mapping import nearest
from autosys.learn.transfer import Correction, fit_correction, host_units, scale_config

#: how many of the past study's best configs are re-measured first
ENQUEUE = 3


@dataclass
class WarmStart:
    """What a warm start did: from where, how many configs it seeded and results it told; or why none.

    scaled: knob values changed for this host (over the configs seeded and told);
    correction: how the nearest study's values were put on this host's scale (`Correction.to_json`);
    corrections: the same for each study drawn on, nearest first.
    """

    origin: str | None = None
    seeded: int = 0
    told: int = 0
    reason: str = ""
    study_id: int | None = None
    distance: float | None = None
    scaled: int = 0
    correction: dict[str, Any] = field(default_factory=dict)
    corrections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.origin is not None

    def line(self) -> str:
        """The one line `autosys tune` prints."""
        if not self.done:
            return f"warm start: none ({self.reason})"
        extra = f", {self.scaled} knob values scaled to this host" if self.scaled else ""
        told = f"{self.told} results told" if self.told else "results told once the seeds are measured"
        return f"warm start: from {self.origin}: {self.seeded} configs seeded, {told}{extra}"

    def to_json(self) -> dict[str, Any]:
        return {"from": self.origin, "seeded": self.seeded, "told": self.told, "study_id": self.study_id,
                "distance": self.distance, "scaled": self.scaled, "correction": dict(self.correction),
                "corrections": list(self.corrections)}


@dataclass
class _Source:
    """One past study a warm start draws on: its record (configs on this host), what it seeded, the pairs."""

    record: StudyRecord
    seeds: dict[str, float] = field(default_factory=dict)  # key of each seeded config -> its value there
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (value there, value here), same configs


@dataclass
class _Plan:
    """A warm start in progress: its sources, the default measured here, and what it reports."""

    sources: list[_Source]
    default: dict[str, Any]  # the default config measured here (its past value is not told again)
    result: WarmStart

    @property
    def waiting(self) -> bool:
        return any(source.seeds for source in self.sources)


def record_of(study: StoredStudy, space: Space | None = None, host: Mapping[str, Any] | None = None,
              units: Mapping[str, str] | None = None) -> StudyRecord:
    """A knowledge-base study as the record `workload_mapping` takes; with `space` and this `host`,
    its configs moved to this host (`scale_config`)."""
    trials = [(dict(t.config), float(t.value)) for t in study.ranked()]  # type: ignore[arg-type]
    if space is not None and host is not None:
        units = host_units(space) if units is None else units
        trials = [(scale_config(c, space, study.host, host, units), v) for c, v in trials]
    return StudyRecord(
        directory=Path(study.origin or study.name),
        system=study.system,
        workload=str((study.signature.get("options") or {}).get("workload", "")),
        direction=study.direction,
        signature=dict(study.signature.get("metrics") or {}),
        default_value=study.default_value,
        trials=trials,
    )


def system_units(study: Any) -> dict[str, str]:
    """{knob: "ram" | "cores"} for the study's space: what its system declares (`host_units`, a mapping
    or a method returning one; optional), the params' units and names for the rest."""
    declared = getattr(getattr(study, "system", None), "host_units", None)
    if callable(declared):
        declared = declared()
    return host_units(study.tuner.space, declared if isinstance(declared, Mapping) else None)


def _clean(space: Space, config: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return space.validate({**space.default(), **{k: v for k, v in config.items() if k in space.params}})
    except (InvalidConfig, ValueError, TypeError):
        return None  # a config of another space tells us nothing here


def _plan(study: Any, records: list[StudyRecord], default: Trial, origin: str, enqueue: int, scaled: int = 0) -> _Plan:
    """Enqueue the records' best configs but the (already measured) default, taking turns between the
    records (the nearest first), without repeats; nothing told yet."""
    space = study.tuner.space
    sources = [_Source(record) for record in records]
    ranked: list[list[tuple[dict[str, Any], str, float]]] = []
    for record in records:
        options: list[tuple[dict[str, Any], str, float]] = []
        for config, value in record.trials:
            clean = _clean(space, config)
            if clean is None or all(clean.get(k) == default.config.get(k) for k in space.params):
                continue
            if all(config_key(clean) != key for _, key, _ in options):
                options.append((clean, config_key(clean), value))
            if len(options) >= enqueue:
                break
        ranked.append(options)
    taken: set[str] = set()
    for _ in range(enqueue):
        for source, options in zip(sources, ranked):
            if len(taken) >= enqueue:
                break
            fresh = [(clean, key, value) for clean, key, value in options if key not in taken]
            if fresh:
                clean, key, value = fresh[0]
                study.tuner.enqueue(clean, source="warm_start")
                source.seeds[key] = value
                taken.add(key)
    for source in sources:
        if default.feasible and default.value is not None and source.record.default_value is not None:
            source.pairs.append((float(source.record.default_value), float(default.value)))
    return _Plan(sources, dict(default.config), WarmStart(origin=origin, seeded=len(taken), scaled=scaled))


def _tell(study: Any, plan: _Plan) -> WarmStart:
    """Tell the tuner each record's results on this host's scale (each corrected from its own pairs); save its state."""
    tuner = study.tuner
    before = len(tuner.history)
    corrections = []
    for source in plan.sources:
        correction: Correction = fit_correction(source.pairs)
        corrections.append(correction.to_json())
        pairs = []
        for config, value in source.record.trials:
            clean = _clean(tuner.space, config)
            if clean is not None and any(clean.get(k) != plan.default.get(k) for k in tuner.space.params):
                pairs.append((clean, Result(TrialState.COMPLETE, correction.apply(value), {})))
        tuner.warm_start(pairs)
    if hasattr(study, "storage"):
        study.storage.save_tuner_state(tuner.state_dict())
    plan.result.told = len(tuner.history) - before
    plan.result.correction = corrections[0] if corrections else {}
    plan.result.corrections = corrections
    return plan.result


def seed_from_record(study: Any, record: StudyRecord, default: Trial, origin: str, *, enqueue: int = ENQUEUE) -> WarmStart:
    """Seed `study`'s tuner from `record`: its best configs but the (already measured) default, and
    its results, rescaled by the ratio of the two defaults."""
    if record.system != study.spec["system"]:
        return WarmStart(reason=f"{record.directory} is a study of {record.system}, not {study.spec['system']}")
    return _tell(study, _plan(study, [record], default, origin, enqueue))


def _scaled_count(before: StoredStudy, after: StudyRecord) -> int:
    ranked = before.ranked()
    return sum(sum(1 for k, v in c.items() if t.config.get(k) != v) for t, (c, _) in zip(ranked, after.trials))


def _prepare(study: Any, default: Trial, location: str | None, enqueue: int, studies: int = 1) -> _Plan | WarmStart:
    """Map the study to its nearest past studies and enqueue their best configs (moved to this host)."""
    where = location or default_location()
    if is_off(where):
        return WarmStart(reason="the knowledge base is turned off")
    if "://" not in where and not Path(where).expanduser().exists():
        return WarmStart(reason=f"the knowledge base {where} holds no study yet")
    system = study.spec["system"]
    here = host_fingerprint(study.directory).to_json()
    with open_knowledge_base(where) as base:
        candidates = [s for s in base.studies(system)
                      if s.metric == study.objective.metric and s.direction == study.objective.direction]
        matches = nearest(candidates, system=system, space=study.tuner.space,
                          signature=workload_signature(study.spec, [default]),
                          host=here, exclude=[study_uid(study.spec)], k=max(1, studies),
                          top=enqueue, fill=lambda s: base.get(s.id or 0) or s)
        where = base.where
    if not matches:
        return WarmStart(reason=f"no past study of {system} with a compatible space in {where}")
    origins = []
    for match in matches:
        host = "same host" if match.host == 0 else f"host distance {match.host:.2f}"
        origins.append(f"kb study {match.study.id} {match.study.name} (distance {match.distance:.3f}, {host})")
    units = system_units(study)
    records = [record_of(match.study, study.tuner.space, here, units) for match in matches]
    scaled = sum(_scaled_count(match.study, record) for match, record in zip(matches, records))
    plan = _plan(study, records, default, " + ".join(origins), enqueue, scaled=scaled)
    plan.result.study_id, plan.result.distance = matches[0].study.id, round(matches[0].distance, 4)
    return plan


def warm_start_from_knowledge_base(study: Any, default: Trial, location: str | None = None, *,
                                   enqueue: int = ENQUEUE, studies: int = 1) -> WarmStart:
    """Seed `study` (a `Study` whose `default` trial was just measured) from the nearest past study (or
    the `studies` nearest, taking turns), and tell their results now, corrected by the default's pair
    alone (`warm_start_after_default` waits for more).

    Raises `KnowledgeBaseError` for a base that cannot be read; a missing one seeds nothing.
    """
    plan = _prepare(study, default, location, enqueue, studies)
    return plan if isinstance(plan, WarmStart) else _tell(study, plan)


class KnowledgeWarmStart:
    """A `Study.run` callback: warm start once the default is measured, and tell the past studies' results
    once the seeded configs are measured here too, each corrected by its configs measured on both sides.

    studies: seed from the nearest few past studies, taking turns (the nearest first): a hedge
    against a mapping that is close between two of them, or a past study that found little.
    done: called with the `WarmStart` once the seeds are enqueued (its `told` and `correction`
    fill in when the results are told: after the last seed, or the first other proposal, finishes).
    """

    def __init__(self, location: str | None = None, *, enqueue: int = ENQUEUE, studies: int = 1,
                 done: Callable[[WarmStart], None] | None = None):
        self.location, self.enqueue, self.studies, self.done = location, enqueue, studies, done
        self.pending = True
        self.plan: _Plan | None = None
        self.result: WarmStart | None = None

    def __call__(self, study: Any, trial: Trial) -> None:
        if self.pending and trial.source == "default":
            self.pending = False
            plan = _prepare(study, trial, self.location, self.enqueue, self.studies)
            if isinstance(plan, WarmStart):
                self.result = plan
            else:
                self.plan, self.result = plan, plan.result
                if not plan.waiting:
                    self._finish(study)
            if self.done is not None:
                self.done(self.result)
            return
        if self.plan is None:
            return
        key = config_key(trial.config) if trial.source == "warm_start" else None
        source = next((s for s in self.plan.sources if key is not None and key in s.seeds), None)
        if source is not None:
            value = source.seeds.pop(key)  # type: ignore[arg-type]
            if trial.state == TrialState.COMPLETE and trial.feasible and trial.value is not None:
                source.pairs.append((value, float(trial.value)))
            if not self.plan.waiting:
                self._finish(study)
        elif "tuner_number" in trial.info:  # a tuner proposal finished first (parallel workers): tell now
            self._finish(study)

    def _finish(self, study: Any) -> None:
        assert self.plan is not None
        _tell(study, self.plan)
        self.plan = None


def warm_start_after_default(location: str | None = None, *, enqueue: int = ENQUEUE, studies: int = 1,
                             done: Callable[[WarmStart], None] | None = None) -> KnowledgeWarmStart:
    """A `Study.run` callback that warm-starts from the knowledge base once the default is measured
    (`KnowledgeWarmStart`: its past results are told once the seeded configs are measured here)."""
    return KnowledgeWarmStart(location, enqueue=enqueue, studies=studies, done=done)
