"""Load a script under experiments/ as a module for a test (the scripts are not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]


def experiment_module(script: str) -> Iterator[ModuleType]:
    """Yield experiments/`script`.py loaded as a module; for a module-scoped fixture (`yield from`)."""
    spec = importlib.util.spec_from_file_location(f"{script}_experiment", ROOT / "experiments" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
