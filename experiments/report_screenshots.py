"""Screenshots of the interactive report and the live dashboard on two real KV-store studies.

Tunes the `kv` adapter (real engines, conditional space, a throughput / p95-latency
trade-off) with BO and random search, writes `autosys report` for both, serves
`autosys dashboard` for both on a free localhost port, loads each in headless
Chromium, prints which views drew how many points, and saves
experiments/results/report_interactive.png and experiments/results/dashboard.png.

    .venv/bin/python experiments/report_screenshots.py            # about 3 minutes on a shared 2-core machine
    .venv/bin/python experiments/report_screenshots.py --budget 12 --quick
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from autosys.analysis.report import write_report
from autosys.cli.dashboard import make_server
from autosys.run.study import Study

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--enable-unsafe-swiftshader"]


def chromium(url: str, profile: Path, *extra: str) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    run = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url],
                         capture_output=True, text=True, timeout=300)
    return run.stdout


def drawn_views(dom: str) -> list[tuple[str, str, str]]:
    rows = []
    for tag in re.findall(r'<div class="view"[^>]*>', dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        state = attrs.get("data-rendered") or ("missing: " + attrs["data-missing"] if "data-missing" in attrs else "NOT DRAWN")
        rows.append((f"{attrs['data-section']}/{attrs['data-view']}", attrs.get("data-points", "0"), state))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="a smaller KV workload")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        print("needs Chromium (apt-get install -y chromium)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="autosys-screens-"))
    options = {"records": 5000, "operations": 5000} if args.quick else {}
    dirs = []
    for tuner, seed in (("bo", 1), ("random", 1)):
        d = work / f"kv-{tuner}"
        Study.create(d, "kv", system_options=options, tuner=tuner, budget=args.budget, seed=seed).run().close()
        dirs.append(d)
    args.out.mkdir(parents=True, exist_ok=True)
    page = write_report(dirs, work / "report")
    dom = chromium(page.as_uri(), work / "profile", "--dump-dom")
    print(f"report: {page} ({page.stat().st_size / 1e6:.1f} MB, one file)")
    for row in drawn_views(dom):
        print(f"  {row[0]:<24} points {row[1]:>6}  {row[2]}")
    chromium(page.as_uri(), work / "profile", "--window-size=1280,7400", f"--screenshot={args.out / 'report_interactive.png'}")

    server = make_server(dirs, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/"
    try:
        dom = chromium(url, work / "profile", "--dump-dom")
        print(f"dashboard: {url}")
        for row in drawn_views(dom):
            print(f"  {row[0]:<24} points {row[1]:>6}  {row[2]}")
        chromium(url, work / "profile", "--window-size=1280,2400", f"--screenshot={args.out / 'dashboard.png'}")
    finally:
        server.shutdown()
        server.server_close()
    print(f"screenshots: {args.out / 'report_interactive.png'}, {args.out / 'dashboard.png'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
