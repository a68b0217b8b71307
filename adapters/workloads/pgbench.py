"""pgbench as the load generator: PostgreSQL's own C client drives the server.

The Python clients of adapters/workloads/runner.py cost about 0.1 ms of
client CPU per statement, so on a 2-core host they, not the server, set the
pace: a 5M-row update mix ran at 9-10k ops/s whatever the server's knobs
(measured here). pgbench drives the same server with a fraction of that CPU,
so what the knobs change shows in the result. It runs against the study's
own database: `pgbench -i` loads it (COPY, millions of rows in seconds), and
each measured run is `pgbench -T` with the trial's session knobs passed in
PGOPTIONS, its per-transaction log (`-l`) giving throughput and latencies.

PostgreSQL only; the binary is found on PATH or in the Debian/Ubuntu
PostgreSQL directories, and its absence is a clear error, not a crash.
"""

from __future__ import annotations

import glob
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from autosys_adapters.workloads.base import NAME_RE, Benchmark, Session, check_counts, checked_settings

MODES = {"tpcb-like": [], "simple-update": ["-N"], "select-only": ["-S"]}
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.+\-]+$")  # a number or an enum word: nothing libpq would re-split


#: where Debian/Ubuntu install PostgreSQL's programs (not on PATH there), one folder per major version
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _version_key(directory: Path) -> tuple[int, ...]:
    """Sort key of /usr/lib/postgresql/<version>/bin: numeric, so 15 comes after 9.6 (as strings it came before)."""
    return tuple(int(part) if part.isdigit() else 0 for part in directory.parent.name.split("."))


def debian_pg_binaries(name: str) -> list[str]:
    """The executables called `name` in /usr/lib/postgresql/<version>/bin, newest version first."""
    folders = sorted((Path(p) for p in glob.glob(DEBIAN_BIN_GLOB)), key=_version_key, reverse=True)
    return [str(f / name) for f in folders if (f / name).is_file() and os.access(f / name, os.X_OK)]


def pgbench_binary() -> str | None:
    """The pgbench executable (on PATH, else the newest Debian install), or None when the client tools are missing."""
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = debian_pg_binaries("pgbench")
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class PgbenchWorkload:
    """pgbench's built-in scripts at a scale (100,000 accounts per unit, about 15 MB)."""

    name: str = "pgbench"
    scale: int = 10
    mode: str = "tpcb-like"
    concurrency: int = 16
    jobs: int = 2
    rate: int = 0  # offered load, transactions/s (pgbench --rate: open loop, latency from the scheduled start); 0 = closed loop

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"workload {self.name!r}: pgbench mode {self.mode!r} is not one of {', '.join(MODES)}")
        check_counts(self, ("scale", "concurrency", "jobs"))
        check_counts(self, ("rate",), minimum=0)


class PgbenchBenchmark(Benchmark):
    """Runs the real pgbench against the benchmark database (see the module doc)."""

    external = True  # the server adapter calls run() instead of driving Python clients

    def __init__(self, workload: PgbenchWorkload):
        self.workload = workload
        self.name = workload.name
        self.concurrency = int(workload.concurrency)

    def signature(self) -> str:
        return f"pgbench-s{self.workload.scale}"

    def tables(self) -> list[str]:
        return ["pgbench_history", "pgbench_accounts", "pgbench_tellers", "pgbench_branches"]

    def schema(self, dialect: str) -> list[str]:
        if dialect != "postgres":
            raise ValueError(f"the pgbench workload drives PostgreSQL only, not {dialect}")
        return []  # `pgbench -i` creates its own tables

    def create(self, session: Session) -> None:
        self.schema(session.dialect)
        self._pgbench(["-i", "-q", "-s", str(self.workload.scale)], self.dsn_of(session.conn), timeout=3600)

    @staticmethod
    def dsn_of(conn: Any) -> str:
        """A libpq connection string for pgbench from a psycopg connection (only the basic keys:
        the full `info.dsn` carries options a libpq older than psycopg's own rejects)."""
        from psycopg.conninfo import make_conninfo

        info = conn.info
        keys = {"host": info.host, "port": info.port, "user": info.user, "dbname": info.dbname, "password": info.password}
        return make_conninfo(**{k: v for k, v in keys.items() if v})

    def load(self, session: Session) -> None:
        """Unused: `create` runs `pgbench -i`, which loads with COPY."""

    def reset(self, session: Session) -> None:
        session.execute("TRUNCATE pgbench_history")  # the only table that grows

    def stream(self, seed: int) -> list[tuple]:
        return []  # pgbench draws its own operations (seeded with --random-seed in run())

    def execute(self, session: Session, item: tuple, index: int) -> None:
        raise TypeError("the pgbench workload runs as a whole (run()), not one operation at a time")

    def run(self, dsn: str, session_knobs: Mapping[str, Any], seconds: float, warmup: float, seed: int, timeout: float):
        """One warm-up run (not counted) and one measured run; returns RunStats."""
        from autosys_adapters.workloads.runner import RunStats

        env = {"PGOPTIONS": _pgoptions(session_knobs)}
        args = self._args(seed)
        self.warm_up(dsn, session_knobs, warmup, seed, timeout)
        with tempfile.TemporaryDirectory(prefix="autosys-pgbench-") as logs:
            out = self._pgbench([*args, "-T", str(max(1, math.ceil(seconds))), "-l", "--log-prefix", "tx"], dsn,
                                env=env, timeout=seconds + timeout, cwd=logs)
            latencies = [int(line.split()[2]) for path in Path(logs).glob("tx*") for line in path.read_text().splitlines()]
        tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
        if not tps or not latencies:
            raise RuntimeError(f"could not read pgbench's result from its output: {out[-300:]!r}")
        done = len(latencies)
        return RunStats(done=done, elapsed=done / float(tps.group(1)), latencies=np.array(latencies, dtype=float) / 1e6,
                        by_kind={self.workload.mode: done})

    def _args(self, seed: int) -> list[str]:
        w = self.workload
        args = [*MODES[w.mode], "-n", "-c", str(w.concurrency), "-j", str(min(w.jobs, w.concurrency)),
                f"--random-seed={int(seed)}"]
        return [*args, f"--rate={w.rate}"] if w.rate > 0 else args

    def warm_up(self, dsn: str, session_knobs: Mapping[str, Any], seconds: float, seed: int, timeout: float) -> None:
        """A run whose results are thrown away (none when `seconds` is 0)."""
        if seconds > 0:
            self._pgbench([*self._args(seed), "-T", str(max(1, math.ceil(seconds)))], dsn,
                          env={"PGOPTIONS": _pgoptions(session_knobs)}, timeout=seconds + timeout)

    def _pgbench(self, args: list[str], dsn: str, *, timeout: float, env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> str:
        binary = pgbench_binary()
        if binary is None:
            raise FileNotFoundError("the pgbench workload needs PostgreSQL's pgbench (Debian: apt install postgresql-client)")
        try:
            proc = subprocess.run([binary, *args, dsn], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                                  env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pgbench did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
        return proc.stdout + proc.stderr

    def to_json(self) -> dict:
        return {"kind": "pgbench", **asdict(self.workload)}


def _pgoptions(knobs: Mapping[str, Any]) -> str:
    """Session knobs as libpq's PGOPTIONS (`-c name=value ...`); values are plain words or numbers."""
    parts = []
    for name, value in knobs.items():
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        if not NAME_RE.match(name) or not _OPTION_VALUE.match(text):
            raise ValueError(f"cannot pass knob {name}={text!r} to pgbench")
        parts.append(f"-c {name}={text}")
    return " ".join(parts)


def make_pgbench(spec: Mapping[str, Any] | None = None, **overrides: Any) -> PgbenchBenchmark:
    """A pgbench benchmark from a mapping of PgbenchWorkload fields; unknown names are rejected."""
    return PgbenchBenchmark(PgbenchWorkload(**checked_settings(PgbenchWorkload, "pgbench", spec, overrides)))


__all__ = ["MODES", "PgbenchBenchmark", "PgbenchWorkload", "make_pgbench", "pgbench_binary"]
