"""Workload mapping: find the past study whose workload looks most like a new one, and start from it.

A workload is characterized by what the system measured under its default
config — throughput, latency, cache hit ratio, WAL bytes, rows read and
written per operation, CPU per operation: whatever `evaluate` reported (the
default trial of every study measures exactly this, so past studies carry a
signature for free). A `KnowledgeBase` is a folder (or list) of past study
directories. `nearest` compares log-scaled signatures over the metrics both
have, standardized across the knowledge base (as OtterTune maps workloads,
with measured metrics rather than workload names). `warm_start` then

- enqueues the mapped study's best configs, so they are re-measured here first,
- and tells the tuner the mapped study's results, rescaled by the ratio of the
  two default measurements, so a model-based tuner starts with a prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from autosys.core.trial import Result, TrialState

#: metrics that describe the workload rather than the config (used when present)
SIGNATURE_METRICS = (
    "throughput",
    "p95_latency_ms",
    "p50_latency_ms",
    "cache_hit_ratio",
    "wal_bytes_per_op",
    "rows_read_per_op",
    "rows_written_per_op",
    "blocks_hit_per_op",
    "blocks_read_per_op",
    "commits_per_op",
    "client_cpu_ms_per_op",
)


@dataclass
class StudyRecord:
    """What the knowledge base keeps about one past study."""

    directory: Path
    system: str
    workload: str
    direction: str
    signature: dict[str, float]
    default_value: float | None
    trials: list[tuple[dict, float]] = field(default_factory=list)  # feasible (config, value), best first

    @property
    def best_value(self) -> float | None:
        return self.trials[0][1] if self.trials else None


def signature_of(metrics: Mapping[str, float], keys: Sequence[str] = SIGNATURE_METRICS) -> dict[str, float]:
    """The workload-describing metrics in `metrics` (finite values only)."""
    out = {}
    for key in keys:
        value = metrics.get(key)
        if value is not None and isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)
    return out


def load_record(directory: str | Path) -> StudyRecord:
    """Read a study directory into a record (its default trial gives the signature)."""
    from autosys.run.study import open_study

    storage, spec = open_study(Path(directory))
    try:
        trials = storage.trials()
    finally:
        storage.close()
    direction = spec["objective"].get("direction", "maximize")
    default = next((t for t in trials if t.source == "default" and t.state == TrialState.COMPLETE), None)
    feasible = [
        (dict(t.config), float(t.value))
        for t in trials
        if t.feasible and t.value is not None
    ]
    feasible.sort(key=lambda cv: -cv[1] if direction == "maximize" else cv[1])
    options = spec.get("system_options", {})
    workload = options.get("workload") or (default.info.get("workload") if default else "") or ""
    if isinstance(workload, dict):  # server adapters report the whole workload description
        workload = workload.get("name", "")
    return StudyRecord(
        directory=Path(directory),
        system=spec["system"],
        workload=str(workload),
        direction=direction,
        signature=signature_of(default.metrics) if default else {},
        default_value=default.value if default else None,
        trials=feasible,
    )


class KnowledgeBase:
    """Past studies, found as directories holding a `study.sqlite` under the given roots."""

    def __init__(self, roots: str | Path | Iterable[str | Path] = ()):
        if isinstance(roots, (str, Path)):
            roots = [roots]
        self.records: list[StudyRecord] = []
        for root in roots:
            self.scan(root)

    def scan(self, root: str | Path) -> int:
        """Add every study found under `root` (itself included); returns how many were added."""
        root = Path(root)
        found = sorted({p.parent for p in root.rglob("study.sqlite")}) if root.is_dir() else []
        added = 0
        known = {r.directory.resolve() for r in self.records}
        for directory in found:
            if directory.resolve() in known:
                continue
            try:
                record = load_record(directory)
            except Exception:  # a broken or half-created study is skipped, not fatal
                continue
            if record.signature:
                self.records.append(record)
                added += 1
        return added

    def add(self, record: StudyRecord) -> None:
        self.records.append(record)

    def nearest(
        self,
        signature: Mapping[str, float],
        *,
        system: str | None = None,
        exclude: Iterable[str | Path] = (),
        k: int = 1,
    ) -> list[tuple[float, StudyRecord]]:
        """The k closest past studies (same system if given) by standardized log-metric distance."""
        excluded = {Path(e).resolve() for e in exclude}
        candidates = [
            r for r in self.records
            if (system is None or r.system == system) and r.directory.resolve() not in excluded and r.signature
        ]
        if not candidates:
            return []
        query = signature_of(signature)
        keys = sorted(set(query).intersection(*[set(r.signature) for r in candidates]))
        if not keys:
            raise ValueError("no metric in common between the new workload and the knowledge base")
        rows = np.array([[_log(r.signature[k]) for k in keys] for r in candidates], dtype=float)
        q = np.array([_log(query[k]) for k in keys], dtype=float)
        everything = np.vstack([rows, q])
        scale = everything.std(axis=0)
        scale[scale < 1e-9] = 1.0
        distances = np.sqrt((((rows - q) / scale) ** 2).mean(axis=1))
        order = np.argsort(distances, kind="stable")[:k]
        return [(float(distances[i]), candidates[i]) for i in order]


def _log(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x)


def characterize(system: Any, config: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Measure a workload's signature by evaluating `config` (default: the system's default)."""
    measurement = system.evaluate(dict(config) if config is not None else system.default())
    return signature_of(measurement.metrics)


def warm_start_pairs(record: StudyRecord, *, default_value: float | None = None, top: int | None = None) -> list[tuple[dict, Result]]:
    """The record's results as (config, Result), rescaled to this workload's default if both defaults are known."""
    scale = 1.0
    if default_value and record.default_value:
        scale = default_value / record.default_value
    trials = record.trials[:top] if top else record.trials
    return [(dict(c), Result(TrialState.COMPLETE, v * scale, {})) for c, v in trials]


def warm_start(
    study: Any,
    record: StudyRecord,
    *,
    enqueue: int = 3,
    tell: bool = True,
    default_value: float | None = None,
) -> list[dict]:
    """Seed `study.tuner` from a mapped past study: enqueue its `enqueue` best configs, tell its results.

    Returns the enqueued configs (configs invalid in the new space are skipped).
    """
    tuner = study.tuner
    queued = []
    for config, _value in record.trials:
        if len(queued) >= enqueue:
            break
        try:
            clean = tuner.space.validate({**tuner.space.default(), **{k: v for k, v in config.items() if k in tuner.space.params}})
        except Exception:  # noqa: BLE001 - a config of another space tells us nothing here
            continue
        if clean in queued:
            continue
        tuner.enqueue(clean, source="warm_start")
        queued.append(clean)
    if tell:
        tuner.warm_start(warm_start_pairs(record, default_value=default_value))
    if hasattr(study, "storage"):
        study.storage.save_tuner_state(tuner.state_dict())
    return queued


def trials_to_reach(values: Sequence[float], target: float, direction: str = "maximize") -> int | None:
    """1-based index of the first trial whose best-so-far reaches `target`, or None."""
    best = None
    for i, v in enumerate(values, start=1):
        if v is None or not math.isfinite(v):
            continue
        best = v if best is None else (max(best, v) if direction == "maximize" else min(best, v))
        if (best >= target) if direction == "maximize" else (best <= target):
            return i
    return None
