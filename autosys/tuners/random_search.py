"""Random search: the baseline every other strategy must beat."""

from __future__ import annotations

from autosys.core.space import Config
from autosys.tuners.base import Tuner

#: samples drawn before random search gives up looking for a config it has not tried (a small, exhausted space)
FRESH_TRIES = 100


class RandomSearch(Tuner):
    """Uniform samples from the space (log scales honoured), seeded, without repeating a config.

    A config already told or pending is drawn again (up to `FRESH_TRIES`
    times): in a conditional space a branch without knobs is one config (the
    kv space's `engine=dict`), and independent draws re-ran it on every fifth
    trial, a fifth of the budget spent re-measuring what the study already
    knew, even after it broke a memory cap. Re-measuring is intensification's
    job, paired and on purpose.
    """

    name = "random"

    def _ask(self) -> Config:
        seen = {self.space.config_key(t.config) for t, _ in self.history}
        seen.update(self.space.config_key(t.config) for t in self.pending.values())
        return self.sample_unseen(seen, FRESH_TRIES)
