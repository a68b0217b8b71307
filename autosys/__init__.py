"""autosys: an ML-for-systems autotuning toolkit.

The layers, each a package whose docstring says what it may import (checked by
the import-linter contract in pyproject.toml, run by the test suite):

    cli/                         the `autosys` command line
    analysis/  checks/           reports, importance, workload mapping; conformance suites
    run/  online/                the study loop; the embedded agent and monitors
    tuners/  executors/  storage/  search strategies; where trials run; where studies are kept
    learn/                       models behind fit / predict-with-uncertainty / rank
    core/                        space, trial, system contract, SystemSpec, registry

Importing this package has no side effects (beyond the NullHandler every library puts on its
logger); heavy pieces load on first use.
"""

from __future__ import annotations

import logging

# a library stays quiet: its loggers ("autosys", "autosys.study", ...) print only where the application
# configures logging (the CLI does, when stderr is not a terminal)
logging.getLogger("autosys").addHandler(logging.NullHandler())

__version__ = "0.1.0"

#: public name -> module that defines it (loaded on first use, so `import autosys` stays cheap)
_EXPORTS = {
    "minimize": "autosys.run.optimize",
    "maximize": "autosys.run.optimize",
    "Study": "autosys.run.study",
    "Space": "autosys.core.space",
    "Int": "autosys.core.space",
    "Float": "autosys.core.space",
    "Categorical": "autosys.core.space",
    "Ordinal": "autosys.core.space",
    "Bool": "autosys.core.space",
    "System": "autosys.core.system",
    "Measurement": "autosys.core.system",
    "Objective": "autosys.core.system",
    "Limit": "autosys.core.system",
    "SystemSpec": "autosys.core.spec",
    "check_system": "autosys.checks.system",
    "check_tuner": "autosys.checks.tuner",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autosys' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
