"""`autosys report`: one self-contained interactive page; every view drawn for real in headless Chromium where installed."""

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autosys.analysis import figures
from autosys.analysis.report import StudyData, load_study, pareto_front, report_payload, write_report
from autosys.core.system import Objective
from autosys.online.agent import Decision
from autosys.run.study import Study
from autosys.storage import SQLiteStorage
from tests import headless_chromium as browser
from tests.systems_for_tests import Quadratic

ROOT = Path(__file__).resolve().parents[1]
NAMED_VIEWS = {"history", "parallel", "slice", "contour", "dependence", "importance", "pareto", "table", "timeline", "comparison"}


class QuadraticTradeoff(Quadratic):
    """Quadratic with a second metric to trade against: size (= 10 n), lower is better."""

    @property
    def objective(self) -> Objective:
        return Objective("loss", "minimize", others=(("size", "minimize"),))


def write_agent_log(directory: Path, windows: int = 12) -> Path:
    """An agent's decision log, as `autosys agent --dir` writes it (decisions only, no study spec)."""
    storage = SQLiteStorage(directory)
    actions = ["measure", "measure", "explore", "settle", "keep", "explore", "rollback", "workload-change"]
    for w in range(windows):
        action = actions[w % len(actions)]
        decision = Decision(w, action, {"cache_size": 100 * (w + 1)}, 10.0 + w % 3, 11.0, f"window {w}: {action}",
                            time=1_700_000_000 + 5 * w)
        storage.add_event("agent", asdict(decision))
    storage.close()
    return directory


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    base = tmp_path_factory.mktemp("studies")
    dirs = []
    for tuner in ("random", "grid"):
        for seed in (0, 1):
            d = base / f"{tuner}-{seed}"
            Study.create(d, Quadratic(fail="raise"), tuner=tuner, budget=40, seed=seed).run().close()
            dirs.append(d)
    return dirs


@pytest.fixture(scope="module")
def tradeoff(tmp_path_factory):
    d = tmp_path_factory.mktemp("tradeoff") / "study"
    Study.create(d, QuadraticTradeoff(), tuner="random", budget=30, seed=3).run().close()
    return d


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory):
    return write_agent_log(tmp_path_factory.mktemp("agent") / "agent")


def payload_of(page: Path) -> dict:
    match = re.search(r'<script type="application/json" id="payload">(.*?)</script>', page.read_text(), re.S)
    assert match, "no payload in the page"
    return json.loads(match.group(1))


def views_by_name(payload: dict, section: str) -> dict:
    return {v["view"]: v for s in payload["sections"] if s["id"] == section for v in s["views"]}


def test_report_is_one_self_contained_page_with_every_view(studies, tmp_path):
    page = write_report([studies[0]], tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["index.html"]
    text = page.read_text()
    assert "<script src=" not in text and "<link" not in text and "<img" not in text  # offline: nothing fetched
    assert text.count("plotly.js v") == 1  # plotly.js inlined once, whatever the number of plots
    views = views_by_name(payload_of(page), "study0")
    assert set(views) == NAMED_VIEWS - {"comparison"}
    for name in ("history", "parallel", "slice", "contour", "dependence", "importance"):
        assert views[name]["figure"] and not views[name]["missing"], name
    table = views["table"]["table"]
    assert len(table["rows"]) == 40 and "error" in table["columns"]
    assert any("boom in evaluate" in str(row[-1]) for row in table["rows"])
    assert "one metric" in views["pareto"]["missing"] and "agent" in views["timeline"]["missing"]


def test_missing_views_say_why(tmp_path):
    d = tmp_path / "small"
    Study.create(d, Quadratic(), tuner="random", budget=4, seed=0).run().close()
    views = views_by_name(report_payload([load_study(d)]), "study0")
    for name in ("importance", "dependence", "contour"):
        assert re.search(r"needs at least 8 feasible trials.*has [0-4]$", views[name]["missing"]), views[name]
    assert views["history"]["figure"] and views["table"]["table"]


def test_history_uses_a_log_axis_only_when_values_span_more_than_10x():
    assert figures.wide_range(np.array([444.0, 29_850.0])) and not figures.wide_range(np.array([5.0, 40.0]))
    assert not figures.wide_range(np.array([-1.0, 100.0]))  # not all positive: a log axis cannot show it

    def study(values):
        frame = pd.DataFrame({"number": range(len(values)), "state": "complete", "source": "random", "value": values,
                              "error": None, "feasible": True, "config.x": np.linspace(0, 1, len(values))})
        spec = {"system": "s", "tuner": "t", "objective": {"metric": "ms", "direction": "minimize", "others": []}}
        return StudyData(Path("."), spec, frame)

    wide = figures.history_view(study([29_850.0, 8000.0, 2000.0, 444.0]))
    narrow = figures.history_view(study([40.0, 20.0, 10.0, 5.0]))
    assert wide.figure["layout"]["yaxis"]["type"] == "log" and "10x" in wide.note
    assert narrow.figure["layout"]["yaxis"]["type"] == "linear" and narrow.note is None


def test_partial_dependence_finds_the_known_minimum(studies):
    # loss = (x - 1)^2 + (n - 3)^2 (+1 for kind b): the surrogate's curves must bottom out near x = 1 and n = 3
    data = load_study(studies[0])
    pd_ = figures.partial_dependence(data, ["x", "n", "kind"])
    (xs, ys), (ns, yn) = pd_["1d"]["x"], pd_["1d"]["n"]
    assert abs(xs[int(np.argmin(ys))] - 1.0) < 1.2
    assert abs(ns[int(np.argmin(yn))] - 3) <= 1
    assert ys[0] > min(ys) + 5 and ys[-1] > min(ys) + 5  # edges of x in [-5, 5] are far worse
    kinds, yk = pd_["1d"]["kind"]
    assert kinds == ["a", "b", "c"] and len(yk) == 3
    x_of_pair, n_of_pair, grid = pd_["2d"][("x", "n")]
    assert grid.shape == (len(n_of_pair), len(x_of_pair)) and np.isfinite(grid).all()


def test_pareto_view_draws_the_front(tradeoff):
    data = load_study(tradeoff)
    view = figures.pareto_view(data)
    ok = data.trials[data.trials["feasible"]]
    expected = pareto_front(ok[["value", "metrics.size"]].to_numpy(float), [False, False]).sum()
    front = [t for t in view.figure["data"] if t["name"] == "Pareto front"][0]
    assert f"{expected} of {len(ok)}" in view.note and expected >= 2
    assert not view.missing and front["mode"] == "lines+markers"


def test_comparison_report_groups_by_tuner(studies, tmp_path):
    payload = payload_of(write_report(studies, tmp_path / "r"))
    (comparison,) = views_by_name(payload, "comparison").values()
    names = [t.get("name", "") for t in comparison["figure"]["data"]]
    assert any("random (n=2)" in n for n in names) and any("grid (n=2)" in n for n in names)


def test_agent_directory_shows_its_decision_timeline(agent_dir, tmp_path):
    views = views_by_name(payload_of(write_report([agent_dir], tmp_path / "r")), "study0")
    timeline = views["timeline"]
    assert timeline["figure"] and timeline["points"] == 12 and "rollback" in timeline["note"]
    assert "agent's decisions" in views["history"]["missing"]


def test_report_escapes_what_it_reads(tmp_path):
    d = tmp_path / "hostile"
    study = Study.create(d, Quadratic(fail="raise"), tuner="random", budget=6, seed=2)
    study.run()
    study.close()
    storage = SQLiteStorage(d)
    with storage.transaction() as conn:
        conn.execute("UPDATE trials SET error = ? WHERE error IS NOT NULL", ("</script><script>alert(1)</script>",))
    storage.close()
    text = write_report([d], tmp_path / "r").read_text()
    assert "</script><script>alert(1)" not in text


def test_best_so_far_is_monotone_and_ignores_failures(studies):
    data = load_study(studies[0])
    curve = data.best_so_far()
    finite = curve[~np.isnan(curve)]
    assert np.all(np.diff(finite) <= 0)  # minimize: never gets worse
    assert finite[-1] == data.trials[data.trials["feasible"]]["value"].min()


def test_pareto_front_mask():
    pts = np.array([[1.0, 5.0], [2.0, 2.0], [3.0, 3.0], [0.5, 9.0]])
    # minimize both: (3,3) is dominated by (2,2)
    assert pareto_front(pts, [False, False]).tolist() == [True, True, False, True]
    # maximize the first, minimize the second: (3,3) now on the front, (1,5) and (0.5,9) dominated by (2,2)
    assert pareto_front(pts, [True, False]).tolist() == [False, True, True, False]


def test_cli_report_and_missing_study_error(studies, tmp_path):
    run = subprocess.run([sys.executable, "-m", "autosys", "report", str(studies[1]), "--out", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "r" / "index.html").exists()
    bad = subprocess.run([sys.executable, "-m", "autosys", "report", str(tmp_path / "none")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no study found" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(browser.chromium() is None, reason=browser.SKIP_REASON)
def test_every_view_renders_with_data_in_headless_chromium(studies, tradeoff, agent_dir, tmp_path):
    page = write_report([tradeoff, studies[0], agent_dir], tmp_path / "r")
    dom = browser.dump_dom(page.as_uri(), tmp_path / "profile")
    views = browser.views(dom)
    drawn = {v["data-view"] for v in views if browser.drawn_with_data(v)}
    assert drawn == NAMED_VIEWS, f"not drawn with data: {NAMED_VIEWS - drawn}"
    # every view is either drawn with data or says why it is missing; none is left blank
    blank = [v for v in views if not browser.drawn_with_data(v) and not v.get("data-missing")]
    assert not blank, blank
    table = [v for v in views if v["data-view"] == "table" and v["data-section"] == "study0"][0]
    assert table["data-points"] == "30"
    assert browser.body(dom)["data-drawn"] == str(len(views) - sum(1 for v in views if v.get("data-missing")))
    shot = browser.screenshot(page.as_uri(), tmp_path / "shot.png", tmp_path / "profile")
    assert shot.exists() and shot.stat().st_size > 50_000
