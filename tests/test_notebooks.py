"""Every notebook under notebooks/ runs top to bottom, so none of them rots.

Each notebook is executed with nbclient on a kernel that runs this very
interpreter (a kernelspec written into a temporary folder), with the kernel's
working directory and TMPDIR (where the notebooks put their studies) in
pytest's temporary folders, so nothing is written into the repository and
nothing piles up in the system's /tmp. A notebook passes when no cell raises and it drew at least one
figure. Run only these with `pytest -m notebooks`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "autosys-test-python"
#: seconds any one cell may take (the notebooks take well under a minute each on an idle 2-core machine)
CELL_TIMEOUT = 600


@pytest.fixture(scope="module")
def kernel_manager_factory(tmp_path_factory):
    """Builds kernel managers whose kernel is `sys.executable -m ipykernel_launcher`."""
    pytest.importorskip("nbclient", reason="the notebooks extra (nbclient) is not installed")
    pytest.importorskip("nbformat", reason="the notebooks extra (nbformat) is not installed")
    pytest.importorskip("ipykernel", reason="the notebooks extra (ipykernel) is not installed")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path_factory.mktemp("kernels") / KERNEL_NAME
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "autosys tests",
                "language": "python",
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])

    def make() -> KernelManager:
        return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)

    return make


def _images(nb) -> int:
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    for expected in ("00_quickstart.ipynb", "06_agent.ipynb", "07_compare_tuners.ipynb"):
        assert expected in names


@pytest.mark.notebooks
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_manager_factory, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    stored = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not stored, f"{path.name} is committed with outputs; strip them to keep diffs small"
    cwd, scratch = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    scratch.mkdir()
    client = NotebookClient(
        nb,
        km=kernel_manager_factory(),
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(cwd)}},
    )
    start = time.monotonic()
    client.execute(env={**os.environ, "TMPDIR": str(scratch)})  # raises CellExecutionError naming the failing cell
    seconds = time.monotonic() - start
    print(f"{path.name}: {seconds:.1f} s")
    assert _images(nb) >= 1, f"{path.name} drew no figure"
    assert not any(cwd.iterdir()), f"{path.name} wrote into its working directory: {sorted(cwd.iterdir())}"
    assert any(scratch.iterdir()), f"{path.name} kept no work folder under TMPDIR (where do its studies go?)"
