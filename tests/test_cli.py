"""The CLI end to end, in a real subprocess, on the real SQLite adapter."""

import json
import subprocess
import sys
from pathlib import Path

from autosys.run.study import open_study

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--records", "300", "--operations", "200", "--repeats", "1", "--seconds", "0.3"]


def autosys(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "autosys", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_tune_writes_json_with_default_and_best(tmp_path):
    out = tmp_path / "out.json"
    run = autosys("tune", "sqlite", "--budget", "4", "--dir", str(tmp_path / "s"), "--json", str(out), "--quiet", *SMALL)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert set(data) >= {"system", "objective", "default", "best", "trials"}
    assert data["system"] == "sqlite"
    assert data["trials"]["complete"] + data["trials"]["failed"] == 4
    assert data["best"]["metrics"]["throughput"] >= data["default"]["metrics"]["throughput"]
    # the caption carries the gain's interval from paired runs: "best is" only when significant
    caption = " ".join(run.stdout.split())
    gain = data["vs_default"]
    assert ("best is" in caption) == bool(gain["significant"]), (caption, gain)
    assert gain["significant"] or any(p in caption for p in ("no significant gain", "unconfirmed"))
    # throughput vs p95 latency: the front is printed, saved, and made of real trials
    assert "Pareto front" in run.stdout and (tmp_path / "s" / "pareto.png").exists()
    numbers = {row["number"] for row in data["pareto_front"]}
    assert numbers and numbers <= set(range(4))
    show = autosys("show", str(tmp_path / "s"))
    assert show.returncode == 0 and "default" in show.stdout


def test_confirm_ends_the_study_with_final_runs_of_stored_configs(tmp_path):
    out = tmp_path / "out.json"
    run = autosys("tune", "sqlite", "--budget", "6", "--confirm", "2", "--tuner", "random", "--dir", str(tmp_path / "s"),
                  "--json", str(out), "--quiet", *SMALL)
    assert run.returncode == 0, run.stderr
    storage, _ = open_study(tmp_path / "s")
    stored = storage.trials()
    storage.close()
    assert len(stored) == 6 and [t.source for t in stored[-2:]] == ["confirm", "confirm"]
    searched = [t.config for t in stored[:-2]]
    assert all(t.config in searched for t in stored[-2:])  # the final re-runs configs the search found
    assert json.loads(out.read_text())["best"]["config"] in [t.config for t in stored[-2:]]
    bad = autosys("tune", "sqlite", "--budget", "3", "--confirm", "3", "--dir", str(tmp_path / "t"), *SMALL)
    assert bad.returncode == 2 and "confirm" in bad.stderr and "Traceback" not in bad.stderr


def test_invalid_set_value_is_one_line_naming_the_parameter(tmp_path):
    run = autosys("tune", "sqlite", "--set", "journal_mode=bogus", "--dir", str(tmp_path / "s"))
    assert run.returncode == 2
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "journal_mode" in lines[0] and "bogus" in lines[0]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "s").exists()


def test_durable_setting_via_set_is_refused(tmp_path):
    run = autosys("tune", "sqlite", "--set", "synchronous=off", "--dir", str(tmp_path / "s"))
    assert run.returncode == 2 and "durable" in run.stderr and "Traceback" not in run.stderr


def test_unknown_names_and_bad_option_values_are_clear():
    for args, needle in [
        (("tune", "nosuchsystem"), "unknown system 'nosuchsystem'"),
        (("tune", "sqlite", "--set", "nosuchknob=1"), "unknown parameter 'nosuchknob'"),
        (("tune", "sqlite", "--records", "many"), "--records expects an integer"),
        (("tune", "sqlite", "--colour", "red"), "unknown option --colour"),
        (("tune", "sqlite", "--tuner", "nope"), "unknown tuner 'nope'"),
        (("show", "/nonexistent/study"), "no study found"),
    ]:
        run = autosys(*args)
        assert run.returncode == 2, (args, run.stderr)
        assert needle in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)


def test_list_shows_sqlite_and_tuners():
    run = autosys("list")
    assert run.returncode == 0
    assert "sqlite" in run.stdout and "random" in run.stdout
