"""MariaDB/MySQL InnoDB knob tuning on a real server (pymysql).

Each knob's type, range, scope and whether it can change live come from
`information_schema.SYSTEM_VARIABLES`: variables with a SESSION scope are set
on every benchmark connection, dynamic GLOBAL ones with SET GLOBAL, and
read-only ones (`innodb_log_buffer_size`, `innodb_doublewrite`,
`innodb_flush_method`, ...) only with `allow_restart` and a
`restart_command`. The restore snapshot (adapters/dbserver/base.py) is every
global variable (`SHOW GLOBAL VARIABLES`), keyed by the server's `server_uid`,
so side effects such as `innodb_io_capacity_max` rising with
`innodb_io_capacity` are put back too (SET GLOBAL; MariaDB has no persisted
SET, so a restart also restores). Knob names are checked against the catalog and a strict
pattern before they reach SQL; values always travel as parameters. With
`durable`, `innodb_flush_log_at_trx_commit` stays 1 and `innodb_doublewrite`
on. The benchmark runs in its own database, created and dropped.
"""

from __future__ import annotations

from typing import Any

from autosys_adapters.workloads.base import Session
from autosys_adapters.dbserver.base import NAME_RE, KnobInfo, Proposal, ServerKnobs, Snapshot
from autosys_adapters.dbserver.catalogue import server_memory_cap
from autosys.core.space import Config, InvalidConfig
from autosys.core.system import SystemUnavailable

P = Proposal
MIB = 1024 * 1024
PROPOSALS = {
    # dynamic, global
    # up to 3/4 of the host's RAM, as the full catalogue allows (catalogue.py): 2M analytic rows read from disk
    # through a 128 MB pool (O_DIRECT) ran about 10x slower than from a 1 GB one (probe_analytic_headroom.py)
    "innodb_buffer_pool_size": P(32 * MIB, server_memory_cap(), log=True),
    "innodb_flush_log_at_trx_commit": P(0, 2),
    "innodb_log_file_size": P(16 * MIB, 1024 * MIB, log=True),
    "innodb_io_capacity": P(100, 20_000, log=True),
    "innodb_adaptive_hash_index": P(),
    "innodb_change_buffering": P(choices=("none", "inserts", "all")),
    "innodb_flush_neighbors": P(0, 2),
    "innodb_max_dirty_pages_pct": P(10.0, 90.0),
    # session scope
    "sort_buffer_size": P(32 * 1024, 64 * MIB, log=True),
    "join_buffer_size": P(128 * 1024, 64 * MIB, log=True),
    # analytic queries (experiments/probe_analytic_headroom.py): 2 (the default) allows only block nested loops;
    # 3-8 add hashed and batched-key-access joins (an unindexed join of 2M rows: ~55 s -> ~1.5 s)
    "join_cache_level": P(0, 8),
    # the in-memory limit of internal temp tables (GROUP BY, DISTINCT); past it they go to disk (Aria):
    # a 500k-group GROUP BY over 2M rows took ~9 s at the default 16 MB, ~1.2 s at 256 MB
    "max_heap_table_size": P(1 * MIB, 1024 * MIB, log=True),
    # the other half of that limit: an in-memory temp table may grow to the lesser of the two
    "tmp_table_size": P(1 * MIB, 1024 * MIB, log=True),
    # read-only: restart only
    "innodb_log_buffer_size": P(2 * MIB, 256 * MIB, log=True),
    "innodb_doublewrite": P(),
    "innodb_flush_method": P(choices=("fsync", "O_DSYNC", "O_DIRECT", "O_DIRECT_NO_FSYNC")),
}

# numeric variable types in information_schema.SYSTEM_VARIABLES.VARIABLE_TYPE
_INT_TYPES = ("INT", "BIGINT", "INT UNSIGNED", "BIGINT UNSIGNED")


def _pymysql():
    try:
        import pymysql
    except ImportError:  # pragma: no cover - the db extra is missing
        raise SystemUnavailable("pymysql is not installed: pip install 'autosys-toolkit[db]'") from None
    return pymysql


class MySQLKnobs(ServerKnobs):
    """Tunes a MariaDB/MySQL server's InnoDB knobs for throughput on a seeded workload.

    Options: host, port, user, password, workload, allow_restart with
    restart_command, durable, seed, records, operations, concurrency, seconds,
    warmup, repeats, connect_timeout, statement_timeout, knobs, state_file,
    rate (offered load for sysbench, transactions/s), keep_dataset.

    Args:
        host, port: where the server listens.
        user: the account autosys connects as.
        password: the account's password (on resume: --password again or AUTOSYS_PASSWORD).
    """

    name = "mysql"
    exclusive = True
    secret_options = ("password",)  # never stored or printed; on resume: --password or AUTOSYS_PASSWORD
    dialect = "mysql"
    PROPOSALS = PROPOSALS
    #: sync_binlog other than 1 can lose binary-log events (so replicas and point-in-time recovery miss commits)
    DURABLE = {"innodb_flush_log_at_trx_commit": (1,), "innodb_doublewrite": ("on",), "sync_binlog": (1,)}
    IGNORED = {
        "gtid_binlog_pos": "advances with every binlogged write",
        "gtid_binlog_state": "advances with every binlogged write",
        "gtid_current_pos": "advances with every write or replicated event",
        "gtid_slave_pos": "advances as a replica applies events",
    }

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3306,
        user: str = "root",
        password: str = "",
        workload: str = "tpcc-like",
        allow_restart: bool = False,
        restart_command: str = "",
        durable: bool = True,
        seed: int = 0,
        records: int = 0,
        operations: int = 100_000,  # enough for ~10k ops/s over warm-up + window; see StreamExhausted
        concurrency: int = 4,
        seconds: float = 3.0,
        warmup: float = 0.5,
        repeats: int = 1,
        connect_timeout: float = 3.0,
        statement_timeout: float = 30.0,
        knobs: str = "",
        state_file: str | None = None,
        rate: int = 0,
        keep_dataset: bool = True,
    ):
        self.host, self.port, self.user, self.password = host, int(port), user, password
        super().__init__(
            workload=workload, allow_restart=allow_restart, restart_command=restart_command, durable=durable, seed=seed,
            records=records, operations=operations, concurrency=concurrency, seconds=seconds, warmup=warmup,
            repeats=repeats, connect_timeout=connect_timeout, statement_timeout=statement_timeout, knobs=knobs,
            state_file=state_file, rate=rate, keep_dataset=keep_dataset,
        )

    # ------------------------------------------------------------------ connections
    def _connect(self, database: str | None):
        pymysql = _pymysql()
        timeout = max(int(round(self.connect_timeout)), 1)
        io_timeout = int(self.statement_timeout) + 5  # a dead server cannot hang a read forever
        try:
            return pymysql.connect(
                host=self.host, port=self.port, user=self.user, password=self.password, database=database,
                autocommit=True, connect_timeout=timeout, read_timeout=io_timeout, write_timeout=io_timeout,
            )
        except pymysql.err.OperationalError as exc:
            raise SystemUnavailable(f"mysql at {self.host}:{self.port} cannot be reached: {exc}") from None

    def _admin(self, database: str | None = None):
        return self._connect(database)

    def _bench_session(self, client: int, session_knobs: Config) -> Session:
        conn = self._connect(self.database)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION max_statement_time = %s", (float(self.statement_timeout),))
                cur.execute("SET SESSION innodb_lock_wait_timeout = %s", (max(int(self.statement_timeout), 1),))
                for name, value in session_knobs.items():
                    if not NAME_RE.match(name) or name not in self.catalog():
                        raise InvalidConfig(f"bad knob name {name!r}")
                    cur.execute(f"SET SESSION {name} = %s", (_value(value),))
        except BaseException:
            conn.close()
            raise
        return Session(conn, "mysql")

    def _retryable(self, exc: BaseException) -> bool:
        pymysql = _pymysql()
        return isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] in (1213, 1205)

    def _connection_error(self, exc: BaseException) -> bool:
        pymysql = _pymysql()
        return isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError))

    # ------------------------------------------------------------------ catalog
    def _read_catalog(self, conn, names: list[str]) -> dict[str, KnobInfo]:
        upper = [n.upper() for n in names]
        marks = ", ".join(["%s"] * len(upper))
        with conn.cursor() as cur:
            cur.execute(
                "SELECT VARIABLE_NAME, VARIABLE_TYPE, GLOBAL_VALUE, NUMERIC_MIN_VALUE, NUMERIC_MAX_VALUE, ENUM_VALUE_LIST,"
                " READ_ONLY, VARIABLE_SCOPE, VARIABLE_COMMENT, NUMERIC_BLOCK_SIZE"
                f" FROM information_schema.SYSTEM_VARIABLES WHERE VARIABLE_NAME IN ({marks})",
                upper,
            )
            rows = cur.fetchall()
        out = {}
        for name, vtype, value, low, high, enums, read_only, scope, comment, block in rows:
            name = name.lower()
            how = "restart" if read_only == "YES" else ("session" if scope == "SESSION" else "reload")
            choices = tuple(enums.split(",")) if enums else ()
            if vtype == "BOOLEAN":
                vartype, val = "bool", str(value).lower()
                choices = ("off", "on")
            elif vtype in ("ENUM", "SET"):
                vartype, val = "enum", value
            elif vtype in _INT_TYPES:
                vartype, val = "integer", int(value)
            elif vtype == "DOUBLE":
                vartype, val = "real", float(value)
            else:
                continue  # strings and the like are not tuned
            out[name] = KnobInfo(
                name=name, vartype=vartype, value=val, unit="bytes" if name.endswith("_size") else None,
                low=float(low) if low is not None else None, high=float(high) if high is not None else None,
                choices=choices, how=how, description=comment or "", step=max(float(block or 1), 1.0),
            )
        return out

    # ------------------------------------------------------------------ identity and snapshots
    def _server_identity(self, conn) -> str:
        """MariaDB's `@@server_uid` or MySQL's `@@server_uuid`, else the server's hostname, port and data directory."""
        with conn.cursor() as cur:
            for variable in ("server_uid", "server_uuid"):
                try:
                    cur.execute(f"SELECT @@{variable}")
                    return f"{variable}-{cur.fetchone()[0]}"
                except _pymysql().err.OperationalError:  # unknown system variable on this server
                    continue
            cur.execute("SELECT @@hostname, @@port, @@datadir")
            return "-".join(str(v) for v in cur.fetchone())

    def _take_snapshot(self, conn) -> Snapshot:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL VARIABLES")
            return {"globals": {name.lower(): value for name, value in cur.fetchall()}}

    def _variable_kinds(self, conn, names: list[str]) -> dict[str, tuple[str, bool]]:
        """name -> (VARIABLE_TYPE, read only) from information_schema.SYSTEM_VARIABLES."""
        if not names:
            return {}
        marks = ", ".join(["%s"] * len(names))
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT VARIABLE_NAME, VARIABLE_TYPE, READ_ONLY FROM information_schema.SYSTEM_VARIABLES WHERE VARIABLE_NAME IN ({marks})",
                [n.upper() for n in names],
            )
            return {name.lower(): (vtype, read_only == "YES") for name, vtype, read_only in cur.fetchall()}

    def _put_back(self, conn, saved: Snapshot, now: Snapshot, differing: list[tuple[str, str]]) -> None:
        """SET GLOBAL each differing variable, tuned knobs first (they bound others, e.g. io_capacity_max)."""
        before = saved.get("globals") or {}
        names = sorted((n for s, n in differing if s == "globals" and n in before), key=lambda n: (n not in self.wanted, n))
        kinds = self._variable_kinds(conn, names)
        for name in names:
            vtype, _ = kinds.get(name, ("VARCHAR", False))
            try:
                self._set_global(conn, name, _typed(before[name], vtype))
            except (_pymysql().err.MySQLError, InvalidConfig):
                pass  # one bound by another, or a resize still running: the next pass retries and reports

    def _restart_only(self, conn, saved: Snapshot, now: Snapshot, differing: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Differing read-only variables, and variables that exist on only one side (a plugin came or went)."""
        before, after = saved.get("globals") or {}, now.get("globals") or {}
        kinds = self._variable_kinds(conn, [n for _, n in differing])
        return [(s, n) for s, n in differing if n not in before or n not in after or kinds.get(n, ("", False))[1]]

    # ------------------------------------------------------------------ changing
    def _set_global(self, conn, name: str, value: Any) -> None:
        if not NAME_RE.match(name):
            raise InvalidConfig(f"bad knob name {name!r}")
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL {name} = %s", (_value(value),))

    def _set_server_knob(self, conn, info: KnobInfo, value: Any) -> None:
        if info.how == "restart":
            raise InvalidConfig(f"mysql: {info.name} is read-only while the server runs (MariaDB has no persisted SET)")
        self._set_global(conn, info.name, value)

    def _took(self, name: str, got: Any, wanted: Any) -> bool:
        # InnoDB rounds the buffer pool and log sizes to its chunk/block sizes
        if name in ("innodb_buffer_pool_size", "innodb_log_file_size"):
            return abs(float(got) - float(wanted)) <= max(8 * MIB, 0.02 * float(wanted))
        step = self.catalog()[name].step if name in self.catalog() else 1.0
        if step > 1:  # the server rounds down to its block size
            return abs(float(got) - float(wanted)) < step
        return super()._took(name, got, wanted)

    def _reload(self, conn) -> None:
        """SET GLOBAL takes effect at once (buffer pool resizes run in the background)."""

    def _pending_restart(self, conn, names: list[str]) -> list[str]:
        return []

    def _create_database(self, conn) -> None:
        if not NAME_RE.match(self.database):
            raise ValueError(f"bad database name {self.database!r}")
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.database}`")

    def _drop_database(self, conn, name: str) -> None:
        if not name.startswith("autosys_bench_") or not NAME_RE.match(name):
            raise ValueError(f"refusing to drop database {name!r}: not one autosys created")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def _counters(self, conn) -> dict[str, float]:
        wanted = {
            "Innodb_buffer_pool_read_requests": "blocks_hit",
            "Innodb_buffer_pool_reads": "blocks_read",
            "Rows_read": "rows_read",
            "Handler_write": "rows_inserted",
            "Handler_update": "rows_updated",
            "Handler_delete": "rows_deleted",
            "Innodb_os_log_written": "wal_bytes",
            "Com_commit": "commits",
        }
        marks = ", ".join(["%s"] * len(wanted))
        with conn.cursor() as cur:
            cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({marks})", list(wanted))
            rows = dict(cur.fetchall())
        out = {wanted[k]: float(v) for k, v in rows.items() if k in wanted}
        out["rows_written"] = out.pop("rows_inserted", 0.0) + out.pop("rows_updated", 0.0) + out.pop("rows_deleted", 0.0)
        return out

    def _periodic(self, conn) -> dict[str, float]:
        """InnoDB's periodic work: `checkpoints` counts redo-log cycles (redo written / `innodb_log_file_size`).

        MariaDB 10.11 checkpoints continuously (fuzzy) and counts no checkpoints;
        before the redo log wraps, every page dirtied a log's length ago must be
        flushed, so one log's worth of redo is one full checkpoint cycle. Pages
        flushed and the checkpoint LSN's advance come with it.
        """
        wanted = ("Innodb_os_log_written", "Innodb_buffer_pool_pages_flushed", "Innodb_lsn_last_checkpoint")
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (%s, %s, %s)", wanted)
            rows = {k: float(v) for k, v in cur.fetchall()}
            cur.execute("SELECT @@innodb_log_file_size")
            log_size = float(cur.fetchone()[0]) or 1.0
        return {
            "checkpoints": rows.get("Innodb_os_log_written", 0.0) / log_size,
            "pages_flushed": rows.get("Innodb_buffer_pool_pages_flushed", 0.0),
            "checkpoint_advance_bytes": rows.get("Innodb_lsn_last_checkpoint", 0.0),
        }

    def _client_knobs(self, conn, session_knobs: Config) -> Config:
        """sysbench's MariaDB client takes no session settings: set them as the global defaults new sessions
        start from (the snapshot taken at setup puts them back at teardown)."""
        for name, value in session_knobs.items():
            if name not in self.catalog():
                raise InvalidConfig(f"bad knob name {name!r}")
            self.sent.append(f"SET GLOBAL {name}")
            self._set_global(conn, name, value)
        return {}


def _typed(text: str | None, vtype: str) -> Any:
    """A SHOW GLOBAL VARIABLES value as SET GLOBAL takes it for its type (numbers as numbers)."""
    if text is None or text == "" and vtype not in ("VARCHAR", "SET", "ENUM"):
        return None
    if vtype in _INT_TYPES:
        return int(text)
    if vtype == "DOUBLE":
        return float(text)
    return text


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return value
