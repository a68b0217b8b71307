"""The host's own page cache while a page-policy trial runs: Linux's counters from /proc/vmstat.

The page-policy system simulates a cache over a trace; the real page cache
under the simulator (and under whatever else runs on the host) is what this
reads: page faults served from memory (`minor_faults_per_s`, hits) and from
disk (`major_faults_per_s`, misses), pages read and written, refaults (pages
evicted and needed again: eviction mistakes of the kernel's policy), pages
reclaimed, and the page cache's size (`cached_bytes`).
"""

from __future__ import annotations

import time
from pathlib import Path

from autosys.core.monitor import Monitor, Rates
from autosys.core.system import SystemUnavailable

_VMSTAT = {
    "pgfault": "faults",
    "pgmajfault": "major_faults",
    "pgpgin": "paged_in_kib",
    "pgpgout": "paged_out_kib",
    "workingset_refault_file": "refaults",
    "workingset_activate_file": "refaults_activated",
    "pgsteal_kswapd": "reclaimed_kswapd",
    "pgsteal_direct": "reclaimed_direct",
}


class OSPageCacheMonitor(Monitor):
    """Linux page cache hits (minor faults), misses (major faults), paging, refaults and size, as rates."""

    name = "os-page-cache"

    def __init__(self, vmstat: str | Path = "/proc/vmstat", meminfo: str | Path = "/proc/meminfo"):
        self.vmstat, self.meminfo = Path(vmstat), Path(meminfo)
        if not self.vmstat.exists():
            raise SystemUnavailable(f"{self.vmstat} is not readable here (not Linux?)")
        self._rates = Rates()

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        counters: dict[str, float] = {}
        for line in self.vmstat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in _VMSTAT:
                counters[_VMSTAT[key]] = float(value)
        out = {f"{name}_per_s": self._rates(name, value, now) for name, value in counters.items()}
        if "faults_per_s" in out and "major_faults_per_s" in out:
            out["minor_faults_per_s"] = max(out.pop("faults_per_s") - out["major_faults_per_s"], 0.0)
        for line in self.meminfo.read_text().splitlines():
            if line.startswith("Cached:"):
                out["cached_bytes"] = float(line.split()[1]) * 1024
                break
        return out


__all__ = ["OSPageCacheMonitor"]
