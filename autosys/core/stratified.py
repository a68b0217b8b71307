"""Stratified random sampling of choice knobs: each knob's values dealt from a shuffled deck.

Independent uniform draws leave rare combinations to chance: in a
conditional space a knob inside a branch is drawn only when its branch is,
so a study with five draws of one engine can see a boolean of that engine
take the same value five times (1 in 16). Dealing each choice knob
(categorical, ordinal, bool) from a shuffled deck of its values, refilled
when empty, makes every value come up equally often among the draws where
the knob is active: a Latin-hypercube-style stratification of each knob's
marginal, per branch, that needs no budget known in advance. Each single
draw is still uniform; ranges (`Int`, `Float`) are drawn as before.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from autosys.core.space import Categorical, Config, Param, Space


class ChoiceDecks:
    """One shuffled deck per choice knob, kept between draws (and in a tuner's saved state)."""

    def __init__(self, state: Mapping[str, list[int]] | None = None):
        #: knob name -> indices into its choices still to deal (dealt from the end)
        self.decks: dict[str, list[int]] = {name: [int(i) for i in deck] for name, deck in (state or {}).items()}

    def deal(self, param: Param, rng: np.random.Generator) -> Any:
        """The knob's next value: from its deck for a choice knob, else `param.sample`."""
        if not isinstance(param, Categorical):
            return param.sample(rng)
        n = len(param.choices)
        deck = [i for i in self.decks.get(param.name, []) if i < n]  # a deck saved for a since-shrunk knob
        if not deck:
            deck = [int(i) for i in rng.permutation(n)]
        index = deck.pop()
        self.decks[param.name] = deck
        return param.choices[index]

    def sample(self, space: Space, rng: np.random.Generator, keep: Mapping[str, Any] | None = None) -> Config:
        """A random valid config of `space` with its choice knobs dealt.

        keep: values to use instead of drawing, for knobs outside any branch
        (a design point's unconditional values, already stratified by its Latin
        hypercube); knobs inside a branch are dealt, or taken from `keep` when
        they are ranges.
        """
        keep = keep or {}

        def draw(param: Param, generator: np.random.Generator) -> Any:
            if param.name in keep and (param.condition is None or not isinstance(param, Categorical)):
                return keep[param.name]
            return self.deal(param, generator)

        return space.sample(rng, max_tries=100 if keep else 10_000, draw=draw)

    def state_dict(self) -> dict[str, list[int]]:
        return {name: list(deck) for name, deck in self.decks.items()}
