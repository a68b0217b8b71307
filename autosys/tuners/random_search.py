"""Random search: the baseline every other strategy must beat."""

from __future__ import annotations

from autosys.core.space import Config
from autosys.tuners.base import Tuner


class RandomSearch(Tuner):
    """Independent uniform samples from the space (log scales honoured), seeded."""

    name = "random"

    def _ask(self) -> Config:
        return self.space.sample(self.rng)
