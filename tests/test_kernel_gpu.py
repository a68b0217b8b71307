"""The Triton GPU backend: runs where torch + CUDA + triton exist, skips cleanly elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autosys_adapters.kernels import triton_backend
from autosys.core.system import SystemUnavailable

ROOT = Path(__file__).resolve().parents[1]


def test_backend_is_guarded_when_unavailable():
    reason = triton_backend.why_not()
    if reason is None:
        pytest.skip("a GPU backend is available here; the guard is not exercised")
    assert not triton_backend.available()
    from autosys_adapters.kernels.system import KernelSchedule

    with pytest.raises(SystemUnavailable, match="triton backend"):
        KernelSchedule(backend="triton", shape="64,64,64")
    run = subprocess.run([sys.executable, str(ROOT / "experiments" / "gpu_check.py")], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "skipped" in run.stdout


@pytest.mark.gpu
def test_triton_matmul_is_correct_and_timed():
    pytest.importorskip("torch", reason="the GPU backend needs torch")
    pytest.importorskip("triton", reason="the GPU backend needs triton")
    if not triton_backend.available():
        pytest.skip(f"no GPU backend: {triton_backend.why_not()}")
    from autosys_adapters.kernels.system import KernelSchedule

    system = KernelSchedule(backend="triton", shape="129,257,67", repeats=2)
    m = system.evaluate(system.default())
    assert m.metrics["gflops"] > 0 and m.metrics["err_ratio"] <= 1.0
    assert system.baselines()["torch"]["gflops"] > 0
