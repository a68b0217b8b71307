"""PostgreSQL knob tuning on a real server (psycopg 3).

Each knob's type, unit, range and context come from `pg_settings`:
`user`/`superuser` knobs are SET on every benchmark connection (through
`set_config`, fully parameterized), `sighup` knobs change server-wide with
ALTER SYSTEM + `pg_reload_conf()`, and `postmaster` (restart-only) knobs such
as `shared_buffers` are tuned only with `allow_restart` and a
`restart_command`. Originals (the `postgresql.auto.conf` entries, from
`pg_file_settings`) are saved to a state file before the first change and
restored at the end, after a crash by atexit/SIGTERM, and after a SIGKILL by
the next run. The benchmark runs in its own database, created and dropped.
With `durable` (the default) `fsync` and `full_page_writes` stay on and
`synchronous_commit` may not be off.
"""

from __future__ import annotations

from typing import Any

from adapters.workloads.base import Session
from adapters.dbserver.base import NAME_RE, KnobInfo, Proposal, ServerKnobs
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
    "shared_buffers": P(2_048, 131_072, log=True),  # 8kB pages: 16 MB .. 1 GB
    "wal_buffers": P(8, 8_192, log=True),  # 8kB pages
}

DEFAULT_KNOBS = ",".join(PROPOSALS)


def _psycopg():
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the db extra is missing
        raise SystemUnavailable("psycopg is not installed: pip install 'autosys[db]'") from None
    return psycopg


class PostgresKnobs(ServerKnobs):
    """Tunes a PostgreSQL server's knobs for throughput on a seeded workload.

    Options: url, workload (preset such as tpcc-like or ycsb-a, or a JSON/TOML
    file), allow_restart with restart_command, durable, seed, records,
    operations, concurrency (client threads), seconds and warmup of each
    measured run, repeats, connect_timeout, statement_timeout (seconds),
    knobs (comma-separated subset), state_file.
    """

    name = "postgres"
    exclusive = True
    dialect = "postgres"
    PROPOSALS = PROPOSALS
    DURABLE = {"fsync": ("on",), "full_page_writes": ("on",), "synchronous_commit": ("on", "local", "remote_write", "remote_apply")}

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
    ):
        options = dict(locals())
        self.url = url
        self._options = {k: v for k, v in options.items() if k not in ("self", "__class__")}
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
            state_file=state_file,
        )

    def _server_key(self) -> str:
        return f"{self._host.replace('/', '_')}-{self._port}"

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

    def _persisted_originals(self, conn, names: list[str]) -> dict[str, Any]:
        """Each knob's postgresql.auto.conf entry (None: not set by ALTER SYSTEM)."""
        rows = conn.execute(
            "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE %s AND name = ANY(%s) ORDER BY seqno",
            ("%postgresql.auto.conf", list(names)),
        ).fetchall()
        found = {name: setting for name, setting in rows}
        return {name: found.get(name) for name in names}

    # ------------------------------------------------------------------ changing
    def _set_server_knob(self, conn, info: KnobInfo, value: Any) -> None:
        sql = _psycopg().sql
        conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(info.name), sql.Literal(_text(value))))

    def _restore_knob(self, conn, name: str, original: Any) -> None:
        sql = _psycopg().sql
        if original is None:
            conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
        else:
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(str(original))))

    def _reload(self, conn) -> None:
        conn.execute("SELECT pg_reload_conf()")

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


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return repr(value)
    return str(value)
