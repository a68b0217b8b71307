"""Host-speed calibration: the reference is stable, slowdowns scale only the on-CPU time."""

from __future__ import annotations

import pytest

from autosys.run.hostspeed import HostSpeed, calibration_ms, normalised_seconds


def test_calibration_is_positive_and_the_reference_is_fixed_per_process():
    assert calibration_ms(1) > 0
    first = HostSpeed.reference_ms()
    assert HostSpeed.reference_ms() == first
    assert 0.05 < HostSpeed.slowdown() < 20  # the same loop, the same host: within reason of the reference


def test_normalised_seconds_rescales_only_the_cpu_part():
    # 1 s busy, of which 0.6 s on the CPU; the host ran 2x slower: the CPU part counts 0.3 s
    assert normalised_seconds(1.0, 0.6, 2.0) == pytest.approx(0.7)
    assert normalised_seconds(1.0, 0.6, 1.0) == pytest.approx(1.0)
    # CPU time is clamped into [0, busy]: a thread cannot be on the CPU longer than it was busy
    assert normalised_seconds(1.0, 5.0, 2.0) == pytest.approx(0.5)
    assert normalised_seconds(1.0, -1.0, 2.0) == pytest.approx(1.0)
    assert normalised_seconds(1.0, 0.5, 0.0) == 1.0  # no usable calibration: unchanged
