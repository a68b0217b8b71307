"""Carrying what one study learned to another host: host-relative knobs, and a few-measurement correction.

Two halves of transfer across hosts (issue 19, item 4):

- `scale_config`: a past study's config moved to this host. A knob sized in
  memory (bytes, KiB, MiB, server pages: any unit, the scaling is linear)
  scales with the ratio of the two hosts' RAM; a thread or worker count
  with the ratio of their cores. The result is clipped to the knob's range,
  an integer knob stays an integer, an ordinal knob takes its nearest choice
  (on a log scale), and a knob with no such unit is left alone. Which knobs
  are which: what the caller declares (a system's `host_units`, or a
  param's `unit` where one exists), else the name (`host_units`).
- `fit_correction`: values measured (or predicted) elsewhere, corrected by a
  few measurements here. Given pairs (value there, value here) of the same
  configs, the geometric median of their ratios (or the median difference
  when a value is not positive) puts every other value from there on this
  host's scale; `CorrectedModel` applies it to any `autosys.learn.models`
  model, so a model trained on one host serves another after a few runs.

May import: `autosys.core` and numpy.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from autosys.core.space import Config, Float, Int, InvalidConfig, Ordinal, Param, Space

#: scales with the host's memory
RAM = "ram"
#: scales with the host's cores
CORES = "cores"
#: the host fingerprint field each kind scales with (`autosys.learn.host.HostFingerprint`)
HOST_FIELD = {RAM: "ram_bytes", CORES: "cores"}

#: a declared unit (a param's `unit`, a system's `host_units`) -> what it scales with
UNIT_KINDS = {
    "b": RAM, "byte": RAM, "bytes": RAM, "kb": RAM, "kib": RAM, "mb": RAM, "mib": RAM, "gb": RAM, "gib": RAM,
    "8kb": RAM, "16mb": RAM, "pages": RAM, "memory": RAM, RAM: RAM,
    "thread": CORES, "threads": CORES, "worker": CORES, "workers": CORES, "cores": CORES, CORES: CORES,
}
#: names of memory sizes: a unit suffix, or a server setting known to hold memory (PostgreSQL, MariaDB)
MEMORY_NAME = re.compile(
    r"(_bytes|_kib|_kb|_mib|_mb|_gib|_gb)$"
    r"|^(shared_buffers|work_mem|maintenance_work_mem|autovacuum_work_mem|logical_decoding_work_mem|temp_buffers"
    r"|wal_buffers|effective_cache_size|innodb_buffer_pool_size|innodb_log_buffer_size|key_buffer_size"
    r"|sort_buffer_size|join_buffer_size|read_buffer_size|read_rnd_buffer_size|tmp_table_size|max_heap_table_size"
    r"|query_cache_size|aria_pagecache_buffer_size)$"
)
#: memory-like names that are not the host's memory: an LMDB map (the largest the file may grow)
NOT_MEMORY_NAME = re.compile(r"(^|_)map_size")
#: names of thread or worker counts
THREAD_NAME = re.compile(
    r"(^|_)n?threads$|^num_threads$|workers|worker_processes|^n?_?jobs$|parallelism$|thread_pool_size$|thread_concurrency$"
)


def unit_kind(name: str, unit: str | None = None) -> str | None:
    """RAM, CORES or None for a knob: from its declared `unit` when given, else from its name."""
    if unit is not None:
        return UNIT_KINDS.get(str(unit).strip().lower())
    if MEMORY_NAME.search(name) and not NOT_MEMORY_NAME.search(name):
        return RAM
    if THREAD_NAME.search(name):
        return CORES
    return None


def host_units(space: Space, declared: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """{knob: RAM or CORES} for the numeric knobs of `space` that scale with the host.

    declared: knob -> unit (or RAM / CORES, or None: never scaled) from the
    system; a param's own `unit` attribute, where the space has one, comes
    next; the name decides the rest.
    """
    declared = dict(declared or {})
    out: dict[str, str] = {}
    for param in space:
        if not _numeric(param):
            continue
        if param.name in declared:
            unit = declared[param.name]
            kind = None if unit is None else unit_kind(param.name, unit)
        else:
            kind = unit_kind(param.name, getattr(param, "unit", None))
        if kind is not None:
            out[param.name] = kind
    return out


def host_ratios(source: Mapping[str, Any] | None, target: Mapping[str, Any] | None) -> dict[str, float]:
    """{RAM: target RAM / source RAM, CORES: target cores / source cores}; 1.0 where either side lacks it."""
    out = {}
    for kind, key in HOST_FIELD.items():
        a = (source or {}).get(key)
        b = (target or {}).get(key)
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (a, b))
        out[kind] = float(b) / float(a) if ok else 1.0  # type: ignore[arg-type]
    return out


def scale_value(param: Param, value: Any, ratio: float) -> Any:
    """`value` of a numeric knob times `ratio`, as a value of `param` (clipped; ordinals: nearest choice)."""
    if ratio == 1.0 or not _numeric(param) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(param, Ordinal):  # an ordinal of numbers: the choice nearest on a log scale (0 stays 0)
        if value <= 0:
            return value
        target = math.log(value * ratio)
        positive = [c for c in param.choices if c > 0]
        return min(positive, key=lambda c: (abs(math.log(c) - target), c)) if positive else value
    scaled = float(value) * ratio
    low, high = float(param.low), float(param.high)  # type: ignore[attr-defined]
    scaled = min(max(scaled, low), high)
    if isinstance(param, Int):
        return int(min(max(round(scaled), param.low), param.high))
    return scaled


def scale_config(
    config: Mapping[str, Any],
    space: Space,
    source_host: Mapping[str, Any] | None,
    target_host: Mapping[str, Any] | None,
    units: Mapping[str, str] | None = None,
) -> Config:
    """A config from a study on `source_host`, its host-relative knobs scaled for `target_host`.

    units: {knob: RAM or CORES} (default: `host_units(space)`). Knobs not in
    `space`, or without such a unit, are returned as they are; a scaled
    config the space refuses (a constraint) is returned unscaled.
    """
    units = host_units(space) if units is None else units
    ratios = host_ratios(source_host, target_host)
    out = dict(config)
    changed = False
    for name, kind in units.items():
        if name not in out or name not in space or ratios.get(kind, 1.0) == 1.0:
            continue
        new = scale_value(space[name], out[name], ratios[kind])
        changed = changed or new != out[name]
        out[name] = new
    if not changed:
        return out
    try:
        space.validate({k: v for k, v in out.items() if k in space})
    except (InvalidConfig, ValueError, TypeError):
        return dict(config)
    return out


def _numeric(param: Param) -> bool:
    if isinstance(param, (Int, Float)):
        return True
    return isinstance(param, Ordinal) and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in param.choices)


# ----------------------------------------------------------------------------- correcting values from elsewhere


@dataclass(frozen=True)
class Correction:
    """How values from elsewhere map to this host: `value * factor` ("ratio") or `value + shift` ("offset")."""

    kind: str = "none"
    factor: float = 1.0
    shift: float = 0.0
    pairs: int = 0

    def apply(self, value: float) -> float:
        if self.kind == "ratio":
            return value * self.factor
        if self.kind == "offset":
            return value + self.shift
        return value

    def apply_std(self, std: float) -> float:
        """A spread from elsewhere on this host's scale (a ratio stretches it, an offset does not)."""
        return abs(self.factor) * std if self.kind == "ratio" else std

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "factor": self.factor, "shift": self.shift, "pairs": self.pairs}


IDENTITY = Correction()


def fit_correction(pairs: Sequence[tuple[float, float]], *, kind: str = "auto") -> Correction:
    """The correction that best maps values from elsewhere onto live ones, from (there, here) pairs.

    kind "ratio": the geometric median of here/there (every value positive);
    "offset": the median of here - there; "auto": a ratio when every value is
    positive, else an offset. Medians, so one disturbed measurement does not
    decide; pairs with a non-finite value are left out; no pair, no correction.
    """
    if kind not in ("auto", "ratio", "offset"):
        raise ValueError(f"kind must be auto, ratio or offset, not {kind!r}")
    good = [(float(a), float(b)) for a, b in pairs
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if not good:
        return IDENTITY
    positive = all(a > 0 and b > 0 for a, b in good)
    if kind == "ratio" and not positive:
        raise ValueError("a ratio correction needs positive values on both sides")
    if kind == "ratio" or (kind == "auto" and positive):
        factor = math.exp(statistics.median(math.log(b / a) for a, b in good))
        return Correction("ratio", factor=factor, pairs=len(good))
    return Correction("offset", shift=statistics.median(b - a for a, b in good), pairs=len(good))


class CorrectedModel:
    """A model fitted elsewhere (`autosys.learn.models.Model`: fit / predict -> (mean, std) / rank), its
    predictions put on this host's scale by a `Correction` fitted from a few live measurements."""

    def __init__(self, model: Any, correction: Correction = IDENTITY):
        self.model = model
        self.correction = correction

    def calibrate(self, X: np.ndarray, live: Sequence[float], *, kind: str = "auto") -> Correction:
        """Fit the correction from live values measured at rows `X` (the model's predictions as 'there')."""
        mean, _ = self.model.predict(np.asarray(X, dtype=float))
        self.correction = fit_correction(list(zip(mean.tolist(), [float(v) for v in live])), kind=kind)
        return self.correction

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.model.predict(np.asarray(X, dtype=float))
        c = self.correction
        return (np.array([c.apply(float(m)) for m in mean]), np.array([c.apply_std(float(s)) for s in std]))

    def rank(self, X: np.ndarray) -> np.ndarray:
        """Best (lowest loss) first; a positive ratio or an offset never changes the order."""
        mean, _ = self.predict(X)
        return np.argsort(mean, kind="stable")
