"""Install names that do not collide: the adapters/ folder imports as `autosys_adapters`, beside any `adapters`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_distribution_and_import_names_are_not_the_taken_ones():
    assert PYPROJECT["project"]["name"] not in ("autosys", "adapters")  # both are other projects on PyPI
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"autosys_adapters": "adapters"}


def test_every_package_folder_is_listed_for_installation():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "autosys").rglob("__init__.py")}
    found |= {".".join(("autosys_adapters", *p.parent.relative_to(ROOT / "adapters").parts))
              for p in (ROOT / "adapters").rglob("__init__.py")}
    assert listed == found, f"add to [tool.setuptools] packages: {sorted(found - listed)}; remove: {sorted(listed - found)}"


def test_both_packages_ship_py_typed():
    for package, folder in (("autosys", "autosys"), ("autosys_adapters", "adapters")):
        assert (ROOT / folder / "py.typed").exists()
        assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"][package]


def test_another_package_named_adapters_and_autosys_import_side_by_side(tmp_path):
    """The popular ML package `adapters` (or any other) stays importable, and autosys's systems still load."""
    other = tmp_path / "site" / "adapters"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("WHO = 'the other adapters package'\n")
    code = (
        "import adapters, autosys_adapters.kv.system as kv\n"
        "from autosys.core.registry import system_factory\n"
        "print(adapters.WHO)\n"
        "print(kv.KVSelect.__module__, system_factory('sqlite').__module__)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["the other adapters package", "autosys_adapters.kv.system autosys_adapters.sqlite.knobs"]
