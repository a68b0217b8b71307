"""The full knob catalogue a database server reports, screened and given tuning ranges sized to the host.

`ServerKnobs(knobs="all")` tunes every knob the server itself lists
(PostgreSQL's `pg_settings`, MariaDB's `information_schema.SYSTEM_VARIABLES`)
except those that are unsafe or meaningless to tune; each left-out knob keeps
the reason it was left out (`Catalogue.excluded`, shown by `excluded_knobs()`).
The screen, in order:

1. how the knob can change: not at all on a running server (PostgreSQL
   `internal`/`backend` contexts, MariaDB `READ_ONLY`, since MariaDB has no
   persisted SET), only per connection (MariaDB `SESSION ONLY`), or only
   after a restart that the user did not allow;
2. its type: free text and flag sets (paths, names, lists) have no range;
3. what it is for: a category (PostgreSQL) or a name pattern (both) for
   paths, logging, monitoring, replication, authentication, security,
   compatibility and statement semantics (isolation, timeouts, limits that
   make statements fail), actions disguised as settings (`..._now`), and
   knobs that only matter to features the benchmark never uses.

The curated knobs (`PROPOSALS`) and the durability-guarded knobs (`DURABLE`)
always pass the name screen: the curated ranges and the durability
constraint already say how to tune them.

Ranges (`propose`): the server's own limits are often absurd (0 to 2^63),
so each knob gets a proposal inside them that includes the current value:

- memory sizes are capped against the host's RAM (psutil): a server-wide
  buffer at 3/4 of it, a per-connection (or per-operation) one at 1/8 (several connections
  and operations each take one); planner hints about memory (PostgreSQL's
  `effective_cache_size`) up to all of it; from 1/64 of the current value up,
  on a log scale;
- thread and worker counts at most 4 per CPU core;
- disk sizes (WAL, redo log) from 1/16 to 16 times the current value;
- any other number: the whole range when it spans at most 1024 values, else
  1/16 to 16 times the current value (log scale);
- a knob whose current value is a special one (0 or -1: "off", "automatic")
  keeps it as its range's low end, on a linear scale, so a tuner can still
  choose it (the projection tuner biases such ends, autosys/tuners/projection.py).

`KnobInfo` (a knob as the server describes it) and `Proposal` (a tuning
range) live here, the bottom of the package; base.py re-exports them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


#: share of the host's RAM a server-wide memory knob may take (MariaDB's guidance puts the buffer pool at 60-70%)
SERVER_MEMORY_SHARE = 0.75
#: share of the host's RAM a per-connection (per-operation) memory knob may take
SESSION_MEMORY_SHARE = 1 / 8
#: threads or workers per CPU core at most
THREADS_PER_CORE = 4

# ----------------------------------------------------------------------------- PostgreSQL screen
#: pg_settings.category prefix -> why knobs of that category are not tuned
PG_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("File Locations", "paths to files and folders"),
    ("Connections and Authentication", "who may connect and how (network, authentication, SSL)"),
    ("Reporting and Logging", "logging: changes what the server writes to its log, not how fast it works"),
    ("Statistics", "monitoring and statistics collection (autovacuum needs track_counts)"),
    ("Replication", "replication: settings for standbys, senders and subscribers"),
    ("Write-Ahead Log / Archiv", "WAL archiving and archive recovery"),
    ("Write-Ahead Log / Recovery", "recovery after a crash or to a target: never runs in a benchmark"),
    ("Preset Options", "read-only facts about the build"),
    ("Developer Options", "developer and debugging options (some ignore or zero damaged data)"),
    ("Customized Options", "an extension's setting of unknown meaning"),
    ("Error Handling", "what the server does on errors and crashes"),
    ("Version and Platform Compatibility", "compatibility switches: change what statements mean"),
    ("Client Connection Defaults", "changes what statements do or return (isolation, timeouts, locale, search path, libraries)"),
    ("Resource Usage / Disk", "temp_file_limit: a limit makes large queries fail"),
)

#: knob name -> why it is not tuned (PostgreSQL), beyond its category
PG_NAMES: Mapping[str, str] = {
    "wal_level": "sets what the WAL can be used for: lowering it breaks standbys, archiving and backups",
    "autovacuum": "off defers vacuum past the measured window (table bloat, transaction ID wraparound)",
    "autovacuum_freeze_max_age": "transaction ID wraparound protection",
    "autovacuum_multixact_freeze_max_age": "multixact wraparound protection",
    "old_snapshot_threshold": "queries may fail with 'snapshot too old'",
    "max_stack_depth": "above the OS stack limit it is refused; near it a deep query crashes the backend",
    "geqo_seed": "a random seed: meaningless to tune",
    "huge_pages": "platform memory setup: 'on' without huge pages stops the server from starting",
    "huge_page_size": "platform memory setup: a size the kernel lacks stops the server from starting",
    "shared_memory_type": "platform memory setup: a type the platform lacks stops the server from starting",
    "dynamic_shared_memory_type": "platform memory setup: a type the platform lacks stops the server from starting",
    "min_dynamic_shared_memory": "preallocated at start from huge pages: sized by platform, not by workload",
    "max_prepared_transactions": "two-phase commit capacity: lowering it refuses PREPARE TRANSACTION",
    "max_locks_per_transaction": "too low makes transactions fail with 'out of shared memory'",
    "max_pred_locks_per_transaction": "too low makes serializable transactions fail with 'out of shared memory'",
    "max_files_per_process": "above the OS's open-file limit the server fails to open files",
    "checkpoint_warning": "logging: when to warn about frequent checkpoints",
}

# ----------------------------------------------------------------------------- MariaDB screen
#: (name pattern, why) for MariaDB/MySQL variables; the first match wins
MYSQL_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"^wsrep_", "Galera cluster replication"),
    (r"(^rpl_|slave|replica|^master_|relay_log|^sync_master|^gtid_|^read_binlog|^server_id$)", "replication"),
    (r"(^|_)binlog|^log_bin|^expire_logs|^sql_log_bin$", "binary log: replication and point-in-time recovery"),
    (r"^(general_log|slow_query_log|slow_launch_time|log_|long_query_time|min_examined_row_limit|note_verbosity"
     r"|userstat|profiling|optimizer_trace|progress_report_time|innodb_(status_output|print_|ft_enable_diag"
     r"|cmp_per_index|deadlock_report|buf_dump_status))", "logging, profiling and monitoring output"),
    (r"(ssl|tls|password|^auth|^secure_|^local_infile$|^require_secure|^automatic_sp_privileges$"
     r"|^disconnect_on_expired|encrypt|^innodb_encryption|^innodb_immediate_scrub)", "security and authentication"),
    (r"timeout", "a timeout: shorter makes clients fail, longer changes when they give up"),
    (r"(_now$|^innodb_buffer_pool_(dump|load)|^innodb_buffer_pool_in_core_dump$|^innodb_optimize_fulltext_only$"
     r"|^innodb_fast_shutdown$|^innodb_max_purge_lag_wait$)", "an action or shutdown behaviour, not a setting"),
    (r"^(character_set_|collation_|lc_|sql_|tx_|system_versioning_|auto_increment_|session_track_)"
     r"|^(default_week_format|div_precision_increment|default_regex_flags"
     r"|explicit_defaults_for_timestamp|old|old_mode|old_alter_table|standard_compliant_cte"
     r"|updatable_views_with_limit|check_constraint_checks|foreign_key_checks|unique_checks"
     r"|autocommit|completion_type|transaction_isolation|transaction_read_only|big_tables|mysql56_temporal_format"
     r"|alter_algorithm|low_priority_updates|innodb_strict_mode|innodb_snapshot_isolation|innodb_table_locks"
     r"|innodb_deadlock_detect|read_only|event_scheduler|query_cache_wlock_invalidate)$",
     "changes what statements do or return (semantics, isolation, locking, protocol)"),
    (r"^(max_sort_length|group_concat_max_len|max_join_size|max_error_count|max_recursive_iterations"
     r"|max_sp_recursion_depth|max_allowed_packet|max_session_mem_used|max_tmp_tables|max_prepared_stmt_count"
     r"|max_connect_errors|max_connections|max_user_connections|extra_max_connections|max_delayed_threads"
     r"|max_insert_delayed_threads|delayed_insert_limit|delayed_queue_size|max_write_lock_count|net_retry_count"
     r"|innodb_online_alter_log_max_size|expensive_subquery_limit|max_statement_time)$",
     "a limit: too low makes statements fail or truncates their results"),
    (r"^(innodb_default_row_format|innodb_file_per_table|innodb_checksum_algorithm|innodb_force_primary_key"
     r"|innodb_instant_alter_column_allowed|innodb_read_only_compressed|innodb_compression_default"
     r"|innodb_compression_algorithm|myisam_data_pointer_size|column_compression_|aria_page_checksum|keep_files_on_create)",
     "the on-disk format of new tables (a table created in one trial keeps it)"),
    (r"^(flush|flush_time|delay_key_write|sync_frm|aria_sync_log_dir|aria_group_commit|aria_group_commit_interval"
     r"|aria_checkpoint_interval|aria_checkpoint_log_activity|aria_log_purge_type|aria_recover_options|aria_log_file_size)$",
     "durability and recovery of non-InnoDB (MyISAM, Aria) tables"),
    (r"^(innodb_ft_|ft_)", "full-text indexes only: unused by the benchmark or changes search results"),
    (r"^innodb_defragment", "used only by OPTIMIZE TABLE"),
    (r"^thread_pool_", "used only with thread_handling=pool-of-threads (read-only)"),
    (r"^tcp_keepalive", "network keepalive of idle client sockets"),
    (r"^net_buffer_length$", "its session value is read-only and the global one applies to new connections' buffers only"),
    (r"^query_cache_", "the query cache: off by default and deprecated; it silently ignores sizes below its minimum"),
    (r"^innodb_log_file_buffering$", "one-way until a restart: once on, MariaDB 10.11 reopens the redo log buffered and"
     " no longer lets it be set off (os_file_log_buffered clears log_maybe_unbuffered)"),
    (r"^(innodb_io_capacity_max|innodb_max_dirty_pages_pct_lwm|innodb_buffer_pool_size_auto_min)$",
     "bound by another knob (the server clamps it to innodb_io_capacity, innodb_max_dirty_pages_pct"
     " or the buffer pool size), so a sampled value is not the one that takes effect"),
)
_MYSQL_RULES = tuple((re.compile(p), why) for p, why in MYSQL_PATTERNS)

#: name patterns of disk sizes (not memory): ranged against the current value, not the RAM
DISK_SIZE = re.compile(r"(wal_size|wal_keep_size|log_file_size|undo_log_size|sort_file_size|temp_file_limit|binlog_size)")
#: planner hints about memory: may be as large as the RAM, allocate nothing
MEMORY_HINTS = frozenset({"effective_cache_size"})
#: thread or worker counts, capped by cores
THREADS = re.compile(r"(workers|_threads$|worker_processes)")
#: PostgreSQL memory units -> bytes
PG_UNIT_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "MB": 1024**2, "16MB": 16 * 1024**2, "GB": 1024**3, "TB": 1024**4}
#: MariaDB variables in bytes that hold memory (others ending in _size may count entries or be disk)
_MYSQL_MEMORY = re.compile(r"(_size$|_buff_size$)")
_MYSQL_NOT_MEMORY = re.compile(r"^(histogram_size|innodb_ft_|key_cache_file_hash_size|innodb_lru_flush_size|innodb_purge_batch_size)")


@dataclass(frozen=True)
class KnobInfo:
    """One server variable as the server describes it."""

    name: str
    vartype: str  # bool, integer, real, enum
    value: Any  # the value a new session gets now, in `unit`
    unit: str | None
    low: float | None
    high: float | None
    choices: tuple = ()
    how: str = "session"  # session | reload | restart
    description: str = ""
    step: float = 1.0  # the server rounds values to multiples of this (MariaDB NUMERIC_BLOCK_SIZE)


@dataclass(frozen=True)
class Proposal:
    """The range we propose to tune a knob over (clipped to the server's own limits)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()


@dataclass(frozen=True)
class Catalogue:
    """What a server offers to tune: proposals for the knobs kept, reasons for the knobs left out."""

    proposals: dict[str, Proposal]
    excluded: dict[str, str] = field(default_factory=dict)


def host_memory() -> int:
    """The host's RAM in bytes (psutil; the server is assumed to run on this host)."""
    import psutil

    return int(psutil.virtual_memory().total)


def server_memory_cap(unit: int = 1, floor: int = 1 << 30) -> int:
    """The upper end of a curated server-wide buffer's range, in `unit`s: SERVER_MEMORY_SHARE of the host's RAM
    (what the full catalogue allows), but never below `floor` bytes (the fixed 1 GB the curated ranges had)."""
    return int(max(host_memory() * SERVER_MEMORY_SHARE, floor)) // unit


def host_cores() -> int:
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------- reading
def screen(conn, dialect: str, *, allow_restart: bool, keep: Iterable[str] = ()) -> tuple[list[str], dict[str, str]]:
    """(candidate knob names, excluded name -> why) from the server's own list; `keep` skips the name screen."""
    if dialect == "postgres":
        return _screen_postgres(conn, allow_restart, set(keep))
    if dialect == "mysql":
        return _screen_mysql(conn, set(keep))
    raise ValueError(f"no knob catalogue for dialect {dialect!r}")


def _screen_postgres(conn, allow_restart: bool, keep: set[str]) -> tuple[list[str], dict[str, str]]:
    rows = conn.execute("SELECT name, vartype, context, category FROM pg_settings ORDER BY name").fetchall()
    names, excluded = [], {}
    for name, vartype, context, category in rows:
        why = _pg_reason(name, vartype, context, category or "", allow_restart, name in keep)
        if why:
            excluded[name] = why
        else:
            names.append(name)
    return names, excluded


def _pg_reason(name: str, vartype: str, context: str, category: str, allow_restart: bool, kept: bool) -> str:
    if context == "internal":
        return "fixed when the server was built or initialized"
    if context in ("backend", "superuser-backend"):
        return "set only when a connection starts"
    if vartype == "string":
        return "free text (names, paths, lists): no range to tune"
    if kept:
        return ""  # a curated or durability-guarded knob: its own rules apply (restart-only ones left to space())
    if context == "postmaster" and not allow_restart:
        return "needs a server restart (allow it with --allow-restart true and --restart-command)"
    if name in PG_NAMES:
        return PG_NAMES[name]
    for prefix, why in PG_CATEGORIES:
        if category.startswith(prefix):
            return why
    return ""


def _screen_mysql(conn, keep: set[str]) -> tuple[list[str], dict[str, str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT VARIABLE_NAME, VARIABLE_TYPE, READ_ONLY, VARIABLE_SCOPE FROM information_schema.SYSTEM_VARIABLES"
            " ORDER BY VARIABLE_NAME"
        )
        rows = cur.fetchall()
    names, excluded = [], {}
    for name, vtype, read_only, scope in rows:
        name = name.lower()
        why = _mysql_reason(name, vtype, read_only == "YES", scope, name in keep)
        if why:
            excluded[name] = why
        else:
            names.append(name)
    return names, excluded


def _mysql_reason(name: str, vtype: str, read_only: bool, scope: str, kept: bool) -> str:
    if scope == "SESSION ONLY":
        return "exists per connection only: no server-wide value"
    if vtype in ("VARCHAR", "SET", "FLAGSET"):
        return "free text or a set of flags: no range to tune"
    if kept:
        return ""
    if read_only:
        return "read-only while the server runs (MariaDB has no persisted SET for autosys to use)"
    for pattern, why in _MYSQL_RULES:
        if pattern.search(name):
            return why
    return ""


# ----------------------------------------------------------------------------- ranges
def memory_unit(info: KnobInfo, dialect: str) -> int | None:
    """Bytes per unit of a memory knob, or None for a knob that is not a memory size."""
    if DISK_SIZE.search(info.name):
        return None
    if dialect == "postgres":
        return PG_UNIT_BYTES.get(info.unit or "")
    if _MYSQL_MEMORY.search(info.name) and not _MYSQL_NOT_MEMORY.search(info.name):
        return 1
    return None


def propose(info: KnobInfo, dialect: str, *, ram: int, cores: int) -> Proposal | str:
    """The tuning range of one knob (see the module docstring), or why it has none."""
    if "deprecated" in (info.description or "").lower():
        return "deprecated: the server says it has no effect or will go away"
    if info.vartype == "bool":
        return Proposal()
    if info.vartype == "enum":
        return Proposal() if len(set(info.choices) | {info.value}) > 1 else "a single choice"
    if info.vartype not in ("integer", "real"):
        return f"type {info.vartype}: no range to tune"
    if info.low is None or info.high is None or not info.high > info.low:
        return "the server reports no range for it"
    low, high, value = float(info.low), float(info.high), float(info.value)
    integer = info.vartype == "integer"
    if not low <= value <= high:
        return "its current value lies outside the range the server reports"
    if value >= high / 2 and high >= 2**31 - 1:
        return "its value is the server's maximum (no limit): a lower limit changes what statements may do"
    unit = memory_unit(info, dialect)
    if unit is not None:
        share = 1.0 if info.name in MEMORY_HINTS else SESSION_MEMORY_SHARE if info.how == "session" else SERVER_MEMORY_SHARE
        cap = max(ram * share / unit, value)
        if value <= 0:
            lo, hi = max(low, value), min(high, cap)
        else:
            lo, hi = max(low, value / 64, 1.0 if integer else 0.0), min(high, cap)
    elif THREADS.search(info.name):
        lo, hi = low, min(high, max(THREADS_PER_CORE * cores, value))
    elif DISK_SIZE.search(info.name) and value > 0:
        lo, hi = max(low, value / 16), min(high, value * 16)
    elif (high - low <= 1024) or value <= 0:
        lo = max(low, value) if value <= 0 and low < value else low
        hi = min(high, lo + 1024)
    else:
        lo, hi = max(low, value / 16), min(high, value * 16)
    lo, hi = min(lo, value), max(hi, value)
    if integer:
        lo, hi = float(int(lo)), float(int(hi))
    if not hi > lo:
        return "no room to tune inside the server's limits"
    log = lo > 0 and hi / lo >= 16
    return Proposal(lo, hi, log=log)


def full_catalogue(
    infos: Mapping[str, KnobInfo],
    dialect: str,
    *,
    curated: Mapping[str, Proposal],
    excluded: Mapping[str, str],
    ram: int | None = None,
    cores: int | None = None,
) -> Catalogue:
    """Proposals for every screened knob the server described (curated ranges kept as they are)."""
    ram = host_memory() if ram is None else ram
    cores = host_cores() if cores is None else cores
    proposals: dict[str, Proposal] = {}
    out_excluded = dict(excluded)
    for name, info in infos.items():
        result: Any = propose(info, dialect, ram=ram, cores=cores)
        if name in curated:
            mine = curated[name]
            if (memory_unit(info, dialect) or DISK_SIZE.search(name)) and isinstance(result, Proposal) and mine.high is not None and result.high:
                mine = Proposal(mine.low, max(mine.high, result.high), log=mine.log, choices=mine.choices)
            proposals[name] = mine  # the curated range; a memory or disk size's widened like any other's
            continue
        if isinstance(result, str):
            out_excluded[name] = result
        else:
            proposals[name] = result
    return Catalogue(dict(sorted(proposals.items())), dict(sorted(out_excluded.items())))


__all__ = ["Catalogue", "KnobInfo", "Proposal", "full_catalogue", "host_cores", "host_memory", "memory_unit", "propose", "screen",
           "server_memory_cap"]
