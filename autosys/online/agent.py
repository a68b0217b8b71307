"""An agent that lives inside (or beside) a running system and keeps it tuned.

Each window the agent reads its monitors, and then either keeps measuring the
incumbent config, or tries one candidate for one window and keeps it only if
it beats the incumbent by more than the measured noise — otherwise it rolls
back at once. A candidate the policy predicts, with confidence, to gain
clearly (a config known good for this workload) needs only to beat the
incumbent's mean: the prediction and the window agree. A statistical change
test on workload features (operation mix, ...) starts a new round of
exploration when the workload shifts; the windows that showed the change ran
the incumbent under the new workload, so they are its new baseline (less
any that straddled the change), and a policy with a known-good config for
that workload (`Policy.ready`) applies it in the same step: no window is spent
re-measuring a config tuned for the old workload. A policy without one still
gets `baseline_windows` windows of the new workload before it proposes.
A monitor that tests every request itself (`autosys.online.change`) can
report an abrupt change at once (the reading `Agent.ALARM`): the system ends
the window early, the agent rolls back a candidate under trial, starts a new
regime without using the straddling window, and, when the policy knows the
incumbent to fall below the default in some past workload
(`Policy.fallback`), runs the policy's safe harbor until the new workload
shows: a config tuned for one workload never runs a full window of another.
The policy acts again once two windows in a row agree (the first after an
abrupt change are a transient, a cold cache, that can look like another
workload).
Guardrails bound what it may do: a change budget, the space's constraints, a
health check. Every decision is logged to storage with its reason, and a
restarted agent puts the system back on the last config it trusted.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from autosys.learn.models import NearestModel
from autosys.online.monitor import Monitor
from autosys.core.space import Config, InvalidConfig, Space
from autosys.core.system import System
from autosys.core.trial import Result, TrialState
from autosys.tuners import make_tuner

HealthCheck = Callable[[Mapping[str, float]], "str | None"]


@dataclass
class Guardrails:
    """Limits on what the agent may do to a live system."""

    #: at most this many config changes (tries) per `budget_seconds`
    change_budget: int = 30
    budget_seconds: float = 3600.0
    #: a candidate is kept only if it beats the incumbent by this many of the incumbent's std devs...
    noise_sigmas: float = 2.0
    #: ...and by at least this fraction of the incumbent's value
    min_relative_gain: float = 0.03
    #: returns a reason string when the system is unhealthy (the candidate is rolled back at once)
    health_check: HealthCheck | None = None
    #: windows to let a candidate settle (caches refill, ...) before the window that judges it
    settle_windows: int = 0


@dataclass
class Decision:
    """One logged step of the agent."""

    window: int
    action: str  # measure | workload-change | fallback | explore | settle | keep | rollback | apply-failed | resume | budget-exhausted | error
    config: Config
    value: float | None
    incumbent_value: float | None
    reason: str
    time: float = field(default_factory=time.time)
    context: dict[str, float] = field(default_factory=dict)


class ChangeDetector:
    """Flags a workload change when a context feature leaves its reference band.

    The reference is the mean and spread of the last `reference_windows`
    windows since the previous change; a feature has changed when it moves by
    more than `threshold` in absolute terms (operation fractions) and by more
    than `z` reference standard deviations. Two windows in a row are needed,
    so one noisy window does not trigger a change.
    """

    def __init__(self, threshold: float = 0.15, z: float = 4.0, reference_windows: int = 3, confirm: int = 2):
        self.threshold, self.z, self.reference_windows, self.confirm = threshold, z, reference_windows, confirm
        self.reference: list[dict[str, float]] = []
        self._suspect = 0

    def reset(self) -> None:
        self.reference, self._suspect = [], 0

    def differs(self, a: Mapping[str, float], b: Mapping[str, float]) -> bool:
        """Two windows' contexts are apart by more than `threshold` in some feature (two workloads, or a window
        straddling a change and one after it)."""
        return any(abs(float(a.get(k, 0.0)) - float(b.get(k, 0.0))) > self.threshold for k in set(a) | set(b))

    @property
    def suspect(self) -> bool:
        """The last window left the reference band, but the change is not confirmed yet."""
        return self._suspect > 0

    def update(self, context: Mapping[str, float]) -> bool:
        if len(self.reference) < self.reference_windows:
            self.reference.append(dict(context))
            return False
        shifted = False
        for name in context:
            values = np.array([r.get(name, 0.0) for r in self.reference])
            delta = abs(context[name] - values.mean())
            if delta > self.threshold and delta > self.z * values.std():
                shifted = True
        if not shifted:
            self._suspect = 0
            self.reference = (self.reference + [dict(context)])[-self.reference_windows * 3 :]
            return False
        self._suspect += 1
        if self._suspect >= self.confirm:
            self.reset()
            self.reference.append(dict(context))
            return True
        return False


class Policy(ABC):
    """Proposes candidate configs for the agent to try."""

    @abstractmethod
    def propose(self, context: Mapping[str, float], incumbent: Config) -> Config | None: ...

    def observe(self, context: Mapping[str, float], config: Config, value: float) -> None:
        """Learn from one measured window."""

    def reset(self, context: Mapping[str, float]) -> None:
        """The workload changed: start a new search (keeping what was learned)."""

    def ready(self, context: Mapping[str, float], incumbent: Config) -> bool:
        """True when the next proposal is worth trying after one window of the incumbent instead of a full
        baseline (a config known good for this workload: waiting only costs windows on a worse config)."""
        return False

    def wait(self, context: Mapping[str, float], incumbent: Config) -> bool:
        """True to skip proposing this window: the policy needs another window to tell which workload runs (it must
        bound how long it waits)."""
        return False

    def fallback(self, context: Mapping[str, float], incumbent: Config) -> Config | None:
        """The config to run while a new workload is unknown (right after an abrupt change): one whose worst case
        over the known workloads is safe, when the incumbent is known to be unsafe in some; None keeps the incumbent."""
        return None

    def expected_gain(self, config: Config) -> float | None:
        """The relative gain over the incumbent the policy predicted, with confidence, for `config`, its
        last proposal (0.2 = 20% better); None when it has no such prediction (blind exploration)."""
        return None

    def explain(self) -> str:
        """Why the last proposal (or none) was made, for the decision log."""
        return ""


class TunerPolicy(Policy):
    """A tuner per workload regime, warm-started from the most similar regime seen before.

    Past (context, config, value) windows form a small knowledge base; on a
    change, the nearest past context's best config is proposed first
    (workload mapping), then the tuner explores. `tries_per_regime` bounds how
    many candidates are tried after each change.
    """

    def __init__(
        self, space: Space, direction: str, *, tuner: str = "random", seed: int = 0, tries_per_regime: int = 8
    ):
        self.space, self.direction, self.tuner_name, self.seed = space, direction, tuner, seed
        self.tries_per_regime = tries_per_regime
        self.memory: list[tuple[dict[str, float], Config, float]] = []
        self._regime = 0
        self._tries = 0
        self._tuner = self._new_tuner()
        self._suggest: list[Config] = []

    def _new_tuner(self):
        return make_tuner(self.tuner_name, self.space, direction=self.direction, seed=self.seed + self._regime)

    def reset(self, context: Mapping[str, float]) -> None:
        self._regime += 1
        self._tries = 0
        self._tuner = self._new_tuner()
        self._suggest = []
        best = self.best_for(context)
        if best is not None:
            self._suggest.append(best)

    def best_for(self, context: Mapping[str, float]) -> Config | None:
        """The best config measured under the most similar past context (None if no memory)."""
        if not self.memory or not context:
            return None
        names = sorted(context)
        X = np.array([[c.get(n, 0.0) for n in names] for c, _, _ in self.memory])
        sign = -1.0 if self.direction == "maximize" else 1.0
        y = np.array([sign * v for _, _, v in self.memory])
        knn = NearestModel(k=1).fit(X, y)
        nearest = X[knn.neighbours(np.array([[context[n] for n in names]]))[0, 0]]
        close = [i for i in range(len(X)) if np.allclose(X[i], nearest)]
        best = min(close, key=lambda i: y[i])
        return dict(self.memory[best][1])

    def propose(self, context, incumbent):
        if self._tries >= self.tries_per_regime:
            return None
        self._tries += 1
        key = self.space.config_key(incumbent)
        while self._suggest:
            config = self._suggest.pop(0)
            if self.space.config_key(config) != key:
                return config
        for _ in range(50):  # the incumbent is measured anyway: skip it, and tell the tuner what it scored
            trial = self._tuner.ask()
            if self.space.config_key(trial.config) != key:
                return trial.config
            scores = [v for c, cfg, v in self.memory if self.space.config_key(cfg) == key]
            if scores:
                self._tuner.tell(trial, Result(TrialState.COMPLETE, scores[-1]))
        return None

    def observe(self, context, config, value):
        self.memory.append((dict(context), dict(config), value))
        for number, trial in list(self._tuner.pending.items()):
            if self.space.config_key(trial.config) == self.space.config_key(config):
                self._tuner.tell(trial, Result(TrialState.COMPLETE, value))


class Agent:
    """Keeps `system` tuned while it runs. Drive it with `step()` or `start()`/`stop()`.

    The objective metric is read from the monitors (e.g. a `CounterMonitor`'s
    throughput); `context_features` (default: every `*_fraction` reading)
    describe the workload for the change test and the policy. A reading
    `ALARM` > 0 says a monitor's own change test saw an abrupt change during
    the window.
    """

    #: the monitor reading that reports an abrupt change seen by the monitor's own test (see `autosys.online.change`)
    ALARM = "change_alarm"
    #: after an alarm, the policy acts once two windows in a row agree, or after this many windows
    ALARM_SETTLE_WINDOWS = 4

    def __init__(
        self,
        system: System,
        policy: Policy | None = None,
        monitors: Sequence[Monitor] = (),
        *,
        guardrails: Guardrails | None = None,
        window: float = 1.0,
        storage: Any = None,
        detector: ChangeDetector | None = None,
        context_features: Sequence[str] | None = None,
        baseline_windows: int = 2,
        explore_every: int | None = 20,
        objective_shift: float = 0.3,
        allow_risky: Sequence[str] | str = (),
    ):
        self.system = system
        self.space = system.space().safe(allow_risky)  # risky values only where the user allows them
        self.objective = system.objective
        self.policy = policy or TunerPolicy(self.space, self.objective.direction)
        self.monitors = list(monitors) or list(system.monitors())
        if not self.monitors:
            raise ValueError(f"the agent needs monitors to read {self.objective.metric!r} from")
        self.guardrails = guardrails or Guardrails()
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self.storage = storage
        self.detector = detector or ChangeDetector()
        self.context_features = list(context_features) if context_features else None
        self.baseline_windows = baseline_windows
        self.explore_every = explore_every
        #: a relative move of the incumbent's objective that, twice in a row, counts as a workload change
        self.objective_shift = objective_shift
        self._shift_suspect = 0
        self.decisions: list[Decision] = []
        self.incumbent: Config = self.space.validate(self._current_config())
        self.incumbent_values: list[float] = []
        self.candidate: Config | None = None
        self._settling = 0
        self.windows = 0
        self._steady_windows = 0
        self._exploring = True  # explore after the first baseline, as after any change
        #: windows that may start a workload change: (context, value, joins the incumbent's band if it was not one)
        self._held: list[tuple[dict[str, float], float, bool]] = []
        #: the windows that showed the last change, until the next steady window says whether they straddled it
        self._showed_change: list[tuple[dict[str, float], float]] = []
        #: steady windows since the last workload change (a policy that is not `ready` waits `baseline_windows`)
        self._since_change = baseline_windows
        self._changes: list[float] = []
        #: windows left to wait, after a change alarm, for two windows in a row to agree (0: not waiting)
        self._unsettled = 0
        self._last_context: dict[str, float] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._resume_from_storage()

    # ------------------------------------------------------------------ helpers
    def _current_config(self) -> Config:
        try:
            return self.system.current()
        except NotImplementedError:
            return self.system.default()

    def _log(self, action: str, config: Config, value: float | None, reason: str, context=None) -> Decision:
        incumbent_value = float(np.mean(self.incumbent_values)) if self.incumbent_values else None
        decision = Decision(self.windows, action, dict(config), value, incumbent_value, reason, context=dict(context or {}))
        self.decisions.append(decision)
        if self.storage is not None:
            self.storage.add_event("agent", asdict(decision))
            if action in ("keep", "resume", "fallback"):
                self.storage.add_event("incumbent", {"config": dict(config)})
        return decision

    def _resume_from_storage(self) -> None:
        if self.storage is None:
            return
        trusted = self.storage.events("incumbent")
        if not trusted:
            self.storage.add_event("incumbent", {"config": self.incumbent})
            return
        last = trusted[-1][2]["config"]
        try:
            last = self.space.validate(last)
        except InvalidConfig:
            return
        if self.space.config_key(last) != self.space.config_key(self.incumbent):
            self.system.apply(last)
            self.incumbent = last
        self._log("resume", last, None, "restarted: system set to the last config the agent trusted")

    def _read(self) -> dict[str, float]:
        reading: dict[str, float] = {}
        for monitor in self.monitors:
            reading.update(monitor.sample())
        return reading

    def _context(self, reading: Mapping[str, float]) -> dict[str, float]:
        names = self.context_features or sorted(k for k in reading if k.endswith("_fraction"))
        return {n: float(reading.get(n, 0.0)) for n in names}

    def _budget_left(self) -> bool:
        now = time.monotonic()
        self._changes = [t for t in self._changes if now - t < self.guardrails.budget_seconds]
        return len(self._changes) < self.guardrails.change_budget

    def _wins(self, value: float, expected: float | None = None) -> tuple[bool, str]:
        """Whether a candidate's window beats the incumbent: by more than the noise margin, or, when the policy
        predicted a clear gain (`expected`, at least twice `min_relative_gain`), by anything at all."""
        mean = float(np.mean(self.incumbent_values))
        sd = float(np.std(self.incumbent_values)) if len(self.incumbent_values) > 1 else 0.0
        margin = max(self.guardrails.noise_sigmas * sd, self.guardrails.min_relative_gain * abs(mean))
        gain = (value - mean) if self.objective.direction == "maximize" else (mean - value)
        text = f"{self.objective.metric} {value:.4g} vs incumbent {mean:.4g} (noise margin {margin:.3g})"
        if gain > margin:
            return True, text
        if expected is not None and expected >= 2 * self.guardrails.min_relative_gain and gain > 0:
            return True, f"{text}; within noise, but agrees with the predicted gain of {expected:+.0%}"
        return False, text

    def _apply(self, config: Config) -> str | None:
        try:
            self.system.apply(config)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    # ------------------------------------------------------------------ the loop
    def step(self) -> Decision:
        """End the current window: measure, then keep, roll back, explore or wait."""
        self.windows += 1
        reading = self._read()
        value = reading.get(self.objective.metric, math.nan)
        context = self._context(reading)
        unhealthy = self.guardrails.health_check(reading) if self.guardrails.health_check else None
        if float(reading.get(self.ALARM, 0.0) or 0.0) > 0 and not unhealthy:
            return self._alarmed(context, value)

        if self.candidate is not None:  # the window just measured was a trial
            if unhealthy:
                candidate, self.candidate = self.candidate, None
                return self._rollback(candidate, value, f"unhealthy: {unhealthy}", context)
            if self._settling > 0:
                self._settling -= 1
                return self._log("settle", self.candidate, value, "letting the candidate settle before judging it", context)
            candidate, self.candidate = self.candidate, None
            if not math.isfinite(value):
                return self._rollback(candidate, value, f"unhealthy: {self.objective.metric} is {value}", context)
            self.policy.observe(context, candidate, value)
            wins, text = self._wins(value, self.policy.expected_gain(candidate))
            if wins:
                decision = self._log("keep", candidate, value, f"wins: {text}", context)
                self.incumbent = candidate
                self.incumbent_values = [value]
                self._showed_change = []
                return decision
            return self._rollback(candidate, value, f"no gain beyond noise: {text}", context)

        if not math.isfinite(value):
            return self._log("measure", self.incumbent, None, f"no {self.objective.metric} reading", context)
        context_moved = self.detector.update(context) and not self._unsettled  # (after an alarm: its transient)
        if context_moved or self._objective_shifted(value):
            return self._workload_changed(context, value, context_moved)
        if self.detector.suspect or self._shift_suspect:
            # a window that may start a shift: held apart until the next one says which workload it belongs to
            # (it must not widen the band it is judged by, nor start a trial that a change would confound)
            self._held.append((dict(context), value, not self._shift_suspect))
            return self._log("measure", self.incumbent, value, "a possible workload change: waiting for the next window",
                             context)
        for held_context, held_value, in_band in self._held:  # the suspicion cleared: they were the incumbent's
            if in_band:
                self.incumbent_values.append(held_value)
            self.policy.observe(held_context, self.incumbent, held_value)
        self._held = []
        if self._showed_change:  # they lead the band (a keep would have cleared them); one that differs from this
            kept = [v for c, v in self._showed_change if not self.detector.differs(c, context)]  # window straddled
            self.incumbent_values = kept + self.incumbent_values[len(self._showed_change):]  # the change: dropped
            self._showed_change = []
        self.incumbent_values = (self.incumbent_values + [value])[-10:]
        self.policy.observe(context, self.incumbent, value)
        self._steady_windows += 1
        self._since_change += 1
        if self._unsettled:
            # after an alarm the first windows are a transient (a cold cache refilling, ...) that can look like another
            # workload: the policy acts once two windows in a row agree (at most `ALARM_SETTLE_WINDOWS` windows on),
            # and the transient leaves the baseline
            previous, self._last_context = self._last_context, dict(context)
            if previous is None or not _agree(previous, context, self.detector.threshold):
                self._unsettled -= 1
                if self._unsettled > 0:
                    return self._log("measure", self.incumbent, value,
                                     "after a change alarm: waiting for the new workload to settle", context)
            self._unsettled = 0
            self.incumbent_values = [value]
        if self.explore_every and self._steady_windows >= self.explore_every and not self._exploring:
            self._exploring = True  # periodic re-exploration: some winners only show after a while
            self._steady_windows = 0
            self.policy.reset(context)
        if not self._exploring and self.policy.ready(context, self.incumbent):
            # the policy has a known-good config due: it recognizes a workload the change tests did not flag, so the
            # incumbent's older windows may be another workload's; this one is its baseline
            self._exploring = True
            self.incumbent_values = [value]
        return self._explore(context, value) or self._log("measure", self.incumbent, value, "measuring the incumbent", context)

    def _workload_changed(self, context: dict[str, float], value: float, context_moved: bool) -> Decision:
        """A new workload: the windows that showed it ran the incumbent under it, so they are its new baseline,
        and the policy may act on them at once (a known-good config for that workload is applied this step)."""
        if context_moved:
            why = f"context moved to {_short(context)}"
        else:
            why = f"{self.objective.metric} moved to {value:.4g} from {np.mean(self.incumbent_values):.4g} with no config change"
            self.detector.reset()
            self.detector.update(context)
        held = [(c, v) for c, v, _ in self._held] + [(dict(context), value)]
        self._held, self._shift_suspect = [], 0
        self.incumbent_values = [v for _, v in held]
        self._showed_change = list(held)
        self._exploring = True
        self._steady_windows = 0
        self._since_change = 0
        self.policy.reset(context)
        for held_context, held_value in held:
            self.policy.observe(held_context, self.incumbent, held_value)
        changed = self._log("workload-change", self.incumbent, value, why, context)
        return self._explore(context, value) or changed

    def _alarmed(self, context: dict[str, float], value: float) -> Decision:
        """A monitor's own test saw an abrupt change: roll back a candidate under trial (its window cannot judge it,
        and the change may be its doing), start a new regime, and run the policy's fallback when it has one. The
        window straddles the change, so it is nobody's baseline: the policy acts after the next window."""
        value_or_none = value if math.isfinite(value) else None
        if self.candidate is not None:
            candidate, self.candidate = self.candidate, None
            self._settling = 0
            self._rollback(candidate, value, "a change alarm during the trial: rolled back (its window cannot judge it)",
                           context)
        self.detector.reset()
        self._held, self._shift_suspect, self._showed_change = [], 0, []
        self.incumbent_values = []
        self._exploring, self._steady_windows, self._since_change = True, 0, 0
        self._unsettled, self._last_context = self.ALARM_SETTLE_WINDOWS, None
        self.policy.reset(context)
        why = "a monitor's change test alarmed (an abrupt change); this window straddles it"
        harbor = self.policy.fallback(context, self.incumbent)
        if harbor is not None:
            try:
                harbor = self.space.validate(harbor)
            except InvalidConfig as exc:
                return self._log("workload-change", self.incumbent, value_or_none, f"{why}; invalid fallback: {exc}", context)
            if self.space.config_key(harbor) != self.space.config_key(self.incumbent):
                failure = self._apply(harbor)
                if failure is not None:
                    self._apply(self.incumbent)
                    return self._log("workload-change", self.incumbent, value_or_none,
                                     f"{why}; the fallback failed to apply ({failure})", context)
                self.incumbent = harbor
                explain = self.policy.explain()
                reason = f"{why}: running the safe fallback until the new workload shows" + (f" ({explain})" if explain else "")
                return self._log("fallback", harbor, value_or_none, reason, context)
        return self._log("workload-change", self.incumbent, value_or_none, why, context)

    def _explore(self, context: dict[str, float], value: float) -> Decision | None:
        """Try the policy's next candidate when exploring and the incumbent's baseline is long enough (one window
        when the policy is `ready` with a known-good config); None when it is not time to."""
        measured = len(self.incumbent_values)
        if not self._exploring or measured == 0:
            return None
        if self.policy.wait(context, self.incumbent):
            return None
        # a policy without a known-good config gets `baseline_windows` windows of the new workload first (what it
        # learned before the change, a shadow replay's history say, still describes the old one)
        short = measured < self.baseline_windows or self._since_change < self.baseline_windows
        if short and not self.policy.ready(context, self.incumbent):
            return None
        if not self._budget_left():
            return self._log("budget-exhausted", self.incumbent, value, "change budget used up", context)
        proposal = self.policy.propose(context, self.incumbent)
        why = self.policy.explain()
        if proposal is None:
            self._exploring = False
            self._steady_windows = 0
            return self._log("measure", self.incumbent, value, "done exploring this workload" + (f": {why}" if why else ""),
                             context)
        try:
            proposal = self.space.validate(proposal)
        except InvalidConfig as exc:
            return self._log("measure", self.incumbent, value, f"policy proposed an invalid config: {exc}", context)
        self._changes.append(time.monotonic())
        failure = self._apply(proposal)
        if failure is not None:
            restore = self._apply(self.incumbent)
            extra = f"; restoring the incumbent failed too: {restore}" if restore else ""
            self.policy.observe(context, proposal, -math.inf if self.objective.direction == "maximize" else math.inf)
            return self._log("apply-failed", proposal, None, f"apply failed ({failure}); rolled back{extra}", context)
        self.candidate = proposal
        self._settling = self.guardrails.settle_windows
        return self._log("explore", proposal, value, "trying a candidate for one window" + (f": {why}" if why else ""),
                         context)

    def _objective_shifted(self, value: float) -> bool:
        """The incumbent's own objective moved far outside its band for two windows: the workload changed."""
        if len(self.incumbent_values) < self.baseline_windows + 1 or self._unsettled:  # (a transient moves it anyway)
            self._shift_suspect = 0
            return False
        mean, sd = float(np.mean(self.incumbent_values)), float(np.std(self.incumbent_values))
        far = abs(value - mean) > max(4 * sd, self.objective_shift * max(abs(mean), 1e-12))
        self._shift_suspect = self._shift_suspect + 1 if far else 0
        return self._shift_suspect >= 2

    def _rollback(self, candidate: Config, value: float, reason: str, context) -> Decision:
        failure = self._apply(self.incumbent)
        if failure:
            reason += f"; rollback failed: {failure}"
        return self._log("rollback", candidate, value if math.isfinite(value) else None, reason, context)

    # ------------------------------------------------------------------ background thread
    def start(self) -> "Agent":
        """Run `step()` every `window` seconds on a daemon thread (the embedded form)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        for monitor in self.monitors:
            monitor.sample()  # start the first window now
        self._thread = threading.Thread(target=self._run, name="autosys-agent", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_time = time.monotonic() + self.window
        while not self._stop.wait(max(next_time - time.monotonic(), 0.0)):
            next_time += self.window
            try:
                self.step()
            except Exception as exc:  # the agent failing must never take the system down
                self._apply(self.incumbent)
                self._log("error", self.incumbent, None, f"agent error, back on the incumbent: {type(exc).__name__}: {exc}")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.candidate is not None:  # stopped mid-trial: go back to what we trust
            self._apply(self.incumbent)
            self.candidate = None

    def __enter__(self) -> "Agent":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.decisions:
            out[d.action] = out.get(d.action, 0) + 1
        return out


def _agree(a: Mapping[str, float], b: Mapping[str, float], tolerance: float) -> bool:
    """Two windows' contexts agree: every feature within `tolerance` or 10% of the larger."""
    for key in set(a) | set(b):
        x, y = float(a.get(key, 0.0)), float(b.get(key, 0.0))
        if abs(x - y) > max(tolerance, 0.1 * max(abs(x), abs(y))):
            return False
    return True


def _short(context: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.2f}" for k, v in sorted(context.items()))
