"""Systems that misbehave on purpose, for the fault-injection tests (importable by worker processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from autosys.core.space import Float, Int, Space
from autosys.core.system import Measurement, Objective, System
from tests.systems_for_tests import Sleepy

CHILD = """
import os, sys, time
if sys.argv[1] == "escape":
    os.setsid()  # leaves the trial's process group; only a tree walk finds it
pid = os.fork()  # a grandchild too
with open(sys.argv[2], "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(600)
"""


class ForkAndHang(System):
    """Starts children (one leaves the process group, each forks a grandchild), records their pids, hangs."""

    name = "fork-and-hang"

    def __init__(self, pids: str = "pids.txt", hang: float = 600.0):
        self.pids = Path(pids)
        self.hang = hang

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0)])

    @property
    def objective(self) -> Objective:
        return Objective("y", "minimize")

    def evaluate(self, config):
        with self.pids.open("a") as f:
            f.write(f"{os.getpid()}\n")
        for mode in ("stay", "escape"):
            subprocess.Popen([sys.executable, "-c", CHILD, mode, str(self.pids)])
        time.sleep(self.hang)
        return Measurement({"y": config["x"]})


class MemoryHog(System):
    """Allocates `mb` megabytes when x > 0.5."""

    name = "memory-hog"

    def __init__(self, mb: int = 2048):
        self.mb = mb

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0, default=0.25)])

    @property
    def objective(self) -> Objective:
        return Objective("y", "minimize")

    def evaluate(self, config):
        if config["x"] > 0.5:
            block = bytearray(self.mb * 1024 * 1024)
            return Measurement({"y": float(len(block))})
        return Measurement({"y": config["x"]})


class ExclusiveSleepy(System):
    """Like tests' Sleepy, but declares that its trials must not overlap on one host."""

    name = "exclusive-sleepy"
    exclusive = True

    def __init__(self, log: str = "exclusive.log", sleep: float = 0.2):
        self.log = Path(log)
        self.sleep = sleep

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0), Int("k", 1, 100)])

    @property
    def objective(self) -> Objective:
        return Objective("score", "maximize")

    def evaluate(self, config):
        with self.log.open("a") as f:
            f.write(f"start {os.getpid()} {time.time()}\n")
        time.sleep(self.sleep)
        with self.log.open("a") as f:
            f.write(f"end {os.getpid()} {time.time()}\n")
        return Measurement({"score": config["x"] + config["k"] / 100})


class Printer(System):
    """Prints to stdout and stderr during a trial (must not corrupt a worker's answer pipe)."""

    name = "printer"

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0)])

    @property
    def objective(self) -> Objective:
        return Objective("y", "minimize")

    def evaluate(self, config):
        print("noise on stdout " * 100)
        print("noise on stderr", file=sys.stderr)
        os.write(1, b"\x00\x00\x00raw bytes on fd 1\n")
        return Measurement({"y": config["x"]})


class ScratchFiles(Sleepy):
    """Keeps its trial's data in one file of its workspace, like the SQLite adapter does.

    Each trial writes `trial.db` in the attempt's folder (`attempt_dir`; the
    work folder where there is none), sleeps, and reads it back: a trial whose
    file another trial overwrote or removed fails, so a workspace shared by two
    processes shows as failed trials. Logs "start TAG PID" / "end TAG PID" to `log`.
    """

    name = "scratch-files"

    def __init__(self, log: str = "scratch.log", sleep: float = 0.15):
        super().__init__(log, sleep)

    def evaluate(self, config):
        tag = f"{config['x']:.12f}-{config['k']}"
        with self.log.open("a") as f:
            f.write(f"start {tag} {os.getpid()}\n")
        folder = self.scratch_dir()
        scratch = folder / "trial.db"
        scratch.write_text(tag)
        time.sleep(self.sleep)
        if scratch.read_text() != tag:
            raise RuntimeError(f"another trial overwrote {scratch}")
        scratch.unlink()
        with self.log.open("a") as f:
            f.write(f"end {tag} {os.getpid()}\n")
        return Measurement({"score": config["x"] + config["k"] / 100})


class BrokenSetup(System):
    """Its `setup` fails (SystemUnavailable) while the file `marker` exists; trials are instant."""

    name = "broken-setup"

    def __init__(self, marker: str = "broken.marker"):
        self.marker = Path(marker)

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0)])

    @property
    def objective(self) -> Objective:
        return Objective("y", "minimize")

    def setup(self) -> None:
        if self.marker.exists():
            from autosys.core.system import SystemUnavailable

            raise SystemUnavailable(f"cannot set up: {self.marker} exists")

    def evaluate(self, config):
        return Measurement({"y": config["x"]})
