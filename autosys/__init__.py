"""autosys: an ML-for-systems autotuning toolkit.

Importing this package has no side effects; heavy pieces load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["minimize", "maximize", "Study", "Space", "System", "__version__"]


def __getattr__(name: str):
    # lazy re-exports keep `import autosys` cheap
    if name in ("minimize", "maximize"):
        from autosys import optimize

        return getattr(optimize, name)
    if name == "Study":
        from autosys.study import Study

        return Study
    if name == "Space":
        from autosys.space import Space

        return Space
    if name == "System":
        from autosys.system import System

        return System
    raise AttributeError(f"module 'autosys' has no attribute {name!r}")
