import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosys.core.space import Bool, Categorical, Condition, Constraint, Float, Forbid, InvalidConfig, Int, Ordinal, Space


def make_space():
    return Space(
        [
            Categorical("engine", ("hash", "lsm")),
            Int("threads", 1, 64, log=True, default=4),
            Float("ratio", 0.0, 1.0),
            Float("rate", 1e-4, 1e-1, log=True),
            Ordinal("page", (512, 1024, 4096), default=1024),
            Bool("sync"),
            Int("bloom_bits", 0, 20, condition=Condition("engine", ("lsm",))),
        ],
        [Forbid("unsafe", reason="hash engine must sync", engine="hash", sync=False)],
    )


def test_same_seed_same_samples_and_samples_validate():
    space = make_space()
    a = [space.sample(np.random.default_rng(7)) for _ in range(1)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(1)]
    assert a == b
    rng = np.random.default_rng(1)
    for _ in range(200):
        config = space.sample(rng)
        assert space.validate(config) == config
        assert not (config["engine"] == "hash" and config["sync"] is False)
        assert ("bloom_bits" in config) == (config["engine"] == "lsm")


def test_validation_names_parameter_value_and_range():
    space = make_space()
    good = space.complete({"engine": "lsm", "sync": True})
    with pytest.raises(InvalidConfig, match=r"threads=100 .*\[1, 64\]"):
        space.validate({**good, "threads": 100})
    with pytest.raises(InvalidConfig, match="unknown parameter 'nope'"):
        space.validate({**good, "nope": 1})
    with pytest.raises(InvalidConfig, match="missing parameter 'bloom_bits'"):
        space.validate({k: v for k, v in good.items() if k != "bloom_bits"})
    with pytest.raises(InvalidConfig, match="constraint 'unsafe'.*must sync"):
        space.validate({**space.complete({"engine": "lsm"}), "engine": "hash", "sync": False})
    with pytest.raises(InvalidConfig, match="ratio=nan"):
        space.validate({**good, "ratio": float("nan")})
    with pytest.raises(InvalidConfig, match="threads"):
        space.validate({**good, "threads": True})  # a bool is not an integer here


def test_inactive_parameter_is_dropped_and_strings_are_parsed():
    space = make_space()
    config = space.validate({**space.complete({"engine": "hash", "sync": True}), "bloom_bits": 3})
    assert "bloom_bits" not in config
    parsed = space.validate({"engine": "lsm", "threads": "8", "ratio": "0.5", "rate": 0.01, "page": "4096", "sync": "true", "bloom_bits": 10})
    assert parsed["threads"] == 8 and parsed["page"] == 4096 and parsed["sync"] is True


def test_unit_cube_round_trip_and_bounds():
    space = make_space()
    rng = np.random.default_rng(3)
    for _ in range(100):
        config = space.sample(rng)
        vector = space.encode(config)
        assert vector.shape == (len(space),)
        assert np.all((vector >= 0) & (vector <= 1))
        decoded = space.decode(vector)
        for key, value in config.items():
            if isinstance(value, float):
                assert decoded[key] == pytest.approx(value)
            else:
                assert decoded[key] == value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=7, max_size=7))
def test_decode_of_any_vector_is_in_range(vector):
    space = Space([p for p in make_space()])  # constraints aside, decode must stay in range
    config = space.decode(vector)
    assert space.validate(config) == config


def test_grid_covers_choices_respects_conditions_and_constraints():
    space = Space(
        [Categorical("a", ("x", "y")), Float("f", 0.0, 1.0), Int("c", 1, 3, condition=Condition("a", ("y",)))],
        [Forbid("no-x-zero", a="x", f=0.0)],
    )
    grid = list(space.grid(resolution=3))
    # a=x: f in {0.5, 1.0} (0.0 forbidden) -> 2; a=y: f in 3 values x c in 3 values -> 9
    assert len(grid) == 11
    assert all(space.is_valid(c) for c in grid)
    assert len({json.dumps(c, sort_keys=True) for c in grid}) == len(grid)


def test_json_round_trip_keeps_everything_declarative():
    space = make_space()
    again = Space.from_json(json.loads(json.dumps(space.to_json())))
    assert again.to_json() == space.to_json()
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = space.sample(rng)
        assert again.validate(config) == config
    assert not again.is_valid({**space.complete({"engine": "lsm"}), "engine": "hash", "sync": False})


def test_predicate_constraints_need_their_function_back():
    space = Space([Int("a", 0, 10), Int("b", 0, 10)], [Constraint("sum", lambda c: c["a"] + c["b"] <= 10)])
    with pytest.raises(ValueError, match="predicates="):
        Space.from_json(space.to_json())
    again = Space.from_json(space.to_json(), predicates={"sum": lambda c: c["a"] + c["b"] <= 10})
    assert not again.is_valid({"a": 6, "b": 6})


def test_conversions_to_skopt_and_gymnasium():
    space = make_space()
    dims = space.to_skopt()
    assert [d.name for d in dims] == space.names
    gym_space = space.to_gym()
    sample = gym_space.sample()
    assert set(sample) == set(space.names)
    assert gym_space["threads"].start == 1 and gym_space["threads"].n == 64


def test_from_dict_and_bad_definitions():
    space = Space.from_dict({"x0": (-5.0, 5.0), "n": (1, 64), "kind": ["a", "b"]})
    assert isinstance(space["x0"], Float) and isinstance(space["n"], Int) and isinstance(space["kind"], Categorical)
    with pytest.raises(ValueError, match="low"):
        Float("x", 1.0, 0.0)
    with pytest.raises(ValueError, match="log"):
        Int("n", 0, 10, log=True)
    with pytest.raises(ValueError, match="defined twice"):
        Space([Int("a", 0, 1), Int("a", 0, 2)])
    with pytest.raises(InvalidConfig):
        Space([Int("a", 0, 1, default=5)])
    with pytest.raises(ValueError, match="parent"):
        Space([Int("a", 0, 1, condition=Condition("b", (1,)))])


def test_subspace_pins_values():
    space = make_space().subspace({"engine": "lsm", "threads": "16"})
    rng = np.random.default_rng(0)
    for _ in range(20):
        config = space.sample(rng)
        assert config["engine"] == "lsm" and config["threads"] == 16
    with pytest.raises(InvalidConfig, match="threads=999"):
        make_space().subspace({"threads": 999})
