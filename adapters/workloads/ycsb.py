"""YCSB-style key-value workloads: seeded, deterministic operation streams.

A `Workload` says how many records to load, the operation mix, and how keys
are chosen (zipfian, uniform, latest). `operations(workload, seed)` returns
the same stream for the same seed in every process (no `hash()`), so every
system and every trial replays identical requests.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from autosys_adapters.workloads.base import TYPES, Benchmark, check_counts, check_memory, check_mix

OPS = ("read", "update", "insert", "scan", "rmw", "delete")
READ, UPDATE, INSERT, SCAN, RMW, DELETE = range(len(OPS))
DISTRIBUTIONS = ("zipfian", "uniform", "latest")
#: memory estimates for the check before anything is built: key-choice arrays per record
#: (weights, cdf, permutation), and a stream entry per operation (arrays plus a Python tuple)
BYTES_PER_KEY = 24
BYTES_PER_OPERATION = 120


@dataclass(frozen=True)
class Workload:
    """An operation mix over `records` preloaded keys. Weights need not sum to one."""

    name: str = "custom"
    records: int = 5_000
    operations: int = 5_000
    mix: Mapping[str, float] = field(default_factory=lambda: {"read": 0.5, "update": 0.5})
    distribution: str = "zipfian"
    zipf_constant: float = 0.99
    value_size: int = 100
    scan_length: int = 50
    concurrency: int = 1

    def __post_init__(self):
        unknown = set(self.mix) - set(OPS)
        if unknown:
            raise ValueError(f"workload {self.name!r}: unknown operation {sorted(unknown)[0]!r}; known: {', '.join(OPS)}")
        check_mix(self, "operation")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"workload {self.name!r}: distribution {self.distribution!r} is not one of {', '.join(DISTRIBUTIONS)}"
            )
        check_counts(self, ("records", "operations", "value_size", "scan_length", "concurrency"))
        if isinstance(self.zipf_constant, bool) or not isinstance(self.zipf_constant, (int, float)) or not 0 < self.zipf_constant < 10:
            raise ValueError(f"workload {self.name!r}: zipf_constant must be in (0, 10), not {self.zipf_constant!r}")
        check_memory(self, self.records * BYTES_PER_KEY + self.operations * BYTES_PER_OPERATION,
                     f"{self.records:,} records and {self.operations:,} operations")

    def to_json(self) -> dict:
        data = asdict(self)
        data["mix"] = dict(self.mix)
        return data


PRESETS: dict[str, Workload] = {
    "ycsb-a": Workload("ycsb-a", mix={"read": 0.5, "update": 0.5}),
    "ycsb-b": Workload("ycsb-b", mix={"read": 0.95, "update": 0.05}),
    "ycsb-c": Workload("ycsb-c", mix={"read": 1.0}),
    "ycsb-d": Workload("ycsb-d", mix={"read": 0.95, "insert": 0.05}, distribution="latest"),
    "ycsb-e": Workload("ycsb-e", mix={"scan": 0.95, "insert": 0.05}, operations=1_000),
    "ycsb-f": Workload("ycsb-f", mix={"read": 0.5, "rmw": 0.5}),
}


def load_workload(spec: str | Mapping[str, Any] | Workload, **overrides: Any) -> Workload:
    """A preset name, a JSON/TOML file path, a mapping, or a Workload; `overrides` win."""
    base = spec.to_json() if isinstance(spec, Workload) else spec_data(spec, {k: w.to_json() for k, w in PRESETS.items()})
    base.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(Workload)}
    unknown = set(base) - known
    if unknown:
        raise ValueError(f"workload {base.get('name', spec)!r}: unknown setting {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}")
    try:
        return Workload(**base)
    except TypeError as exc:
        raise ValueError(f"workload {base.get('name', spec)!r}: {exc}") from None


def _read_file(path: Path) -> dict:
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, tomllib.TOMLDecodeError
        raise ValueError(f"cannot parse workload file {path}: {exc}") from None


def spec_data(spec: str | Mapping[str, Any], presets: Mapping[str, Mapping[str, Any]]) -> dict:
    """The settings a workload spec names: a mapping as is, a preset's, or a JSON/TOML file's.

    Shared by every workload loader, so presets, files and errors behave the same everywhere.
    """
    if isinstance(spec, Mapping):
        return dict(spec)
    if spec in presets:
        return dict(presets[spec])
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"workload {spec!r} is neither a preset ({', '.join(presets)}) nor a file")
    data = _read_file(path)
    data.setdefault("name", path.stem)
    return data


def zipfian_ranks(rng: np.random.Generator, n_items: int, size: int, theta: float) -> np.ndarray:
    """Ranks in [0, n_items) with P(rank=i) proportional to 1/(i+1)^theta."""
    weights = 1.0 / np.arange(1, n_items + 1, dtype=float) ** theta
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n_items - 1)


@dataclass
class OperationStream:
    """Parallel arrays: op code (see OPS), key index, and a value seed for writes."""

    ops: np.ndarray
    keys: np.ndarray
    workload: Workload

    def __len__(self) -> int:
        return len(self.ops)

    def counts(self) -> dict[str, int]:
        return {OPS[i]: int(c) for i, c in enumerate(np.bincount(self.ops, minlength=len(OPS))) if c}


def operations(workload: Workload, seed: int = 0) -> OperationStream:
    """The deterministic operation stream of `workload` under `seed`."""
    rng = np.random.default_rng([seed, 0x5C5B])
    names = list(workload.mix)
    weights = np.array([workload.mix[n] for n in names], dtype=float)
    op_codes = np.array([OPS.index(n) for n in names])
    ops = op_codes[rng.choice(len(names), size=workload.operations, p=weights / weights.sum())]
    n = workload.records
    if workload.distribution == "uniform":
        chosen = rng.integers(0, n, size=workload.operations)
    else:
        ranks = zipfian_ranks(rng, n, workload.operations, workload.zipf_constant)
        if workload.distribution == "zipfian":
            chosen = rng.permutation(n)[ranks]  # scrambled: hot keys spread over the key space
        else:
            chosen = ranks  # "latest": rank 0 is the newest key, fixed up below
    keys = np.empty(workload.operations, dtype=np.int64)
    next_new = n
    for i, op in enumerate(ops):
        if op == INSERT:
            keys[i] = next_new
            next_new += 1
        elif workload.distribution == "latest":
            keys[i] = max(next_new - 1 - int(chosen[i]), 0)
        else:
            keys[i] = chosen[i]
    return OperationStream(ops=ops.astype(np.int8), keys=keys, workload=workload)


def value_for(key: int, size: int, version: int = 0) -> bytes:
    """A deterministic value of `size` bytes for a key (cheap, no RNG state)."""
    stem = f"{key}:{version}:".encode()
    return (stem * (size // len(stem) + 1))[:size]


class YCSBBenchmark(Benchmark):
    """A YCSB `Workload` as a `Benchmark` (see autosys_adapters.workloads.base) for SQL servers.

    Table `usertable(ycsb_key, ycsb_value)`: `key` is a reserved word in MySQL.
    Each operation is one transaction, as in YCSB; read-modify-write is two
    statements in one explicit transaction.
    """

    def __init__(self, workload: Workload):
        self.workload = workload
        self.name = workload.name
        self.concurrency = int(workload.concurrency)

    def signature(self) -> str:
        w = self.workload
        return f"ycsb-{w.records}r-{w.value_size}b"

    def tables(self) -> list[str]:
        return ["usertable"]

    def schema(self, dialect: str) -> list[str]:
        t = TYPES[dialect]
        return [f"CREATE TABLE usertable (ycsb_key {t['bigint']} PRIMARY KEY, ycsb_value {t['blob']} NOT NULL)"]

    def load(self, session) -> None:
        w = self.workload
        session.bulk_insert("usertable", ("ycsb_key", "ycsb_value"), ((k, value_for(k, w.value_size)) for k in range(w.records)))

    def reset(self, session) -> None:
        session.execute("DELETE FROM usertable WHERE ycsb_key >= ?", (self.workload.records,))

    def stream(self, seed: int) -> list[tuple]:
        ops = operations(self.workload, seed)
        return [(OPS[op], key) for op, key in zip(ops.ops.tolist(), ops.keys.tolist())]

    def execute(self, session, item: tuple, index: int) -> None:
        kind, key = item
        size = self.workload.value_size
        if kind == "read":
            session.one("SELECT ycsb_value FROM usertable WHERE ycsb_key = ?", (key,))
        elif kind == "update":
            session.execute("UPDATE usertable SET ycsb_value = ? WHERE ycsb_key = ?", (value_for(key, size, index), key))
        elif kind == "insert":
            value = value_for(key, size)
            if session.dialect == "postgres":
                session.execute(
                    "INSERT INTO usertable VALUES (?, ?) ON CONFLICT (ycsb_key) DO UPDATE SET ycsb_value = EXCLUDED.ycsb_value",
                    (key, value),
                )
            elif session.dialect == "mysql":
                session.execute("REPLACE INTO usertable VALUES (?, ?)", (key, value))
            else:
                session.execute("INSERT OR REPLACE INTO usertable VALUES (?, ?)", (key, value))
        elif kind == "scan":
            session.all(
                "SELECT ycsb_key, ycsb_value FROM usertable WHERE ycsb_key >= ? ORDER BY ycsb_key LIMIT ?",
                (key, self.workload.scan_length),
            )
        elif kind == "rmw":
            session.begin()
            try:
                session.one("SELECT ycsb_value FROM usertable WHERE ycsb_key = ?", (key,))
                session.execute("UPDATE usertable SET ycsb_value = ? WHERE ycsb_key = ?", (value_for(key, size, index), key))
                session.commit()
            except BaseException:
                session.rollback()
                raise
        elif kind == "delete":
            session.execute("DELETE FROM usertable WHERE ycsb_key = ?", (key,))
        else:
            raise ValueError(f"unknown YCSB operation {kind!r}")

    def to_json(self) -> dict:
        return {"kind": "ycsb", **self.workload.to_json()}
