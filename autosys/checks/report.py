"""What both conformance suites return and raise: one report type, one error type, one way to name checks.

A check has a short snake_case name (`default_evaluates`, `save_restore`);
`passed` lists the names, `failed` and `skipped` list "name: why" lines that
say what to fix or why the check did not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ConformanceError(AssertionError):
    """A system or tuner broke its contract; the message lists every failed check."""


@dataclass
class CheckReport:
    """The outcome of a conformance suite on one subject (a system or a tuner)."""

    subject: str = ""
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, why: str = "") -> bool:
        """Record check `name` as passed, or failed with `why`; return `ok`."""
        if ok:
            self.passed.append(name)
        else:
            self.failed.append(f"{name}: {why}")
        return ok

    def skip(self, name: str, why: str) -> None:
        self.skipped.append(f"{name}: {why}")

    def __contains__(self, name: object) -> bool:
        """`"save_restore" in report`: did that check pass?"""
        return name in self.passed

    def raise_for_failures(self, contract: str) -> None:
        """Raise `ConformanceError` listing every failed check, if any failed."""
        if self.failed:
            raise ConformanceError(f"{self.subject} does not conform to the {contract} contract:\n  " + "\n  ".join(self.failed))

    def __str__(self) -> str:
        lines = [f"PASS {c}" for c in self.passed] + [f"SKIP {c}" for c in self.skipped] + [f"FAIL {c}" for c in self.failed]
        return "\n".join(lines)


__all__ = ["CheckReport", "ConformanceError"]
