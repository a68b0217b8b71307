"""A private, throwaway PostgreSQL cluster: initdb into a folder of its own, start it, always stop and delete it.

Restart-only knobs (`shared_buffers`, `wal_buffers`) can be tuned only by
restarting the server, and a shared server must never be restarted. So an
experiment that tunes them runs on a cluster of its own:

    with private_postgres() as cluster:
        system = PostgresKnobs(url=cluster.url, allow_restart=True, restart_command=cluster.restart_command)

`private_postgres` initdb's a cluster (`--no-sync`: only its creation skips
fsync; the cluster itself runs with PostgreSQL's defaults, fsync and
synchronous_commit on, so durable configs compare as on any server) in a
temporary folder, listening on 127.0.0.1 at a free port (or the one given)
with its Unix socket in that folder, so it never meets the shared server's
port or socket. initdb and pg_ctl refuse to run as root: as root they run as
the `postgres` OS user (`runuser -u postgres --`). On the way out, by an
exception or Ctrl-C too, the cluster is stopped (immediate: a throwaway
cluster needs no clean shutdown) and its folder deleted; every command has a
timeout. The binaries are found in /usr/lib/postgresql/<version>/bin (the
newest version; Debian's layout, where they are not on PATH) or on PATH.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from autosys.core.system import SystemUnavailable
from autosys_adapters.workloads.pgbench import DEBIAN_BIN_GLOB, debian_pg_binaries

#: the file (in the data folder, included from postgresql.conf) that holds the address and the caller's settings;
#: postgresql.auto.conf is read after it, so ALTER SYSTEM still wins (the adapter's restart-only knobs)
CONF_NAME = "autosys_private.conf"
INSTALL_HINT = ("install PostgreSQL's server binaries (Debian/Ubuntu: apt install postgresql; Fedora: dnf install "
                "postgresql-server; macOS: brew install postgresql), or pass bin_dir")


# ----------------------------------------------------------------------------- finding what to run
def find_pg_binary(name: str, bin_dir: str | os.PathLike | None = None) -> str:
    """The path of PostgreSQL's `name` (initdb, pg_ctl): in `bin_dir` if given, else the newest
    /usr/lib/postgresql/<version>/bin, else on PATH. Raises `SystemUnavailable` saying what to install."""
    if bin_dir is not None:
        path = Path(bin_dir) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise SystemUnavailable(f"PostgreSQL's {name} is not in {bin_dir}: {INSTALL_HINT}")
    newest = debian_pg_binaries(name)
    if newest:
        return newest[0]
    found = shutil.which(name)
    if found:
        return found
    raise SystemUnavailable(f"PostgreSQL's {name} was not found (looked in {DEBIAN_BIN_GLOB} and on PATH): {INSTALL_HINT}")


def _run_as() -> list[str]:
    """The command prefix that runs initdb and pg_ctl: none, or `runuser -u postgres --` as root (they refuse root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise SystemUnavailable("running as root, and initdb/pg_ctl refuse root: `runuser` (util-linux) is needed to "
                                "run them as the postgres user, and it was not found")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise SystemUnavailable("running as root, and initdb/pg_ctl refuse root: there is no `postgres` OS user to run "
                                "them as (installing PostgreSQL creates one; or run as a non-root user)") from None
    return [runuser, "-u", "postgres", "--"]


def check_available(bin_dir: str | os.PathLike | None = None) -> None:
    """Raises `SystemUnavailable` (what to install) unless a private cluster can be made here."""
    find_pg_binary("initdb", bin_dir)
    find_pg_binary("pg_ctl", bin_dir)
    _run_as()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections at host:port."""
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


# ----------------------------------------------------------------------------- the cluster
@dataclass(frozen=True)
class PrivateCluster:
    """A running private cluster: where to connect, how to restart it, where it lives.

    url: postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication, local only).
    restart_command: a `pg_ctl restart` command line (fast shutdown, waits until up), as the postgres
        adapter's `restart_command` option expects.
    directory: the cluster's folder (data in `data/`, the log in `server.log`, the Unix socket), deleted on exit.
    port: its TCP port on 127.0.0.1; data, log: its data folder and server log; timeout: seconds per command.
    """

    url: str
    restart_command: str
    directory: Path
    port: int
    data: Path
    log: Path
    timeout: float = 120.0

    def restart(self) -> None:
        """Restart the server (what the adapter does through `restart_command`), e.g. after ALTER SYSTEM."""
        _run(shlex.split(self.restart_command), self.timeout, "pg_ctl restart", self.log, cwd=self.directory)


def _run(command: list[str], timeout: float, what: str, log: Path | None = None, cwd: Path | None = None) -> None:
    """Run one command with a deadline; a failure raises SystemUnavailable with its output and the log's tail."""
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.CalledProcessError as exc:
        raise SystemUnavailable(f"{what} failed (exit {exc.returncode}): {(exc.stderr or exc.stdout or '').strip()[-800:]}"
                                f"{_log_tail(log)}") from None
    except subprocess.TimeoutExpired:
        raise SystemUnavailable(f"{what} did not finish within {timeout:.0f} s{_log_tail(log)}") from None


def _log_tail(log: Path | None) -> str:
    if log is None:
        return ""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()[-5:]
    except OSError:
        return ""
    return ("; server log: " + " | ".join(lines)) if lines else ""


def _conf_value(value: object) -> str:
    """A postgresql.conf value: quoted, quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def _prepare_directory(directory: Path | None, prefix: str) -> Path:
    """The cluster's folder: a new temporary one, or `directory` if it is new, empty, or already holds a cluster
    of ours (data/PG_VERSION), so that deleting it on exit never deletes anything else."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    directory = Path(directory).resolve()
    if directory.exists():
        if not directory.is_dir():
            raise ValueError(f"private_postgres: {directory} is not a folder")
        if any(directory.iterdir()) and not (directory / "data" / "PG_VERSION").exists():
            raise ValueError(f"private_postgres: {directory} is neither empty nor a private cluster's folder; "
                             "it would be deleted on exit")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextlib.contextmanager
def private_postgres(
    port: int | None = None,
    *,
    directory: str | os.PathLike | None = None,
    keep: bool = False,
    settings: Mapping[str, object] | None = None,
    bin_dir: str | os.PathLike | None = None,
    prefix: str = "autosys-pg-",
    timeout: float = 120.0,
) -> Iterator[PrivateCluster]:
    """initdb and start a private cluster on 127.0.0.1; yields a `PrivateCluster`; stops and deletes it on exit.

    port: the TCP port (refused if something listens there); default: a free one.
    directory: where the cluster lives (new, empty, or a cluster kept earlier, which is reused);
        default: a new temporary folder.
    keep: keep the folder (the cluster is still stopped, fast rather than immediate) for the next run.
    settings: extra postgresql.conf settings (e.g. {"autovacuum": "off"}); ALTER SYSTEM still overrides them.
    bin_dir: the folder of initdb and pg_ctl (default: see `find_pg_binary`).
    timeout: seconds each command (initdb, start, restart, stop) may take.

    Raises `SystemUnavailable` when initdb/pg_ctl are missing (saying what to install) or the cluster
    does not start.
    """
    initdb = find_pg_binary("initdb", bin_dir)
    beside = Path(initdb).parent  # pg_ctl of the same version as initdb
    pg_ctl = find_pg_binary("pg_ctl", beside if bin_dir is None and os.access(beside / "pg_ctl", os.X_OK) else bin_dir)
    as_user = _run_as()
    if port is None:
        port = free_port()
    elif port_in_use(port):
        raise SystemUnavailable(f"private_postgres: something already listens on 127.0.0.1:{port}")
    owner = os.getpid()  # a forked child leaving the block never stops the parent's cluster
    root = _prepare_directory(None if directory is None else Path(directory), prefix)
    data, log = root / "data", root / "server.log"
    ctl = [*as_user, pg_ctl, "-D", str(data)]
    try:
        if as_user:
            shutil.chown(root, "postgres")
        if not (data / "PG_VERSION").exists():
            _run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                 timeout, "initdb", cwd=root)
            with open(data / "postgresql.conf", "a") as conf:
                conf.write(f"\ninclude_if_exists = '{CONF_NAME}'\n")
        lines = {"port": port, "listen_addresses": "127.0.0.1", "unix_socket_directories": str(root),
                 **(settings or {})}
        (data / CONF_NAME).write_text("".join(f"{k} = {_conf_value(v)}\n" for k, v in lines.items()))
        if as_user:
            shutil.chown(data / CONF_NAME, "postgres")
        wait = ["-w", "-t", str(int(max(1, timeout - 5)))]  # pg_ctl's own wait, inside the subprocess deadline
        _run([*ctl, "-l", str(log), *wait, "start"], timeout, "pg_ctl start", log, cwd=root)
        restart = shlex.join([*ctl, "-l", str(log), *wait, "-m", "fast", "restart"])
        yield PrivateCluster(url=f"postgresql://postgres@127.0.0.1:{port}/postgres", restart_command=restart,
                             directory=root, port=port, data=data, log=log, timeout=timeout)
    finally:
        if os.getpid() == owner:
            try:
                _stop(ctl, data, "fast" if keep else "immediate", timeout, root)
            finally:
                if not keep:
                    shutil.rmtree(root, ignore_errors=True)


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(ctl: list[str], data: Path, mode: str, timeout: float, cwd: Path) -> None:
    """Stop the server if it runs: pg_ctl stop, then signals to the postmaster if that failed or was interrupted."""
    pid = _postmaster_pid(data)
    if pid is None:
        return
    try:
        subprocess.run([*ctl, "-w", "-t", str(int(max(1, timeout - 5))), "-m", mode, "stop"],
                       capture_output=True, timeout=timeout, cwd=cwd)
    except BaseException:  # a timeout, or Ctrl-C while stopping: never leave a server behind a deleted folder
        _kill(pid)
        raise
    if _alive(pid) and _postmaster_pid(data) == pid:
        _kill(pid)


def _kill(pid: int) -> None:
    """Immediate shutdown by signal (SIGQUIT), then SIGKILL if the postmaster is still there after 10 s."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
