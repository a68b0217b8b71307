"""The layering contract is tested, not promised: import-linter's contracts in pyproject.toml,
no adapter using a private name of the core, and packages that say what they may import."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "learn", "tuners", "executors", "storage", "run", "online", "analysis", "checks", "cli")
FAMILIES = ("sqlite", "dbserver", "kv", "pagecache", "kernels", "learned_index", "workloads")


def _lint_imports() -> str:
    here = Path(sys.executable).parent / "lint-imports"
    found = str(here) if here.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return found


def test_import_linter_contracts_hold():
    proc = subprocess.run(
        [_lint_imports(), "--no-logo", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout
    # every contract named in pyproject.toml ran
    for contract in ("layers", "core reaches adapters only", "workloads", "no import cycles", "private module"):
        assert contract in proc.stdout


def test_import_linter_catches_an_upward_import(tmp_path):
    """The contract is live: a core module importing the study loop breaks it."""
    planted = ROOT / "autosys" / "core" / "_planted_upward_import.py"
    planted.write_text("from autosys.run import study  # noqa: F401\n")
    try:
        proc = subprocess.run(
            [_lint_imports(), "--no-logo", "--no-cache", "--contract", "layers"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
    finally:
        planted.unlink()
    assert proc.returncode != 0
    assert "autosys.core._planted_upward_import -> autosys.run.study" in proc.stdout


def _private_core_names(tree: ast.AST) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "autosys":
            if any(part.startswith("_") for part in node.module.split(".")):
                bad.append(node.module)
            bad += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.startswith("autosys") and "._" in a.name]
    return bad


def test_no_adapter_imports_a_private_name_of_the_core():
    offenders = {}
    for path in sorted((ROOT / "adapters").rglob("*.py")):
        bad = _private_core_names(ast.parse(path.read_text(), filename=str(path)))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, offenders


def test_the_private_name_check_can_fail():
    assert _private_core_names(ast.parse("from autosys.online.monitor import _Rates")) == ["autosys.online.monitor._Rates"]


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_is_a_package_that_says_what_it_may_import(layer):
    init = ROOT / "autosys" / layer / "__init__.py"
    assert init.exists(), f"autosys/{layer}/ is not a package"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    assert "May import" in doc, f"autosys/{layer}/__init__.py's docstring does not say what it may import"


def test_every_autosys_package_is_a_known_layer():
    packages = {p.parent.name for p in (ROOT / "autosys").glob("*/__init__.py")}
    assert packages == set(LAYERS), packages ^ set(LAYERS)


def test_readme_architecture_names_every_folder():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for layer in LAYERS:
        assert re.search(rf"\b{layer}/", section), f"README's architecture does not show autosys/{layer}/"
    for family in FAMILIES:
        assert (ROOT / "adapters" / family / "__init__.py").exists()
        assert re.search(rf"\b{family}/", section), f"README's architecture does not show adapters/{family}/"
