"""What the PostgreSQL and MariaDB knob adapters share: the knob catalog, the space, restoring.

A `ServerKnobs` system reads each knob's type, range and how it can change
from the server itself, and proposes a tuning range inside that. A server is
left exactly as found: before its first change a run takes a full snapshot of
the server's settings (every `pg_settings` row and the `postgresql.auto.conf`
entries; every MariaDB global variable) and writes it to a state file named
after the server's own identity (PostgreSQL `system_identifier`, MariaDB
`server_uid`), so `localhost` and `127.0.0.1` find the same file. Teardown
puts back everything that differs from the snapshot, not only the tuned knobs
(MariaDB raises `innodb_io_capacity_max` with `innodb_io_capacity`), then
snapshots again and verifies equality. Teardown runs at the end, from an
`atexit` hook, on SIGTERM (turned into SystemExit), and in the study's own
process after its trials ran elsewhere; after a SIGKILL — or a trial killed
at its timeout — the next run (or trial) against the same server finds the
state file of a dead process and restores from it before anything else.
From snapshot to restore a run holds a host-wide lock on the server (an flock
the kernel drops when its process dies), so two runs on one host never take
each other's changes for the state they found.
Restart-only knobs are left out of the space unless the user allows restarts
and names a restart command. Each knob's apply cost comes from the same
catalog (how the server says it can change): session -> none, reload ->
reload, restart -> restart.

Fidelity: the operations replayed (a prefix of the seeded stream, down to
about 1/32 of it), with the window and warm-up shrunk by the same fraction,
so a lower fidelity does less work whether the stream or the window binds;
for a benchmark that runs as its own client program (pgbench, sysbench), the
seconds measured (warm-up shrunk alike), down to 1/16 of `seconds` but at
least 1 s: short windows are the cheap rung, long ones the real measurement.

Steady state and latency: a client program warms up in a run of its own, so
the server's counters bracket the measured window alone; the window reports
the server's periodic work in it (`checkpoints`: PostgreSQL's completed
checkpoints, MariaDB's redo-log cycles; see each dialect's `_periodic`), so a
window long enough to hold two checkpoint cycles can be checked, not assumed.
With `rate` > 0 the client offers a fixed load (open-loop arrivals), latencies
include the time a transaction queued, and p99 latency is the objective.
Workloads with a cached dataset (sysbench; adapters/dbserver/datasets.py) run
in a copy of it, restored before every measured run when the workload writes.

Subclasses implement the dialect: connecting, the server's identity, reading
the catalog and the full snapshot, setting a knob server-wide or per session,
putting a snapshot back, reloading, creating and dropping the benchmark
database, and reading server counters.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import math
import os
import re
import signal
import statistics
import shlex
import socket
import subprocess
import threading
import time
import uuid
from abc import abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from autosys_adapters.workloads import load_benchmark
from autosys_adapters.workloads.base import Benchmark, Session
from autosys_adapters.workloads.base import NAME_RE
from autosys_adapters.workloads.runner import ClientError, RunStats, run_clients
from autosys.core.space import Categorical, Config, Float, Forbid, Int, InvalidConfig, Param, Space
from autosys.core.hostlocks import lock_dir
from autosys.core.fidelity import Fidelity, stamp
from autosys.core.system import Measurement, Objective, System, SystemUnavailable
from autosys.core.monitor import Monitor, host_monitors
from autosys_adapters.dbserver.monitors import server_monitors
from autosys_adapters.dbserver.catalogue import KnobInfo, Proposal  # defined there, used by every dialect


#: every live instance in this process, so atexit/SIGTERM can restore them
_LIVE: dict[str, "ServerKnobs"] = {}
#: a full settings snapshot: section ("settings", "auto_conf", "globals") -> name -> value (JSON-able)
Snapshot = dict[str, dict[str, Any]]
#: the state file format written by this version (older files are refused with a clear line)
STATE_VERSION = 2
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_HOOKS_INSTALLED = False
_HOOK_LOCK = threading.Lock()


def _state_dir() -> Path:
    base = os.environ.get("AUTOSYS_STATE_DIR") or os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "autosys" if "AUTOSYS_STATE_DIR" not in os.environ else Path(base)
    return path


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
    """Base of the database-server knob adapters (see module docstring).

    Args:
        workload: preset (e.g. tpcc-like, ycsb-a, pgbench) or a JSON/TOML workload file.
        allow_restart: also tune knobs that need a server restart (needs restart_command).
        restart_command: the shell command that restarts the server, given again on each run.
        durable: forbid settings that can lose committed transactions (--no-durable allows them).
        seed: seeds the workload.
        records, operations: workload size (0 = the workload's own).
        concurrency: client threads.
        seconds: length of each measured window.
        warmup: seconds of warm-up before each window.
        repeats: measured windows per trial; the median is reported.
        connect_timeout: seconds to wait for a connection.
        statement_timeout: seconds before a statement is cancelled.
        knobs: comma-separated subset of the knobs to tune (empty = the curated set; all = every knob the
            server lists that is safe to tune, with ranges sized to this host).
        state_file: where the snapshot that restores the server is kept (none = one per server identity).
        rate: offered load in transactions/s for the client programs (sysbench, pgbench): open-loop arrivals,
            latencies include queueing, p99 latency becomes the objective (0 = closed loop, throughput).
        keep_dataset: keep a cached dataset (sysbench's tables) on the server after the run, for the next
            trial or study (false: drop it at every teardown, so trials run in worker processes reload it;
            to clean up after a study use `datasets.drop_datasets`; see adapters/dbserver/datasets.py).
    """

    exclusive = True
    executable_options = ("restart_command",)  # a command to run: only from the invoking user, never stored
    dialect = "postgres"
    #: knob name -> proposed tuning range; subclasses fill this
    PROPOSALS: Mapping[str, Proposal] = {}
    #: knobs that must keep these values while `durable` (name -> allowed values)
    DURABLE: Mapping[str, tuple] = {}
    #: snapshot entries that change by themselves, so restore neither compares nor sets them (name -> why)
    IGNORED: Mapping[str, str] = {}
    #: how long restoring may keep putting values back before it reports what still differs
    RESTORE_SECONDS = 30.0
    #: how long a run waits for another run on this host to finish with the same server
    LOCK_WAIT_SECONDS = 600.0

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
        rate: int = 0,
        keep_dataset: bool = True,
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
            rate=rate or None,
        )
        self.rate = rate
        self.keep_dataset = keep_dataset
        self.allow_restart = allow_restart
        self.restart_command = restart_command
        self.durable = durable
        self.seed = seed
        self.seconds = seconds
        self.warmup = warmup
        self.repeats = repeats
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        #: knobs="all": every knob the server lists that is safe to tune (adapters/dbserver/catalogue.py)
        self.full_catalogue = knobs.strip().lower() == "all"
        self._proposals: dict[str, Proposal] = dict(self.PROPOSALS)
        #: knobs the full catalogue leaves out -> why (filled when the catalogue is read)
        self.excluded_knobs: dict[str, str] = {}
        wanted = [k.strip() for k in knobs.split(",") if k.strip()] if knobs and not self.full_catalogue else list(self.PROPOSALS)
        for name in wanted:
            if name not in self.PROPOSALS:
                raise ValueError(f"{self.name}: knob {name!r} is not one autosys knows how to tune; known: {', '.join(self.PROPOSALS)}")
        self.wanted = wanted
        self.token = uuid.uuid4().hex[:8]
        self.database = f"autosys_bench_{os.getpid()}_{self.token}"
        self._state_path = Path(state_file) if state_file else None
        self._catalog: dict[str, KnobInfo] | None = None
        self._space: Space | None = None
        self._identity: str | None = None  # the server's own identity (names the state file)
        self._saved: Snapshot | None = None  # the full snapshot taken before our first change
        self._lock_fd: int | None = None  # the host-wide lock on this server, held from snapshot to restore
        self._applied: dict[str, Any] = {}  # server-wide knob -> value we set
        self._db_created = False
        self._items: list[tuple] | None = None
        self._restart_pending = False
        self._datasets = None  # the server's DatasetCache, when the workload's data is cached (sysbench)
        self._dataset = None  # that workload's DatasetSpec
        self._copy_fresh = False  # the run database is an untouched copy of the pristine dataset
        #: every statement that changed server state, for audits and tests
        self.sent: list[str] = []

    # ------------------------------------------------------------------ dialect hooks
    @abstractmethod
    def _admin(self, database: str | None = None):
        """A fresh autocommit admin connection (raise SystemUnavailable when unreachable)."""

    @abstractmethod
    def _read_catalog(self, conn, names: list[str]) -> dict[str, KnobInfo]: ...

    @abstractmethod
    def _server_identity(self, conn) -> str:
        """What identifies the server itself, whatever host name or address reached it."""

    @abstractmethod
    def _take_snapshot(self, conn) -> Snapshot:
        """Every server-wide setting now (JSON-able, compared entry by entry)."""

    @abstractmethod
    def _put_back(self, conn, saved: Snapshot, now: Snapshot, differing: list[tuple[str, str]]) -> None:
        """Send what makes the `differing` (section, name) entries of `now` equal `saved` again."""

    @abstractmethod
    def _restart_only(self, conn, saved: Snapshot, now: Snapshot, differing: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The differing entries that only a server restart can put back."""

    @abstractmethod
    def _set_server_knob(self, conn, info: KnobInfo, value: Any) -> None: ...

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

    def _periodic(self, conn) -> dict[str, float]:
        """Cumulative server-wide counters of periodic work (checkpoints, flushing), read around the measured window."""
        return {}

    def _client_knobs(self, conn, session_knobs: Config) -> Config:
        """The session knobs to hand a client program (sysbench, pgbench); a dialect whose client cannot take
        them sets them server-wide here (restored with everything else) and returns none."""
        return session_knobs

    # ------------------------------------------------------------------ catalog and space
    def catalog(self) -> dict[str, KnobInfo]:
        """The tuned knobs as the server describes them (read once, after recovering leftovers)."""
        if self._catalog is None:
            self._recover_leftovers()
            conn = self._admin()
            try:
                if self.full_catalogue:
                    self._read_full_catalogue(conn)
                self._catalog = self._read_catalog(conn, list(self.wanted))
            finally:
                conn.close()
            missing = [n for n in self.wanted if n not in self._catalog]
            if missing:
                raise SystemUnavailable(f"{self.name}: the server does not know the knob(s) {', '.join(missing)}")
        return self._catalog

    def _read_full_catalogue(self, conn) -> None:
        """knobs="all": every knob the server lists, screened, with ranges sized to the host (catalogue.py)."""
        from autosys_adapters.dbserver.catalogue import full_catalogue, screen

        keep = set(self.PROPOSALS) | set(self.DURABLE)
        names, excluded = screen(conn, self.dialect, allow_restart=self.allow_restart, keep=keep)
        infos = self._read_catalog(conn, names)
        found = full_catalogue(infos, self.dialect, curated=self.PROPOSALS, excluded=excluded)
        self._proposals = dict(found.proposals)
        self.excluded_knobs = found.excluded
        self.wanted = list(found.proposals)

    def expert_config(self, workload_type: str = "oltp", **host: Any):
        """The expert rules' config for this host (PGTune / MariaDB's InnoDB sizing), fitted to this space (expert.py)."""
        from autosys_adapters.dbserver.expert import expert_config

        return expert_config(self, workload_type, **host)

    def space(self) -> Space:
        if self._space is None:
            params: list[Param] = []
            constraints = []
            self.catalog()  # first: with knobs="all" reading the catalogue decides `wanted`
            for name in self.wanted:
                info = self.catalog()[name]
                if info.how == "restart" and not self.allow_restart:
                    continue  # never changed without permission: not even in the space
                if self.durable and name in self.DURABLE and len(self.DURABLE[name]) == 1:
                    continue  # pinned by the durability constraint
                param = _param_for(info, self._proposals[name])
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
        if self.rate > 0:  # a fixed offered load: throughput is pinned to it, the tail latency is what knobs change
            return Objective("p99_latency_ms", "minimize", others=(("p95_latency_ms", "minimize"), ("throughput", "maximize")))
        return Objective("throughput", "maximize", others=(("p95_latency_ms", "minimize"), ("p99_latency_ms", "minimize")))

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
        if hasattr(self.bench, "dataset_key"):  # a cached dataset: loaded once per server, copied per study or run
            self._load_dataset()  # before the server's lock: a load takes minutes and changes no setting
        conn = self._admin()
        try:
            self._ensure_snapshot(conn)
            if self._dataset is not None:
                self._copy_dataset()
                return
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

    def _load_dataset(self) -> None:
        """Load the workload's cached dataset, or find it loaded (adapters/dbserver/datasets.py)."""
        from autosys_adapters.dbserver.datasets import DatasetCache, DatasetSpec

        generator, params = self.bench.dataset_key(self.dialect)
        self._datasets = DatasetCache(self)
        self._dataset = DatasetSpec(generator, params)
        self.sent.append(f"DATASET {self._dataset.database}")
        self._datasets.ensure(self._dataset, self.bench.create, check=getattr(self.bench, "check_loaded", None))

    def _copy_dataset(self) -> None:
        """Make this run's database a copy of the cached dataset (with the server's lock held)."""
        self._db_created = True  # the copy: recorded first, so a killed run's copy is dropped by the next run
        self._write_state()
        self.sent.append(f"COPY DATASET {self._dataset.database} -> {self.database}")
        self._datasets.copy(self._dataset, self.database)
        self._copy_fresh = True

    def _restore_dataset(self) -> None:
        """Before a measured run: put the run database back to the pristine dataset if an earlier run wrote to it."""
        if self._dataset is None or self._copy_fresh or not getattr(self.bench, "writes", True):
            self._copy_fresh = False
            return
        self.sent.append(f"COPY DATASET {self._dataset.database} -> {self.database}")
        self._datasets.copy(self._dataset, self.database)

    def teardown(self) -> None:
        """Drop the benchmark database and put the server back to the snapshot. Idempotent.

        An instance that changed nothing itself (the study's own copy, whose
        trials ran in worker processes) restores what a dead worker left: a
        trial killed at its timeout is restored before the study returns.
        """
        if self._saved is None and not self._db_created:
            _LIVE.pop(self.token, None)
            if self._catalog is not None:
                self._recover_leftovers(live_ok=True)
            return
        try:
            if self._db_created:
                conn = self._admin()
                try:
                    self._drop_database(conn, self.database)
                finally:
                    conn.close()
                self._db_created = False
                self._write_state()
            if self._dataset is not None and not self.keep_dataset:
                self.sent.append(f"DROP DATASET {self._dataset.database}")
                self._datasets.drop(self._dataset)
                self._dataset = None
            if self._saved is not None:
                self._restore_to(self._saved)
        except SystemUnavailable as exc:
            # keep the state file: the next run against this server restores from it
            _LIVE.pop(self.token, None)
            self._release()
            raise SystemUnavailable(f"{self.name}: could not restore settings now ({exc}); the next run will, from {self.state_path}") from None
        except RuntimeError as exc:
            _LIVE.pop(self.token, None)  # not retried at exit without the lock: the next run restores
            self._release()
            raise RuntimeError(f"{exc} (state kept in {self.state_path})") from None
        self._saved = None
        self._applied.clear()
        _LIVE.pop(self.token, None)
        self.state_path.unlink(missing_ok=True)
        self._release()

    @property
    def state_path(self) -> Path:
        """The state file: the user's `state_file`, else one per server identity in the state folder."""
        if self._state_path is None:
            identity = _UNSAFE_FILE_CHARS.sub("_", self.identity()).strip("._") or "server"
            self._state_path = _state_dir() / f"{self.name}-{identity}.json"
        return self._state_path

    def identity(self) -> str:
        """The server's own identity (read once): the same for every host name or address that reaches it."""
        if self._identity is None:
            conn = self._admin()
            try:
                self._identity = self._server_identity(conn)
            finally:
                conn.close()
        return self._identity

    def _ensure_snapshot(self, conn) -> None:
        """Take the server's lock and its full snapshot, and put that on disk, once, before anything changes."""
        if self._saved is not None:
            return
        if any(other is not self and other._identity == self.identity() for other in _LIVE.values()):
            # the other instance holds the lock in this very process: waiting for it would never end
            raise SystemUnavailable(f"{self.name}: another instance in this process is tuning this server; tear it down first")
        if not self._acquire(self.LOCK_WAIT_SECONDS):
            raise SystemUnavailable(
                f"{self.name}: another autosys run on this host has been tuning this server for over"
                f" {self.LOCK_WAIT_SECONDS:g} s (lock {self.lock_path()}); wait for it or stop it"
            )
        self._recover_leftovers()  # a run that died while we waited may have left the server changed
        _install_hooks()
        _LIVE[self.token] = self
        self._saved = self._take_snapshot(conn)
        self._write_state()
        self._point_lock_at_state()

    def _write_state(self) -> None:
        path = self.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "version": STATE_VERSION,
                    "server": self.identity(),
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "token": self.token,
                    "database": self.database if self._db_created else None,
                    "snapshot": self._saved,
                }
            )
        )
        os.replace(tmp, path)

    def lock_path(self) -> Path:
        """The host-wide lock file of this server (an flock held from snapshot to restore)."""
        identity = _UNSAFE_FILE_CHARS.sub("_", self.identity()).strip("._") or "server"
        return lock_dir() / f"autosys-server-{self.name}-{identity}.lock"

    def _acquire(self, wait: float) -> bool:
        """Hold this server's host-wide lock (True), or False when another holder kept it for `wait` s.

        An flock, whatever state folder each run uses: the kernel releases it
        when its process dies, even by SIGKILL, so a held lock means a live run.
        """
        if self._lock_fd is not None:
            return True
        path = self.lock_path()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError:  # another user's lock file: lockable, not writable
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)

    def _point_lock_at_state(self) -> None:
        """Write our state file's path into the lock file, so a run with another state folder finds it too."""
        if self._lock_fd is not None and self._state_path is not None:
            with contextlib.suppress(OSError):  # a lock file we may not write: our own folder still works
                os.ftruncate(self._lock_fd, 0)
                os.pwrite(self._lock_fd, str(self._state_path.resolve()).encode(), 0)

    def _pointed_state(self) -> Path | None:
        """The state file the lock file names, when both are this user's own (never another's to trust)."""
        try:
            lock = self.lock_path()
            if lock.stat().st_uid != os.getuid():
                return None
            target = Path(lock.read_text().strip())
            if not target.is_absolute() or target.stat().st_uid != os.getuid() or target == self.state_path.resolve():
                return None
            return target
        except (OSError, ValueError):
            return None

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _recover_leftovers(self, live_ok: bool = False) -> None:
        """Restore the snapshot a dead run left for this server; a live run's is waited for (or, `live_ok`, skipped).

        The state file is looked for in this run's state folder, and where the
        server's lock file points (a run that used another folder).
        """
        for path in (self.state_path, self._pointed_state()):
            if path is not None and path.exists():
                self._recover_from(path, live_ok)

    def _recover_from(self, path: Path, live_ok: bool) -> None:
        try:
            state = json.loads(path.read_text())
            pid, token, host = int(state.get("pid", 0)), state.get("token"), state.get("host")
        except FileNotFoundError:
            return  # its run just finished
        except (OSError, ValueError, TypeError, AttributeError):
            raise SystemUnavailable(f"{self.name}: unreadable state file {path}; inspect the server's settings and delete it") from None
        if token == self.token:
            return
        if pid == os.getpid() and token in _LIVE:  # a live instance in this very process: waiting would deadlock
            if live_ok:
                return
            raise SystemUnavailable(f"{self.name}: another instance in this process is tuning this server; tear it down first")
        if host not in (None, socket.gethostname()):
            if live_ok:
                return
            raise SystemUnavailable(f"{self.name}: a run on host {host} is tuning this server or left it changed ({path}); wait for it, or restore and delete the file")
        held_before = self._lock_fd is not None
        if not self._acquire(0 if live_ok else self.LOCK_WAIT_SECONDS):
            if live_ok:
                return
            raise SystemUnavailable(f"{self.name}: another autosys run (pid {pid}) has been tuning this server for over {self.LOCK_WAIT_SECONDS:g} s; wait for it or stop it")
        try:
            self._restore_leftover(path)
        finally:
            if not held_before:
                self._release()

    def _restore_leftover(self, path: Path) -> None:
        """With the lock held (so its run is dead or done): restore from the state file and delete it."""
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            return  # that run finished and restored while we waited for the lock
        except (OSError, ValueError):
            raise SystemUnavailable(f"{self.name}: unreadable state file {path}; inspect the server's settings and delete it") from None
        saved = state.get("snapshot") if isinstance(state, dict) else None
        if state.get("version") != STATE_VERSION or not isinstance(saved, dict):
            raise SystemUnavailable(f"{self.name}: state file {path} is from another autosys version; inspect the server's settings and delete it")
        if state.get("server") not in (None, self.identity()):
            raise SystemUnavailable(f"{self.name}: state file {path} belongs to server {state['server']}, not this one ({self.identity()})")
        database = state.get("database")
        if database:
            conn = self._admin()
            try:
                self._drop_database(conn, database)
            finally:
                conn.close()
        try:
            self._restore_to(saved)
        except RuntimeError as exc:
            raise SystemUnavailable(f"{exc}; a killed run left it changed (state kept in {path})") from None
        path.unlink(missing_ok=True)

    def _restore_to(self, saved: Snapshot) -> None:
        """Put back every entry that differs from `saved`, restarting only when allowed; verify equality.

        Passes repeat until a fresh snapshot equals `saved` (minus `IGNORED`):
        one value can bound another (MariaDB clamps `innodb_io_capacity_max`
        to `innodb_io_capacity`), and reloads and buffer-pool resizes finish
        in the background.
        """
        restarted = False
        deadline = time.monotonic() + self.RESTORE_SECONDS
        while True:
            conn = self._admin()
            try:
                now = self._take_snapshot(conn)
                differing = _differences(saved, now, self.IGNORED)
                if not differing:
                    return
                restart = self._restart_only(conn, saved, now, differing)
                fixable = [d for d in differing if d not in restart]
                if fixable:
                    self.sent.extend(f"RESTORE {name}" for name in dict.fromkeys(n for _, n in fixable))
                    self._put_back(conn, saved, now, fixable)
            finally:
                conn.close()
            if not fixable and restart and not restarted and self.allow_restart and self.restart_command:
                self._restart()
                restarted = True
                continue
            if not fixable or time.monotonic() > deadline:
                names = ", ".join(f"{d[1]} (now {_shown(now, d)}, was {_shown(saved, d)})" for d in differing)
                if restart and not restarted:
                    raise RuntimeError(
                        f"{self.name}: {names} take effect only after a server restart; restart the server,"
                        " or run again with --allow-restart true and --restart-command"
                    )
                raise RuntimeError(f"{self.name}: could not restore {names}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ applying
    def apply(self, config: Config) -> Config:
        """Validate, then set server-wide knobs (the full snapshot is on disk first); returns the session knobs."""
        clean = self.check_config(config)
        catalog = self.catalog()
        server = {n: v for n, v in clean.items() if catalog[n].how in ("reload", "restart")}
        session = {n: v for n, v in clean.items() if catalog[n].how == "session"}
        changes = {n: v for n, v in server.items() if _differs(self._applied.get(n, catalog[n].value), v)}
        if not changes:
            return session
        conn = self._admin()
        try:
            self._ensure_snapshot(conn)
            for name, value in changes.items():
                self.sent.append(f"SET {name}")
                self._set_server_knob(conn, catalog[name], value)
                self._applied[name] = value
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
    def fidelity(self) -> Fidelity:
        """Operations replayed (a prefix of the stream), or seconds measured for an external client program."""
        if getattr(self.bench, "external", False):  # pgbench runs whole seconds: at least one
            return Fidelity("seconds", "duration", min(self.seconds, max(1.0, self.seconds / 16)), self.seconds,
                            unit="s", integer=False)
        full = len(self._stream())
        return Fidelity("operations", "operations", min(full, max(50, full // 32)), full, unit="operations")

    def _stream(self) -> list[tuple]:
        if self._items is None:
            self._items = self.bench.stream(self.seed)
        return self._items

    def evaluate(self, config: Config, fidelity: float | None = None) -> Measurement:
        declared = self.fidelity()
        value = declared.check(fidelity)
        if not self._db_created:
            self.setup()
        session_knobs = self.apply(config)
        external = declared.kind == "duration"
        items = self._stream() if external else self._stream()[: int(value)]
        share = value / declared.full
        seconds, warmup = self.seconds * share, self.warmup * share
        runs: list[RunStats] = []
        counters: list[dict[str, float]] = []
        cpu: list[float] = []
        for _ in range(self.repeats):
            try:
                stats, delta, used = self._measure_once(session_knobs, items, seconds, warmup)
            except ClientError as exc:
                raise SystemUnavailable(f"{self.name}: the benchmark failed mid-trial: {exc}") from None
            except Exception as exc:
                if self._connection_error(exc):  # an admin or preparation connection was lost
                    raise SystemUnavailable(f"{self.name}: the server connection was lost mid-trial: {exc}") from None
                raise
            runs.append(stats)
            counters.append(delta)
            cpu.append(used)
        measurement = self._summarize(runs, counters, cpu)
        stamp(measurement.info, declared, value, sum(r.done for r in runs))
        return measurement

    def _connection_error(self, exc: BaseException) -> bool:
        """Whether `exc` means the server went away (the driver's OperationalError and kin)."""
        return False

    def _measure_once(
        self, session_knobs: Config, items: list[tuple], seconds: float, warmup: float
    ) -> tuple[RunStats, dict[str, float], float]:
        external = getattr(self.bench, "external", False)  # pgbench, sysbench: a client program of its own
        self._restore_dataset()  # a cached dataset written by the last run goes back to its initial state
        prep = self._bench_session(-1, {})
        try:
            self.bench.reset(prep)
            dsn = self.bench.dsn_of(prep.conn) if external else None
        finally:
            prep.conn.close()
        admin = self._admin(self.database)
        try:
            self._before_run(admin)
            client_knobs = self._client_knobs(admin, session_knobs) if external else session_knobs
            if external and warmup > 0 and hasattr(self.bench, "warm_up"):
                # warm up first, so the server's counters below cover the measured window alone
                self.bench.warm_up(dsn, client_knobs, warmup, self.seed, timeout=self.statement_timeout + 30)
                warmup = 0.0
            before = self._counters(admin)
            periodic0 = self._periodic(admin)
            cpu0 = time.process_time()
            if external:
                stats = self.bench.run(dsn, client_knobs, seconds, warmup, self.seed,
                                       timeout=self.statement_timeout + 30)
            else:
                stats = run_clients(
                    lambda ci: self._bench_session(ci, session_knobs),
                    self.bench,
                    items,
                    concurrency=self.bench.concurrency,
                    seconds=seconds,
                    warmup=warmup,
                    retryable=self._retryable,
                    grace=self.statement_timeout + 5,
                )
            used = time.process_time() - cpu0
            after = self._counters(admin)
            periodic1 = self._periodic(admin)
        finally:
            admin.close()
        # periodic work in the window (checkpoints, pages flushed): whole-window counts, not per operation
        stats.periodic = {k: periodic1[k] - periodic0.get(k, 0.0) for k in periodic1}  # type: ignore[attr-defined]
        return stats, {k: after[k] - before.get(k, 0.0) for k in after}, used

    def _summarize(self, runs: list[RunStats], counters: list[dict[str, float]], cpu: list[float]) -> Measurement:
        throughputs = [r.throughput for r in runs]
        p95s = [r.p95_ms() for r in runs]
        p99s = [_p99_ms(r) for r in runs]
        median = statistics.median(throughputs)
        metrics = {
            "throughput": median,
            "p95_latency_ms": statistics.median(p95s),
            "p99_latency_ms": statistics.median(p99s),
            "p50_latency_ms": statistics.median(r.p50_ms() for r in runs),
            "throughput_spread": (max(throughputs) - min(throughputs)) / median if median else float("nan"),
            "operations_done": statistics.median(r.done for r in runs),
            "retries": float(sum(r.retries for r in runs)),
            "client_cpu_ms_per_op": 1e3 * sum(cpu) / max(sum(r.done for r in runs), 1),
        }
        metrics.update(_per_op(counters, runs))
        periodic = [getattr(r, "periodic", {}) for r in runs]
        for key in sorted(set().union(*periodic)):  # e.g. checkpoints in the window (median over repeats)
            metrics[key] = statistics.median(p.get(key, 0.0) for p in periodic)
        if self.rate > 0:
            metrics["offered_rate"] = float(self.rate)
        info = {"workload": self.bench.to_json(), "database": self.database, "by_kind": runs[-1].by_kind}
        if self._dataset is not None:
            info["dataset"] = self._dataset.database
            info["dataset_copy_seconds"] = self._datasets.last_copy_seconds
        return Measurement(
            metrics=metrics,
            samples={"throughput": throughputs, "p95_latency_ms": p95s, "p99_latency_ms": p99s},
            info=info,
        )

    def monitors(self) -> list[Monitor]:
        """The host and this process (the benchmark clients), and the server's own counters (pg_stat_*, or
        MariaDB's global status), read while a trial runs."""
        return [*host_monitors(), *server_monitors(self)]


def _p99_ms(run: RunStats) -> float:
    return float(np.percentile(run.latencies, 99) * 1e3) if len(run.latencies) else float("nan")


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


def _differences(saved: Snapshot, now: Snapshot, ignored: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (section, name) entries whose value in `now` is not the one in `saved`, minus `ignored` names."""
    out = []
    for section in sorted(set(saved) | set(now)):
        before, after = saved.get(section) or {}, now.get(section) or {}
        for name in sorted(set(before) | set(after)):
            if name not in ignored and before.get(name) != after.get(name):
                out.append((section, name))
    return out


def _shown(snapshot: Snapshot, entry: tuple[str, str]) -> str:
    section, name = entry
    value = (snapshot.get(section) or {}).get(name, "<absent>")
    return repr(value if not isinstance(value, list) else value[0])


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return not math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-9)
    return str(a).lower() != str(b).lower()


#: how the server says a knob changes (KnobInfo.how) -> the knob's apply cost in the space
APPLY_COST = {"session": "none", "reload": "reload", "restart": "restart"}


def _param_for(info: KnobInfo, proposal: Proposal) -> Param | None:
    """A space parameter over the proposal, clipped to the server's limits and containing the current value.

    Its apply cost is what the server reports about the knob (`KnobInfo.how`).
    """
    param = _range_for(info, proposal)
    return None if param is None else replace(param, apply_cost=APPLY_COST.get(info.how, "restart"))


def _range_for(info: KnobInfo, proposal: Proposal) -> Param | None:
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
