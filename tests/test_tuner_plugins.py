"""Tuners are plug-ins like systems: the `autosys.tuners` entry-point group and `--tuner module:Class`.

A throw-away distribution (a real `.dist-info` with `entry_points.txt`) on
PYTHONPATH declares tuners the way an installed package would; the CLI runs
in a subprocess so the entry points are looked up for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autosys.core.plugins import UntrustedPlugin, check_stored_name
from autosys.tuners import TUNERS, UnknownTuner, available_tuners, tuner_class
from autosys.tuners.random_search import RandomSearch

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--records", "200", "--operations", "100", "--repeats", "1", "--seconds", "0.2", "--quiet"]

PLUGIN = '''
from pathlib import Path
from autosys.tuners.random_search import RandomSearch

Path(__file__).with_name("IMPORTED").touch()  # proves when the module was imported


class DemoTuner(RandomSearch):
    name = "demo"


class NotATuner:
    pass
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    (tmp_path / "demo_tuners.py").write_text(PLUGIN)
    info = tmp_path / "demo_tuners-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-tuners\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[autosys.tuners]\ndemo = demo_tuners:DemoTuner\nrandom = demo_tuners:DemoTuner\n"
    )
    return tmp_path


def autosys(*args: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (pythonpath, ROOT) if p)
    return subprocess.run([sys.executable, "-m", "autosys", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def test_an_entry_point_tuner_is_listed_and_runs_and_cannot_shadow_a_built_in(plugin_dir, tmp_path):
    listed = autosys("list", cwd=tmp_path, pythonpath=plugin_dir)
    assert listed.returncode == 0, listed.stderr
    out = " ".join(listed.stdout.split())
    assert "plug-in tuner demo = demo_tuners:DemoTuner (ok)" in out
    assert "plug-in tuner random = demo_tuners:DemoTuner (ignored: a built-in has this name)" in out
    run = autosys("tune", "sqlite", "--tuner", "demo", "--budget", "2", "--dir", str(tmp_path / "s"), *SMALL,
                  cwd=tmp_path, pythonpath=plugin_dir)
    assert run.returncode == 0, run.stderr
    assert "tuner: demo" in run.stderr
    code = ("import warnings; from autosys.tuners import tuner_class, available_tuners\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always'); cls = tuner_class('random')\n"
            "print(cls.__module__, available_tuners()['random'], available_tuners()['demo'], '|', w[0].message)")
    env = dict(os.environ, PYTHONPATH=f"{plugin_dir}{os.pathsep}{ROOT}")
    probe = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("autosys.tuners.random_search autosys.tuners.random_search:RandomSearch demo_tuners:DemoTuner |")
    assert "entry point 'demo_tuners:DemoTuner' of the same name is ignored" in probe.stdout


def test_a_module_class_tuner_is_imported_only_when_named_again_on_resume(plugin_dir):
    (plugin_dir / "demo_tuners-0.1.dist-info" / "entry_points.txt").unlink()  # a plain local file, not installed
    study = plugin_dir / "s"
    run = autosys("tune", "sqlite", "--tuner", "demo_tuners:DemoTuner", "--budget", "2", "--dir", str(study), *SMALL,
                  cwd=plugin_dir)
    assert run.returncode == 0, run.stderr
    assert (plugin_dir / "IMPORTED").exists()
    (plugin_dir / "IMPORTED").unlink()
    refused = autosys("tune", "--resume", str(study), "--budget", "3", "--quiet", cwd=plugin_dir)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "--tuner demo_tuners:DemoTuner" in refused.stderr
    assert not (plugin_dir / "IMPORTED").exists()
    resumed = autosys("tune", "--resume", str(study), "--tuner", "demo_tuners:DemoTuner", "--budget", "3", "--quiet",
                      cwd=plugin_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert (plugin_dir / "IMPORTED").exists()


def test_unknown_or_wrong_tuners_are_one_clear_line(tmp_path):
    (tmp_path / "demo_tuners.py").write_text(PLUGIN)
    for tuner, needle in [
        ("nope", "unknown tuner 'nope'; known tuners: " + ", ".join(TUNERS)),
        ("demo_tuners:NotATuner", "is not a subclass of autosys.tuners.base.Tuner"),
        ("demo_tuners:Missing", "module 'demo_tuners' has no 'Missing'"),
        ("no_such_module_x:Cls", "cannot import 'no_such_module_x'"),
    ]:
        run = autosys("tune", "sqlite", "--tuner", tuner, "--budget", "2", "--dir", str(tmp_path / "s"), cwd=tmp_path)
        assert run.returncode == 2, (tuner, run.stderr)
        assert needle in " ".join(run.stderr.split()) and "Traceback" not in run.stderr, (tuner, run.stderr)
        assert not (tmp_path / "s").exists()


def test_the_registry_holds_every_built_in_and_the_stored_name_rule():
    assert set(TUNERS) <= set(available_tuners())
    assert tuner_class("random") is RandomSearch
    assert tuner_class("autosys.tuners.random_search:RandomSearch") is RandomSearch
    with pytest.raises(UnknownTuner, match="known tuners: random, grid"):
        tuner_class("nope")
    check_stored_name("random", None, kind="tuner", flag="--tuner")  # registered names need nothing
    check_stored_name("m:C", ["m:C"], kind="tuner", flag="--tuner")
    with pytest.raises(UntrustedPlugin, match="--tuner os:system"):
        check_stored_name("os:system", "meta", kind="tuner", flag="--tuner")


def test_an_allow_listed_optuna_name_is_a_name_not_an_import_path():
    """`optuna:TPESampler` resolves through a fixed allow-list: a stored one resumes without being named again,
    while as a *system* name it is simply unknown (never imported)."""
    from autosys.core.plugins import check_stored_name, is_path
    from autosys.core.registry import UnknownSystem, system_factory

    assert not is_path("optuna:TPESampler") and is_path("mymodule:MyTuner")
    check_stored_name("optuna:TPESampler", None, kind="tuner", flag="--tuner")  # no UntrustedPlugin
    with pytest.raises(UnknownSystem, match="unknown system"):
        system_factory("optuna:os")
