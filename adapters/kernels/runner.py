"""Run a kernel measurement in a child process with a deadline.

A crash (segfault, abort), a compile error or a wrong result raises
`KernelFailed`; a child that runs past its deadline is killed with its whole
process group and raises `KernelTimeout`. The tuning process never dies with
a bad kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

_REPO = str(Path(__file__).resolve().parents[2])


class KernelFailed(RuntimeError):
    """The kernel did not compile, crashed, or computed a wrong result."""


class KernelTimeout(TimeoutError):
    """The kernel (or its compilation) ran past the trial's deadline."""


def child_env(spec: dict[str, Any], base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The worker's environment: `base`, the thread counts, and the spec's `env` (a None value removes the variable)."""
    threads = str(int(spec.get("threads", 1)))
    # BLAS gets the thread count only when numpy is what is being timed: idle OpenBLAS workers
    # spin for a while after each call and would steal the cores of the OpenMP kernel under test
    blas = threads if any(k.get("kind") == "numpy" for k in spec.get("kernels", [])) else "1"
    env = dict(base)
    env.update(
        OMP_NUM_THREADS=threads,
        OPENBLAS_NUM_THREADS=blas,
        MKL_NUM_THREADS=blas,
        PYTHONPATH=os.pathsep.join(p for p in (_REPO, env.get("PYTHONPATH", "")) if p),
    )
    for key, value in (spec.get("env") or {}).items():  # None: the variable is removed (left to the library)
        if value is None:
            env.pop(str(key), None)
        else:
            env[str(key)] = str(value)
    return env


def run_spec(spec: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Run `autosys_adapters.kernels.worker` on `spec`; return its parsed report or raise."""
    env = child_env(spec)
    proc = subprocess.Popen(
        [sys.executable, "-m", "autosys_adapters.kernels.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the compiler dies with it
    )
    try:
        out, err = proc.communicate(json.dumps(spec), timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise KernelTimeout(f"kernel trial ran past its {timeout:g} s deadline and was killed") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise KernelFailed(f"kernel process died with {name}{_tail(err)}")
    if proc.returncode != 0 or not out.strip():
        raise KernelFailed(f"kernel process exited with status {proc.returncode}{_tail(err)}")
    report = json.loads(out.strip().splitlines()[-1])
    if "error" in report:
        raise KernelFailed(report["error"])
    return report


def _tail(text: str) -> str:
    text = (text or "").strip()
    return f": {text[-500:]}" if text else ""
