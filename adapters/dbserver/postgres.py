"""PostgreSQL knob tuning on a real server (psycopg 3).

Each knob's type, unit, range and context come from `pg_settings`:
`user`/`superuser` knobs are SET on every benchmark connection (through
`set_config`, fully parameterized), `sighup` knobs change server-wide with
ALTER SYSTEM + `pg_reload_conf()`, and `postmaster` (restart-only) knobs such
as `shared_buffers` are tuned only with `allow_restart` and a
`restart_command`. The restore snapshot (adapters/dbserver/base.py) is every
`pg_settings` row (its reset value, source and pending restart) plus the
entries of `postgresql.auto.conf` (read with `pg_read_file`), keyed by the
cluster's `system_identifier`; restoring rewrites the differing auto.conf
entries (ALTER SYSTEM SET/RESET), reloads, and restarts only when a
restart-only setting still differs and a restart command was given. The benchmark runs in its own database, created and dropped.
With `durable` (the default) `fsync` and `full_page_writes` stay on and
`synchronous_commit` may not be off.
"""

from __future__ import annotations

import re
import time
from typing import Any

from autosys_adapters.workloads.base import Session
from autosys_adapters.dbserver.base import NAME_RE, KnobInfo, Proposal, ServerKnobs, Snapshot
from autosys_adapters.dbserver.catalogue import server_memory_cap
from autosys.core.space import Config, InvalidConfig
from autosys.core.system import SystemUnavailable

P = Proposal
PROPOSALS = {
    # per session (SET)
    "synchronous_commit": P(choices=("on", "local", "remote_write", "off")),
    "commit_delay": P(0, 20_000),  # superuser; microseconds
    "commit_siblings": P(0, 20),
    "work_mem": P(256, 262_144, log=True),  # kB
    "random_page_cost": P(1.0, 8.0),
    "effective_io_concurrency": P(0, 256),
    "wal_compression": P(choices=("off", "pglz", "lz4", "zstd")),
    "jit": P(),
    # server-wide, reload (ALTER SYSTEM + pg_reload_conf)
    "wal_writer_delay": P(1, 10_000, log=True),  # ms
    "wal_writer_flush_after": P(0, 16_384),  # 8kB pages
    "wal_sync_method": P(choices=("fsync", "fdatasync", "open_sync", "open_datasync")),
    "checkpoint_timeout": P(30, 3_600, log=True),  # s
    "checkpoint_completion_target": P(0.1, 0.99),
    "max_wal_size": P(64, 16_384, log=True),  # MB
    "bgwriter_delay": P(10, 10_000, log=True),  # ms
    "bgwriter_lru_maxpages": P(0, 1_000),
    "fsync": P(),
    "full_page_writes": P(),
    # restart-only (postmaster): only with allow_restart
    "shared_buffers": P(2_048, server_memory_cap(8192), log=True),  # 8kB pages: 16 MB .. 3/4 of the host's RAM
    "wal_buffers": P(8, 8_192, log=True),  # 8kB pages
}

DEFAULT_KNOBS = ",".join(PROPOSALS)


def _psycopg():
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the db extra is missing
        raise SystemUnavailable("psycopg is not installed: pip install 'autosys-toolkit[db]'") from None
    return psycopg


class PostgresKnobs(ServerKnobs):
    """Tunes a PostgreSQL server's knobs for throughput on a seeded workload.

    Options: url, workload (preset such as tpcc-like or ycsb-a, or a JSON/TOML
    file), allow_restart with restart_command, durable, seed, records,
    operations, concurrency (client threads), seconds and warmup of each
    measured run, repeats, connect_timeout, statement_timeout (seconds),
    knobs (comma-separated subset), state_file, rate (offered load for
    pgbench/sysbench, transactions/s), keep_dataset (sysbench's cached tables).

    Args:
        url: the server, postgresql://USER@HOST:PORT/DB (a password in it is never stored).
    """

    name = "postgres"
    exclusive = True
    dialect = "postgres"
    PROPOSALS = PROPOSALS
    DURABLE = {"fsync": ("on",), "full_page_writes": ("on",), "synchronous_commit": ("on", "local", "remote_write", "remote_apply")}
    IGNORED = {
        "application_name": "each connection names itself; not a server setting",
        "in_hot_standby": "changes when a standby is promoted; reports state, no one sets it",
    }

    def __init__(
        self,
        url: str = "postgresql://postgres@127.0.0.1:5432/postgres",
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
        self.url = url  # a password inside it is never stored (SystemSpec.public strips it)
        psycopg = _psycopg()
        try:
            info = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"postgres: bad --url {url!r}: {exc}") from None
        self._host = str(info.get("host", "local"))
        self._port = str(info.get("port", "5432"))
        super().__init__(
            workload=workload, allow_restart=allow_restart, restart_command=restart_command, durable=durable, seed=seed,
            records=records, operations=operations, concurrency=concurrency, seconds=seconds, warmup=warmup,
            repeats=repeats, connect_timeout=connect_timeout, statement_timeout=statement_timeout, knobs=knobs,
            state_file=state_file, rate=rate, keep_dataset=keep_dataset,
        )

    # ------------------------------------------------------------------ connections
    def _connect(self, database: str | None, application: str):
        psycopg = _psycopg()
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(int(round(self.connect_timeout)), 1),
            "application_name": application,
        }
        if database is not None:
            kwargs["dbname"] = database
        try:
            return psycopg.connect(self.url, **kwargs)
        except psycopg.OperationalError as exc:
            raise SystemUnavailable(f"postgres at {self._host}:{self._port} cannot be reached: {str(exc).strip()}") from None

    def _admin(self, database: str | None = None):
        conn = self._connect(database, "autosys-admin")
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(int(self.statement_timeout * 1000)),))
        return conn

    def _bench_session(self, client: int, session_knobs: Config) -> Session:
        conn = self._connect(self.database, "autosys-bench")
        try:
            timeout_ms = str(int(self.statement_timeout * 1000))
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout_ms,))
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (timeout_ms,))
            for name, value in session_knobs.items():
                if not NAME_RE.match(name):  # names come from the validated space; belt and braces
                    raise InvalidConfig(f"bad knob name {name!r}")
                conn.execute("SELECT set_config(%s, %s, false)", (name, _text(value)))
        except BaseException:
            conn.close()
            raise
        return Session(conn, "postgres")

    def _retryable(self, exc: BaseException) -> bool:
        psycopg = _psycopg()
        return isinstance(exc, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure))

    def _connection_error(self, exc: BaseException) -> bool:
        return isinstance(exc, _psycopg().OperationalError)

    # ------------------------------------------------------------------ catalog
    def _read_catalog(self, conn, names: list[str]) -> dict[str, KnobInfo]:
        rows = conn.execute(
            "SELECT name, vartype, reset_val, unit, min_val, max_val, enumvals, context, short_desc"
            " FROM pg_settings WHERE name = ANY(%s)",
            (list(names),),
        ).fetchall()
        out = {}
        for name, vartype, reset_val, unit, min_val, max_val, enumvals, context, desc in rows:
            how = {"postmaster": "restart", "sighup": "reload"}.get(context, "session")
            if context in ("internal", "backend", "superuser-backend"):
                continue  # cannot be changed by us at all
            value: Any = reset_val
            if vartype == "integer":
                value = int(reset_val)
            elif vartype == "real":
                value = float(reset_val)
            out[name] = KnobInfo(
                name=name, vartype=vartype, value=value, unit=unit,
                low=float(min_val) if min_val is not None else None,
                high=float(max_val) if max_val is not None else None,
                choices=tuple(enumvals or ()), how=how, description=desc or "",
            )
        return out

    # ------------------------------------------------------------------ identity and snapshots
    def _server_identity(self, conn) -> str:
        """The cluster's `system_identifier` and port (a standby shares the identifier; never its port on one host)."""
        port = conn.execute("SELECT current_setting('port')").fetchone()[0]
        try:
            row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
        except _psycopg().errors.InsufficientPrivilege:
            return f"url-{self._host}-{port}"  # only a superuser may read it: fall back to the address
        return f"{row[0]}-{port}"

    def _take_snapshot(self, conn) -> Snapshot:
        """Every pg_settings row and the postgresql.auto.conf entries.

        A row is (reset value, source, pending restart): the reset value is
        what a new session gets, so this connection's own SETs do not show;
        'session' and 'client' sources say only what this connection did.
        """
        rows = conn.execute("SELECT name, reset_val, source, pending_restart FROM pg_settings").fetchall()
        settings = {
            name: [value, "-" if source in ("session", "client") else source, bool(pending)]
            for name, value, source, pending in rows
        }
        return {"settings": settings, "auto_conf": self._auto_conf(conn)}

    def _auto_conf(self, conn) -> dict[str, str]:
        """The name -> value entries of postgresql.auto.conf (where ALTER SYSTEM writes), last one winning."""
        psycopg = _psycopg()
        try:
            text = conn.execute("SELECT pg_read_file('postgresql.auto.conf', 0, 1048576, true)").fetchone()[0]
            return parse_auto_conf(text or "")
        except psycopg.errors.InsufficientPrivilege:
            pass  # pg_read_file needs pg_read_server_files; the parsed view may still be readable
        try:
            rows = conn.execute(
                "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%postgresql.auto.conf' ORDER BY seqno"
            ).fetchall()
        except psycopg.errors.InsufficientPrivilege:
            return {}  # such a role cannot ALTER SYSTEM either; pg_settings still covers what it can change
        return {name: setting for name, setting in rows}

    def _put_back(self, conn, saved: Snapshot, now: Snapshot, differing: list[tuple[str, str]]) -> None:
        sql = _psycopg().sql
        before = saved.get("auto_conf") or {}
        for section, name in differing:
            if section != "auto_conf":
                continue
            if name not in before:
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            else:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(before[name])))
        self._reload(conn)  # also what puts back a setting whose file entry is already right

    def _restart_only(self, conn, saved: Snapshot, now: Snapshot, differing: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Differing restart-only (postmaster) settings whose auto.conf entry is already restored, and the
        `internal` ones the server derives from them at start (`shared_memory_size` follows `shared_buffers`)."""
        names = [n for s, n in differing if s == "settings" and ("auto_conf", n) not in differing]
        if not names:
            return []
        rows = conn.execute("SELECT name FROM pg_settings WHERE context IN ('postmaster', 'internal') AND name = ANY(%s)", (names,))
        return [("settings", r[0]) for r in rows.fetchall()]

    # ------------------------------------------------------------------ changing
    def _set_server_knob(self, conn, info: KnobInfo, value: Any) -> None:
        sql = _psycopg().sql
        conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(info.name), sql.Literal(_text(value))))

    def _reload(self, conn, timeout: float = 10.0) -> None:
        """pg_reload_conf(), then wait until a new session shows the reloaded files (pg_conf_load_time)."""
        asked = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while True:
            probe = self._connect(None, "autosys-admin")
            try:
                loaded = probe.execute("SELECT pg_conf_load_time()").fetchone()[0]
            finally:
                probe.close()
            if loaded >= asked:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres: the server did not reload its configuration within {timeout:.0f} s")
            time.sleep(0.02)

    def _pending_restart(self, conn, names: list[str]) -> list[str]:
        rows = conn.execute("SELECT name FROM pg_settings WHERE pending_restart AND name = ANY(%s)", (list(names),))
        return [r[0] for r in rows.fetchall()]

    def _create_database(self, conn) -> None:
        sql = _psycopg().sql
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def _drop_database(self, conn, name: str) -> None:
        if not name.startswith("autosys_bench_") or not NAME_RE.match(name):
            raise ValueError(f"refusing to drop database {name!r}: not one autosys created")
        sql = _psycopg().sql
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _before_run(self, conn) -> None:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")  # each run starts with no checkpoint debt from the last

    def _counters(self, conn) -> dict[str, float]:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, blks_hit, blks_read, tup_returned + tup_fetched, tup_inserted + tup_updated + tup_deleted,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        keys = ("commits", "blocks_hit", "blocks_read", "rows_read", "rows_written", "wal_bytes")
        return {k: float(v or 0) for k, v in zip(keys, row)}

    def _periodic(self, conn) -> dict[str, float]:
        """Checkpoints (timed + requested) and the buffers they, and the backends themselves, wrote (pg_stat_bgwriter)."""
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req, checkpoints_req, buffers_checkpoint, buffers_backend,"
            " checkpoint_write_time + checkpoint_sync_time FROM pg_stat_bgwriter"
        ).fetchone()
        keys = ("checkpoints", "checkpoints_requested", "checkpoint_buffers_written", "backend_buffers_written",
                "checkpoint_ms")
        return {k: float(v or 0) for k, v in zip(keys, row)}


def parse_auto_conf(text: str) -> dict[str, str]:
    """`name = 'value'` lines as ALTER SYSTEM writes them (quotes doubled), comments skipped, last one wins."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _AUTO_LINE.match(line)
        if match is None:
            continue
        quoted, bare = match.group("quoted"), match.group("bare")
        value = bare if quoted is None else re.sub(r"''|\\\\", lambda m: m.group(0)[0], quoted)
        out[match.group("name").lower()] = value
    return out


_AUTO_LINE = re.compile(r"^\s*(?P<name>[A-Za-z_][\w.]*)\s*=?\s*(?:'(?P<quoted>(?:[^'\\]|''|\\.)*)'|(?P<bare>[^\s#']+))\s*(?:#.*)?$")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return repr(value)
    return str(value)
