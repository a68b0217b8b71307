"""check_system passes on every registered system and fails clearly on a broken one.

The registry (`available_systems()`: entry points plus run-time registrations)
is iterated, not a hand list: a registered system with no small options in
`SMALL` fails, so a new adapter cannot be forgotten here.
"""

import socket

import pytest

from autosys.checks.report import CheckReport, ConformanceError
from autosys.checks.system import check_system
from autosys.core.registry import available_systems, make_system
from autosys.core.space import Float, Space
from autosys.core.system import Measurement, Objective, System, SystemUnavailable

# Small options so each system's trials take a moment; every registered system must be here.
SMALL = {
    "sqlite": {"records": 300, "operations": 200, "repeats": 1, "seconds": 0.3},
    "sqlite-service": {"records": 300, "seconds": 0.2},
    "page-cache-app": {"capacity": 50},
    "learned-index": {"n_keys": 20_000, "queries": 5_000, "repeats": 1},
    "learned-index-updates": {"n_keys": 20_000, "operations": 4_000, "repeats": 1},
    "kv": {"records": 500, "operations": 500, "seconds": 0.3},
    "page-policy": {"requests": 5_000, "pages": 500},
    "kernel": {"shape": "32,32,32", "repeats": 1, "timeout": 60.0},
    "postgres": {"operations": 200, "seconds": 0.5, "warmup": 0.0, "concurrency": 1},
    "mysql": {"operations": 200, "seconds": 0.5, "warmup": 0.0, "concurrency": 1},
}
SERVERS = {"postgres": 5432, "mysql": 3306}


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("name", sorted(available_systems()))
def test_check_system_passes_on_every_registered_system(name):
    assert name in SMALL, f"system {name!r} is registered but has no small test options: add it to SMALL"
    if name in SERVERS and not reachable(SERVERS[name]):
        pytest.skip(f"no {name} server at 127.0.0.1:{SERVERS[name]}")
    options = dict(SMALL[name])
    try:
        system = make_system(name, options)
        system.space()
    except (SystemUnavailable, ImportError) as exc:  # an optional extra is not installed (CI installs them all)
        pytest.skip(f"{name} needs an optional extra: {exc}")
    if name == "page-cache-app":
        system.pages = list(range(100)) * 5
    report = check_system(system, study_budget=2, samples=10)
    assert isinstance(report, CheckReport) and not report.failed
    assert "default_evaluates" in report and "study_runs" in report


class Broken(System):
    """Its default is outside its own space, and evaluate forgets the objective metric."""

    name = "broken"

    def space(self):
        return Space([Float("x", 0.0, 1.0)])

    def default(self):
        return {"x": 5.0}

    @property
    def objective(self):
        return Objective("speed", "maximize")

    def evaluate(self, config):
        return Measurement({"other": 1.0})


def test_check_system_fails_with_a_clear_message_on_a_broken_adapter():
    with pytest.raises(ConformanceError) as info:
        check_system(Broken())
    message = str(info.value)
    assert "Broken does not conform to the System contract" in message
    assert "default_valid: default() is not a valid config" in message and "x=5.0" in message


class ForgetsMetric(Broken):
    def default(self):
        return {"x": 0.5}


def test_missing_metric_is_reported():
    report = check_system(ForgetsMetric(), raise_on_failure=False)
    assert any(f.startswith("default_evaluates: ") and "no 'speed' metric" in f for f in report.failed)
    assert "default_valid" in report and "default_evaluates" not in report
