"""What a host is, for the knowledge base: CPU model and vector extensions, cores, RAM, fsync latency.

Studies measured on one host transfer best to a similar host, so every study
the knowledge base keeps carries this fingerprint, and the nearest-study
search (`autosys.learn.mapping`) weighs how far two hosts are apart. The fsync
latency is measured (a few 4 KiB writes, each fsync'ed, in the directory the
study used) and cached per host, boot and file system in a small JSON file
(AUTOSYS_HOST_CACHE, else $XDG_CACHE_HOME/autosys/host.json), so it costs a
run only once per boot; a missing or unreadable cache is measured again,
never trusted.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

#: CPU flags (x86 /proc/cpuinfo "flags", ARM "Features") that tell which vector code runs fast
VECTOR_FLAGS = (
    "sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "asimdhp", "sve", "sve2",
)
#: how long a cached fsync measurement stays good (seconds); a reboot or another file system re-measures
FSYNC_MAX_AGE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class HostFingerprint:
    """One host as the knowledge base indexes it (all plain JSON values)."""

    hostname: str
    machine: str
    cpu_model: str
    vector_extensions: tuple[str, ...]
    cores: int
    ram_bytes: int
    fsync_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["vector_extensions"] = list(self.vector_extensions)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "HostFingerprint":
        """Rebuild from stored JSON; raises ValueError on a malformed record."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a host fingerprint is an object, not {type(data).__name__}")
        try:
            fsync = data.get("fsync_ms")
            return cls(
                hostname=str(data.get("hostname", "")),
                machine=str(data.get("machine", "")),
                cpu_model=str(data.get("cpu_model", "")),
                vector_extensions=tuple(str(x) for x in data.get("vector_extensions", ())),
                cores=int(data.get("cores", 0)),
                ram_bytes=int(data.get("ram_bytes", 0)),
                fsync_ms=None if fsync is None else float(fsync),
                extra=dict(data.get("extra") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed host fingerprint: {exc}") from None


def host_distance(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> float:
    """How far two hosts are apart, 0 (same kind of machine) to about 1; 0.5 when one is unknown.

    The mean of: CPU model differs (0/1), vector extensions (Jaccard distance),
    cores, RAM and fsync latency (|log2 ratio|, capped at 1: twice or half is as far as it gets;
    left out when either side lacks it).
    """
    if not a or not b:
        return 0.5
    parts = [0.0 if a.get("cpu_model") == b.get("cpu_model") else 1.0]
    va, vb = set(a.get("vector_extensions") or ()), set(b.get("vector_extensions") or ())
    parts.append(1.0 - len(va & vb) / len(va | vb) if va | vb else 0.0)
    for key in ("cores", "ram_bytes", "fsync_ms"):
        x, y = a.get(key), b.get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0 and y > 0:
            parts.append(min(abs(math.log2(x / y)), 1.0))  # a part one side lacks is left out
    return sum(parts) / len(parts)


# ----------------------------------------------------------------------------- reading the host


def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    """CPU model name and the vector flags it has (Linux /proc/cpuinfo; elsewhere the platform's name)."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if not model and key in ("model name", "hardware", "cpu model"):
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
            if "pni" in flags:  # Linux calls SSE3 "pni"
                flags.add("sse3")
    model = model or platform.processor() or platform.machine()
    return model, tuple(f for f in VECTOR_FLAGS if f in flags)


def _ram_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - psutil missing: the page count, where the platform has it
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (a container's limit)
    except AttributeError:
        return os.cpu_count() or 1


def measure_fsync_ms(directory: str | Path, *, writes: int = 8, deadline_s: float = 2.0) -> float | None:
    """Median ms of writing 4 KiB and fsync'ing it, in `directory`; None when it cannot be measured.

    Stops after `deadline_s` seconds whatever `writes` says (a slow disk costs at most that).
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".autosys-fsync-", dir=directory)
    except OSError:
        return None
    samples: list[float] = []
    block = os.urandom(4096)
    stop = time.monotonic() + deadline_s
    try:
        for _ in range(writes):
            start = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            samples.append((time.perf_counter() - start) * 1000.0)
            if time.monotonic() > stop:
                break
    except OSError:
        return None
    finally:
        os.close(fd)
        try:
            os.unlink(name)
        except OSError:
            pass
    return round(statistics.median(samples), 4) if samples else None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def cache_path() -> Path:
    """Where fsync measurements are cached: AUTOSYS_HOST_CACHE, else $XDG_CACHE_HOME/autosys/host.json."""
    explicit = os.environ.get("AUTOSYS_HOST_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autosys" / "host.json"


def _cached_fsync(directory: Path, cache: Path) -> float | None:
    """The fsync latency of `directory`'s file system, from the cache when fresh, else measured and cached."""
    try:
        device = os.stat(directory).st_dev
    except OSError:
        return None
    key = f"{socket.gethostname()}|{_boot_id()}|{device}"
    entries: dict[str, Any] = {}
    try:
        loaded = json.loads(cache.read_text())
        if isinstance(loaded, dict) and isinstance(loaded.get("fsync"), dict):
            entries = loaded["fsync"]
    except (OSError, ValueError):
        pass  # no cache yet, or an unreadable one: measure again
    hit = entries.get(key)
    if isinstance(hit, dict) and isinstance(hit.get("ms"), (int, float)) and isinstance(hit.get("at"), (int, float)):
        if time.time() - hit["at"] < FSYNC_MAX_AGE:
            return float(hit["ms"])
    value = measure_fsync_ms(directory)
    if value is not None:
        entries = {k: v for k, v in entries.items() if k.split("|")[:2] == key.split("|")[:2]}  # this boot only
        entries[key] = {"ms": value, "at": time.time()}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"fsync": entries}, sort_keys=True))
            os.replace(tmp, cache)  # readers see the old cache or the new one, never half of one
        except OSError:
            pass  # a read-only home: measured each time, still correct
    return value


def host_fingerprint(probe_dir: str | Path | None = None, *, measure_fsync: bool = True) -> HostFingerprint:
    """This host's fingerprint; the fsync latency is that of `probe_dir`'s file system (default: the cache's)."""
    model, vectors = _cpuinfo()
    fsync = None
    if measure_fsync:
        cache = cache_path()
        directory = Path(probe_dir) if probe_dir is not None else cache.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            directory = Path(tempfile.gettempdir())
        fsync = _cached_fsync(directory, cache)
    return HostFingerprint(
        hostname=socket.gethostname(),
        machine=platform.machine(),
        cpu_model=model,
        vector_extensions=vectors,
        cores=_cores(),
        ram_bytes=_ram_bytes(),
        fsync_ms=fsync,
    )
