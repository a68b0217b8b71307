"""Choice knobs dealt from decks: balanced within their branch, reproducible, saved with the tuner."""

from collections import Counter

import numpy as np

from autosys.core.space import Bool, Categorical, Condition, Float, Space
from autosys.core.stratified import ChoiceDecks
from autosys.core.trial import Result
from autosys.tuners.bayes import ForestBayesOpt
from autosys.tuners.random_search import RandomSearch


def branchy_space() -> Space:
    """Three engines; the second has two booleans and a range, one boolean nested under another."""
    return Space([
        Categorical("engine", ("a", "b", "c")),
        Bool("b_sync", condition=Condition("engine", ("b",))),
        Bool("b_writemap", condition=Condition("engine", ("b",))),
        Bool("b_async", condition=Condition("b_writemap", (True,))),
        Float("b_size", 1.0, 100.0, log=True, condition=Condition("engine", ("b",))),
        Float("x", 0.0, 1.0),
    ])


def test_each_choice_comes_up_equally_often_within_its_branch():
    space, decks, rng = branchy_space(), ChoiceDecks(), np.random.default_rng(3)
    configs = [decks.sample(space, rng) for _ in range(300)]
    engines = Counter(c["engine"] for c in configs)
    assert set(engines.values()) == {100}  # 300 draws of a 3-way choice: 100 each, not binomial spread
    in_b = [c for c in configs if c["engine"] == "b"]
    for knob in ("b_sync", "b_writemap"):
        counts = Counter(c[knob] for c in in_b)
        assert counts[True] == counts[False] == 50
    nested = [c["b_async"] for c in in_b if c["b_writemap"]]
    assert abs(nested.count(True) - nested.count(False)) <= 1
    # every prefix of a knob's draws is balanced to within one deck
    writemaps = [c["b_writemap"] for c in in_b]
    for n in range(2, len(writemaps) + 1, 2):
        assert writemaps[:n].count(True) == n // 2


def test_uniform_draws_are_not_balanced_so_the_test_above_can_fail():
    space, rng = branchy_space(), np.random.default_rng(3)
    engines = Counter(space.sample(rng)["engine"] for _ in range(300))
    assert set(engines.values()) != {100}


def test_every_config_is_valid_and_ranges_stay_random():
    space, decks, rng = branchy_space(), ChoiceDecks(), np.random.default_rng(0)
    configs = [decks.sample(space, rng) for _ in range(60)]
    for config in configs:
        assert space.validate(config) == config
    assert len({round(c["x"], 9) for c in configs}) == 60


def test_keep_takes_unconditional_values_and_deals_the_branch():
    space, decks, rng = branchy_space(), ChoiceDecks(), np.random.default_rng(1)
    base = {"engine": "b", "b_sync": True, "b_writemap": True, "b_async": True, "b_size": 5.0, "x": 0.25}
    kept = [decks.sample(space, rng, keep=base) for _ in range(8)]
    assert all(c["engine"] == "b" and c["x"] == 0.25 and c["b_size"] == 5.0 for c in kept)
    assert Counter(c["b_sync"] for c in kept) == {True: 4, False: 4}


def test_random_search_resumes_with_its_decks():
    space = branchy_space()
    first = RandomSearch(space, seed=5)
    for i in range(7):
        trial = first.ask()
        first.tell(trial, Result.complete(float(i)))
    state, told = first.state_dict(), first.told()
    assert "engine" in state["decks"]
    second = RandomSearch(space, seed=5)
    second.load_state_dict(state, told)
    assert [first.ask().config for _ in range(10)] == [second.ask().config for _ in range(10)]


def test_a_state_saved_before_decks_still_loads():
    space = branchy_space()
    tuner = RandomSearch(space, seed=2)
    trial = tuner.ask()
    tuner.tell(trial, Result.complete(1.0))
    state = tuner.state_dict()
    del state["decks"]
    again = RandomSearch(space, seed=2)
    again.load_state_dict(state, tuner.told())
    assert space.validate(again.ask().config)


def test_forest_design_deals_a_branch_s_choices():
    """Over the design, the rows of one engine do not all share a value of that engine's boolean."""
    space = branchy_space()
    balanced = 0
    for seed in range(10):
        tuner = ForestBayesOpt(space, seed=seed, n_initial=12, random_fraction=0.0)
        rows = []
        for i in range(12):
            trial = tuner.ask()
            rows.append(trial.config)
            tuner.tell(trial, Result.complete(float(i)))
        syncs = [c["b_sync"] for c in rows if c["engine"] == "b"]
        balanced += abs(syncs.count(True) - syncs.count(False)) <= 1
    assert balanced == 10


def design_covers_every_branch_early(seeds=range(10)) -> int:
    """Seeds whose first three design rows (a 12-row design) take all three engines."""
    covered = 0
    for seed in seeds:
        tuner = ForestBayesOpt(branchy_space(), seed=seed, n_initial=12, random_fraction=0.0)
        engines = set()
        for i in range(3):
            trial = tuner.ask()
            engines.add(trial.config["engine"])
            tuner.tell(trial, Result.complete(float(i)))
        covered += engines == {"a", "b", "c"}
    return covered


def test_forest_design_visits_every_branch_first(monkeypatch):
    """The knob that picks the branch is dealt too: the first rows of the design visit every engine."""
    assert design_covers_every_branch_early() == 10
    # the companion: the hypercube alone spreads each engine over the whole design, in no order
    monkeypatch.setattr(ForestBayesOpt, "_branch_roots", lambda self: set())
    assert design_covers_every_branch_early() < 10
