"""Knowledge-base entries for tests, importable by child processes without the CLI's imports (fast to start)."""

from __future__ import annotations

from autosys.core.trial import Trial, TrialState
from autosys.learn.knowledge import StoredStudy, entry_from_study


def make_entry(n_trials: int, tag: str, system: str = "toy") -> StoredStudy:
    """An entry of `n_trials` trials that no other call makes (its uid comes from `tag`)."""
    spec = {"system": system, "system_options": {"tag": tag}, "objective": {"metric": "y", "direction": "maximize"},
            "space": {"params": [{"kind": "float", "name": "x", "low": 0.0, "high": 1.0}]}, "created_at": 1.0, "seed": 0}
    trials = [Trial(number=i, config={"x": i / max(n_trials, 1)}, state=TrialState.COMPLETE, value=float(i),
                    source="default" if i == 0 else "random", metrics={"y": float(i)}) for i in range(n_trials)]
    return entry_from_study(spec, trials, host={"cpu_model": "test"}, name=tag, origin=f"/nowhere/{tag}")
