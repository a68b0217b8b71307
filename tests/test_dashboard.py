"""`autosys dashboard`: the report's views served live, read-only, and redrawn as trials land."""

import hashlib
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from autosys.cli.dashboard import make_server
from autosys.run.study import Study
from tests import headless_chromium as browser
from tests.systems_for_tests import Quadratic
from tests.test_report import NAMED_VIEWS, QuadraticTradeoff, write_agent_log

ROOT = Path(__file__).resolve().parents[1]


def add_trial(directory: Path, system=None) -> None:
    """One more trial lands in the study, as a running `autosys tune` would store it."""
    from autosys.storage import SQLiteStorage

    storage = SQLiteStorage(directory, create=False)
    count = storage.count()
    storage.close()
    Study.resume(directory, system=system or Quadratic(fail="raise"), budget=count + 1).run().close()


@pytest.fixture
def served(tmp_path):
    """A dashboard on a free localhost port over two studies; yields (base URL, directories, server)."""
    dirs = []
    for tuner, seed in (("random", 0), ("bo", 1)):
        d = tmp_path / f"{tuner}-{seed}"
        Study.create(d, Quadratic(fail="raise"), tuner=tuner, budget=12, seed=seed).run().close()
        dirs.append(d)
    server = make_server(dirs, port=0, poll_ms=300)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/", dirs, server
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def digest(directory: Path) -> str:
    """The study's database and its write-ahead log, byte for byte."""
    files = [directory / "study.sqlite", directory / "study.sqlite-wal"]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files if f.exists())).hexdigest()


def test_serves_the_views_and_a_state_that_changes_when_a_trial_lands(served):
    url, dirs, server = served
    assert server.server_address[0] == "127.0.0.1"  # localhost unless told otherwise
    status, page = get(url)
    assert status == 200 and b'data-mode="dashboard"' in page and b'src="plotly.min.js"' in page
    status, js = get(url + "plotly.min.js")
    assert status == 200 and js.startswith(b"/**") and len(js) > 1_000_000
    before = json.loads(get(url + "api/state")[1])["signature"]
    payload = json.loads(get(url + "api/views")[1])
    assert [s["id"] for s in payload["sections"]] == ["comparison", "study0", "study1"]
    assert {v["view"] for s in payload["sections"] for v in s["views"]} == NAMED_VIEWS
    assert payload["signature"] == before == [[12, 12, 0], [12, 12, 0]]
    add_trial(dirs[0])
    after = json.loads(get(url + "api/state")[1])["signature"]
    assert after[0] == [13, 13, 0] and after[1] == before[1]
    table = [v for s in json.loads(get(url + "api/views")[1])["sections"] if s["id"] == "study0"
             for v in s["views"] if v["view"] == "table"][0]
    assert len(table["table"]["rows"]) == 13
    assert get(url + "nothing-here")[0] == 404
    rebound = urllib.request.Request(url + "api/views", headers={"Host": "attacker.example:80"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(rebound, timeout=60)
    assert refused.value.code == 403  # DNS rebinding: a foreign name pointed at 127.0.0.1 cannot read the studies


def test_reads_the_studies_without_changing_them(served):
    url, dirs, _ = served
    before = [digest(d) for d in dirs]
    for _ in range(2):
        get(url + "api/views")
        get(url + "api/state")
    assert [digest(d) for d in dirs] == before


def test_an_unreadable_directory_is_reported_in_the_page(tmp_path):
    good = tmp_path / "good"
    Study.create(good, Quadratic(), tuner="random", budget=3, seed=0).run().close()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "study.sqlite").write_bytes(b"not a database at all" * 100)
    server = make_server([good, broken], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        payload = json.loads(get(f"http://{host}:{port}/api/views")[1])
        errors = [s for s in payload["sections"] if s.get("error")]
        assert len(errors) == 1 and "broken" in errors[0]["error"]
        assert any(s["id"] == "study0" and s["views"] for s in payload["sections"])
    finally:
        server.shutdown()
        server.server_close()


def test_cli_refuses_a_missing_study_and_a_bad_port(tmp_path):
    missing = subprocess.run([sys.executable, "-m", "autosys", "dashboard", str(tmp_path / "none")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no study found" in missing.stderr and "Traceback" not in missing.stderr
    d = tmp_path / "s"
    Study.create(d, Quadratic(), tuner="random", budget=2, seed=0).run().close()
    port = subprocess.run([sys.executable, "-m", "autosys", "dashboard", str(d), "--port", "70000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert port.returncode == 2 and "not a TCP port" in port.stderr


@pytest.mark.slow
@pytest.mark.skipif(browser.chromium() is None, reason=browser.SKIP_REASON)
def test_page_draws_every_view_and_redraws_when_a_trial_lands(tmp_path):
    tradeoff = tmp_path / "tradeoff"
    Study.create(tradeoff, QuadraticTradeoff(), tuner="random", budget=20, seed=3).run().close()
    other = tmp_path / "other"
    Study.create(other, QuadraticTradeoff(), tuner="bo", budget=12, seed=1).run().close()
    agent = write_agent_log(tmp_path / "agent")
    server = make_server([tradeoff, other, agent], port=0, poll_ms=500)
    dashboard = server.RequestHandlerClass.dashboard
    served_views = dashboard.payload
    landed = threading.Event()

    def payload_then_a_trial_lands():  # the first page load is served, then the study grows by one trial
        payload = served_views()
        if not landed.is_set():
            landed.set()
            add_trial(tradeoff, QuadraticTradeoff())
        return payload

    dashboard.payload = payload_then_a_trial_lands
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        dom = browser.dump_dom(f"http://{host}:{port}/", tmp_path / "profile", budget_ms=15_000)
    finally:
        server.shutdown()
        server.server_close()
    assert landed.is_set()
    assert int(browser.body(dom).get("data-refreshes", 0)) >= 2, "the page did not redraw after the trial landed"
    views = browser.views(dom)
    drawn = {v["data-view"] for v in views if browser.drawn_with_data(v)}
    assert drawn == NAMED_VIEWS, f"not drawn with data: {NAMED_VIEWS - drawn}"
    table = [v for v in views if v["data-view"] == "table" and v["data-section"] == "study0"][0]
    assert table["data-points"] == "21"  # 20 trials at load, 21 after the refresh
    history = [v for v in views if v["data-view"] == "history" and v["data-section"] == "study0"][0]
    assert int(history["data-points"]) >= 21
