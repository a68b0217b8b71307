"""The README's promises: two set-up commands, and the one-file system guide works as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str = "") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quick_start_is_exactly_make_tune_and_make_test():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for block in re.findall(r"```\n(.*?)```", quick, flags=re.S)
                for line in block.splitlines() if line.strip()]
    assert commands == ["make tune", "make test"]


def test_the_one_file_system_tunes_from_the_cli_and_passes_check_system(tmp_path):
    source = next(b for b in code_blocks("python") if b.startswith("# mysystem.py"))
    (tmp_path / "mysystem.py").write_text(source)
    run = subprocess.run([sys.executable, "-m", "autosys", "tune", "mysystem:BlockSort", "--n", "20000", "--budget", "4",
                          "--tuner", "random", "--quiet", "--dir", str(tmp_path / "study")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    caption = " ".join(run.stdout.split())  # the gain, or that none was found, with paired runs behind it
    assert any(p in caption for p in ("best is", "no significant gain", "unconfirmed")), caption
    check = subprocess.run([sys.executable, "-c", "from mysystem import BlockSort; from autosys.checks.system import check_system; "
                            "r = check_system(BlockSort(n=20000)); print('failed:', len(r.failed))"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert check.returncode == 0, check.stderr
    assert "failed: 0" in check.stdout

