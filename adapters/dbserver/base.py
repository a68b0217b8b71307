"""What the PostgreSQL and MariaDB knob adapters share: the knob catalog, the space, restoring.

A `ServerKnobs` system reads each knob's type, range and how it can change
from the server itself, proposes a tuning range inside that, and changes
server-wide knobs only after writing their original values to a state file.
Teardown restores them; so does an `atexit` hook, a SIGTERM handler (turned
into SystemExit), and — after a SIGKILL — the next run against the same
server, which finds the state file of a dead process and restores from it
before anything else. Restart-only knobs are left out of the space unless
the user allows restarts and names a restart command.

Subclasses implement the dialect: connecting, reading the catalog, setting a
knob server-wide or per session, reloading, creating and dropping the
benchmark database, and reading server counters.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import signal
import statistics
import shlex
import subprocess
import threading
import time
import uuid
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from adapters.workloads import load_benchmark
from adapters.workloads.base import Benchmark, Session
from adapters.workloads.base import NAME_RE
from adapters.workloads.runner import ClientError, RunStats, run_clients
from autosys.core.space import Categorical, Config, Float, Forbid, Int, InvalidConfig, Param, Space
from autosys.core.system import Measurement, Objective, System, SystemUnavailable


#: every live instance in this process, so atexit/SIGTERM can restore them
_LIVE: dict[str, "ServerKnobs"] = {}
_HOOKS_INSTALLED = False
_HOOK_LOCK = threading.Lock()


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


@dataclass(frozen=True)
class Proposal:
    """The range we propose to tune a knob over (clipped to the server's own limits)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()


def _state_dir() -> Path:
    base = os.environ.get("AUTOSYS_STATE_DIR") or os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "autosys" if "AUTOSYS_STATE_DIR" not in os.environ else Path(base)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _install_hooks() -> None:
    global _HOOKS_INSTALLED
    with _HOOK_LOCK:
        if _HOOKS_INSTALLED:
            return
        _HOOKS_INSTALLED = True
        atexit.register(_restore_all)
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds finally blocks (study teardown), then atexit


def _restore_all() -> None:
    for system in list(_LIVE.values()):
        try:
            system.teardown()
        except Exception:  # best effort at exit; the state file stays for the next run
            pass


class ServerKnobs(System):
    """Base of the database-server knob adapters (see module docstring)."""

    exclusive = True
    dialect = "postgres"
    #: knob name -> proposed tuning range; subclasses fill this
    PROPOSALS: Mapping[str, Proposal] = {}
    #: knobs that must keep these values while `durable` (name -> allowed values)
    DURABLE: Mapping[str, tuple] = {}

    def __init__(
        self,
        *,
        workload: str,
        allow_restart: bool,
        restart_command: str,
        durable: bool,
        seed: int,
        records: int,
        operations: int,
        concurrency: int,
        seconds: float,
        warmup: float,
        repeats: int,
        connect_timeout: float,
        statement_timeout: float,
        knobs: str,
        state_file: str | None,
    ):
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        if seconds <= 0 or warmup < 0:
            raise ValueError("seconds must be positive and warmup not negative")
        if connect_timeout <= 0 or statement_timeout <= 0:
            raise ValueError("connect_timeout and statement_timeout must be positive")
        if allow_restart and not restart_command.strip():
            raise ValueError(
                "allow_restart needs restart_command (e.g. 'pg_ctlcluster 15 main restart'): autosys never guesses how to restart a server"
            )
        self.bench: Benchmark = load_benchmark(
            workload,
            records=records or None,
            operations=operations or None,
            concurrency=concurrency or None,
        )
        self.allow_restart = allow_restart
        self.restart_command = restart_command
        self.durable = durable
        self.seed = seed
        self.seconds = seconds
        self.warmup = warmup
        self.repeats = repeats
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        wanted = [k.strip() for k in knobs.split(",") if k.strip()] if knobs else list(self.PROPOSALS)
        for name in wanted:
            if name not in self.PROPOSALS:
                raise ValueError(f"{self.name}: knob {name!r} is not one autosys knows how to tune; known: {', '.join(self.PROPOSALS)}")
        self.wanted = wanted
        self.token = uuid.uuid4().hex[:8]
        self.database = f"autosys_bench_{os.getpid()}_{self.token}"
        self._state_path = Path(state_file) if state_file else None
        self._catalog: dict[str, KnobInfo] | None = None
        self._space: Space | None = None
        self._originals: dict[str, Any] = {}  # server-wide knob -> its original persisted form
        self._applied: dict[str, Any] = {}  # server-wide knob -> value we set
        self._db_created = False
        self._items: list[tuple] | None = None
        self._restart_pending = False
        #: every statement that changed server state, for audits and tests
        self.sent: list[str] = []

    # ------------------------------------------------------------------ dialect hooks
    @abstractmethod
    def _admin(self, database: str | None = None):
        """A fresh autocommit admin connection (raise SystemUnavailable when unreachable)."""

    @abstractmethod
    def _read_catalog(self, conn, names: list[str]) -> dict[str, KnobInfo]: ...

    @abstractmethod
    def _persisted_originals(self, conn, names: list[str]) -> dict[str, Any]:
        """How each knob is configured server-wide now, in the form `_restore_knob` takes."""

    @abstractmethod
    def _set_server_knob(self, conn, info: KnobInfo, value: Any) -> None: ...

    @abstractmethod
    def _restore_knob(self, conn, name: str, original: Any) -> None: ...

    @abstractmethod
    def _reload(self, conn) -> None: ...

    @abstractmethod
    def _pending_restart(self, conn, names: list[str]) -> list[str]: ...

    @abstractmethod
    def _create_database(self, conn) -> None: ...

    @abstractmethod
    def _drop_database(self, conn, name: str) -> None: ...

    @abstractmethod
    def _bench_session(self, client: int, session_knobs: Config) -> Session: ...

    @abstractmethod
    def _retryable(self, exc: BaseException) -> bool: ...

    @abstractmethod
    def _counters(self, conn) -> dict[str, float]:
        """Cumulative server counters (for workload characterization)."""

    def _before_run(self, conn) -> None:
        """Per-run preparation (e.g. a checkpoint) on an admin connection to the benchmark database."""

    # ------------------------------------------------------------------ catalog and space
    def catalog(self) -> dict[str, KnobInfo]:
        """The tuned knobs as the server describes them (read once, after recovering leftovers)."""
        if self._catalog is None:
            self._recover_leftovers()
            conn = self._admin()
            try:
                self._catalog = self._read_catalog(conn, list(self.wanted))
            finally:
                conn.close()
            missing = [n for n in self.wanted if n not in self._catalog]
            if missing:
                raise SystemUnavailable(f"{self.name}: the server does not know the knob(s) {', '.join(missing)}")
        return self._catalog

    def space(self) -> Space:
        if self._space is None:
            params: list[Param] = []
            constraints = []
            for name in self.wanted:
                info = self.catalog()[name]
                if info.how == "restart" and not self.allow_restart:
                    continue  # never changed without permission: not even in the space
                if self.durable and name in self.DURABLE and len(self.DURABLE[name]) == 1:
                    continue  # pinned by the durability constraint
                param = _param_for(info, self.PROPOSALS[name])
                if param is None:
                    continue
                params.append(param)
                if self.durable and name in self.DURABLE:
                    banned = [c for c in getattr(param, "choices", ()) if c not in self.DURABLE[name]]
                    if banned:
                        constraints.append(
                            Forbid(
                                "durable",
                                reason=f"{name}={banned} can lose committed transactions (pass --durable false to allow)",
                                **{name: tuple(banned)},
                            )
                        )
            self._space = Space(params, constraints)
        return self._space

    @property
    def objective(self) -> Objective:
        return Objective("throughput", "maximize", others=(("p95_latency_ms", "minimize"),))

    def check_config(self, config: Mapping[str, Any]) -> Config:
        """Validate names and values before anything is sent: unknown or out-of-range -> InvalidConfig."""
        bad = [name for name in config if not isinstance(name, str) or not NAME_RE.match(name)]
        if bad:
            raise InvalidConfig(f"{self.name}: {bad[0]!r} is not a valid knob name")
        space = self.space()
        unknown = [name for name in config if name not in space.params]
        if unknown:
            name = unknown[0]
            info = (self._catalog or {}).get(name)
            if info is not None and info.how == "restart" and not self.allow_restart:
                raise InvalidConfig(f"{self.name}: {name} needs a server restart; pass --allow-restart true and --restart-command to tune it")
            raise InvalidConfig(f"{self.name}: unknown knob {name!r}; tunable here: {', '.join(space.params)}")
        full = {**self.default(), **dict(config)}
        return space.validate(full)

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        if self._db_created:
            return
        self.catalog()
        _install_hooks()
        _LIVE[self.token] = self
        self._write_state()
        conn = self._admin()
        try:
            self.sent.append(f"CREATE DATABASE {self.database}")
            self._create_database(conn)
            self._db_created = True
            self._write_state()
        finally:
            conn.close()
        session = self._bench_session(-1, {})
        try:
            self.bench.create(session)
        finally:
            session.conn.close()

    def teardown(self) -> None:
        """Restore every server-wide knob and drop the benchmark database. Idempotent."""
        if self.token not in _LIVE and not self._originals and not self._db_created:
            return
        errors = []
        try:
            conn = self._admin()
        except SystemUnavailable as exc:
            # keep the state file: the next run against this server restores from it
            _LIVE.pop(self.token, None)
            raise SystemUnavailable(f"{self.name}: could not restore settings now ({exc}); the next run will, from {self.state_path}") from None
        try:
            if self._originals:
                for name, original in self._originals.items():
                    try:
                        self.sent.append(f"RESTORE {name}")
                        self._restore_knob(conn, name, original)
                    except Exception as exc:  # keep going: restore as much as possible
                        errors.append(f"{name}: {exc}")
                self._reload(conn)
                if self._restart_pending or any(self.catalog()[n].how == "restart" for n in self._applied):
                    self._restart()
                    conn.close()
                    conn = self._admin()  # the restart ended the old connection
                self._wait_applied(conn, {n: self.catalog()[n].value for n in self._originals})
            if self._db_created:
                self._drop_database(conn, self.database)
        finally:
            conn.close()
        if errors:
            raise RuntimeError(f"{self.name}: could not restore {'; '.join(errors)} (state kept in {self.state_path})")
        self._originals.clear()
        self._applied.clear()
        self._db_created = False
        _LIVE.pop(self.token, None)
        self.state_path.unlink(missing_ok=True)

    @property
    def state_path(self) -> Path:
        if self._state_path is None:
            self._state_path = _state_dir() / f"{self.name}-{self._server_key()}.json"
        return self._state_path

    def _server_key(self) -> str:
        return "server"

    def _write_state(self) -> None:
        path = self.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "token": self.token,
                    "database": self.database if self._db_created else None,
                    "originals": self._originals,
                    "restart_needed": any(self.catalog()[n].how == "restart" for n in self._applied),
                }
            )
        )
        os.replace(tmp, path)

    def _recover_leftovers(self) -> None:
        """Restore what a killed earlier run left changed (refuse if that run is still alive)."""
        path = self.state_path
        if not path.exists():
            return
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            raise SystemUnavailable(f"{self.name}: unreadable state file {path}; inspect the server's settings and delete it") from None
        pid, token = int(state.get("pid", 0)), state.get("token")
        if token == self.token:
            return
        if pid and _pid_alive(pid) and (pid != os.getpid() or token in _LIVE):
            raise SystemUnavailable(f"{self.name}: another autosys run (pid {pid}) is tuning this server; wait for it or stop it")
        conn = self._admin()
        try:
            originals = state.get("originals") or {}
            for name, original in originals.items():
                if not NAME_RE.match(name):
                    raise SystemUnavailable(f"{self.name}: state file {path} names a bad knob {name!r}")
                self.sent.append(f"RESTORE {name}")
                self._restore_knob(conn, name, original)
            if originals:
                self._reload(conn)
            if state.get("restart_needed"):
                if self.allow_restart:
                    self._restart()
                    conn.close()
                    conn = self._admin()  # the restart ended the old connection
                else:
                    pending = self._pending_restart(conn, list(originals))
                    if pending:
                        print(f"warning: {self.name}: {', '.join(pending)} restored in the config but need a server restart")
            if state.get("database"):
                self._drop_database(conn, state["database"])
        finally:
            conn.close()
        path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ applying
    def apply(self, config: Config) -> Config:
        """Validate, then set server-wide knobs (recording originals first); returns the session knobs."""
        clean = self.check_config(config)
        catalog = self.catalog()
        server = {n: v for n, v in clean.items() if catalog[n].how in ("reload", "restart")}
        session = {n: v for n, v in clean.items() if catalog[n].how == "session"}
        changes = {n: v for n, v in server.items() if _differs(self._applied.get(n, catalog[n].value), v)}
        if not changes:
            return session
        conn = self._admin()
        try:
            new = [n for n in changes if n not in self._originals]
            if new:
                self._originals.update(self._persisted_originals(conn, new))
                self._write_state()  # originals are on disk before the first change
            for name, value in changes.items():
                self.sent.append(f"SET {name}")
                self._set_server_knob(conn, catalog[name], value)
                self._applied[name] = value
            self._write_state()
            self._reload(conn)
            if any(catalog[n].how == "restart" for n in changes):
                self._restart()
                conn.close()
                conn = self._admin()
            else:
                pending = self._pending_restart(conn, list(changes))
                if pending:
                    raise RuntimeError(f"{self.name}: {', '.join(pending)} would need a restart to take effect")
            self._wait_applied(conn, changes)
        finally:
            conn.close()
        return session

    def current(self) -> Config:
        return {**self.default(), **{n: v for n, v in self._applied.items() if n in self.space().params}}

    def _restart(self) -> None:
        if not (self.allow_restart and self.restart_command):
            self._restart_pending = True
            return
        self.sent.append("RESTART")
        try:
            # an argument list, never a shell: the command is the user's, its words are not re-parsed
            subprocess.run(shlex.split(self.restart_command), check=True, timeout=120, capture_output=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            raise SystemUnavailable(f"{self.name}: restart command failed: {exc}") from None
        deadline = time.monotonic() + 60
        while True:
            try:
                self._admin().close()
                self._restart_pending = False
                return
            except SystemUnavailable:
                if time.monotonic() > deadline:
                    raise SystemUnavailable(f"{self.name}: the server did not come back within 60 s of the restart") from None
                time.sleep(0.5)

    def _wait_applied(self, conn, expected: Mapping[str, Any], timeout: float = 10.0) -> None:
        """Reloads are asynchronous: poll a fresh connection until the server reports the values."""
        deadline = time.monotonic() + timeout
        while True:
            probe = self._admin()
            try:
                now = self._read_catalog(probe, list(expected))
            finally:
                probe.close()
            stale = [n for n, v in expected.items() if not self._took(n, now[n].value, v)]
            if not stale:
                return
            if time.monotonic() > deadline:
                got = ", ".join(f"{n}={now[n].value!r} (wanted {expected[n]!r})" for n in stale)
                raise RuntimeError(f"{self.name}: the server did not take {got} within {timeout:.0f} s")
            time.sleep(0.05)

    def _took(self, name: str, got: Any, wanted: Any) -> bool:
        """Whether the server's reported value is the one we set (servers may round sizes)."""
        return not _differs(got, wanted)

    # ------------------------------------------------------------------ measuring
    def evaluate(self, config: Config) -> Measurement:
        if not self._db_created:
            self.setup()
        session_knobs = self.apply(config)
        if self._items is None:
            self._items = self.bench.stream(self.seed)
        runs: list[RunStats] = []
        counters: list[dict[str, float]] = []
        cpu: list[float] = []
        for _ in range(self.repeats):
            try:
                stats, delta, used = self._measure_once(session_knobs)
            except ClientError as exc:
                raise SystemUnavailable(f"{self.name}: the benchmark failed mid-trial: {exc}") from None
            except Exception as exc:
                if self._connection_error(exc):  # an admin or preparation connection was lost
                    raise SystemUnavailable(f"{self.name}: the server connection was lost mid-trial: {exc}") from None
                raise
            runs.append(stats)
            counters.append(delta)
            cpu.append(used)
        return self._summarize(runs, counters, cpu)

    def _connection_error(self, exc: BaseException) -> bool:
        """Whether `exc` means the server went away (the driver's OperationalError and kin)."""
        return False

    def _measure_once(self, session_knobs: Config) -> tuple[RunStats, dict[str, float], float]:
        external = getattr(self.bench, "external", False)  # pgbench: a client program of its own
        prep = self._bench_session(-1, {})
        try:
            self.bench.reset(prep)
            dsn = self.bench.dsn_of(prep.conn) if external else None
        finally:
            prep.conn.close()
        admin = self._admin(self.database)
        try:
            self._before_run(admin)
            before = self._counters(admin)
            cpu0 = time.process_time()
            if external:
                stats = self.bench.run(dsn, session_knobs, self.seconds, self.warmup, self.seed,
                                       timeout=self.statement_timeout + 30)
            else:
                stats = run_clients(
                    lambda ci: self._bench_session(ci, session_knobs),
                    self.bench,
                    self._items,
                    concurrency=self.bench.concurrency,
                    seconds=self.seconds,
                    warmup=self.warmup,
                    retryable=self._retryable,
                    grace=self.statement_timeout + 5,
                )
            used = time.process_time() - cpu0
            after = self._counters(admin)
        finally:
            admin.close()
        return stats, {k: after[k] - before.get(k, 0.0) for k in after}, used

    def _summarize(self, runs: list[RunStats], counters: list[dict[str, float]], cpu: list[float]) -> Measurement:
        throughputs = [r.throughput for r in runs]
        p95s = [r.p95_ms() for r in runs]
        median = statistics.median(throughputs)
        metrics = {
            "throughput": median,
            "p95_latency_ms": statistics.median(p95s),
            "p50_latency_ms": statistics.median(r.p50_ms() for r in runs),
            "throughput_spread": (max(throughputs) - min(throughputs)) / median if median else float("nan"),
            "operations_done": statistics.median(r.done for r in runs),
            "retries": float(sum(r.retries for r in runs)),
            "client_cpu_ms_per_op": 1e3 * sum(cpu) / max(sum(r.done for r in runs), 1),
        }
        metrics.update(_per_op(counters, runs))
        return Measurement(
            metrics=metrics,
            samples={"throughput": throughputs, "p95_latency_ms": p95s},
            info={"workload": self.bench.to_json(), "database": self.database, "by_kind": runs[-1].by_kind},
        )

    def monitors(self) -> list[str]:
        return ["throughput", "p95_latency_ms", "cache_hit_ratio", "wal_bytes_per_op", "rows_read_per_op", "rows_written_per_op"]


def _per_op(counters: list[dict[str, float]], runs: list[RunStats]) -> dict[str, float]:
    """Server counters per operation (medians over repeats): the workload's fingerprint."""
    out: dict[str, float] = {}
    keys = set().union(*counters) if counters else set()
    for key in sorted(keys):
        values = []
        for c, r in zip(counters, runs):
            # counters cover warm-up too: divide by everything the clients did
            total = max(r.done, 1)
            values.append(c.get(key, 0.0) / total)
        out[f"{key}_per_op"] = statistics.median(values)
    hits = [c.get("blocks_hit", 0.0) for c in counters]
    reads = [c.get("blocks_read", 0.0) for c in counters]
    if any(h + r > 0 for h, r in zip(hits, reads)):
        out["cache_hit_ratio"] = statistics.median(h / (h + r) if h + r else 1.0 for h, r in zip(hits, reads))
    return out


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return not math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-9)
    return str(a).lower() != str(b).lower()


def _param_for(info: KnobInfo, proposal: Proposal) -> Param | None:
    """A space parameter over the proposal, clipped to the server's limits and containing the current value."""
    if info.vartype == "bool":
        return Categorical(info.name, ("off", "on"), default="on" if str(info.value).lower() in ("on", "1", "true") else "off")
    if info.vartype == "enum":
        choices = tuple(c for c in (proposal.choices or info.choices) if c in info.choices)
        if info.value not in choices:
            choices = (*choices, info.value)
        return Categorical(info.name, choices, default=info.value)
    low = proposal.low if proposal.low is not None else info.low
    high = proposal.high if proposal.high is not None else info.high
    if info.low is not None:
        low = max(low, info.low)
    if info.high is not None:
        high = min(high, info.high)
    value = float(info.value)
    low, high = min(low, value), max(high, value)
    log = proposal.log and low > 0
    if info.vartype == "integer":
        return Int(info.name, int(low), int(high), log=log, default=int(value))
    if low == high:
        return None
    return Float(info.name, float(low), float(high), log=log, default=value)
