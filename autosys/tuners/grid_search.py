"""Grid search over every valid combination, continuous ranges at a given resolution."""

from __future__ import annotations

from typing import Any, Mapping

from autosys.core.space import Config, Space
from autosys.tuners.base import Tuner


class GridSearch(Tuner):
    """Walks the grid in a seeded random order (so a short budget still spreads out).

    Once the grid is exhausted it starts over at a finer resolution rather than
    repeating points.
    """

    name = "grid"

    def __init__(self, space: Space, *, resolution: int = 5, shuffle: bool = True, **kwargs: Any):
        super().__init__(space, **kwargs)
        if resolution < 2:
            raise ValueError("grid resolution must be at least 2")
        self.resolution = resolution
        self.shuffle = shuffle
        self._position = 0
        self._grid = self._make_grid()

    def _make_grid(self) -> list[Config]:
        grid = list(self.space.grid(self.resolution))
        if not grid:
            raise ValueError("the grid is empty: the constraints exclude every grid point")
        if self.shuffle:
            order = self.rng.permutation(len(grid))
            grid = [grid[i] for i in order]
        return grid

    def _ask(self) -> Config:
        if self._position >= len(self._grid):
            seen = {self.space.config_key(c) for c in self._grid}
            self.resolution = self.resolution * 2 - 1  # keeps every old point, adds midpoints
            self._grid = [c for c in self._make_grid() if self.space.config_key(c) not in seen] or self._grid
            self._position = 0
        config = self._grid[self._position]
        self._position += 1
        return dict(config)

    def _extra_state(self) -> dict:
        return {"position": self._position, "resolution": self.resolution, "grid": self._grid}

    def _restore(self, history, extra: Mapping[str, Any]) -> None:
        super()._restore(history, extra)
        if extra:
            self._position = extra["position"]
            self.resolution = extra["resolution"]
            self._grid = [dict(c) for c in extra["grid"]]
