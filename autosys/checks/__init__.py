"""Conformance suites any author can run: `check_system` for a System, `check_tuner` for a Tuner.

May import: `autosys.run` and everything below it.
"""

from __future__ import annotations

from autosys.checks.system import CheckReport, ConformanceError, check_system
from autosys.checks.tuner import check_tuner

__all__ = ["CheckReport", "ConformanceError", "check_system", "check_tuner"]
