"""Re-execute the notebooks and save them with their outputs, so they render with results where people read them.

    python notebooks/execute.py                  # every notebook, in place
    python notebooks/execute.py 04_page_policy   # the ones whose name contains any argument

Each notebook runs top to bottom with nbclient on a kernel of this very
interpreter, in a temporary working directory with TMPDIR pointed at a
temporary folder, both removed afterwards (a notebook that leaves files there
is reported). Volatile metadata (execution timestamps) is dropped so that a
re-run changes only what the results change. `tests/test_notebooks.py`
re-executes them the same way and checks what is saved.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent
KERNEL_NAME = "autosys-notebooks-python"
CELL_TIMEOUT = 600


def kernel_manager(spec_root: Path):
    """A kernel manager whose kernel is `sys.executable -m ipykernel_launcher`."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = spec_root / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "autosys", "language": "python",
    }))
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root)]))


def execute(nb, cwd: Path, scratch: Path, spec_root: Path):
    """Run `nb` in place (cwd as its working directory, scratch as its TMPDIR); raises on the first failing cell."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, km=kernel_manager(spec_root), timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env={**os.environ, "TMPDIR": str(scratch), "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    return nb


def strip_volatile(nb) -> None:
    """Drop per-run metadata (execution timestamps) so re-runs diff only in results."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def main(argv: list[str]) -> int:
    import nbformat

    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if argv:
        paths = [p for p in paths if any(a in p.stem for a in argv)]
        if not paths:
            print(f"no notebook matches {' '.join(argv)}", file=sys.stderr)
            return 2
    failures = 0
    with tempfile.TemporaryDirectory(prefix="autosys-nb-") as root:
        root_ = Path(root)
        for path in paths:
            cwd, scratch = root_ / f"{path.stem}-cwd", root_ / f"{path.stem}-tmp"
            cwd.mkdir()
            scratch.mkdir()
            nb = nbformat.read(path, as_version=4)
            start = time.monotonic()
            try:
                execute(nb, cwd, scratch, root_ / "kernels")
            except Exception as exc:  # keep going: report every notebook that fails
                failures += 1
                print(f"{path.name}: FAILED: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}")
                continue
            left = sorted(p.name for p in [*cwd.iterdir(), *scratch.iterdir()])
            strip_volatile(nb)
            nbformat.write(nb, path)
            note = f" (left behind: {', '.join(left)})" if left else ""
            print(f"{path.name}: {time.monotonic() - start:.1f} s, saved with outputs{note}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
