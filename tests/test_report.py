"""`autosys report`: HTML plus PNGs, rendered for real in headless Chromium where installed."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autosys.analysis.report import load_study, pareto_front, write_report
from autosys.run.study import Study
from tests.systems_for_tests import Quadratic

ROOT = Path(__file__).resolve().parents[1]


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


def test_single_study_report_has_every_plot(studies, tmp_path):
    page = write_report([studies[0]], tmp_path / "r")
    names = {p.name for p in (tmp_path / "r").glob("*.png")}
    assert {"convergence.png", "importance.png"} <= names
    assert any(n.startswith("knob-") for n in names)
    text = page.read_text()
    assert text.count("<img") == len(names)
    assert "Failed or infeasible trials" in text and "boom in evaluate" in text


def test_comparison_report_groups_by_tuner(studies, tmp_path):
    page = write_report(studies, tmp_path / "r")
    assert (tmp_path / "r" / "comparison.png").exists()
    assert "quadratic / random" in page.read_text() or "Quadratic / random" in page.read_text()


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
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "r" / "index.html").exists()
    bad = subprocess.run([sys.executable, "-m", "autosys", "report", str(tmp_path / "none")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no study found" in bad.stderr


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (CI installs Debian's chromium)")
def test_report_renders_with_its_images_in_headless_chromium(studies, tmp_path):
    page = write_report(studies[:2], tmp_path / "r")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium(), *flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert match, dom.stderr[-2000:]
    loaded, total = map(int, match.groups())
    assert total >= 3 and loaded == total
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
