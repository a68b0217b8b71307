"""Record and parse the positioned reads (`pread64`, `preadv`, `preadv2`) of real processes with strace.

`StraceSession(out, pids=[...])` attaches `strace -f -y` to running processes
(a server's backends) and `StraceSession(out, command=[...])` starts a command
under it; `parse_strace(out, keep=prefix)` turns strace's text into a
`ReadLog`: per read the file (index into `files`), the offset and the bytes
returned. `ReadLog.pages(page_size)` is the read stream as a page cache sees
it (one request per page touched); `ReadLog.blocks()` keeps each read as one
object of its own size (variable-size traces, e.g. RocksDB's blocks).
"""

from __future__ import annotations

import json
from array import array
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from autosys_adapters.pagecache.traces import Trace

SYSCALLS = ("pread64", "preadv", "preadv2")
#: bits of a page id that hold the page number within its file (the file index sits above them)
FILE_SHIFT_PAGES = 32
#: bits of a block id that hold the byte offset within its file
FILE_SHIFT_BYTES = 40


class TraceRecordingError(RuntimeError):
    """strace is missing, ptrace is not allowed, or a recorded run produced no reads."""


def strace_available() -> tuple[bool, str]:
    """(True, "") when strace exists and may trace a child here; else (False, why)."""
    exe = shutil.which("strace")
    if exe is None:
        return False, "strace is not installed (apt-get install strace)"
    try:
        done = subprocess.run([exe, "-qq", "-e", "trace=none", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"strace could not run: {exc}"
    if done.returncode != 0:
        return False, f"strace cannot trace here (ptrace refused?): {done.stderr.decode(errors='replace').strip()[:200]}"
    return True, ""


def strace_version() -> str:
    exe = shutil.which("strace")
    if exe is None:
        return "none"
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=20).stdout
    return out.splitlines()[0].strip() if out else "unknown"


class StraceSession:
    """strace writing every positioned read of `pids` (all their threads) or of `command` to `out`.

    Use as a context manager or call `start()` / `stop()`; `stop()` detaches
    (SIGINT) and waits at most `timeout` seconds.
    """

    def __init__(self, out: str | Path, pids: Sequence[int] = (), command: Sequence[str] = (),
                 syscalls: Sequence[str] = SYSCALLS):
        if bool(pids) == bool(command):
            raise ValueError("give either pids to attach to or a command to start, not both or neither")
        self.out = Path(out)
        self.pids = [int(p) for p in pids]
        self.command = list(command)
        self.syscalls = tuple(syscalls)
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        exe = shutil.which("strace") or "strace"
        argv = [exe, "-f", "-y", "-s", "0", "-qq", "-e", "trace=" + ",".join(self.syscalls), "-o", str(self.out)]
        if self.command:
            return argv + ["--seccomp-bpf", "--"] + self.command  # only the traced calls stop the tracee
        for pid in self.pids:
            argv += ["-p", str(pid)]
        return argv

    def start(self, settle: float = 0.5) -> "StraceSession":
        ok, why = strace_available()
        if not ok:
            raise TraceRecordingError(why)
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if self.pids:
            time.sleep(settle)  # attaching takes a moment; a failure shows as an early exit
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise TraceRecordingError(f"strace could not attach to {self.pids}: {err.strip()[:300]}")
        return self

    def wait(self, timeout: float) -> int:
        """Wait for a started command to finish (at most `timeout` seconds); its strace exit code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TraceRecordingError(f"the traced command ran past its {timeout:g} s deadline") from None

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # strace detaches cleanly from attached processes on SIGINT
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> "StraceSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- parsing

_NAMES = "|".join(SYSCALLS)
_WHOLE = re.compile(rf"^(\d+)\s+({_NAMES})\((\d+)<(.*?)>,(.*)\)\s+=\s+(-?\d+)")
_UNFINISHED = re.compile(rf"^(\d+)\s+({_NAMES})\((\d+)<(.*?)>,.*<unfinished \.\.\.>\s*$")
_RESUMED = re.compile(rf"^(\d+)\s+<\.\.\. ({_NAMES}) resumed>(.*)\)\s+=\s+(-?\d+)")


def _offset(syscall: str, args: str) -> int:
    """The file offset among the arguments after the fd (pread64: buf, count, offset; preadv2: ..., offset, flags)."""
    parts = [p.strip() for p in args.rsplit(",", 2 if syscall == "preadv2" else 1)]
    token = parts[-2] if syscall == "preadv2" else parts[-1]
    return int(token, 0)


@dataclass
class ReadLog:
    """Positioned reads: file index (into `files`), byte offset, bytes returned and the reading thread."""

    files: list[str]
    file: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    pid: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offset)

    @property
    def bytes_read(self) -> int:
        return int(self.length.sum())

    def pages(self, page_size: int = 4096, name: str = "reads") -> Trace:
        """One request per `page_size` page each read touches; id = file index << 32 | page number."""
        if len(self) == 0:
            raise TraceRecordingError("no reads were recorded")
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        first = self.offset // page_size
        last = (self.offset + np.maximum(self.length, 1) - 1) // page_size
        count = (last - first + 1).astype(np.int64)
        starts = np.repeat(first, count)
        within = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        file = np.repeat(self.file.astype(np.int64), count)
        if (first + count).max() >= 1 << FILE_SHIFT_PAGES:
            raise ValueError("a file has more pages than a page id holds (2^32); use a larger page size")
        ids = (file << FILE_SHIFT_PAGES) | (starts + within)
        return Trace(ids, sizes=np.full(len(ids), page_size, dtype=np.int64), name=name,
                     meta={**self.meta, "unit": "page", "page_size": page_size})

    def blocks(self, name: str = "reads") -> Trace:
        """One request per read: id = file index << 40 | byte offset, size = bytes returned (variable sizes)."""
        if len(self) == 0:
            raise TraceRecordingError("no reads were recorded")
        if self.offset.max() >= 1 << FILE_SHIFT_BYTES:
            raise ValueError("an offset beyond 2^40 bytes does not fit a block id")
        ids = (self.file.astype(np.int64) << FILE_SHIFT_BYTES) | self.offset
        return Trace(ids, sizes=self.length.astype(np.int64), name=name, meta={**self.meta, "unit": "read"})

    def save(self, path: str | Path) -> Path:
        """An .npz of the arrays plus the file list and meta as JSON (re-derive traces at any page size)."""
        path = Path(path)
        np.savez_compressed(path, file_index=self.file, offset=self.offset, length=self.length, pid=self.pid,
                            header=np.frombuffer(json.dumps({"files": self.files, "meta": self.meta}).encode(), np.uint8))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ReadLog":
        with np.load(path) as z:
            header = json.loads(z["header"].tobytes().decode())
            return cls(header["files"], z["file_index"], z["offset"], z["length"], z["pid"], header["meta"])


def parse_strace(path: str | Path, keep: str | Callable[[str], bool] | None = None) -> ReadLog:
    """Parse strace -f -y output into a ReadLog, keeping reads of files whose path starts with `keep`
    (a prefix) or satisfies `keep` (a predicate). Failed and end-of-file reads are dropped."""
    if keep is None:
        accept: Callable[[str], bool] = lambda p: True  # noqa: E731
    elif isinstance(keep, str):
        prefix = keep
        accept = lambda p: p.startswith(prefix)  # noqa: E731
    else:
        accept = keep
    files: dict[str, int] = {}
    verdict: dict[str, bool] = {}
    pending: dict[int, tuple[str, str]] = {}
    fi, off, ln, pids = array("i"), array("q"), array("q"), array("i")  # compact: 10M reads stay small

    def add(pid: int, syscall: str, fpath: str, args: str, result: int) -> None:
        ok = verdict.get(fpath)
        if ok is None:
            ok = verdict[fpath] = bool(accept(fpath))
        if not ok or result <= 0:
            return
        idx = files.setdefault(fpath, len(files))
        fi.append(idx)
        off.append(_offset(syscall, args))
        ln.append(result)
        pids.append(pid)

    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _WHOLE.match(line)
            if m:
                add(int(m[1]), m[2], m[4], m[5], int(m[6]))
                continue
            m = _UNFINISHED.match(line)
            if m:
                pending[int(m[1])] = (m[2], m[4])
                continue
            m = _RESUMED.match(line)
            if m:
                pid = int(m[1])
                started = pending.pop(pid, None)
                if started is not None and started[0] == m[2]:
                    add(pid, m[2], started[1], m[3], int(m[4]))
    return ReadLog(
        list(files),
        np.frombuffer(fi, dtype=np.int32).copy(),
        np.frombuffer(off, dtype=np.int64).copy(),
        np.frombuffer(ln, dtype=np.int64).copy(),
        np.frombuffer(pids, dtype=np.int32).copy(),
    )
