"""What the host CPU offers a generated kernel: SIMD extensions, registers, cache sizes.

Read once from /proc/cpuinfo and sysfs (Linux); other platforms fall back to
plain C (compiler vectorization only) and typical cache sizes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuInfo:
    flags: frozenset[str]
    l1d: int  # bytes per core
    l2: int
    l3: int
    cores: int

    @property
    def isas(self) -> tuple[str, ...]:
        """SIMD code paths the generator may emit here, plainest first."""
        out = ["autovec"]
        if {"avx2", "fma"} <= self.flags:
            out.append("avx2")
        if "avx512f" in self.flags:
            out.append("avx512")
        return tuple(out)


#: vector width in fp32 lanes and architectural vector registers per code path
VECTOR_LANES = {"autovec": 8, "avx2": 8, "avx512": 16}
VECTOR_REGS = {"autovec": 16, "avx2": 16, "avx512": 32}


def _cache_bytes(level: int, kind: str, default: int) -> int:
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            path = os.path.join(base, entry)
            with open(os.path.join(path, "level")) as f:
                lvl = int(f.read())
            with open(os.path.join(path, "type")) as f:
                typ = f.read().strip()
            if lvl == level and typ in (kind, "Unified"):
                with open(os.path.join(path, "size")) as f:
                    text = f.read().strip().upper()
                mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1], 1)
                return int(text.rstrip("KMG")) * mult
    except (OSError, ValueError):
        pass
    return default


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return CpuInfo(
        flags=frozenset(flags),
        l1d=_cache_bytes(1, "Data", 32 * 1024),
        l2=_cache_bytes(2, "Unified", 512 * 1024),
        l3=_cache_bytes(3, "Unified", 16 * 1024**2),
        cores=os.cpu_count() or 1,
    )
