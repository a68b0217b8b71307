"""The CPU's real fp32 peak, measured: independent FMA chains on the widest vector path detected at run time.

A kernel's GFLOP/s means little without the machine's ceiling beside it. The
ceiling is FMA units x vector width x 2 flops x clock, but the units a core
really has (AMD Zen 4 runs AVX-512 as two 256-bit halves; some Intel SKUs
have one 512-bit FMA unit) and the clock it holds under vector load are not
in /proc/cpuinfo, so they are measured: enough independent accumulators to
cover FMA latency x units, timed in this thread's CPU time (immune to
other jobs' preemption). `peak()` reports flops per cycle at the nominal
clock too, so AVX2 and AVX-512 hosts compare alike.
"""

from __future__ import annotations

import ctypes
import functools
import time
from dataclasses import dataclass

from autosys_adapters.kernels.compile import compile_source
from autosys_adapters.kernels.cpu import VECTOR_LANES, cpu_info

#: independent accumulators: FMA latency (4-5 cycles) x 2 units, with margin (24 spill to the stack)
CHAINS = 16

_SOURCE = """
#include <immintrin.h>
void kernel(long iterations, float *out) {
    VTYPE acc[CHAINS];
    VTYPE a = SET1(1.0000001f), b = SET1(0.9999999f);
    for (int i = 0; i < CHAINS; i++) acc[i] = SET1((float)i);
    for (long n = 0; n < iterations; n++) {
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], a, b);
    }
    VTYPE sum = acc[0];
    for (int i = 1; i < CHAINS; i++) sum = ADD(sum, acc[i]);
    float lanes[LANES];
    STORE(lanes, sum);
    *out = lanes[0];
}
"""
_ISA = {
    "avx512": dict(VTYPE="__m512", SET1="_mm512_set1_ps", FMA="_mm512_fmadd_ps", ADD="_mm512_add_ps", STORE="_mm512_storeu_ps"),
    "avx2": dict(VTYPE="__m256", SET1="_mm256_set1_ps", FMA="_mm256_fmadd_ps", ADD="_mm256_add_ps", STORE="_mm256_storeu_ps"),
}


@dataclass(frozen=True)
class Peak:
    """Measured single-core fp32 peak on the widest path, and what it means per cycle."""

    isa: str
    gflops_per_core: float
    nominal_mhz: float
    flops_per_cycle: float

    def gflops(self, threads: int) -> float:
        """The ceiling for `threads` cores (at the single-core clock: all-core clocks may be lower)."""
        return self.gflops_per_core * threads


def _nominal_mhz() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return float("nan")


@functools.lru_cache(maxsize=None)
def peak(isa: str | None = None, seconds: float = 0.3) -> Peak:
    """Measure the fp32 FMA peak of one core on `isa` (default: the widest this CPU has)."""
    isas = [i for i in cpu_info().isas if i in _ISA]
    if not isas:
        raise RuntimeError("no FMA vector path (AVX2 or AVX-512) on this CPU")
    isa = isa or isas[-1]
    if isa not in isas:
        raise ValueError(f"{isa} is not available here; this CPU has {', '.join(isas)}")
    names = _ISA[isa]
    defines = "".join(f"#define {k} {v}\n" for k, v in names.items())
    source = f"#define CHAINS {CHAINS}\n#define LANES {VECTOR_LANES[isa]}\n" + defines + _SOURCE
    lib = ctypes.CDLL(str(compile_source(source, None, ("-O2", "-march=native", "-fPIC", "-shared")).path))
    lib.kernel.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_float)]
    out = ctypes.c_float()
    iterations = 1 << 16
    while True:  # grow until one call takes long enough to time
        t0 = time.thread_time_ns()
        lib.kernel(iterations, ctypes.byref(out))
        elapsed = (time.thread_time_ns() - t0) * 1e-9
        if elapsed >= seconds / 4 or iterations > 1 << 34:
            break
        iterations *= 4
    best = elapsed
    for _ in range(3):
        t0 = time.thread_time_ns()
        lib.kernel(iterations, ctypes.byref(out))
        best = min(best, (time.thread_time_ns() - t0) * 1e-9)
    flops = 2.0 * VECTOR_LANES[isa] * CHAINS * iterations
    gflops = flops / best / 1e9
    mhz = _nominal_mhz()
    return Peak(isa, gflops, mhz, gflops * 1e3 / mhz if mhz == mhz else float("nan"))
