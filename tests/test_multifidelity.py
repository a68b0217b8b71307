"""Multi-fidelity scheduling: trials climb the fidelity rungs, losers are pruned, and a pruned trial is never the answer."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from autosys.core.fidelity import Fidelity, stamp
from autosys.core.space import Float, Space
from autosys.core.system import Measurement, Objective, System
from autosys.core.trial import Result, TrialState
from autosys.run.multifidelity import MultiFidelity, MultiFidelityError, calibrate, calibrated, config_rung_values, race_rung
from autosys.run.study import Study, StudyError
from autosys.run.specs import SpecError, validate_spec
from autosys.tuners.random_search import RandomSearch


class Ladder(System):
    """Throughput peaks at x = 0.7; a short run reads `bias` times high (a cache not yet full) with noise ~ 1/sqrt(ops).

    Every evaluation's operations are counted in `work`, the cost a scheduler should save.
    """

    name = "ladder"

    def __init__(self, bias: float = 3.0, noise: float = 0.05, seed: int = 0):
        self.bias, self.noise = bias, noise
        self.rng = np.random.default_rng(seed)
        self.work = 0

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0, default=0.1)])

    @property
    def objective(self) -> Objective:
        return Objective("ops_per_s", "maximize")

    def fidelity(self) -> Fidelity:
        return Fidelity("operations", "operations", 10, 810, unit="operations")

    def evaluate(self, config, fidelity=None):
        ops = self.resolve_fidelity(fidelity)
        self.work += ops
        true = 1000.0 * (1.0 - (config["x"] - 0.7) ** 2)
        short = 1.0 + (self.bias - 1.0) * (1.0 - ops / 810.0)
        noisy = true * short * (1.0 + self.noise * self.rng.standard_normal() * math.sqrt(10.0 / ops))
        return Measurement({"ops_per_s": noisy}, info=stamp({}, self.fidelity(), ops, ops))


class NoDial(Ladder):
    name = "no-dial"

    def fidelity(self):
        return None


# --------------------------------------------------------------------------- the schedule itself


def test_rungs_come_from_the_systems_fidelity_and_eta():
    assert MultiFidelity(eta=3).rungs(Ladder().fidelity()) == [10, 30, 90, 270, 810]
    assert MultiFidelity(eta=3, min_fidelity=90).rungs(Ladder().fidelity()) == [90, 270, 810]
    with pytest.raises(MultiFidelityError, match="declares no fidelity"):
        MultiFidelity().rungs(None)
    with pytest.raises(MultiFidelityError, match="one rung"):
        MultiFidelity(eta=3, min_fidelity=810).rungs(Ladder().fidelity())


@pytest.mark.parametrize("bad, message", [
    ({"eta": 1}, "eta"), ({"eta": float("nan")}, "eta"), ({"brackets": 0}, "brackets"),
    ({"min_peers": 0}, "min_peers"), ({"etta": 3}, "unknown multifidelity setting"),
])
def test_bad_settings_are_refused_in_one_line(bad, message):
    with pytest.raises(MultiFidelityError, match=message):
        MultiFidelity.from_json(bad)


def test_promotion_keeps_the_best_one_in_eta_of_a_rung():
    mf = MultiFidelity(eta=3)
    assert mf.promote(1.0, [1.0], "minimize")  # too few peers: nothing is pruned yet
    peers = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [mf.promote(v, peers, "minimize") for v in peers] == [True, True, False, False, False, False]
    assert [mf.promote(v, peers, "maximize") for v in peers] == [False, False, False, False, True, True]


def test_a_rung_ranks_configs_by_the_median_of_their_runs_not_by_one_noisy_run():
    # throughput (maximize): config "fast" measured 2M twice, then one 0.3M run preempted on a loaded host
    events = [{"trial": 1, "rung": 0, "value": 2.0e6, "key": "fast"}, {"trial": 2, "rung": 0, "value": 2.1e6, "key": "fast"},
              {"trial": 3, "rung": 0, "value": 1.0e6, "key": "mid"}, {"trial": 4, "rung": 0, "value": 1.1e6, "key": "mid"},
              {"trial": 5, "rung": 0, "value": 0.5e6, "key": "slow"}, {"trial": 6, "rung": 0, "value": 0.2e6, "key": "slower"},
              {"trial": 7, "rung": 0, "value": 0.3e6, "key": "fast"}, {"trial": 8, "rung": 1, "value": 9.0, "key": "fast"}]
    mf = MultiFidelity(eta=3)
    standing, peers = config_rung_values(events, 0, "fast")
    assert standing == 2.0e6 and sorted(peers) == [0.2e6, 0.5e6, 1.05e6, 2.0e6]  # one value per config, at rung 0 only
    assert mf.promote(standing, peers, "maximize")
    per_run = [e["value"] for e in events if e["rung"] == 0]
    assert not mf.promote(0.3e6, per_run, "maximize")  # ranked by its latest run alone it was pruned
    standing, peers = config_rung_values(events, 0, "slow")
    assert not mf.promote(standing, peers, "maximize")
    old = [{"trial": 1, "rung": 0, "value": 5.0}, {"trial": 2, "rung": 0, "value": 5.0}]  # records from before keys
    assert config_rung_values(old, 0, "trial-2") == (5.0, [5.0, 5.0])


def test_brackets_start_trials_at_successive_rungs():
    hyperband = MultiFidelity(brackets=3)
    assert [hyperband.start_rung(i, 5) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert {MultiFidelity().start_rung(i, 5) for i in range(6)} == {0}


def test_calibration_scales_a_rung_by_configs_measured_at_both():
    events = [{"trial": 1, "rung": 0, "value": 300.0}, {"trial": 1, "rung": 2, "value": 100.0},
              {"trial": 2, "rung": 0, "value": 600.0}, {"trial": 2, "rung": 2, "value": 200.0},
              {"trial": 3, "rung": 0, "value": 900.0}]
    assert calibrate(900.0, 0, events, top=2) == pytest.approx(300.0)
    assert calibrate(900.0, 1, events, top=2) == 900.0  # nothing measured at rung 1 and full: unchanged
    negative = [{"trial": 1, "rung": 0, "value": -3.0}, {"trial": 1, "rung": 1, "value": -1.0}]
    assert calibrate(-5.0, 0, negative, top=1) == pytest.approx(-3.0)  # differences when signs rule ratios out


def test_a_pruned_result_is_told_with_its_value_and_failures_are_not():
    assert Result(TrialState.PRUNED, 2.0).ok
    assert not Result(TrialState.PRUNED, float("nan")).ok and not Result(TrialState.PRUNED, None).ok
    tuner = RandomSearch(Ladder().space(), direction="maximize", seed=0)
    trial = tuner.ask()
    tuner.tell(trial, Result(TrialState.PRUNED, float("inf")))
    assert tuner.observations == [] and tuner.history[-1][1].state == TrialState.FAILED


# --------------------------------------------------------------------------- in a study


def _study(tmp_path, name="mf", **kwargs):
    options = {"budget": 30, "seed": 0, "tuner": "random", "multifidelity": {"eta": 3}}
    options.update(kwargs)
    return Study.create(tmp_path / name, Ladder(seed=options["seed"]), **options)


def test_losers_are_pruned_with_their_partial_measurement(tmp_path):
    study = _study(tmp_path).run()
    trials = study.trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    full = [t for t in trials if t.state == TrialState.COMPLETE and t.source == "random"]
    assert len(pruned) >= 10 and full, "successive halving should stop most proposals early and finish some"
    for t in pruned:
        steps = t.info["intermediate"]
        assert steps and steps[-1]["fidelity"] < 810 and t.value == steps[-1]["value"]
        assert [s["fidelity"] for s in steps] == sorted(s["fidelity"] for s in steps)
        reason = t.info["pruned"]
        assert ("best 1/3" in reason or "worse than the study's answer" in reason) and t.info["fidelity"]["full"] is False
        assert t.info["seconds"] >= 0 and "told_value" in t.info
    for t in full:
        assert t.info["fidelity"]["full"] is True and t.info["intermediate"][-1]["fidelity"] == 810
    default = study.default_trial  # measured at the lowest rung, then at full fidelity, and never pruned
    assert default.state == TrialState.COMPLETE and default.info["fidelity"]["full"] is True
    assert [s["fidelity"] for s in default.info["intermediate"]] == [10, 810] and default.value == default.info["intermediate"][-1]["value"]
    assert study.summary()["trials"]["pruned"] == len(pruned)
    study.close()


def test_a_pruned_trial_never_becomes_the_answer(tmp_path):
    # every short run reads 3x high, so a pruned trial's partial value beats every full-fidelity one
    study = _study(tmp_path, budget=40, seed=3).run()
    pruned = [t for t in study.trials() if t.state == TrialState.PRUNED]
    full_values = [t.value for t in study.trials() if t.state == TrialState.COMPLETE]
    assert pruned and max(t.value for t in pruned) > max(full_values)
    best = study.best
    assert best.state == TrialState.COMPLETE and best.info["fidelity"]["full"] is True
    assert study.summary()["best"]["number"] == best.number
    study.close()


def test_the_tuner_learns_a_pruned_trials_calibrated_value(tmp_path):
    study = _study(tmp_path, budget=40, seed=1).run()
    told = {t.config["x"]: r for t, r in study.tuner.history}
    pruned = [t for t in study.trials() if t.state == TrialState.PRUNED]
    for t in pruned:
        result = told[t.config["x"]]
        assert result.state == TrialState.PRUNED and result.value == t.info["told_value"]
    calibrated = [t for t in pruned if t.info["told_value"] != t.value]
    assert calibrated, "once some configs reached full fidelity, pruned values are scaled to it"
    for t in calibrated:  # short runs read about 3x high: the told value is scaled down
        assert t.info["told_value"] < t.value
    study.close()


def test_multifidelity_does_less_work_than_full_fidelity_for_the_same_trials(tmp_path):
    staged, plain = Ladder(seed=0), Ladder(seed=0)
    a = Study.create(tmp_path / "a", staged, budget=30, tuner="random", multifidelity=True).run()
    b = Study.create(tmp_path / "b", plain, budget=30, tuner="random").run()
    assert staged.work < 0.6 * plain.work
    a.close(), b.close()


def test_hyperband_brackets_start_some_trials_higher(tmp_path):
    study = _study(tmp_path, multifidelity={"eta": 3, "brackets": 3}).run()
    first_rungs = {t.info["intermediate"][0]["rung"] for t in study.trials()
                   if t.source == "random" and t.info.get("intermediate")}
    assert first_rungs == {0, 1, 2}
    study.close()


def test_a_study_resumes_with_its_schedule(tmp_path):
    study = _study(tmp_path, budget=12)
    study.run()
    rungs = study.spec["multifidelity"]["rungs"]
    study.close()
    again = Study.resume(tmp_path / "mf", system=Ladder(seed=5), budget=24)
    assert again.rungs == rungs and again.multifidelity == MultiFidelity(eta=3, guard=True)
    again.run()
    assert again.n_finished() == 24 and any(t.state == TrialState.PRUNED for t in again.trials()[12:])
    again.close()


class AtOptimum(Ladder):
    """The Ladder with its default at the optimum and no short-run bias: every proposal is worse than the default."""

    name = "at-optimum"

    def __init__(self, seed: int = 0):
        super().__init__(bias=1.0, noise=0.02, seed=seed)

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0, default=0.7)])


def test_below_min_peers_a_trial_worse_than_the_answer_stops_instead_of_climbing(tmp_path):
    assert MultiFidelity().ranks([1.0, 2.0, 3.0]) and not MultiFidelity().ranks([1.0, float("nan"), 3.0])
    assert MultiFidelity.worse_than_answer(90.0, 100.0, "maximize") and not MultiFidelity.worse_than_answer(90.0, 100.0, "minimize")
    assert not MultiFidelity.worse_than_answer(90.0, None, "maximize")
    events = [{"trial": 1, "rung": 0, "value": 5.0}, {"trial": 1, "rung": 1, "value": 4.0}, {"trial": 2, "rung": 2, "value": 3.0}]
    assert calibrated(0, events, top=1) and not calibrated(0, events, top=2) and not calibrated(1, events, top=1)
    proposals = {}
    for guard in (True, False):  # without the default's run at the lowest rung (`anchor`, tested below)
        study = Study.create(tmp_path / f"g{guard}", AtOptimum(seed=0), budget=6, tuner="random", seed=0,
                             multifidelity={"eta": 3, "guard": guard, "anchor": False})
        study.run()
        proposals[guard] = [t for t in study.trials() if t.source == "random"]
        assert study.best.config == {"x": 0.7}  # nothing pruned ever becomes the answer
        study.close()
    # the first proposal climbs every rung either way: with no config measured at a rung and at full fidelity,
    # nothing scales a rung's value to compare it with the answer
    assert all(p[0].info["intermediate"][-1]["fidelity"] == 810 for p in proposals.values())
    # then, with the guard, the second stops at rung 0 (one value there, too few to rank): worse than the default
    second = proposals[True][1]
    assert second.state == TrialState.PRUNED and len(second.info["intermediate"]) == 1
    assert "worse than the study's answer" in second.info["pruned"]
    # without it, a rung with fewer than min_peers values promotes whatever comes
    assert proposals[False][1].info["intermediate"][-1]["fidelity"] == 810


def test_the_default_measured_at_the_lowest_rung_lets_the_guard_stop_the_first_proposals_there(tmp_path):
    studies = {}
    for anchor in (True, False):
        study = Study.create(tmp_path / f"a{anchor}", AtOptimum(seed=1), budget=6, tuner="random", seed=1,
                             multifidelity={"eta": 3, "anchor": anchor})
        study.run()
        studies[anchor] = [t for t in study.trials() if t.source == "random"]
        default = study.default_trial
        assert study.best.config == {"x": 0.7} and study.best.info["fidelity"]["full"] is True
        assert [s["rung"] for s in default.info.get("intermediate", [])] == ([0, 4] if anchor else [])
        study.close()
    # every proposal is worse than the default: anchored, the first one already stops at the lowest rung
    first = studies[True][0]
    assert first.state == TrialState.PRUNED and len(first.info["intermediate"]) == 1
    assert "worse than the study's answer" in first.info["pruned"]
    assert studies[False][0].info["intermediate"][-1]["fidelity"] == 810  # unanchored it climbed blindly


def test_a_trial_its_rung_could_not_rank_skips_the_rungs_that_could_not_judge_it_either(tmp_path):
    rungs = {}
    for leap in (True, False):
        study = _study(tmp_path, name=f"l{leap}", budget=30, seed=0, multifidelity={"eta": 3, "leap": leap})
        study.run()
        proposals = [t for t in study.trials() if t.source == "random"]
        rungs[leap] = [[s["rung"] for s in t.info.get("intermediate", [])] for t in proposals]
        assert study.best.info["fidelity"]["full"] is True
        study.close()
    # the first proposal beats the default at rung 0 (two configs there: too few to rank); rungs 1-3 hold no value
    # and no scale to compare it with the answer, so a stage there would promote it whatever it measured
    assert rungs[True][0] == [0, 4] and rungs[False][0] == [0, 1, 2, 3, 4]
    # once rung 0 ranks, its best go on to rung 1 as before: the middle rungs fill and rank in turn
    assert any(1 in r for r in rungs[True]) and any(2 in r for r in rungs[True])
    for r in rungs[True]:
        assert r == sorted(r) and r[0] == 0


def test_a_schedule_stored_before_the_guard_resumes_without_it(tmp_path):
    study = _study(tmp_path, budget=4)
    study.run()
    spec = dict(study.spec)
    spec["multifidelity"] = {k: v for k, v in spec["multifidelity"].items() if k not in ("guard", "anchor")}
    study.storage.save_spec(spec)
    study.close()
    again = Study.resume(tmp_path / "mf", system=Ladder(seed=5))
    assert again.multifidelity is not None and again.multifidelity.guard is False and again.multifidelity.anchor is False
    again.close()


def test_a_race_runs_at_the_lowest_rung_that_orders_the_pair_as_full_fidelity_does():
    def ev(trial, rung, value, key):
        return {"trial": trial, "rung": rung, "value": value, "key": key}

    # throughput: the challenger is ahead at full fidelity (rung 3); at rung 0 the short run reverses the pair
    events = [ev(0, 0, 500.0, "inc"), ev(0, 3, 100.0, "inc"),
              ev(1, 0, 400.0, "ch"), ev(1, 1, 300.0, "ch"), ev(1, 2, 250.0, "ch"), ev(1, 3, 200.0, "ch")]
    assert race_rung(events, "ch", "inc", 3, "maximize") == 2  # rungs 1-2: the incumbent was never measured there
    events += [ev(2, 1, 200.0, "inc")]
    assert race_rung(events, "ch", "inc", 3, "maximize") == 1  # the lowest rung where both were measured, ch ahead
    events += [ev(3, 0, 200.0, "inc"), ev(4, 0, 100.0, "inc")]
    assert race_rung(events, "ch", "inc", 3, "maximize") == 0  # ranked by the median of each config's runs there
    assert race_rung(events, "inc", "ch", 3, "minimize") == 0  # minimize: lower is ahead
    assert race_rung([], "ch", "inc", 3, "maximize") == 2  # nothing known below full: the rung below it
    assert race_rung([ev(1, 0, 1.0, "ch"), ev(0, 0, 2.0, "inc")], "ch", "inc", 3, "maximize") == 2  # behind at rung 0


def test_races_below_full_fidelity_rerun_below_it_scaled_and_the_answer_keeps_a_full_run(tmp_path):
    from autosys.run.intensify import INTENSIFY, race_state

    study = _study(tmp_path, budget=40, seed=2, multifidelity={"eta": 3, "race_below": True})
    study.run()
    trials = study.trials()
    reruns = [t for t in trials if t.source == INTENSIFY and t.state == TrialState.COMPLETE]
    assert reruns, "some proposal should have beaten the default and been raced"
    for t in reruns:  # measured below 810 operations; short runs read high, so the scaled value is lower
        assert t.info["fidelity"]["value"] < 810 and t.info["fidelity"]["full"] is False
        assert t.info["fidelity"]["value"] == study.rungs[t.info["race_run"]["rung"]]
        assert t.value == t.info["race_run"]["scaled"] < t.info["race_run"]["measured"] == t.metrics["ops_per_s"]
    # the first race (a proposal against the default, measured at the lowest rung: `anchor`) runs at that rung,
    # where the challenger was ahead too, and every re-run of one race runs at one rung
    assert reruns[0].info["fidelity"]["value"] == 10
    by_race: dict[int, set] = {}
    for t in reruns:
        since = race_state([u for u in trials if u.number < t.number], study.objective).since
        by_race.setdefault(since, set()).add(t.info["race_run"]["rung"])
    assert all(len(rungs) == 1 for rungs in by_race.values())
    best = study.best
    assert best.state == TrialState.COMPLETE and best.info["fidelity"]["full"] is True
    study.close()


def test_a_system_without_fidelity_is_refused(tmp_path):
    with pytest.raises(StudyError, match="declares no fidelity"):
        Study.create(tmp_path / "x", NoDial(), budget=5, multifidelity=True)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("schedule, message", [
    ({"eta": 3, "rungs": [10]}, "rungs"), ({"eta": 3, "rungs": [30, 10]}, "rungs"),
    ({"eta": 3, "rungs": [10, "x"]}, "rungs"), ({"eta": 0.5, "rungs": [10, 30]}, "malformed"), ("fast", "object"),
])
def test_a_damaged_stored_schedule_is_refused(schedule, message):
    spec = {"system": "s", "system_options": {}, "tuner": "random", "tuner_options": {}, "seed": 0,
            "budget": {"trials": 5, "seconds": None}, "fixed": {}, "objective": {}, "multifidelity": schedule}
    with pytest.raises(SpecError, match=message):
        validate_spec(spec)


def test_multifidelity_runs_on_subprocess_workers(tmp_path):
    from tests.systems_for_tests import Quadratic  # noqa: F401  (the module the workers import)

    study = Study.create(tmp_path / "sub", Ladder(seed=0), budget=8, tuner="random", multifidelity=True)
    study.run(executor="pool", workers=2)
    assert study.n_finished() == 8
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials())
    study.close()


def test_a_time_budgeted_multifidelity_study_stops_on_time(tmp_path):
    study = Study.create(tmp_path / "timed", Ladder(seed=0), budget=None, seconds=2.0, tuner="random",
                         multifidelity=True)
    began = time.monotonic()
    study.run()
    assert time.monotonic() - began < 30 and study.n_finished() >= 3
    assert all(t.state != TrialState.RUNNING for t in study.trials())
    study.close()


def test_the_cli_runs_a_multifidelity_study_and_says_what_it_pruned(tmp_path):
    import json
    import subprocess
    import sys

    small = ["--records", "300", "--operations", "1600", "--repeats", "1", "--seconds", "0.5"]
    out = tmp_path / "out.json"
    run = subprocess.run([sys.executable, "-m", "autosys", "tune", "sqlite", "--budget", "14", "--tuner", "random",
                          "--multifidelity", "--eta", "2", "--dir", str(tmp_path / "s"), "--json", str(out), *small],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["trials"]["pruned"] >= 1
    assert f"{data['trials']['pruned']} pruned" in run.stdout
    pruned_lines = [line for line in run.stderr.splitlines() if " pruned at fidelity " in line]
    assert len(pruned_lines) == data["trials"]["pruned"] and all("(partial)" in line for line in pruned_lines)
    assert data["best"]["number"] not in {int(line.split("trial ")[1].split()[0]) for line in pruned_lines}
