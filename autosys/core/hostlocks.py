"""Where host-wide lock files live: one folder for every process on the host, whatever its TMPDIR.

A lock that guards something host-wide (a server's settings, an exclusive
system's trials) must be found by every process that may touch it; a
per-process TMPDIR (a notebook, a test, a user's shell) would give each its
own lock and exclude nobody. So locks go to `AUTOSYS_LOCK_DIR` when set (all
cooperating processes must then set the same), else the system's /tmp.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def lock_dir() -> Path:
    """The folder of host-wide lock files (made if missing)."""
    chosen = os.environ.get("AUTOSYS_LOCK_DIR")
    if chosen:
        folder = Path(chosen)
    elif Path("/tmp").is_dir():
        folder = Path("/tmp")
    else:  # not a POSIX host
        folder = Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


__all__ = ["lock_dir"]
