"""Drive Debian's chromium headless from tests: the DOM after the page's scripts ran, and screenshots.

`--dump-dom` with `--virtual-time-budget` lets the page's timers (the dashboard's
polling) and fetches run before the DOM is printed; each view of the report
marks itself with data-view, data-points (what plotly drew, read back from the
graph) and data-marks (SVG/canvas marks in the plot), so a test can tell a page
that drew its data from one that merely loaded.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio",
         "--enable-unsafe-swiftshader"]  # software WebGL for the parallel-coordinates plot (our own local pages)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


SKIP_REASON = "no Chromium installed (CI installs Debian's chromium; locally: apt-get install -y chromium)"


def dump_dom(url: str, profile: Path, budget_ms: int = 10_000, timeout: float = 240) -> str:
    run = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                          "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    assert "<body" in run.stdout, run.stderr[-2000:]
    return run.stdout


def screenshot(url: str, path: Path, profile: Path, size: tuple[int, int] = (1280, 3000), budget_ms: int = 10_000,
               timeout: float = 240) -> Path:
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                    f"--window-size={size[0]},{size[1]}", f"--screenshot={path}", url],
                   capture_output=True, text=True, timeout=timeout)
    return path


def views(dom: str) -> list[dict[str, str]]:
    """The attributes of every `<div class="view" ...>` in the DOM, in page order."""
    out = []
    for tag in re.findall(r'<div class="view"[^>]*>', dom):
        out.append({k: v for k, v in re.findall(r'([\w-]+)="([^"]*)"', tag)})
    return out


def body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body[^>]*>", dom)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(0))) if tag else {}


def drawn_with_data(view: dict[str, str]) -> bool:
    """A view that plotly (or the table code) drew, holding data points and, for a plot, visible marks."""
    if view.get("data-rendered") == "table":
        return int(view.get("data-points", 0)) > 0
    return view.get("data-rendered") == "plotly" and int(view.get("data-points", 0)) > 0 and int(view.get("data-marks", 0)) > 0
