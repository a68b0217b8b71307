"""Expert baselines: the config the published rules of thumb give for this host and a workload type.

A tuned config should be compared with what an expert would set, not only
with the shipped defaults. Two rule sets, implemented from their published
formulas:

- PostgreSQL: PGTune (Alexey Vasiliev, https://github.com/le0pard/pgtune,
  `src/features/configuration/configurationSlice.js`, read at commit
  01bb6447113831159c5f14fafe11f59cf2ba0964), Linux formulas, from RAM, CPU
  cores, connections, storage type and workload type (web, oltp, dw,
  desktop, mixed); see `pgtune`.
- MariaDB: the MariaDB documentation's InnoDB sizing guidance, see `mariadb_rules`.

`expert_config(system, workload)` turns the rules into a config of the
system's own space: values converted to the server's units, clipped to the
space's ranges (each clip noted), knobs outside the space dropped with the
reason (a restart not allowed, a knob the catalogue excludes as unsafe, a
knob outside the curated set: build the system with `knobs="all"`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from autosys.core.space import Categorical, Float, Int, InvalidConfig

WORKLOAD_TYPES = ("web", "oltp", "dw", "desktop", "mixed")
STORAGE_TYPES = ("hdd", "ssd", "san", "nvme")
KB = 1024
MB = 1024 * KB
GB = 1024 * MB
#: where each PGTune value comes from (the selector of configurationSlice.js)
PGTUNE = "PGTune configurationSlice.js"


@dataclass
class ExpertConfig:
    """An expert rule set's config for one system: what it sets, where each value comes from, what was left out."""

    workload: str
    config: dict[str, Any]  # a full config of the system's space: its defaults with the expert values
    values: dict[str, Any] = field(default_factory=dict)  # the expert values that made it in (space units)
    rules: dict[str, str] = field(default_factory=dict)  # knob -> the rule and its source
    dropped: dict[str, str] = field(default_factory=dict)  # knob -> why the rule's value is not in `config`
    clipped: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # knob -> (rule's value, value used)

    def to_json(self) -> dict:
        return {"workload": self.workload, "values": self.values, "rules": self.rules, "dropped": self.dropped,
                "clipped": {k: list(v) for k, v in self.clipped.items()}}


def _check(workload: str, storage: str) -> None:
    if workload not in WORKLOAD_TYPES:
        raise ValueError(f"workload type must be one of {', '.join(WORKLOAD_TYPES)}, not {workload!r}")
    if storage not in STORAGE_TYPES:
        raise ValueError(f"storage type must be one of {', '.join(STORAGE_TYPES)}, not {storage!r}")


# ----------------------------------------------------------------------------- PostgreSQL: PGTune
def pgtune(
    ram_bytes: int, cores: int, workload: str = "oltp", *, storage: str = "ssd", connections: int | None = None,
    version: float = 15,
) -> dict[str, tuple[Any, str, str]]:
    """PGTune's settings for Linux: knob -> (value, unit, rule). Memory values are in kB ("kB"), as PGTune computes them.

    Each entry follows the selector of the same name in PGTune's
    configurationSlice.js (commit 01bb644, see the module docstring).
    """
    _check(workload, storage)
    if ram_bytes <= 0 or cores <= 0:
        raise ValueError("ram_bytes and cores must be positive")
    ram_kb = ram_bytes / KB
    out: dict[str, tuple[Any, str, str]] = {}
    # selectMaxConnections: the user's number, else by workload type
    max_connections = connections or {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}[workload]
    out["max_connections"] = (max_connections, "", f"{PGTUNE} selectMaxConnections: web 200, oltp 300, dw 40, desktop 20, mixed 100")
    # selectSharedBuffers: RAM/4 (desktop RAM/16)
    shared_buffers = math.floor(ram_kb / (16 if workload == "desktop" else 4))
    out["shared_buffers"] = (shared_buffers, "kB", f"{PGTUNE} selectSharedBuffers: RAM/4 (desktop RAM/16)")
    # selectEffectiveCacheSize: 3/4 RAM (desktop RAM/4)
    out["effective_cache_size"] = (math.floor(ram_kb / 4 if workload == "desktop" else ram_kb * 3 / 4), "kB",
                                   f"{PGTUNE} selectEffectiveCacheSize: RAM*3/4 (desktop RAM/4)")
    # selectMaintenanceWorkMem: RAM/16 (dw RAM/8), capped at 8 GB on Linux
    maintenance = min(math.floor(ram_kb / (8 if workload == "dw" else 16)), 8 * GB // KB)
    out["maintenance_work_mem"] = (maintenance, "kB", f"{PGTUNE} selectMaintenanceWorkMem: RAM/16 (dw RAM/8), at most 8 GB")
    # selectCheckpointSegments: min/max_wal_size by workload type
    min_wal = {"web": 1024, "oltp": 2048, "dw": 4096, "desktop": 100, "mixed": 1024}[workload]
    max_wal = {"web": 4096, "oltp": 8192, "dw": 16384, "desktop": 2048, "mixed": 4096}[workload]
    out["min_wal_size"] = (min_wal * KB, "kB", f"{PGTUNE} selectCheckpointSegments: web 1GB, oltp 2GB, dw 4GB, desktop 100MB, mixed 1GB")
    out["max_wal_size"] = (max_wal * KB, "kB", f"{PGTUNE} selectCheckpointSegments: web 4GB, oltp 8GB, dw 16GB, desktop 2GB, mixed 4GB")
    # selectCheckpointCompletionTarget
    out["checkpoint_completion_target"] = (0.9, "", f"{PGTUNE} selectCheckpointCompletionTarget: 0.9")
    # selectWalBuffers: 3% of shared_buffers, at most 16 MB, rounded up to 16 MB above 14 MB, at least 32 kB
    wal_buffers = min(math.floor(3 * shared_buffers / 100), 16 * MB // KB)
    if 14 * MB // KB < wal_buffers < 16 * MB // KB:
        wal_buffers = 16 * MB // KB
    wal_buffers = max(wal_buffers, 32)
    out["wal_buffers"] = (wal_buffers, "kB", f"{PGTUNE} selectWalBuffers: 3% of shared_buffers in [32kB, 16MB]")
    # selectDefaultStatisticsTarget: dw 500, else 100
    out["default_statistics_target"] = (500 if workload == "dw" else 100, "", f"{PGTUNE} selectDefaultStatisticsTarget: dw 500, else 100")
    # selectRandomPageCost: hdd 4, else 1.1
    out["random_page_cost"] = (4.0 if storage == "hdd" else 1.1, "", f"{PGTUNE} selectRandomPageCost: hdd 4, ssd/san/nvme 1.1")
    # selectEffectiveIoConcurrency (Linux): hdd 2, ssd 200, san 300, nvme 1000
    out["effective_io_concurrency"] = ({"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}[storage], "",
                                       f"{PGTUNE} selectEffectiveIoConcurrency: hdd 2, ssd 200, san 300, nvme 1000")
    # selectParallelSettings: only from 4 cores
    workers_for_work_mem = 8  # DEFAULT_DB_SETTINGS max_worker_processes, used when no parallel settings are made
    if cores >= 4:
        per_gather = math.ceil(cores / 2)
        if workload != "dw":
            per_gather = min(per_gather, 4)
        rule = f"{PGTUNE} selectParallelSettings (4 cores or more)"
        out["max_worker_processes"] = (cores, "", f"{rule}: cores")
        out["max_parallel_workers_per_gather"] = (per_gather, "", f"{rule}: ceil(cores/2), at most 4 unless dw")
        if version >= 10:
            out["max_parallel_workers"] = (cores, "", f"{rule}: cores")
        if version >= 11:
            out["max_parallel_maintenance_workers"] = (min(math.ceil(cores / 2), 4), "", f"{rule}: ceil(cores/2), at most 4")
        workers_for_work_mem = cores
    # selectWorkMem: (RAM - shared_buffers) / ((connections + workers) * 3), halved for dw/mixed, /6 desktop, >= 4 MB
    base = (ram_kb - shared_buffers) / ((max_connections + workers_for_work_mem) * 3)
    work_mem = math.floor(base / {"web": 1, "oltp": 1, "dw": 2, "desktop": 6, "mixed": 2}[workload])
    out["work_mem"] = (max(work_mem, 4 * MB // KB), "kB",
                       f"{PGTUNE} selectWorkMem: (RAM - shared_buffers) / ((max_connections + max_worker_processes) * 3)"
                       ", /2 dw and mixed, /6 desktop, at least 4 MB")
    # selectHugePages: try from 2 GB of shared_buffers
    out["huge_pages"] = ("try" if shared_buffers >= 2 * GB // KB else "off", "", f"{PGTUNE} selectHugePages: try from 2GB shared_buffers")
    if workload == "desktop":  # selectWalLevel
        out["wal_level"] = ("minimal", "", f"{PGTUNE} selectWalLevel: desktop minimal")
        out["max_wal_senders"] = (0, "", f"{PGTUNE} selectWalLevel: 0 with wal_level=minimal")
    if version >= 12 and workload in ("web", "oltp", "mixed"):  # selectJit
        out["jit"] = ("off", "", f"{PGTUNE} selectJit: off for web/oltp/mixed from PostgreSQL 12")
    if version >= 15:  # selectWalCompression
        out["wal_compression"] = ("lz4", "", f"{PGTUNE} selectWalCompression: lz4 from PostgreSQL 15")
    if cores >= 16:  # selectAutovacuumMaxWorkers
        out["autovacuum_max_workers"] = (5 if cores >= 32 else 4, "", f"{PGTUNE} selectAutovacuumMaxWorkers: 4 from 16 cores, 5 from 32")
    if maintenance >= 2 * GB // KB:  # selectAutovacuumWorkMem
        out["autovacuum_work_mem"] = (2 * GB // KB, "kB", f"{PGTUNE} selectAutovacuumWorkMem: 2GB when maintenance_work_mem >= 2GB")
    return out


# ----------------------------------------------------------------------------- MariaDB
def mariadb_rules(
    ram_bytes: int, cores: int, workload: str = "oltp", *, storage: str = "ssd", redo_bytes_per_second: float | None = None,
) -> dict[str, tuple[Any, str, str]]:
    """MariaDB's documented InnoDB sizing for a host: knob -> (value, unit, rule); sizes in bytes ("B")."""
    _check(workload, storage)
    if ram_bytes <= 0 or cores <= 0:
        raise ValueError("ram_bytes and cores must be positive")
    out: dict[str, tuple[Any, str, str]] = {}
    dedicated = workload != "desktop"
    # MariaDB KB "MariaDB Memory Allocation" (mariadb.com/docs/server/ha-and-performance/mariadb-memory-allocation):
    # mostly InnoDB: innodb_buffer_pool_size about 60-70% of available RAM; the older KB page "XtraDB/InnoDB
    # Memory Buffer" says 70-80% on a dedicated server. 70% is in both; a desktop shares the host: 1/8 (our choice).
    pool = int(ram_bytes * (0.7 if dedicated else 0.125))
    out["innodb_buffer_pool_size"] = (pool, "B", "MariaDB KB 'MariaDB Memory Allocation': 60-70% of RAM on a dedicated"
                                      " InnoDB server (70%); a shared desktop host 1/8 (autosys's choice)")
    # Redo log: an hour of writes (Baron Schwartz, "How to calculate a good InnoDB log file size", Percona 2008) when
    # the redo rate is known, else a quarter of the buffer pool (the rule in MySQL's sample my-huge.cnf / my-innodb-heavy
    # configs shipped with MariaDB: "Set .. innodb_log_file_size to 25 % of buffer pool size").
    if redo_bytes_per_second and redo_bytes_per_second > 0:
        out["innodb_log_file_size"] = (int(redo_bytes_per_second * 3600), "B", "one hour of redo writes (Schwartz, Percona 2008)")
    else:
        out["innodb_log_file_size"] = (pool // 4, "B", "25% of innodb_buffer_pool_size (MySQL/MariaDB sample my-huge.cnf)")
    # innodb_io_capacity: the IOPS the device sustains (MariaDB KB innodb_io_capacity; the default 200 suits a
    # spinning disk). The flash figures are round numbers commonly used, not measured on this host.
    out["innodb_io_capacity"] = ({"hdd": 200, "ssd": 2000, "san": 2000, "nvme": 10000}[storage], "",
                                 "MariaDB KB innodb_io_capacity: about the device's IOPS (hdd 200; ssd/san 2000, nvme 10000)")
    # innodb_flush_neighbors: 0 on SSD (MariaDB KB innodb_flush_neighbors: neighbour flushing only helps rotating disks)
    out["innodb_flush_neighbors"] = (1 if storage == "hdd" else 0, "",
                                     "MariaDB KB innodb_flush_neighbors: 0 (off) on SSD, 1 on rotating disks")
    # innodb_flush_method: O_DIRECT on Linux, no double buffering in the OS page cache (MariaDB KB innodb_flush_method)
    out["innodb_flush_method"] = ("O_DIRECT", "", "MariaDB KB innodb_flush_method: O_DIRECT on Linux (no double buffering)")
    # key_buffer_size small when MyISAM is unused (MariaDB Memory Allocation: "such as 16M to 64M")
    out["key_buffer_size"] = (16 * MB, "B", "MariaDB KB 'MariaDB Memory Allocation': key_buffer_size small (16M-64M) for InnoDB")
    return out


# ----------------------------------------------------------------------------- onto a system's space
_PG_UNIT_KB = {"kB": 1, "8kB": 8, "MB": 1024, "16MB": 16 * 1024, "GB": 1024 * 1024, "B": 1 / 1024}


def _server_value(value: Any, unit: str, info: Any) -> Any:
    """A rule's value in the server's own unit (PostgreSQL memory in kB -> the knob's unit)."""
    if unit == "kB" and info is not None and info.unit in _PG_UNIT_KB:
        return value / _PG_UNIT_KB[info.unit]
    return value


def expert_config(
    system: Any,
    workload: str = "oltp",
    *,
    storage: str = "ssd",
    connections: int | None = None,
    ram_bytes: int | None = None,
    cores: int | None = None,
    redo_bytes_per_second: float | None = None,
) -> ExpertConfig:
    """The expert rules' config for a PostgreSQL or MariaDB `ServerKnobs` system (see the module docstring).

    The host's RAM and cores default to this machine's (psutil), where the
    server runs; `connections` defaults to PGTune's own number for the workload type.
    """
    from autosys_adapters.dbserver.catalogue import host_cores, host_memory

    ram = host_memory() if ram_bytes is None else int(ram_bytes)
    ncores = host_cores() if cores is None else int(cores)
    if system.dialect == "postgres":
        rules = pgtune(ram, ncores, workload, storage=storage, connections=connections)
    elif system.dialect == "mysql":
        rules = mariadb_rules(ram, ncores, workload, storage=storage, redo_bytes_per_second=redo_bytes_per_second)
    else:
        raise ValueError(f"no expert rules for dialect {system.dialect!r}")
    space = system.space()
    infos = _describe(system, list(rules))
    out = ExpertConfig(workload=workload, config={})
    for name, (raw, unit, rule) in rules.items():
        out.rules[name] = rule
        info = infos.get(name)
        if name not in space.params:
            out.dropped[name] = _why_not(system, name, info)
            continue
        param = space[name]
        value = _server_value(raw, unit, info)
        try:
            out.values[name] = _fit(param, value, out.clipped)
        except InvalidConfig as exc:
            out.dropped[name] = f"not a value this space allows: {exc}"
    config = {**space.default(), **out.values}
    try:
        out.config = space.validate(config)
    except InvalidConfig:
        for name in list(out.values):  # a constraint refuses a combination: give up the values it names, one by one
            config[name] = space.default()[name]
            out.dropped[name] = "refused by a constraint of the space together with the other expert values"
            del out.values[name]
            if space.is_valid(config):
                break
        out.config = space.validate(config)
    return out


def _fit(param: Any, value: Any, clipped: dict[str, tuple[Any, Any]]) -> Any:
    if isinstance(param, Categorical):
        return param.check(value)
    if isinstance(param, (Int, Float)):
        number = float(value)
        fitted = min(max(number, param.low), param.high)
        if isinstance(param, Int):
            fitted = int(round(fitted))
        if not math.isclose(fitted, number, rel_tol=1e-9, abs_tol=0.5 if isinstance(param, Int) else 1e-12):
            clipped[param.name] = (value, fitted)
        return param.check(fitted)
    return param.check(value)


def _describe(system: Any, names: list[str]) -> dict[str, Any]:
    """The server's description of the rules' knobs (units, how they change), tuned or not."""
    conn = system._admin()
    try:
        return system._read_catalog(conn, names)
    finally:
        conn.close()


def _why_not(system: Any, name: str, info: Any) -> str:
    if info is None:
        return "the server does not offer it as a tunable setting"
    if info.how == "restart" and not system.allow_restart:
        return "needs a server restart (--allow-restart true and --restart-command)"
    excluded: Mapping[str, str] = getattr(system, "excluded_knobs", {}) or {}
    if name in excluded:
        return f"left out of the catalogue: {excluded[name]}"
    if system.durable and name in getattr(system, "DURABLE", {}):
        return "pinned by the durability constraint"
    return "not among the tuned knobs (build the system with knobs=all to include it)"


__all__ = ["ExpertConfig", "STORAGE_TYPES", "WORKLOAD_TYPES", "expert_config", "mariadb_rules", "pgtune"]
