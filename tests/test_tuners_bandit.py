"""Bandit policies, the config-arm bandit tuner and the meta-tuner."""

import numpy as np
import pytest

from autosys.core.space import Categorical, Float, Int, Space
from autosys.core.trial import Result
from autosys.tuners.bandit import (
    EXP3,
    AUCBandit,
    BanditTuner,
    BernoulliThompson,
    GaussianThompson,
    MetaTuner,
    UCB1,
    make_policy,
    rank_reward,
)

ARM_MEANS = [0.2, 0.5, 0.8, 0.4]


def _play(policy, means, steps, rng):
    for _ in range(steps):
        arm = policy.select(rng)
        policy.update(arm, float(rng.random() < means[arm]))
    return policy.pulls


@pytest.mark.parametrize("cls", [UCB1, GaussianThompson, BernoulliThompson, EXP3])
def test_policy_pulls_the_best_bernoulli_arm_most(cls):
    rng = np.random.default_rng(0)
    pulls = _play(cls(len(ARM_MEANS)), ARM_MEANS, 600, rng)
    assert int(np.argmax(pulls)) == 2
    assert pulls[2] > 0.4 * pulls.sum()


def test_exp3_follows_a_switch_in_the_best_arm():
    rng = np.random.default_rng(1)
    policy = EXP3(3, gamma=0.2)
    _play(policy, [0.9, 0.1, 0.1], 300, rng)
    before = policy.probs().copy()
    _play(policy, [0.0, 0.0, 1.0], 400, rng)
    after = policy.probs()
    assert before[0] > before[2] and after[2] > after[0]


def test_policy_state_round_trip_continues_identically():
    rng = np.random.default_rng(2)
    for name in ("ucb1", "thompson", "thompson-beta", "exp3", "auc"):
        a = make_policy(name, 4)
        _play(a, ARM_MEANS, 50, rng)
        b = make_policy(name, 4)
        b.load(a.state())
        ra, rb = np.random.default_rng(9), np.random.default_rng(9)
        assert [a.select(ra) for _ in range(10)] == [b.select(rb) for _ in range(10)], name


def test_auc_bandit_prefers_the_arm_that_keeps_improving():
    policy = AUCBandit(2, c=0.01)
    for _ in range(10):
        policy.update(0, 1.0)
        policy.update(1, 0.0)
    rng = np.random.default_rng(0)
    assert all(policy.select(rng) == 0 for _ in range(20))


def test_unknown_policy_and_bad_options_are_named():
    with pytest.raises(ValueError, match="unknown bandit policy 'nope'"):
        make_policy("nope", 3)
    with pytest.raises(ValueError, match="gamma"):
        EXP3(3, gamma=0)
    with pytest.raises(ValueError, match="at least one arm"):
        UCB1(0)


def test_rank_reward():
    assert rank_reward(None, [1.0, 2.0]) == 0.0
    assert rank_reward(0.5, []) == 0.5
    assert rank_reward(1.5, [1.0, 2.0, 3.0]) == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- config arms


def _noisy_loss(config, rng):
    base = {"lru": 0.5, "lfu": 0.3, "arc": 0.1}[config["policy"]] + 0.05 * (config["ways"] != 4)
    return base + rng.normal(0, 0.05)


@pytest.mark.parametrize("policy", ["ucb1", "thompson", "thompson-beta", "exp3"])
def test_bandit_tuner_concentrates_on_the_best_config_of_a_categorical_space(policy):
    space = Space([Categorical("policy", ("lru", "lfu", "arc")), Categorical("ways", (2, 4, 8))])
    tuner = BanditTuner(space, policy=policy, seed=0)
    assert len(tuner.arms) == 9
    rng = np.random.default_rng(0)
    for _ in range(150):
        trial = tuner.ask()
        tuner.tell(trial, Result.complete(_noisy_loss(trial.config, rng)))
    assert tuner.best_arm()["policy"] == "arc"
    pulls = tuner.policy.pulls
    by_policy = {p: sum(n for arm, n in zip(tuner.arms, pulls) if arm["policy"] == p) for p in ("lru", "lfu", "arc")}
    assert by_policy["arc"] > by_policy["lfu"] > by_policy["lru"] or by_policy["arc"] > 0.5 * 150


def test_bandit_tuner_over_an_explicit_list_maximizing_with_failures():
    space = Space([Float("x", 0.0, 1.0), Int("n", 1, 4)])
    arms = [{"x": 0.1, "n": 1}, {"x": 0.5, "n": 2}, {"x": 0.9, "n": 3}]
    tuner = BanditTuner(space, arms=arms, direction="maximize", seed=1)
    for _ in range(60):
        trial = tuner.ask()
        if trial.config["n"] == 3:
            tuner.tell(trial, Result.failed("crashes"))  # the arm with the best x always crashes
        else:
            tuner.tell(trial, Result.complete(trial.config["x"]))
    assert tuner.best_arm() == {"x": 0.5, "n": 2}


def test_bandit_tuner_samples_arms_from_a_huge_space_and_rejects_bad_arms():
    big = Space([Float(f"x{i}", 0.0, 1.0) for i in range(9)])
    tuner = BanditTuner(big, resolution=3, max_arms=100, n_sampled_arms=20, seed=4)
    assert len(tuner.arms) == 20 and tuner.arms[0] == big.default()
    assert BanditTuner(big, max_arms=100, n_sampled_arms=20, seed=4).arms == tuner.arms
    with pytest.raises(Exception, match="x"):
        BanditTuner(Space([Float("x", 0.0, 1.0)]), arms=[{"x": 5.0}])


def test_bandit_tuner_bernoulli_values_are_used_directly():
    space = Space([Categorical("arm", ("a", "b"))])
    tuner = BanditTuner(space, policy="thompson-beta", direction="maximize", seed=0)
    rng = np.random.default_rng(3)
    for _ in range(200):
        trial = tuner.ask()
        p = 0.8 if trial.config["arm"] == "b" else 0.3
        tuner.tell(trial, Result.complete(float(rng.random() < p)))
    assert tuner.best_arm() == {"arm": "b"}


# ----------------------------------------------------------------------------- meta-tuner


def test_meta_tuner_tells_every_member_and_credits_the_improver():
    space = Space([Float("x", -5.0, 5.0), Float("y", -5.0, 5.0)])
    meta = MetaTuner(space, members=("local", "random"), seed=0, warmup=0)
    for _ in range(60):
        trial = meta.ask()
        meta.tell(trial, Result.complete(trial.config["x"] ** 2 + trial.config["y"] ** 2))
    for member in meta.members:
        assert len(member.observations) == 60  # everyone learns from everyone
    usage = meta.usage()
    assert sum(usage.values()) == 60
    assert usage["local"] > usage["random"]  # local steps keep improving a convex bowl


def test_meta_tuner_default_members_and_warmup_go_to_bo():
    space = Space([Float("x", 0.0, 1.0)])
    meta = MetaTuner(space, seed=0)
    assert meta.member_names == ["bo", "local", "tpe"] and meta.policy_name == "thompson"
    for _ in range(meta.warmup):
        trial = meta.ask()
        meta.tell(trial, Result.complete(trial.config["x"]))
    assert meta.usage()["bo"] == meta.warmup
    assert meta.policy.pulls.tolist() == [1, 0, 0]  # the prior's pseudo-pull; warm-up asks are not bandit pulls
    assert len(meta.members[0].history) == meta.warmup


def test_default_meta_tuner_keeps_every_member_in_play_on_a_bowl():
    # Thompson sampling, unlike the near-greedy AUC bandit, does not hand the whole study to
    # whichever member found the first improvements; BO still does most of the work on a bowl
    space = Space([Float(f"x{i}", 0.0, 1.0) for i in range(4)])
    for seed in range(3):
        meta = MetaTuner(space, seed=seed)
        for _ in range(40):
            trial = meta.ask()
            meta.tell(trial, Result.complete(sum((v - 0.3) ** 2 for v in trial.config.values())))
        usage = meta.usage()
        assert min(usage.values()) >= 3 and usage["bo"] >= 16, usage
        assert min(r.value for _, r in meta.history) < 0.01


def test_meta_tuner_rejects_unknown_and_nested_members():
    space = Space([Float("x", 0.0, 1.0)])
    with pytest.raises(ValueError, match="unknown tuner 'nope'"):
        MetaTuner(space, members=("nope",))
    with pytest.raises(ValueError, match="another meta-tuner"):
        MetaTuner(space, members=("meta",))
    with pytest.raises(ValueError, match="credit"):
        MetaTuner(space, credit="huge")
    with pytest.raises(ValueError, match="prior"):
        MetaTuner(space, members=("bo", "random"), prior=(1.0,))


def test_meta_tuner_members_accept_options():
    space = Space([Float("x", 0.0, 1.0)])
    meta = MetaTuner(space, members=[("bo", {"acquisition": "ei", "n_initial": 3}), "random"])
    assert meta.members[0].acquisition == "ei" and meta.members[0].n_initial == 3
