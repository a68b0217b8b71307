"""Every notebook under notebooks/ is saved with its results and still runs top to bottom, so none of them rots.

The committed notebooks carry their outputs (made by `python notebooks/execute.py`),
so they render with results where people read them: every code cell that
shows something has run, at least one figure is saved, and no saved output is
an error. Each notebook is also re-executed here with nbclient on a kernel
that runs this very interpreter (a kernelspec written into a temporary
folder), with the kernel's working directory and TMPDIR (where the notebooks
put their studies) in pytest's temporary folders: a notebook passes when no
cell raises, it draws a figure, and it leaves nothing behind in either.
Run only these with `pytest -m notebooks`.
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_saved_with_their_results(path: Path):
    """Committed with outputs (python notebooks/execute.py): every cell ran, a figure shows, no error is saved."""
    nbformat = pytest.importorskip("nbformat", reason="the notebooks extra (nbformat) is not installed")
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name} has cells never run: run notebooks/execute.py"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), f"{path.name} was not run top to bottom"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} is saved with an error: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert _images(nb) >= 1, f"{path.name} is saved without a figure"


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
    assert not any(scratch.iterdir()), f"{path.name} left temporary files behind: {sorted(scratch.iterdir())}"
