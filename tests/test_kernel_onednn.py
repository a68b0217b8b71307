"""oneDNN as a conv2d baseline and the measured CPU peak (issue 22, item 1)."""

from __future__ import annotations

import math

import pytest

from autosys_adapters.kernels import onednn
from autosys_adapters.kernels.cpu import cpu_info
from autosys_adapters.kernels.system import KernelSchedule

needs_onednn = pytest.mark.skipif(onednn.available() is not None, reason=f"{onednn.available()}")


@needs_onednn
@pytest.mark.parametrize("shape", [(1, 5, 9, 8, 7, 3, 2), (1, 5, 11, 10, 7, 3, 3, 2)])
def test_onednn_shim_computes_the_same_conv_as_the_generated_kernels_in_every_layout(shape):
    # odd sizes: no layout's blocking divides them; the second strided (the generated kernel: im2col + gemm)
    system = KernelSchedule(op="conv2d", shape=",".join(map(str, shape)), threads=1, repeats=2)
    sources = {"generated": system.source(system.space().default())}
    sources.update({f"onednn-{layout}": onednn.conv_source(shape, layout) for layout in onednn.LAYOUTS})
    flags = {name: onednn.FLAGS for name in sources if name.startswith("onednn")}
    report = system.measure_sources(sources, flags=flags)
    for name, result in report.items():
        assert "error" not in result, (name, result.get("error"))
        assert result["err_ratio"] <= 1.0 and result["gflops"] > 0, name  # checked against float64 numpy


def test_conv_source_refuses_bad_input():
    with pytest.raises(ValueError, match="layout must be one of"):
        onednn.conv_source((1, 1, 3, 3, 1, 1, 1), "nchw16c")
    with pytest.raises(ValueError, match="not a valid conv2d shape"):
        onednn.conv_source((1, 1, 3, 3, 1, 4, 1))


@pytest.mark.skipif(not {"avx2", "fma"} <= cpu_info().flags, reason="no AVX2/FMA on this CPU")
def test_measured_peak_is_a_plausible_per_cycle_rate():
    from autosys_adapters.kernels.peak import peak

    measured = peak(seconds=0.05)
    assert measured.isa == cpu_info().isas[-1]
    assert measured.gflops_per_core > 0 and measured.gflops(2) == pytest.approx(2 * measured.gflops_per_core)
    if math.isfinite(measured.flops_per_cycle):  # at the nominal clock: turbo and throttling move it, not by 4x
        assert 4 <= measured.flops_per_cycle <= 256
    with pytest.raises(ValueError, match="not available here"):
        peak("sse9")
