"""The adapter protocol: what a tunable system must offer the tuner core.

A system describes its knobs (`space`), its out-of-the-box setting
(`default`), what "better" means (`objective`), and measures a config for real
(`evaluate`). Systems that run live also `apply` a config and report the
`current` one. A system may also offer a cheaper, rougher measurement: a
`fidelity()` dial that `evaluate(config, fidelity=...)` honours, and a
`predictor()` below it (see `autosys.core.fidelity`). The core reaches concrete systems only through the registry
(`autosys.core.registry`), never by importing `adapters/`.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from autosys.core.fidelity import Fidelity, InvalidFidelity, Predictor
from autosys.core.space import Config, Space
from autosys.core.spec import SystemSpec, bound_options, class_path, entry_point_name

Direction = Literal["maximize", "minimize"]


class SystemUnavailable(RuntimeError):
    """A system cannot be reached or set up (server down, tool missing); shown as one line."""


@dataclass(frozen=True)
class Limit:
    """A constraint on a measured metric, e.g. Limit("index_bytes", max=1e6)."""

    metric: str
    max: float | None = None
    min: float | None = None

    def violated_by(self, metrics: Mapping[str, float]) -> str | None:
        """None if the metrics respect the limit, else a short reason."""
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return f"metric {self.metric!r} missing or not finite"
        if self.max is not None and value > self.max:
            return f"{self.metric}={value:g} is above its limit {self.max:g}"
        if self.min is not None and value < self.min:
            return f"{self.metric}={value:g} is below its limit {self.min:g}"
        return None

    def to_json(self) -> dict:
        return {"metric": self.metric, "max": self.max, "min": self.min}


@dataclass(frozen=True)
class Objective:
    """The metric to optimize, its direction, limits on other metrics, and extra objectives.

    `others` lists further (metric, direction) pairs for multi-objective studies;
    single-objective tuners use `metric` alone. `unit` is the metric's unit as
    printed ("ops/s"); empty: guessed from the name (autosys.core.units).
    """

    metric: str
    direction: Direction = "maximize"
    limits: tuple[Limit, ...] = ()
    others: tuple[tuple[str, Direction], ...] = ()
    unit: str = ""

    def __post_init__(self):
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {self.direction!r}")

    def sign(self) -> float:
        """Multiply a metric by this to get a loss (lower is better)."""
        return -1.0 if self.direction == "maximize" else 1.0

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    @property
    def metrics(self) -> list[tuple[str, Direction]]:
        return [(self.metric, self.direction), *self.others]

    def unit_of(self, metric: str | None = None) -> str:
        """The unit of `metric` (default: the objective's own): the declared `unit`, else guessed from the name."""
        from autosys.core.units import guess_unit

        metric = metric or self.metric
        return self.unit if metric == self.metric and self.unit else guess_unit(metric)

    def to_json(self) -> dict:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "limits": [limit.to_json() for limit in self.limits],
            "others": [list(o) for o in self.others],
            **({"unit": self.unit} if self.unit else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Objective":
        return cls(
            data["metric"],
            data.get("direction", "maximize"),
            tuple(Limit(**limit) for limit in data.get("limits", [])),
            tuple((m, d) for m, d in data.get("others", [])),
            str(data.get("unit") or ""),
        )


@dataclass
class Measurement:
    """What one evaluation measured: summary metrics plus the raw samples behind them."""

    metrics: dict[str, float]
    samples: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"metrics": self.metrics, "samples": self.samples, "info": self.info}


class System(ABC):
    """Base class of every adapter. Subclasses set `name` and implement the abstract methods.

    Systems are constructed from keyword options (the CLI passes `--flag value`
    pairs as options named by the constructor's parameters), so a constructor
    should take only plain JSON-able keyword arguments with defaults. The
    options of each instance are recorded at construction as its `spec`
    (`autosys.core.spec.SystemSpec`); a subclass needs no code for it.
    """

    name: str = "system"
    #: a system whose trials must not run concurrently on one host (e.g. a DB benchmark)
    exclusive: bool = False
    #: Files. `workdir` is this process's own folder, set by the study before `setup` and kept
    #: across this process's trials: build what trials reuse (a loaded database) here, once.
    #: `attempt_dir` is set only while `evaluate` runs under a study: the trial attempt's own
    #: empty folder, never shared with another trial or process, and removed when the attempt
    #: fails. Write a trial's own files through `scratch_dir()`, which picks the right one.
    workdir: Path | None = None
    attempt_dir: Path | None = None
    #: options holding secrets (passwords, tokens): never stored, printed or logged
    secret_options: tuple[str, ...] = ()
    #: options holding commands to run: never stored, never taken from a stored spec
    executable_options: tuple[str, ...] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> "System":
        self = super().__new__(cls)
        options = bound_options(cls, args, kwargs)
        self._autosys_spec = SystemSpec(  # read through `spec`; make_system names registered systems
            class_path(cls), options or {}, cls.secret_options, cls.executable_options, rebuildable=options is not None
        )
        return self

    @property
    def spec(self) -> SystemSpec:
        """The name and keyword options this instance was built with (see `autosys.core.spec`).

        A system built directly from a class an entry point registers is named
        by that name, else by its `module:Class` path (`make_system` names it
        as it was asked).
        """
        spec = self.__dict__.get("_autosys_spec") or SystemSpec(class_path(type(self)), rebuildable=False)
        if spec.name == class_path(type(self)):
            name = entry_point_name(type(self))
            if name is not None:
                spec = SystemSpec(name, spec.options, spec.secret, spec.executable, spec.rebuildable)
        return spec

    @spec.setter
    def spec(self, spec: SystemSpec) -> None:
        self._autosys_spec = spec

    @abstractmethod
    def space(self) -> Space:
        """The knobs that may be tuned."""

    def default(self) -> Config:
        """The system's out-of-the-box config (the baseline every study reports)."""
        return self.space().default()

    @property
    @abstractmethod
    def objective(self) -> Objective:
        """What better means for this system."""

    @abstractmethod
    def evaluate(self, config: Config) -> Measurement:
        """Measure `config` for real; raise on failure (the study records it).

        A system that declares `fidelity()` takes `evaluate(config, fidelity=None)`:
        it measures at `self.resolve_fidelity(fidelity)` (None = full) and records
        that with `autosys.core.fidelity.stamp` in the measurement's info.
        """

    # --- optional: cheaper measurements (see autosys.core.fidelity)
    def fidelity(self) -> Fidelity | None:
        """The dial for cheaper measurements this system offers; None = full fidelity only."""
        return None

    def predictor(self) -> Predictor | None:
        """A run-free predictor of the objective metric (config -> value), the lowest rung; None if none."""
        return None

    def resolve_fidelity(self, fidelity: float | None) -> float | int | None:
        """The fidelity to measure at: full for None, else the checked value (`InvalidFidelity` if not offered)."""
        declared = self.fidelity()
        if declared is None:
            if fidelity is None:
                return None
            raise InvalidFidelity(f"{self.name} declares no fidelity: it is measured at full fidelity only")
        return declared.check(fidelity)

    # --- optional: online use by the agent
    def apply(self, config: Config) -> None:
        raise NotImplementedError(f"{self.name} cannot change its config while running")

    def current(self) -> Config:
        raise NotImplementedError(f"{self.name} does not report its live config")

    def monitors(self) -> Sequence[Any]:
        """Monitors that observe this system (see autosys.online.monitor)."""
        return []

    @classmethod
    def learners(cls) -> Sequence[Any]:
        """Models the learning loop trains from this system's stored studies (`autosys.learn.loop.Learner`s).

        A class method: the loop asks without building the system (which may connect to a server).
        """
        return ()

    # --- lifecycle: idempotent, so `with system:` is always safe
    def setup(self) -> None:
        """Prepare resources (databases, data sets). Called once before trials."""

    def teardown(self) -> None:
        """Release resources and restore anything changed. Safe to call twice."""

    def acquire_workdir(self) -> Path:
        """The folder to keep files in: the study's, or a private temporary one (see `release_workdir`)."""
        if self.workdir is None:
            self._private_workdir = Path(tempfile.mkdtemp(prefix=f"autosys-{self.name}-"))
            self.workdir = self._private_workdir
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        return Path(self.workdir)

    def scratch_dir(self) -> Path:
        """Where the running trial keeps its own files: its attempt's folder, else the work folder."""
        if self.attempt_dir is not None:
            return Path(self.attempt_dir)
        return self.acquire_workdir()

    def release_workdir(self) -> None:
        """Remove the private folder `acquire_workdir` made (a study's folder is left alone)."""
        private = getattr(self, "_private_workdir", None)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
            self._private_workdir = None
            self.workdir = None

    def __enter__(self) -> "System":
        self.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def options(self) -> dict[str, Any]:
        """The keyword options this instance was built with, secrets included (`spec.public()` to store)."""
        return dict(self.spec.options)
